"""Inputs that once caused tracebacks, each built from the case, and a closed stdout pipe:
one line and exit 2, or findings and exit 1 — never a traceback, never exit 0 on a file other commands reject.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from detkit.datasets.checks.validate import validate_path
from detkit.datasets.load import load_dataset
from tests.conftest import ROOT
from tests.datasets.test_layouts import write_image

COCO = {
    "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0}
    ],
    "categories": [{"id": 1, "name": "cat"}],
}
TEXT = json.dumps(COCO)
DEEP = 100_000


def _one_line(code: int, err: str, want: int = 2) -> str:
    assert code == want, err
    assert "Traceback" not in err and err.strip().count("\n") == 0, err
    return err.strip()


def _run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "detkit", *args],
        check=False,
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )


# ---- JSON nested 100k deep: RecursionError ---------------------------------------------------------
@pytest.mark.parametrize(
    "where",
    ["root", "images", "unknown_key", "detkit_key"],
)
def test_json_nested_100k_deep(cli, tmp_path, where):
    nest = "[" * DEEP + "]" * DEEP
    body = {
        "root": nest,
        "images": '{"images": ' + nest + "}",
        "unknown_key": TEXT[:-1] + ', "extra": ' + nest + "}",
        "detkit_key": TEXT[:-1] + ', "detkit": ' + nest + "}",
    }[where]
    p = tmp_path / "deep.json"
    p.write_text(body)
    for cmd in (
        ["inspect"],
        ["classes"],
        ["validate"],
        ["validate", "--fix", str(tmp_path / "f.json")],
        ["convert", "--to", "yolo"],
    ):
        args = ["coco", cmd[0], p, *([tmp_path / "y"] if cmd[0] == "convert" else []), *cmd[1:]]
        code, _, err = cli(*args)
        line = _one_line(code, err)  # the typed decoders may stop earlier, at a wrong type
        assert "nested too deeply" in line or (cmd[0] != "validate" and "Expected" in line), (cmd, line)


# ---- numbers too long for floats (400 digits) or for Python's int parser (5000 digits) -------------
@pytest.mark.parametrize("digits", [400, 5000])
@pytest.mark.parametrize("field", ["width", "image id", "bbox", "area", "category id", "extra"])
def test_huge_integers_are_findings(cli, tmp_path, digits, field):
    big = "1" + "0" * (digits - 1)
    text = {
        "width": TEXT.replace('"width": 64', f'"width": {big}'),
        "image id": TEXT.replace('"id": 1, "file_name"', f'"id": {big}, "file_name"'),
        "bbox": TEXT.replace("[1, 2, 3, 4]", f"[1, 2, {big}, 4]"),
        "area": TEXT.replace('"area": 12', f'"area": {big}'),
        "category id": TEXT.replace('"id": 1, "name"', f'"id": {big}, "name"'),
        "extra": TEXT[:-1] + f', "extra": [{big}]' + "}",
    }[field]
    p = tmp_path / "big.json"
    p.write_text(text)
    code, _, err = cli("coco", "inspect", p)
    assert field == "extra" and code == 0 or _one_line(code, err)
    report = validate_path(p)
    codes = {f.code for f in report.findings}
    if field == "extra":
        assert not report.fails("error")
    else:
        assert "record.wrong_type" in codes and report.fails("error")
        note = next(f for f in report.findings if f.code == "record.wrong_type").examples[0]["note"]
        assert f"about {digits}" in note or f"about {digits - 1}" in note
    out = tmp_path / "fixed.json"
    code, _, err = cli("coco", "validate", p, "--fix", out)  # the printer, not --json
    assert code in (0, 1) and "Traceback" not in err
    assert not validate_path(out).fails("error")
    if field == "extra":  # kept verbatim where the record is kept
        assert out.read_text().count(big) == 1


# ---- encodings other commands reject: BOM, UTF-16/32, lone surrogates -------------------------------
@pytest.mark.parametrize(
    "name, data, code",
    [
        ("bom", b"\xef\xbb\xbf" + TEXT.encode(), "file.encoding"),
        ("utf16", TEXT.encode("utf-16"), "file.encoding"),
        ("utf16be", TEXT.encode("utf-16-be"), "file.encoding"),
        ("utf32", TEXT.encode("utf-32"), "file.encoding"),
        ("surrogate", TEXT.replace('"a.jpg"', '"\\ud800.jpg"').encode(), "value.lone_surrogate"),
        ("surrogate_key", TEXT.replace('"cat"}', '"cat", "\\udfff": 1}').encode(), "value.lone_surrogate"),
    ],
)
def test_encodings_every_command_rejects_fail_validate(cli, tmp_path, name, data, code):
    p = tmp_path / f"{name}.json"
    p.write_bytes(data)
    rc, _, err = cli("coco", "inspect", p)
    _one_line(rc, err)  # the loaders reject it...
    rc, out, _ = cli("coco", "validate", p, "--json")
    doc = json.loads(out)
    assert (
        rc == 1 and doc["findings"][0]["code"] == code and doc["findings"][0]["severity"] == "error"
    )  # ...so does validate
    fixed = tmp_path / f"{name}.fixed.json"
    rc, out, err = cli("coco", "validate", p, "--fix", fixed, "--json")
    assert rc == 1, err
    actions = {c["action"] for c in json.loads(out)["fix"]["changes"]}
    assert actions == {"write_utf8" if code == "file.encoding" else "replace_lone_surrogate"}
    assert load_dataset(fixed).num_annotations == 1  # what --fix wrote, every command reads
    rc, out, err = cli(
        "coco", "validate", p, "--fix", tmp_path / "again.json"
    )  # the printer lists the change
    assert rc == 1 and ("write_utf8 byte 0" in out or "replace_lone_surrogate $." in out), out
    assert not validate_path(fixed).fails("error") and p.read_bytes() == data


# ---- --fix never crashes after writing, and its output passes --fail-on error -----------------------
FIX_CASES = {
    "width_string": lambda d: d["images"][0].update(width="64"),
    "category_wrong_type": lambda d: d["categories"][0].update(id="1"),
    "image_not_object": lambda d: d["images"].__setitem__(0, "oops"),
    "ann_without_id": lambda d: d["annotations"][0].pop("id"),
    "ann_id_string": lambda d: d["annotations"][0].update(id="x"),
    "ann_bbox_short": lambda d: d["annotations"][0].update(bbox=[1, 2]),
    "ann_bbox_null": lambda d: d["annotations"][0].update(bbox=None),
    "cat_name_missing": lambda d: d["categories"][0].pop("name"),
    "dup_image": lambda d: d["images"].append(dict(d["images"][0], file_name="b.jpg")),
    "dup_category": lambda d: d["categories"].append({"id": 1, "name": "dog"}),
    "dup_ann_id": lambda d: d["annotations"].append(dict(d["annotations"][0], bbox=[5, 5, 5, 5])),
    "ann_id_zero": lambda d: d["annotations"][0].update(id=0),
    "bad_polygon": lambda d: d["annotations"][0].update(segmentation=[[1, 2, 3]]),
    "outside_by_a_hair": lambda d: d["annotations"][0].update(bbox=[64, 2, 0.005, 4]),
    "iscrowd_string": lambda d: d["annotations"][0].update(iscrowd="0"),
}


@pytest.mark.parametrize("case", list(FIX_CASES))
def test_fix_never_crashes_and_passes_fail_on_error(cli, tmp_path, case):
    doc = json.loads(TEXT)
    doc["annotations"].append(
        dict(doc["annotations"][0], id=2, bbox=[10, 10, 5, 5])
    )  # a second box on the image
    FIX_CASES[case](doc)
    p, out = tmp_path / "in.json", tmp_path / "out.json"
    p.write_text(json.dumps(doc))
    code, stdout, err = cli("coco", "validate", p, "--fix", out)
    assert code in (0, 1) and "Traceback" not in err and "--fix wrote" in stdout
    after = validate_path(out)
    assert not after.fails("error"), [f.code for f in after.findings]
    code, stdout, _ = cli("coco", "validate", out, "--fail-on", "error")
    assert code == 0


def test_fix_drops_what_depends_on_a_dropped_record(cli_json, tmp_path):
    doc = json.loads(TEXT)
    doc["images"][0]["width"] = "64"  # the image goes: its box must go too
    doc["images"].append({"id": 2, "file_name": "b.jpg", "width": 10, "height": 10})
    doc["categories"] = [{"id": 1, "name": 5}, {"id": 2, "name": "dog"}]  # category 1 goes: its boxes too
    doc["annotations"] += [
        dict(doc["annotations"][0], id=k, image_id=2, bbox=[1, 1, 2, 2 + k]) for k in (2, 3)
    ]
    doc["annotations"].append(dict(doc["annotations"][0], id=4, image_id=2, category_id=2))
    p = tmp_path / "in.json"
    p.write_text(json.dumps(doc))
    fix = cli_json("coco", "validate", p, "--fix", tmp_path / "out.json", expect=1)["fix"]
    assert fix["counts"] == {"drop_dangling_image_id": 1, "drop_dangling_category_id": 2, "drop_unusable": 2}
    got = json.loads((tmp_path / "out.json").read_text())
    assert [a["id"] for a in got["annotations"]] == [4] and [c["id"] for c in got["categories"]] == [2]


# ---- VOC XML in encodings expat cannot read --------------------------------------------------------
VOC_SJIS = (
    '<?xml version="1.0" encoding="Shift_JIS"?><annotation><filename>写真.jpg</filename>'
    "<size><width>64</width>"
    "<height>48</height></size><object><name>猫</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax>"
    "<ymax>40</ymax></bndbox></object></annotation>"
)


def test_voc_shift_jis_reads(cli, tmp_path):
    p = tmp_path / "a.xml"
    p.write_bytes(VOC_SJIS.encode("shift_jis"))
    ds = load_dataset(p)
    assert (
        ds.cat_name.tolist() == ["猫"]
        and ds.file_name.tolist() == ["写真.jpg"]
        and ds.bbox.tolist() == [[1, 2, 29, 38]]
    )
    assert cli("coco", "validate", p)[0] == 0


def test_voc_unknown_encoding_is_one_line_or_a_finding(cli, tmp_path):
    p = tmp_path / "a.xml"
    p.write_bytes(VOC_SJIS.replace("Shift_JIS", "no-such-codec").encode("shift_jis"))
    code, _, err = cli("coco", "inspect", p)
    assert "unknown encoding 'no-such-codec'" in _one_line(code, err)
    report = validate_path(p)
    assert [(f.code, f.count) for f in report.findings] == [("record.unparsable", 1)]


# ---- a PNG header claiming 60000 x 60000 pixels: DecompressionBombError -----------------------------
def _png_header(path: Path, w: int, h: int) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


def test_png_bomb_header(cli, tmp_path):
    _png_header(tmp_path / "y" / "images" / "a.png", 60000, 60000)
    (tmp_path / "y" / "labels").mkdir()
    (tmp_path / "y" / "labels" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    # the only image of a YOLO set claims 60000 x 60000: a named corrupt-image problem, nothing usable
    code, _, err = cli("coco", "inspect", tmp_path / "y")
    assert code == 2 and "a.png" in _one_line(code, err), err
    code, out, err = cli("coco", "validate", tmp_path / "y")
    assert "a.png" in _one_line(code, err)
    # beside a good image it is a counted image.corrupt finding, and the rest is used
    write_image(tmp_path / "y" / "images" / "b.png")
    (tmp_path / "y" / "labels" / "b.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    code, out, err = cli("coco", "validate", tmp_path / "y", "--json")
    doc = json.loads(out)
    codes = {f["code"]: f for f in doc["findings"]}
    assert code == 1 and "image.corrupt" in codes and doc["images"] == 1, doc
    # VOC without a <size> falls back to the image header (detkit.datasets.formats.readers.image_size)
    voc = tmp_path / "v"
    _png_header(voc / "JPEGImages" / "a.png", 60000, 60000)
    (voc / "Annotations").mkdir()
    (voc / "Annotations" / "a.xml").write_text("<annotation><filename>a.png</filename></annotation>")
    code, _, err = cli("coco", "inspect", voc)
    assert "too many pixels" in _one_line(code, err) and "a.png" in err


# ---- validate --format coco on a pipe or /dev/null: TypeError on_error ------------------------------
def test_validate_coco_from_a_pipe_and_dev_null():
    r = _run("coco", "validate", "--format", "coco", "/dev/stdin", "--json", stdin=TEXT.encode())
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["annotations"] == 1
    r = _run("coco", "validate", "--format", "coco", "/dev/stdin", stdin=TEXT.replace("64", '"64"').encode())
    assert (
        r.returncode == 1 and b"record.wrong_type" in r.stdout
    )  # typed pass, then the lenient pass: read once
    r = _run("coco", "validate", "--format", "coco", "/dev/null")
    assert r.returncode == 2 and r.stderr.decode().strip() == "detkit: error: /dev/null: file is empty"


def test_validate_coco_folder(cli, tmp_path):
    (tmp_path / "only.json").write_text(TEXT)
    code, out, _ = cli("coco", "validate", "--format", "coco", tmp_path, "--json")
    assert code == 0 and json.loads(out)["annotations"] == 1


# ---- permission errors are one line ----------------------------------------------------------------
def test_permission_denied_is_one_line(cli, tmp_path, monkeypatch):
    p = tmp_path / "x.json"
    p.write_text(TEXT)

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)  # chmod 000 does not stop root, which runs the tests
    for cmd in ("inspect", "validate", "classes"):
        code, _, err = cli("coco", cmd, p)
        assert _one_line(code, err).endswith(f"{p}: cannot read (Permission denied)"), err


def test_an_oserror_escaping_a_command_is_one_line(cli, tmp_path, monkeypatch):
    from detkit.datasets.cli import inspect

    def boom(ds):
        raise PermissionError(13, "Permission denied", "/root/out.png")

    monkeypatch.setattr(inspect, "inspect_dataset", boom)
    p = tmp_path / "x.json"
    p.write_text(TEXT)
    code, _, err = cli("coco", "inspect", p)
    assert _one_line(code, err) == "detkit: error: /root/out.png: Permission denied"


# ---- a closed stdout pipe: exit 0, nothing on stderr ------------------------------------------------
@pytest.mark.parametrize("extra", [[], ["--json"], ["--markdown"]])
def test_closed_stdout_pipe_is_exit_0_and_quiet(tmp_path, extra):
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        "annotations": [
            {"id": i + 1, "image_id": 1, "category_id": i + 1, "bbox": [1, 1, 2, 2]} for i in range(3000)
        ],
        "categories": [{"id": i + 1, "name": f"class_{i}"} for i in range(3000)],
    }
    p = tmp_path / "many.json"
    p.write_text(json.dumps(doc))
    proc = subprocess.Popen(
        [sys.executable, "-m", "detkit", "coco", "classes", str(p), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.readline()
    proc.stdout.close()  # `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and err == ""
