"""The COCO results reader: chunks cut between records, and the same columns on one process or two."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from detkit.errors import InputError
from detkit.evaluation import results_json
from detkit.evaluation.results_json import _DETS, can_fork, read_results, record_chunks

linux = pytest.mark.skipif(sys.platform != "linux", reason="the forked decode runs on Linux only")


def _rows(n: int, seed: int = 0, extra: bool = False) -> list[dict]:
    """n records; ``extra``: each with keys that hold '{', '},{' and nested objects (where no cut
    may fall)."""
    rng = np.random.default_rng(seed)
    rows = [
        {
            "image_id": int(i),
            "category_id": int(c),
            "bbox": [float(v) for v in rng.uniform(1, 50, 4)],
            "score": float(s),
        }
        for i, c, s in zip(rng.integers(1, 99, n), rng.integers(1, 9, n), rng.uniform(size=n))
    ]
    if extra:
        for k, r in enumerate(rows):
            r["note"], r["extra"] = ["x},{y", "a,{b", "{", "]"][k % 4], {"k": [1, {"z": 2}, {"w": [{}]}]}
    return rows


def _children() -> list[str]:
    """This process' child processes (any state, zombies included), from /proc."""
    me, out = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            out.append(f"{stat.parent.name} {fields[0]}")
    return out


def test_record_chunks_cut_between_records():
    """The cuts fall between records (each chunk a JSON list of whole records) and lose none."""
    rows = [{"image_id": i, "category_id": 1, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.5} for i in range(50)]
    for sep in ((",", ":"), (", ", ": ")):
        pieces = record_chunks(json.dumps(rows, separators=sep).encode(), 100)
        assert len(pieces) > 5
        assert [d.image_id for p in pieces for d in _DETS.decode(p)] == list(range(50))


@linux
@pytest.mark.parametrize(
    ("chunk", "extra", "indent"),
    [(64, False, 1), (1000, False, None), (1 << 18, False, 1), (1000, True, None), (1 << 18, True, 2)],
)
def test_forked_decode_gives_the_file_order_columns(tmp_path, chunk, extra, indent, monkeypatch):
    """Two processes give exactly the columns of one, in file order, whether the middle of the file falls
    between two records (the halves decode: no whole-file decode) or inside one (a string with braces: the
    whole file is decoded here); the child is reaped."""
    rows = _rows(3001, extra=extra)
    path = tmp_path / "dt.json"
    path.write_text(json.dumps(rows, indent=indent) + "\n")
    one = read_results(path, chunk, fork=False)
    real, whole = results_json.decode_bytes, []
    monkeypatch.setattr(results_json, "decode_bytes", lambda *a: whole.append(1) or real(*a))
    two = read_results(path, chunk, fork=True)
    assert bool(whole) == extra
    assert one[0].tolist() == [r["image_id"] for r in rows]
    assert one[2].tolist() == [r["bbox"] for r in rows]
    for a, b in zip(one, two):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    assert _children() == []


@linux
@pytest.mark.parametrize("bad", [5, 2990])  # in the first half (this process), in the later (the child)
def test_forked_decode_error_names_the_record(tmp_path, bad):
    """A bad record in either half is the same one-line error as a one-process decode gives."""
    rows = _rows(3000)
    rows[bad]["score"] = "high"
    path = tmp_path / "dt.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(InputError) as one:
        read_results(path, 1000, fork=False)
    with pytest.raises(InputError) as two:
        read_results(path, 1000, fork=True)
    assert f"$[{bad}].score" in str(two.value) and str(one.value) == str(two.value)
    assert _children() == []


@linux
def test_a_failed_child_falls_back_to_one_process(tmp_path, monkeypatch):
    """A child that dies without a word (here: killed by its own hand) leaves the whole file decoded here."""
    rows = _rows(2000)
    path = tmp_path / "dt.json"
    path.write_text(json.dumps(rows))
    monkeypatch.setattr(results_json, "_child", lambda *a: os._exit(3))
    cols = read_results(path, 1000, fork=True)
    assert cols[3].tolist() == [r["score"] for r in rows]
    assert _children() == []


def test_fork_only_when_safe_and_worth_it(tmp_path, monkeypatch):
    """No fork beside another thread, nor for a file under FORK_MIN_BYTES."""
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        assert not can_fork()
    finally:
        stop.set()
        worker.join()
    assert can_fork() == (sys.platform == "linux" and len(os.sched_getaffinity(0)) > 1)

    def no_fork(path, chunk):
        raise AssertionError("forked for a small file")

    monkeypatch.setattr(results_json, "_read_forked", no_fork)
    path = tmp_path / "dt.json"
    path.write_text(json.dumps(_rows(500)))
    assert path.stat().st_size < results_json.FORK_MIN_BYTES
    assert len(read_results(path, 256)[0]) == 500


