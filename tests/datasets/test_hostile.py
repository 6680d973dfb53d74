"""Hostile and huge inputs: every count bounded before it allocates, YAML bounded, special files
refused up front, dataset roots sane, outputs never inside an input — each one line and exit 2."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from detkit.datasets.formats.layouts import read_data_yaml
from detkit.datasets.formats.readers import YAML_MAX_BYTES, check_file, load_yaml, read_bytes
from detkit.errors import InputError
from tests.datasets.test_layouts import write_image

linux = pytest.mark.skipif(sys.platform != "linux", reason="FIFOs and /dev/zero")


def _one_line(code: int, err: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err and err.strip().count("\n") == 0, err
    return err.strip()


def _yolo(root: Path, yaml_text: str, n: int = 2) -> Path:
    """A tiny ultralytics layout under ``root`` (images/train, labels/train), ``yaml_text`` its data.yaml."""
    for i in range(n):
        write_image(root / "images" / "train" / f"{i}.jpg", (32, 24), seed=i)
        (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "train" / f"{i}.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    y = root / "data.yaml"
    y.write_text(yaml_text)
    return y


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """``levels`` anchors, each a list of ``width`` aliases of the one before: width**levels leaves."""
    lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


# ---- counts from data are bounded -------------------------------------------------------------------------
CMDS = [("inspect",), ("convert", "--to", "coco"), ("split",), ("draw",)]


@pytest.mark.parametrize("cmd", CMDS)
def test_nc_10_12_without_names_is_one_line(cli, tmp_path, cmd):
    y = _yolo(tmp_path / "d", "train: images/train\nnc: 1000000000000\n")
    args = [*cmd, y] + ([tmp_path / "out"] if cmd[0] != "inspect" else [])
    code, _, err = cli("coco", *args)
    assert _one_line(code, err) == (
        f"detkit: error: {y}:nc: 1000000000000 classes without names: at most 100,000 are read"
    )


def test_nc_at_the_limit_is_read(tmp_path):
    y = _yolo(tmp_path / "d", "train: images/train\nnc: 100000\n")
    assert len(read_data_yaml(y).names) == 100_000


# ---- YAML is bounded --------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["names", "train"])
@pytest.mark.parametrize("cmd", CMDS)
def test_an_alias_bomb_is_one_line(cli, tmp_path, key, cmd):
    text = alias_bomb() + ("train: images/train\nnames: *a8\n" if key == "names" else "train: *a8\n")
    y = _yolo(tmp_path / "d", text)
    args = [*cmd, y] + ([tmp_path / "out"] if cmd[0] != "inspect" else [])
    code, _, err = cli("coco", *args)
    assert _one_line(code, err) == (
        f"detkit: error: {y}: more than 1,000,000 values once its aliases are expanded (an alias bomb?)"
    )


def test_the_node_budget_counts_expanded_values(tmp_path):
    y = tmp_path / "a.yaml"
    y.write_text(alias_bomb(levels=3, width=10) + "b: *a2\n")  # 10 + 100 + 1000 + 1000 leaves
    assert load_yaml(y, max_nodes=3000)["b"][9][9] == ["x"] * 10  # 1 + 3 + (10+1) + (100+10+1)... fits
    with pytest.raises(InputError, match="more than 2,000 values"):
        load_yaml(y, max_nodes=2000)


def test_a_self_referencing_alias_is_refused(tmp_path):
    y = tmp_path / "a.yaml"
    y.write_text("a: &a [1, *a]\n")
    with pytest.raises(InputError, match="aliases are expanded"):
        load_yaml(y)


def test_a_yaml_over_the_size_limit_is_refused_before_parsing(tmp_path):
    y = tmp_path / "data.yaml"
    y.write_text("train: x\n#" + "x" * YAML_MAX_BYTES + "\n")
    with pytest.raises(InputError) as e:
        load_yaml(y)
    assert str(e.value) == (
        f"{y}: {y.stat().st_size:,} bytes: too large for a YAML file (at most {YAML_MAX_BYTES:,})"
    )


def test_a_yaml_tag_that_would_run_code_is_refused(tmp_path):
    y = tmp_path / "data.yaml"
    y.write_text("train: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(InputError, match=r"data.yaml:line 1: not valid YAML"):
        load_yaml(y)


# ---- special files are refused up front ------------------------------------------------------------------
@linux
def test_special_files_are_refused_before_opening(tmp_path):
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="is a named pipe"):
        read_bytes(fifo)  # would block for a writer if opened
    zero = tmp_path / "z"
    zero.symlink_to("/dev/zero")
    with pytest.raises(InputError, match=f"^{zero}: is a device, expected a regular file$"):
        read_bytes(zero)
    assert read_bytes(Path("/dev/null")) == b""
    assert check_file(Path("/dev/null")) == 0
    with pytest.raises(InputError, match="is a folder"):
        read_bytes(tmp_path)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 11)
    with pytest.raises(InputError, match="11 bytes: too large for a thing \\(at most 10\\)"):
        read_bytes(big, 10, "a thing")


@linux
@pytest.mark.parametrize("special", ["fifo", "zero"])
def test_a_special_data_yaml_is_one_line(cli, tmp_path, special):
    d = tmp_path / "d"
    _yolo(d, "train: images/train\nnames: [a]\n").unlink()
    y = d / "data.yaml"
    os.mkfifo(y) if special == "fifo" else y.symlink_to("/dev/zero")
    code, _, err = cli("coco", "inspect", y)
    what = "a named pipe (FIFO)" if special == "fifo" else "a device"
    assert _one_line(code, err) == f"detkit: error: {y}: is {what}, expected a regular file"


# ---- dataset roots are sane -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, what",
    [
        ("/", "the file system's root"),
        ("/proc", "inside /proc"),
        ("/proc/self", "inside /proc"),
        ("/sys", "inside /sys"),
        ("/etc", "inside /etc"),
    ],
)
def test_a_system_root_is_refused(cli, tmp_path, value, what):
    y = _yolo(tmp_path / "d", f"path: {value}\ntrain: .\nnames: [a]\n")
    for cmd in CMDS:
        args = [*cmd, y] + ([tmp_path / "out"] if cmd[0] != "inspect" else [])
        code, _, err = cli("coco", *args)
        assert _one_line(code, err) == f"detkit: error: {y}:path: '{value}' is {what}: not a dataset folder"
    assert not (tmp_path / "out").exists()


def test_a_split_entry_at_the_root_is_refused(tmp_path):
    y = _yolo(tmp_path / "d", "train: /\nnames: [a]\n")
    with pytest.raises(InputError, match="train: '/' is the file system's root"):
        read_data_yaml(y)


def test_a_folder_above_home_is_refused(tmp_path, monkeypatch):
    home = tmp_path / "home" / "u"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    y = _yolo(tmp_path / "d", f"path: {tmp_path / 'home'}\ntrain: .\nnames: [a]\n")
    with pytest.raises(InputError) as e:
        read_data_yaml(y)
    assert str(e.value) == (
        f"{y}:path: '{tmp_path / 'home'}' is a folder above your home {home}: not a dataset folder"
    )
    y.write_text(f"path: {tmp_path / 'd'}\ntrain: images/train\nnames: [a]\n")  # beside home: fine
    assert len(read_data_yaml(y).splits[0].images) == 2


# ---- outputs never inside an input ------------------------------------------------------------------------
def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "cmd, inside",
    [
        (("filter", "{y}", "{out}", "--copy-images"), "images/train"),
        (("sample", "{y}", "{out}", "--n", "1"), "images/train"),
        (("split", "{y}", "{out}"), "images/train/sub"),
        (("draw", "{y}", "{out}"), "labels/train"),
        (("convert", "{y}", "{out}", "--to", "voc"), "images"),
        (("convert", "{y}", "{out}", "--to", "coco"), "extra"),
        (("convert", "{y}", "{out}", "--to", "cvat"), "images/train"),  # a folder holding annotations.xml
        (("merge", "{y}", "{y}", "{out}"), "images/train"),
    ],
)
def test_an_output_inside_the_input_is_refused_and_the_input_untouched(cli, tmp_path, cmd, inside):
    d = tmp_path / "d"
    y = _yolo(d, "train: images/train\nnames: [a]\n")
    before = _tree(d)
    out = d / inside / "out"
    code, _, err = cli("coco", *[a.format(y=y, out=out) for a in cmd])
    assert _one_line(code, err) == (
        f"detkit: error: {out}: output is inside the input folder {d}, which later reads would take it in; "
        "choose an output outside it"
    )
    assert _tree(d) == before and not out.exists()
    code, _, err = cli("coco", *[a.format(y=y, out=tmp_path / "ok") for a in cmd])  # beside it: fine
    assert code == 0, err


def test_an_output_inside_a_coco_image_folder_is_refused(cli, tmp_path):
    import json

    (tmp_path / "ann").mkdir()
    write_image(tmp_path / "imgs" / "a.jpg", (32, 24))
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 32, "height": 24}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}],
        "categories": [{"id": 1, "name": "a"}],
    }
    j = tmp_path / "ann" / "c.json"
    j.write_text(json.dumps(doc))
    out = tmp_path / "imgs" / "out"
    code, _, err = cli("coco", "convert", j, out, "--to", "yolo", "--images", tmp_path / "imgs")
    assert _one_line(code, err).endswith(
        f"output is inside the input folder {tmp_path / 'imgs'}, which later "
        "reads would take it in; choose an output outside it"
    )
    # beside the json (its own folder is not walked): fine, as before
    code, _, err = cli(
        "coco", "convert", j, tmp_path / "ann" / "out", "--to", "yolo", "--images", tmp_path / "imgs"
    )
    assert code == 0, err


def test_a_run_folder_inside_the_data_is_refused(cli, tmp_path):
    y = _yolo(tmp_path / "d", "train: images/train\nval: images/train\nnames: [a]\n")
    out = tmp_path / "d" / "runs" / "r1"
    code, _, err = cli("yolo", "train", "--data", y, "--out", out, "--epochs", "1")
    assert _one_line(code, err) == (
        f"detkit: error: {out}: run folder is inside the input folder {tmp_path / 'd'}, which later reads "
        "would take it in; choose a run folder outside it"
    )
    assert not out.exists()


# ---- messages: one line naming the file and what is wrong -------------------------------------------------
class _Evil:
    """Unpickled, it would make the folder ``marker``."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@linux
