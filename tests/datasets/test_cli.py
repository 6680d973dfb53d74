"""Bad input is one line and exit 2 for every coco command; startup imports nothing heavy; help
has examples."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

GOOD_IMG = '{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}'
CASES = {
    "empty.json": (b"", "file is empty"),
    "blank.json": (b"  \n", "file is empty"),
    "truncated.json": (b'{"images": [' + GOOD_IMG.encode() + b'], "annotations": [', "truncated"),
    "shape.json": (b"[1, 2, 3]", "$: Expected `object`"),
    "string.json": (
        b'{"images": [{"id": 1, "width": "ten", "height": 10}]}',
        "$.images[0].width: Expected `float`, got `str`",
    ),
    "nan.json": (
        b'{"images": [{"id": 1, "width": NaN, "height": 10}]}',
        "line 1: NaN/Infinity is not a JSON number",
    ),
    "negative.json": (
        b'{"images": [{"id": 1, "width": -4, "height": 10}]}',
        "$.images[0]: image size -4.0x10.0 must be positive",
    ),
    "latin1.json": (
        b'{"images": [{"id": 1, "file_name": "caf\xe9.jpg", "width": 4, "height": 10}]}',
        "line 1: not UTF-8",
    ),
    "bad.txt": (
        b"id: 0, height: 330, width: 1093, bbox:[69, 464, 312, 175],\nid: 1, height: 3\n",
        "line 2: expected 'id: 0, height",
    ),
    "nan.txt": (
        b"id: 0, height: nan, width: 1093, bbox:[69, 464, 312, 175],\n",
        "line 1: image size 1093xnan must be positive",
    ),
    "neg.txt": (
        b"id: 0, height: -3, width: 1093, bbox:[69, 464, 312, 175],\n",
        "line 1: image size 1093x-3 must be positive",
    ),
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


@pytest.mark.parametrize("name", ["empty.json", "truncated.json", "shape.json", "latin1.json", "latin1.txt"])
def test_validate_unusable_input_exit_2(cli, tmp_path, name):
    content, _ = CASES[name]
    p = tmp_path / name
    p.write_bytes(content)
    code, out, err = cli("coco", "validate", p, "--json")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"detkit: error: {p}")


def test_validate_reports_what_the_strict_loader_rejects(cli, tmp_path):
    """Broken records are findings (exit 1), not a stop: validate lists them all."""
    expect = {
        "string.json": ("record.wrong_type", "$.images[0].width"),
        "nan.json": ("value.non_finite", "$.images[0]"),
        "negative.json": ("image.bad_size", "$.images[0]"),
        "bad.txt": ("record.unparsable", "line 2"),
        "nan.txt": ("value.non_finite", "line 1"),
        "neg.txt": ("image.bad_size", "line 1"),
        "broken.xml": ("record.unparsable", "line 1"),
    }
    for name, (code_, record) in expect.items():
        p = tmp_path / name
        p.write_bytes(CASES[name][0])
        code, out, _ = cli("coco", "validate", p, "--json")
        findings = json.loads(out)["findings"]
        assert code == 1 and [(f["code"], f["count"]) for f in findings][:1] == [(code_, 1)], name
        assert findings[0]["examples"][0]["record"] == record, name


def test_validate_reports_bad_lines_of_yolo_and_voc_folders(cli, tmp_path):
    from PIL import Image

    (tmp_path / "y" / "images").mkdir(parents=True)
    (tmp_path / "y" / "labels").mkdir()
    Image.new("RGB", (20, 10)).save(tmp_path / "y" / "images" / "a.jpg")
    (tmp_path / "y" / "labels" / "a.txt").write_text(
        "0 0.5 0.5 0.2 0.2\n0 0.5 x 0.2 0.2\n1 0.5\n-1 0.5 0.5 0.1 0.1\n"
    )
    doc = json.loads(cli("coco", "validate", tmp_path / "y", "--json")[1])
    assert {f["code"]: f["count"] for f in doc["findings"]} == {
        "record.wrong_type": 2,
        "record.unparsable": 1,
    }
    assert doc["annotations"] == 1
    assert doc["findings"][1]["examples"][0]["record"] == "a.txt line 2"
    voc = tmp_path / "v" / "Annotations"
    voc.mkdir(parents=True)
    size = "<size><width>20</width><height>10</height></size>"
    (voc / "a.xml").write_text(
        f"<annotation>{size}<object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
        "<xmax>5</xmax><ymax>x</ymax></bndbox></object><object><name>dog</name></object></annotation>"
    )
    (voc / "b.xml").write_text(
        f"<annotation>{size}<object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
        "<xmax>5</xmax><ymax>6</ymax></bndbox></object></annotation>"
    )
    doc = json.loads(cli("coco", "validate", tmp_path / "v", "--json")[1])
    assert {f["code"]: f["count"] for f in doc["findings"]} == {
        "record.wrong_type": 1,
        "record.missing_field": 1,
        "image.no_annotations": 1,
    }
    assert doc["images"] == 2 and doc["annotations"] == 1


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
    for cmd in ("inspect", "classes", "validate"):
        code, out, _ = cli("coco", cmd, shapes_dir / "instances.json", "--json")
        assert code == 0 and json.loads(out)["schema_version"] == 1


@pytest.mark.parametrize("command", ["inspect", "validate", "classes", "convert"])
def test_help_shows_an_example(cli, command):
    code, out, _ = cli("coco", command, "--help")
    assert code == 0 and f"Example: detkit coco {command}" in out


def test_list_codes(cli):
    from detkit.datasets.checks.findings import CODES

    code, out, _ = cli("coco", "validate", "--list-codes")
    assert code == 0 and all(c in out for c in CODES)
    # the registry is append-only: the 23 first codes keep their names and order (CI configs name them)
    first = [
        "record.unparsable",
        "record.missing_field",
        "record.wrong_type",
        "value.non_finite",
        "image.bad_size",
        "image.duplicate_id",
        "category.duplicate_id",
        "annotation.duplicate_id",
        "annotation.id_zero",
        "annotation.dangling_image_id",
        "annotation.dangling_category_id",
        "bbox.non_positive_size",
        "bbox.outside_image",
        "segmentation.bad_polygon",
        "bbox.out_of_bounds",
        "bbox.sub_pixel",
        "annotation.duplicate_box",
        "annotation.area_inconsistent",
        "annotation.missing_area",
        "annotation.missing_iscrowd",
        "annotation.bad_iscrowd",
        "image.no_annotations",
        "category.unused",
    ]
    assert list(CODES)[:23] == first and len(CODES) > 23


def test_no_heavy_imports(shapes_dir):
    """`detkit coco classes --json` and `detkit --help` import no torch, matplotlib, pandas or pycocotools."""
    code = (
        "import sys, io, contextlib\n"
        "from detkit.cli import run\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert run(['--help']) == 0\n"
        f"    assert run(['coco', 'classes', {str(shapes_dir / 'instances.json')!r}, '--json']) == 0\n"
        "    assert run(['coco', 'validate', '--help']) == 0\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'matplotlib', 'pandas', 'pycocotools', 'cv2', "
        "'sklearn') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_cli_process_freezes_what_importing_made(shapes_dir):
    """`main` (freeze=True) moves the imported modules' objects out of the collector's reach before the
    command runs; `run` as the tests call it leaves the collector alone."""
    code = (
        "import gc, io, contextlib\n"
        "from detkit.cli import run\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert run(['coco', 'classes', {str(shapes_dir / 'instances.json')!r}, '--json']) == 0\n"
        "    plain = gc.get_freeze_count()\n"
        f"    assert run(['coco', 'classes', {str(shapes_dir / 'instances.json')!r}, '--json'], "
        "freeze=True) == 0\n"
        "print(plain, gc.get_freeze_count())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    plain, frozen = map(int, out.split())
    assert plain == 0 and frozen > 10_000
