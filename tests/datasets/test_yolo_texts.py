"""The label files' bytes as the parser reads them: whole files packed into Texts (each in a map of its own,
returned once parsed) up to a byte limit, a larger file on its own, and the bytes of every file left to the
per-line reader kept exactly."""

from __future__ import annotations

import os
import weakref

import numpy as np
import pytest

from detkit.datasets.formats.yolo import YOLO_TOL, load_yolo
from detkit.datasets.formats.yolo_rows import MAX_TOKEN, Text, mapped, parse_labels, parse_texts, texts_of
from detkit.io import can_fork
from tests.datasets.test_layouts import write_image

ROW = b"0 0.5 0.5 0.25 0.25\n"  # 20 bytes


def test_files_are_packed_whole_up_to_the_limit():
    blobs = [ROW, b"", ROW[:-1], ROW * 3, b"7 0.5 0.5 0.5 0.5\r\n"]
    units = texts_of(blobs, limit=41, base=10)
    assert [type(u) for u in units] == [Text, tuple, Text]
    t = units[0]  # 21 + 20 bytes (a \n added after the second): at the limit; the empty file in none
    assert t.file.tolist() == [10, 12] and t.start.tolist() == [0, 20] and t.size.tolist() == [20, 19]
    assert t.data.tobytes() == ROW + ROW[:-1] + b"\n" + b" " * MAX_TOKEN and t.lines == 2
    assert units[1] == (13, ROW * 3)  # 60 bytes: more than the limit, on its own
    assert units[2].file.tolist() == [14] and units[2].size.tolist() == [19] and units[2].lines == 1


def test_a_file_of_exactly_the_limit_is_a_text_of_its_own():
    units = texts_of([ROW, ROW, ROW], limit=20)
    assert [u.file.tolist() for u in units] == [[0], [1], [2]]
    assert [u.data.tobytes() for u in units] == [ROW + b" " * MAX_TOKEN] * 3


def test_no_file_no_unit():
    assert texts_of([], limit=64) == [] and texts_of([b"", b""], limit=64) == []
    rows, kept = parse_texts([], 2, 80, YOLO_TOL)
    assert len(rows.file) == 0 and rows.slow.tolist() == [False, False] and kept == {}


def test_the_bytes_of_files_that_leave_are_kept_exactly_and_each_text_is_returned():
    big_dup = b"".join(f"{i} 0.5 0.5 0.25 0.25\n".encode() for i in range(8)) + b"3 0.5 0.5 0.25 0.25"
    blobs = [
        ROW,
        b"1 0.5 0.5 0.25 2.5",  # out of range, no \n at the end
        b"2 0.5 0.5 0.25 0.25\r\n2 0.5 0.5 0.25 0.25\r\n",  # a duplicate row
        big_dup,  # larger than the limit: cut into batches, a duplicate across them
        b"\xef\xbb\xbf" + ROW,  # a BOM
        b"4 0.5 0.5 0.25 0.25\n\n5 0.1 0.2 0.3 0.4",
    ]
    units = texts_of(blobs, limit=64)
    maps = [weakref.ref(u.data.base.obj) for u in units if isinstance(u, Text)]
    rows, kept = parse_texts(units, len(blobs), 80, YOLO_TOL, batch_bytes=64)
    assert units == [] and all(m() is None for m in maps)  # each map returned
    assert rows.slow.tolist() == [False, True, True, True, True, False]
    assert kept == {k: blobs[k] for k in (1, 2, 3, 4)}
    assert rows.file.tolist() == [0, 5, 5] and rows.line.tolist() == [1, 1, 3]
    assert rows.cls.tolist() == [0, 4, 5]
    assert rows.box.tolist() == [[0.5, 0.5, 0.25, 0.25], [0.5, 0.5, 0.25, 0.25], [0.1, 0.2, 0.3, 0.4]]
    one_each = [parse_labels([b], 80, YOLO_TOL) for b in blobs]  # the same, file by file
    assert [bool(r.slow[0]) for r in one_each] == rows.slow.tolist()
    assert np.array_equal(np.concatenate([r.box for r in one_each]), rows.box)


def _folder(root, labels: dict[str, str]):
    for i, (stem, text) in enumerate(labels.items()):
        write_image(root / "images" / "train" / f"{stem}.jpg", (32, 24), seed=i)
        (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
        if text is not None:
            (root / "labels" / "train" / f"{stem}.txt").write_text(text)
    (root / "data.yaml").write_text("train: images/train\nnames: [a, b, c, d]\n")
    return root / "data.yaml"


def test_box_records_by_runs_of_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("DETKIT_CACHE", "off")
    row = "1 0.5 0.5 0.25 0.25\n"
    two = row + "2 0.5 0.5 0.5 0.5"
    ds = load_yolo(_folder(tmp_path / "d", {"a": two + "\n", "b": "", "c": None, "d": two}))
    rec = ds.ann_record
    assert rec.line is None and rec.first.tolist() == [0, 2, 2, 4]  # (per run: a, b, d)
    want = ["a.txt line 1", "a.txt line 2", "d.txt line 1", "d.txt line 2"]
    assert [ds.record(i) for i in range(4)] == want and list(rec) == want and len(rec) == 4
    assert rec[-1] == "d.txt line 2" and np.asarray(rec).tolist() == want
    part = rec[np.array([False, True, False, True])]
    assert list(part) == [want[1], want[3]] and part[-2] == want[1] and list(part[1:]) == [want[3]]
    sub = ds.subset_images(ds.image_id[ds.file_name != "images/train/a.jpg"])
    assert [sub.record(i) for i in range(sub.num_annotations)] == want[2:]


def test_box_records_per_box_where_lines_are_not_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("DETKIT_CACHE", "off")
    row = "1 0.5 0.5 0.25 0.25\n"
    ds = load_yolo(_folder(tmp_path / "d", {"a": row, "b": "\n" + row + "\n" + "2 0.5 0.5 0.5 0.5\n"}))
    rec = ds.ann_record
    assert rec.line is not None and rec.line.tolist() == [1, 2, 4] and rec.file.tolist() == [0, 1, 1]
    assert list(rec) == ["a.txt line 1", "b.txt line 2", "b.txt line 4"] and rec[-1] == "b.txt line 4"
    assert list(rec[1:]) == ["b.txt line 2", "b.txt line 4"]


def test_a_mapped_array_is_zeros_and_private_to_a_forked_child():
    # the reader's columns live in anonymous maps: a child forked after the read (a data loader's worker)
    # that writes into them leaves the parent's columns as they were
    a = mapped(4, np.int64)
    assert a.tolist() == [0, 0, 0, 0] and a.flags.writeable
    a[:] = 1
    if not can_fork():
        pytest.skip("no fork on this platform")
    pid = os.fork()
    if pid == 0:
        a[:] = 2
        os._exit(0)
    os.waitpid(pid, 0)
    assert a.tolist() == [1, 1, 1, 1]