def test_a_hostile_checkpoint_is_one_line_and_runs_nothing(cli, tmp_path):
    import torch

    from detkit.io import torch_load

    evil = tmp_path / "evil.pt"
    marker = tmp_path / "ran"
    torch.save({"model": _Evil(str(marker))}, evil)
    with pytest.raises(InputError) as e:
        torch_load(evil)
    assert str(e.value) == (
        f"{evil}: not a usable checkpoint: it holds a Python object (posix.mkdir) that is not a tensor "
        "(detkit loads weights, never code)"
    )
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(evil.read_bytes())
    code, _, err = cli("yolo", "train", "--resume", run)
    assert "not a usable checkpoint: it holds a Python object (posix.mkdir)" in _one_line(code, err)
    assert not marker.exists()


def test_a_full_disk_names_the_file(tmp_path):
    import errno

    from detkit.io import atomic_write, staged_folder

    target = tmp_path / "out.json"
    with pytest.raises(OSError) as e, atomic_write(target) as f:
        f.write("x")
        raise OSError(errno.ENOSPC, "No space left on device")  # what write() raises: no file name
    assert (e.value.filename, e.value.strerror) == (str(target), "No space left on device")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(OSError) as e, staged_folder(tmp_path / "o") as tmp:
        (tmp / "a").write_text("x")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert e.value.filename == str(tmp_path / "o") and list(tmp_path.iterdir()) == []


