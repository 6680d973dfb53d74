"""Bad input is one line and exit 2 for every coco command; startup imports nothing heavy; help has examples."""

from __future__ import annotations

import subprocess
import sys

import pytest

GOOD_IMG = '{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}'
CASES = {
    "empty.json": (b"", "file is empty"),
    "blank.json": (b"  \n", "file is empty"),
    "truncated.json": (b'{"images": [' + GOOD_IMG.encode() + b'], "annotations": [', "truncated"),
    "shape.json": (b"[1, 2, 3]", "$: Expected `object`"),
    "string.json": (b'{"images": [{"id": 1, "width": "ten", "height": 10}]}', "$.images[0].width: Expected `float`, got `str`"),
    "nan.json": (b'{"images": [{"id": 1, "width": NaN, "height": 10}]}', "line 1: NaN/Infinity is not a JSON number"),
    "negative.json": (b'{"images": [{"id": 1, "width": -4, "height": 10}]}', "$.images[0]: image size -4.0x10.0 must be positive"),
    "latin1.json": (b'{"images": [{"id": 1, "file_name": "caf\xe9.jpg", "width": 4, "height": 10}]}', "line 1: not UTF-8"),
    "bad.txt": (b"id: 0, height: 330, width: 1093, bbox:[69, 464, 312, 175],\nid: 1, height: 3\n", "line 2: expected 'id: 0, height"),
    "nan.txt": (b"id: 0, height: nan, width: 1093, bbox:[69, 464, 312, 175],\n", "line 1: image size 1093xnan must be positive"),
    "neg.txt": (b"id: 0, height: -3, width: 1093, bbox:[69, 464, 312, 175],\n", "line 1: image size 1093x-3 must be positive"),
    "latin1.txt": (b"id: 0, height: 3, width: 10, bbox:[1, 1, 1, 1],\n\xe9\n", "line 2: not UTF-8"),
    "broken.xml": (b"<annotation><size><width>4</width>", "malformed XML"),
}


def _assert_one_line(err: str, path, what: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"detkit: error: {path}"), lines[0]
    assert what in lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("command", ["inspect", "classes"])
def test_bad_files_are_one_line_exit_2(cli, tmp_path, name, command):
    content, what = CASES[name]
    p = tmp_path / name
    p.write_bytes(content)
    code, out, err = cli("coco", command, p)
    assert code == 2 and out == ""
    _assert_one_line(err, p, what)


@pytest.mark.parametrize("name", ["empty.json", "truncated.json", "shape.json", "latin1.json", "bad.txt", "broken.xml"])
def test_validate_unusable_input_exit_2(cli, tmp_path, name):
    content, _ = CASES[name]
    p = tmp_path / name
    p.write_bytes(content)
    code, out, err = cli("coco", "validate", p, "--json")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"detkit: error: {p}")


def test_validate_reports_what_the_strict_loader_rejects(cli, tmp_path):
    for name in ("string.json", "nan.json", "negative.json"):
        p = tmp_path / name
        p.write_bytes(CASES[name][0])
        code, out, err = cli("coco", "validate", p)
        assert code == 1 and "error" in out, name


def test_folders_without_labels(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = cli("coco", "inspect", tmp_path / "empty")
    assert code == 2 and "cannot tell the annotation format" in err
    (tmp_path / "y" / "labels").mkdir(parents=True)
    code, _, err = cli("coco", "classes", tmp_path / "y")
    _assert_one_line(err, tmp_path / "y", "no YOLO label .txt files found")
    (tmp_path / "v" / "Annotations").mkdir(parents=True)
    code, _, err = cli("coco", "classes", tmp_path / "v", "--format", "voc")
    _assert_one_line(err, tmp_path / "v", "no Pascal VOC .xml files found")
    code, _, err = cli("coco", "inspect", tmp_path / "missing.json")
    _assert_one_line(err, tmp_path / "missing.json", "no such file")


def test_json_output_is_one_document(cli, shapes_dir):
    import json

    for cmd in ("inspect", "classes", "validate"):
        code, out, _ = cli("coco", cmd, shapes_dir / "instances.json", "--json")
        assert code == 0 and json.loads(out)["schema_version"] == 1


@pytest.mark.parametrize("command", ["inspect", "validate", "classes", "convert"])
def test_help_shows_an_example(cli, command):
    code, out, _ = cli("coco", command, "--help")
    assert code == 0 and f"Example: detkit coco {command}" in out


def test_no_heavy_imports(shapes_dir):
    """`detkit coco classes --json` and `detkit --help` import no torch, matplotlib, pandas or pycocotools."""
    code = (
        "import sys, io, contextlib\n"
        "from detkit.cli import run\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert run(['--help']) == 0\n"
        f"    assert run(['coco', 'classes', {str(shapes_dir / 'instances.json')!r}, '--json']) == 0\n"
        "    assert run(['coco', 'validate', '--help']) == 0\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'matplotlib', 'pandas', 'pycocotools', 'cv2', 'sklearn') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