def test_an_empty_or_unreadable_file_is_one_line(tmp_path):
    path = tmp_path / "dt.json"
    path.write_text("  \n")
    with pytest.raises(InputError, match="file is empty"):
        read_results(path)
    with pytest.raises(InputError, match="cannot read"):
        read_results(tmp_path / "missing.json")


@linux
@pytest.mark.parametrize("what", ["fork", "pipe", "mmap"])
def test_no_second_process_leaves_the_work_to_this_one(tmp_path, monkeypatch, what):
    """No process, pipe or shared mapping to be had (EAGAIN, EMFILE, ENOMEM): one process reads it all."""

    def refuse(*args, **kwargs):
        raise OSError(11, "Resource temporarily unavailable")

    rows = _rows(2000)
    path = tmp_path / "dt.json"
    path.write_text(json.dumps(rows))
    monkeypatch.setattr(
        *{"fork": (os, "fork"), "pipe": (os, "pipe"), "mmap": (results_json.mmap, "mmap")}[what], refuse
    )
    cols = read_results(path, 1000, fork=True)
    assert cols[0].tolist() == [r["image_id"] for r in rows]
    assert _children() == []


# ---- hostile results files: one line naming the file and the record ---------------------------
GT = {
    "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0}
    ],
    "categories": [{"id": 1, "name": "cat"}],
}
ONE = '[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}]'


def _eval(cli, tmp_path: Path, pred: Path, *extra: str) -> str:
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(GT))
    code, out, err = cli("coco", "eval", gt, pred, "--json", *extra)
    assert code == 2 and out == "" and "Traceback" not in err and err.strip().count("\n") == 0, (code, err)
    return err.strip()


@pytest.mark.parametrize("literal", [str(2**70), "1" * 29, str(-(2**63) - 1)])
@pytest.mark.parametrize("field", ["image_id", "category_id"])
def test_an_id_outside_int64_names_its_record(cli, tmp_path, literal, field):
    p = tmp_path / "p.json"
    p.write_text(ONE + "\n")
    rows = json.loads(ONE) * 3
    text = json.dumps(rows).replace(f'"{field}": 1', f'"{field}": {literal}', 2)
    p.write_text(text)
    for fork in (False, True):
        with pytest.raises(InputError) as e:
            read_results(p, fork=fork)
        assert str(e.value).startswith(f"{p}:$[0].{field}: Expected `int`"), e.value
    for extra in ((), ("--lenient",)):
        assert _eval(cli, tmp_path, p, *extra).startswith(f"detkit: error: {p}:$[0].{field}: Expected `int`")


def test_a_bom_is_named(cli, tmp_path):
    p = tmp_path / "p.json"
    p.write_bytes(b"\xef\xbb\xbf" + ONE.encode())
    assert _eval(cli, tmp_path, p) == (
        f"detkit: error: {p}: starts with a UTF-8 byte-order mark (BOM), which JSON does not allow (Python's "
        "json and pycocotools refuse it too): save it as UTF-8 without a BOM"
    )
    with pytest.raises(json.JSONDecodeError, match="BOM"):  # the reference's reader refuses it too
        json.loads(p.read_text(encoding="utf-8"))


def test_an_object_instead_of_a_results_list(cli, tmp_path):
    p = tmp_path / "p.json"
    p.write_text('{"annotations": []}')
    assert _eval(cli, tmp_path, p) == (
        f"detkit: error: {p}: is a JSON object without an 'images' list: expected a COCO results list "
        '[{image_id, category_id, bbox, score}, ...] or detkit predictions {"images": [...]}'
    )


@linux
def test_a_fifo_and_dev_zero_are_refused_before_reading(cli, tmp_path):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    assert (
        _eval(cli, tmp_path, fifo)
        == f"detkit: error: {fifo}: is a named pipe (FIFO), expected a regular file"
    )
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")  # reading it would never end
    assert _eval(cli, tmp_path, zero) == f"detkit: error: {zero}: is a device, expected a regular file"
    with pytest.raises(InputError, match="is a device"):
        read_results(zero)


def test_a_pipe_given_to_the_process_is_read_once(tmp_path):
    import subprocess

    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(GT))
    r = subprocess.run(
        [sys.executable, "-m", "detkit", "coco", "eval", str(gt), "/dev/stdin", "--json"],
        input=ONE.encode(),
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["summary"]["AP50"] == pytest.approx(1.0)