def test_an_output_that_is_a_symlink_to_an_empty_folder(cli, tmp_path):
    y = _yolo(tmp_path / "d", "train: images/train\nnames: [a]\n")
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    out.symlink_to(tmp_path / "empty")
    code, _, err = cli("coco", "split", y, out)
    assert _one_line(code, err) == (
        f"detkit: error: {out}: is a symbolic link (to {tmp_path / 'empty'}); name a new folder instead"
    )
    assert out.is_symlink() and list((tmp_path / "empty").iterdir()) == []


def test_the_loser_of_two_writers_is_one_line(tmp_path):
    from detkit.io import staged_folder

    out = tmp_path / "o"
    with pytest.raises(InputError) as e, staged_folder(out) as tmp:
        (tmp / "mine").write_text("x")
        out.mkdir()  # the other writer finished first
        (out / "theirs").write_text("y")
    assert str(e.value) == (
        f"{out}: was filled by another process while this one wrote it (two commands writing one output?): "
        "its files are kept, this run's are discarded"
    )
    assert [p.name for p in out.iterdir()] == ["theirs"] and sorted(p.name for p in tmp_path.iterdir()) == [
        "o"
    ]


def test_a_box_of_1e308_is_a_note_not_a_numpy_warning(tmp_path):
    import json
    import subprocess

    gt = tmp_path / "gt.json"
    gt.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "area": 12}],
                "categories": [{"id": 1, "name": "cat"}],
            }
        )
    )
    pred = tmp_path / "p.json"
    pred.write_text('[{"image_id": 1, "category_id": 1, "bbox": [1e308, 2, 1e308, 4], "score": 0.5}]')
    r = subprocess.run(
        [sys.executable, "-m", "detkit", "coco", "eval", str(gt), str(pred), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert r.returncode == 0, r.stderr
    assert "RuntimeWarning" not in r.stderr and "overflow encountered" not in r.stderr, r.stderr
    assert (
        "warning: pred.box_overflow: 1 (100%) boxes whose x + w, y + h or w * h overflow float64: kept, "
        f"they match nothing First: {pred}:$[0]: bbox [1e+308, 2.0, 1e+308, 4.0]"
    ) in r.stderr
    doc = json.loads(r.stdout)
    assert doc["summary"]["AP"] == 0.0 and doc["notes"][0]["code"] == "pred.box_overflow"


# ---- image linking: one rule (formats/write.link_image) for convert and the ops ---------------------------
def test_link_image_rules(tmp_path):
    from detkit.datasets.formats.write import link_image
    from detkit.errors import DetkitError

    src = write_image(tmp_path / "src" / "a.jpg", (8, 8))
    out = tmp_path / "out"
    out.mkdir()
    assert link_image(src, out / "x" / "a.jpg", out) == "linked"
    assert (out / "x" / "a.jpg").resolve() == src.resolve()
    assert link_image(src, out / "x" / "a.jpg", out) == "taken"  # never written through
    assert link_image(src, out / "x" / "a.jpg" / "b.jpg", out) == "taken"  # a file where a folder goes
    assert link_image(None, out / "n.jpg", out) == "missing"
    assert link_image(tmp_path / "src" / "a\0.jpg", out / "n.jpg", out) == "missing"  # NUL: no such file
    (tmp_path / "elsewhere").mkdir()
    (out / "esc").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(DetkitError, match="refusing to write outside the output folder"):
        link_image(src, out / "esc" / "a.jpg", out)
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert link_image(src, out / "c.jpg", out, copy=True) == "linked"
    assert not (out / "c.jpg").is_symlink() and (out / "c.jpg").read_bytes() == src.read_bytes()


def test_data_folders_of_a_yaml_start_at_its_path(tmp_path):
    from detkit.datasets.paths import check_outside, data_folders

    _yolo(tmp_path / "ds", "train: images/train\nnames: [a]\n")
    y = tmp_path / "data.yaml"
    y.write_text("path: ds\ntrain: images/train\nnames: [a]\n")
    assert data_folders(y, None) == [tmp_path / "ds"]
    check_outside(tmp_path / "run", data_folders(y))  # beside the dataset, next to the yaml: fine
    with pytest.raises(InputError, match="run folder is inside the input folder"):
        check_outside(tmp_path / "ds" / "run", data_folders(y), "run folder")
