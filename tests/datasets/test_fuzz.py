"""Random mutations of valid files fed to every loader: a clean load or a one-line InputError,
nothing else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detkit.datasets.checks.fix import plan_fix, write_fix
from detkit.datasets.checks.validate import validate_path
from detkit.datasets.load import load_dataset, load_labels
from detkit.errors import InputError

COCO = json.dumps(
    {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
            {"id": 2, "file_name": "b.jpg", "width": 32, "height": 32},
        ],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 3,
                "bbox": [1.5, 2, 10, 20],
                "area": 150.0,
                "iscrowd": 0,
                "segmentation": [[1, 2, 11, 2, 11, 22]],
            },
            {"id": 2, "image_id": 2, "category_id": 7, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 0},
        ],
        "categories": [{"id": 3, "name": "circle"}, {"id": 7, "name": "rectangle"}],
    }
).encode()
TEXT = (
    b"id: 0, height: 330, width: 1093, bbox:[69, 464, 312, 175],\nid: 79, height: 20, width: 30, "
    b"bbox:[1.5, 2, 3, 4],\n"
)
YOLO_LABEL = b"0 0.5 0.5 0.25 0.5\n1 0.1 0.2 0.05 0.1\n"
VOC = (
    b"<annotation><filename>a.jpg</filename><size><width>64</width><height>48</height><depth>3</depth></size>"
    b"<object><name>cat</name>"
    b"<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox></object>"
    b"</annotation>"
)
SWAPS = [
    (b"64", b'"64"'),
    (b"1.5", b"null"),
    (b"[", b"{"),
    (b'"a.jpg"', b"7"),
    (b"10", b"-10"),
    (b"20", b"NaN"),
    (b"0.5", b"1e999"),
    (b"cat", b""),
    (b"width", b"widht"),
    (b"3", b"99999999999999999999999"),
    (b"2", b"true"),
    (b"1 ", b"123456789 "),
    (b"0.1", b"nan"),
    (b"dog", b"\xff"),
]


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """Byte flips, truncations, deletions, insertions and token swaps of ``data``."""
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "delete", "insert", "swap"]))
        n = len(data)
        if n == 0:
            break
        i = draw(st.integers(0, n - 1))
        if kind == "flip":
            data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]
        elif kind == "truncate":
            data = data[:i]
        elif kind == "delete":
            data = data[:i] + data[i + draw(st.integers(1, 8)) :]
        elif kind == "insert":
            data = data[:i] + draw(st.binary(min_size=1, max_size=4)) + data[i:]
        else:
            old, new = draw(st.sampled_from(SWAPS))
            data = data.replace(old, new, 1)
    return data


def _tiny_jpeg(path: Path, w: int, h: int) -> None:
    import numpy as np
    from PIL import Image

    Image.fromarray(np.zeros((h, w, 3), dtype=np.uint8)).save(path)


def _load_or_input_error(path: Path, fmt: str) -> None:
    try:
        load_dataset(path, format=fmt)
    except InputError as exc:
        assert "\n" not in str(exc)
    # validate reads leniently (bad records become findings); for coco also the labels-only decoder and
    # validate's lenient pass (keep_raw) read the same bytes
    readers = [validate_path]
    if fmt == "coco":
        readers += [load_labels, lambda p, format: validate_path(p, format=format, keep_raw=True)]
    for read in readers:
        try:
            read(path, format=fmt)
        except InputError as exc:
            assert "\n" not in str(exc)


# what the fault-injection campaign fed: very deep nesting, numbers too long for a float (400
# digits) or for Python's int parser (5000), lone surrogate escapes, and whole files in other encodings
HOSTILE = [
    b"1" + b"0" * 399,
    b"-1" + b"0" * 4999,
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'"\\ud800"',
    b'"x\\udfff"',
    b"1e400",
    b"-0",
]
ENCODINGS = ["utf-8-sig", "utf-16", "utf-16-be", "utf-32", "shift_jis"]


@st.composite
def hostile(draw, data: bytes) -> bytes:
    """``data`` with a number or string swapped for a hostile value, a hostile value inserted, or
    re-encoded."""
    kind = draw(st.sampled_from(["swap", "insert", "encode"]))
    if kind == "encode":
        enc = draw(st.sampled_from(ENCODINGS))
        try:
            return data.decode("utf-8").encode(enc)
        except (UnicodeError, LookupError):
            return data
    value = draw(st.sampled_from(HOSTILE))
    if kind == "insert":
        i = draw(st.integers(0, len(data)))
        return data[:i] + value + data[i:]
    tokens = [t for t in (b"64", b"48", b"1.5", b"10", b'"a.jpg"', b'"circle"', b"3", b"0") if t in data]
    if not tokens:
        return data + value
    return data.replace(draw(st.sampled_from(tokens)), value, 1)


def _coco_agrees_and_fixes(path: Path) -> None:
    """validate never passes (exit 0 at --fail-on error) a COCO file the loader rejects, and what --fix
    writes from any file validate reads passes --fail-on error and loads."""
    try:
        load_dataset(path, format="coco")
        loads = True
    except InputError:
        loads = False
    try:
        report = validate_path(path, format="coco", keep_raw=True)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert loads or report.fails("error"), [f.code for f in report.findings]
    out = path.with_name("fixed.json")
    write_fix(report, out)
    after = validate_path(out, format="coco")
    assert not after.fails("error"), [
        (f.code, f.examples[:1]) for f in after.findings if f.severity == "error"
    ]
    plan_fix(after)  # and fixing the fixed file again does not crash


SETTINGS = settings(
    max_examples=150, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck)
)


@pytest.mark.parametrize("fmt, data", [("coco", COCO), ("text", TEXT)])
def test_file_loaders_survive_mutations(tmp_path, fmt, data):
    path = tmp_path / ("f.json" if fmt == "coco" else "f.txt")

    @SETTINGS
    @given(mutated(data))
    def run(blob):
        path.write_bytes(blob)
        _load_or_input_error(path, fmt)

    run()


def test_yolo_loader_survives_mutations(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    _tiny_jpeg(tmp_path / "images" / "a.jpg", 16, 8)
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    label = tmp_path / "labels" / "a.txt"

    @settings(max_examples=100, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
    @given(mutated(YOLO_LABEL), mutated(b"cat\ndog\n"))
    def run(blob, names):
        label.write_bytes(blob)
        (tmp_path / "classes.txt").write_bytes(names)
        _load_or_input_error(tmp_path, "yolo")

    run()


def test_voc_loader_survives_mutations(tmp_path):
    ann = tmp_path / "Annotations"
    ann.mkdir()
    f = ann / "a.xml"

    @SETTINGS
    @given(mutated(VOC))
    def run(blob):
        f.write_bytes(blob)
        _load_or_input_error(tmp_path, "voc")

    run()
    shutil.rmtree(ann)


def test_coco_hostile_values_and_encodings(tmp_path):
    path = tmp_path / "f.json"

    @settings(max_examples=120, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
    @given(hostile(COCO))
    def run(blob):
        path.write_bytes(blob)
        _load_or_input_error(path, "coco")
        _coco_agrees_and_fixes(path)

    run()


def test_coco_mutations_validate_agrees_with_the_loader_and_fix_is_clean(tmp_path):
    path = tmp_path / "f.json"

    @SETTINGS
    @given(mutated(COCO))
    def run(blob):
        path.write_bytes(blob)
        _coco_agrees_and_fixes(path)

    run()


@pytest.mark.parametrize("fmt, data", [("text", TEXT), ("voc", VOC)])
def test_line_and_xml_formats_survive_hostile_values(tmp_path, fmt, data):
    path = tmp_path / ("f.txt" if fmt == "text" else "f.xml")

    @settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
    @given(hostile(data))
    def run(blob):
        path.write_bytes(blob)
        _load_or_input_error(path, fmt)

    run()
