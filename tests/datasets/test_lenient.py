"""Lenient by default, never silent: bad files and rows are skipped with a code, counted in one warning line
and a `skipped` --json block, reported as findings by `validate`; --strict makes the first one exit 2."""

from __future__ import annotations

import json

import pytest

from detkit.datasets.images import probe_image
from detkit.datasets.load import load_dataset
from detkit.errors import InputError
from tests.datasets.test_layouts import write_image, write_yolo_split

ROWS = {
    # 1 good box, a duplicate of it, a polygon (read as its box), class 2 >= nc, pixel coordinates, -0.5 out
    # of range
    "a": "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n1 0.1 0.1 0.3 0.1 0.2 0.4\n2 0.5 0.5 0.1 0.1\n"
    "0 320 240 64 48\n1 -0.5 0.5 0.1 0.1\n",
    "b": "1 0.5 0.5 0.4 0.4\n",  # image becomes a zero-byte file
    "c": "0 0.5 0.5 0.4 0.4\n",  # image becomes a truncated JPEG
    "d": "1 0.5 0.5 0.1 0.1\n1 1.005 0.5 0.1 0.1\n",  # 1.005: within the 0.01 tolerance, kept
}


def messy_set(root):
    """images/ + labels/ + classes.txt (2 names), with every kind of problem once or twice."""
    write_yolo_split(root / "images", root / "labels", ROWS)
    (root / "images" / "b.jpg").write_bytes(b"")
    data = (root / "images" / "c.jpg").read_bytes()
    (root / "images" / "c.jpg").write_bytes(data[: len(data) // 2])
    (root / "labels" / "orphan1.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "labels" / "orphan2.txt").write_text("1 0.5 0.5 0.1 0.1\n")
    write_image(root / "images" / "bg.jpg", seed=9)  # no label file: background
    (root / "classes.txt").write_text("cat\ndog\n")
    return root


EXPECTED = {
    "label.duplicate_row": 1,
    "label.polygon": 1,
    "label.class_out_of_range": 1,
    "label.coords_out_of_range": 2,
    "image.empty": 1,
    "image.corrupt": 1,
    "label.orphan": 2,
    "image.no_label_file": 1,
}


def test_lenient_load_skips_and_records_each_problem(tmp_path):
    ds = load_dataset(messy_set(tmp_path))
    assert sorted(ds.file_name) == ["a.jpg", "bg.jpg", "d.jpg"]
    # a: the box, the polygon's box; d: both rows (1.005 is within tolerance)
    assert ds.num_annotations == 4 and ds.category_id.tolist() == [0, 1, 1, 1]
    # polygon (0.1,0.1) (0.3,0.1) (0.2,0.4) -> box cx .2 cy .25 w .2 h .3 of 64x48 -> x 6.4, y 4.8, w 12.8, h
    # 14.4
    assert ds.bbox[1] == pytest.approx([6.4, 4.8, 12.8, 14.4])
    got: dict[str, int] = {}
    for s in ds.skipped:
        got[s.code] = got.get(s.code, 0) + 1
    assert got == EXPECTED
    by = {s.code: s for s in ds.skipped}
    assert "look like pixels" in next(
        s.what for s in ds.skipped if s.code == "label.coords_out_of_range" and "320" in s.what
    )
    assert by["image.empty"].what == "empty image file (0 bytes)" and by["image.empty"].path.endswith("b.jpg")
    assert by["image.corrupt"].what.startswith("truncated JPEG") and by["label.polygon"].kept
    assert by["label.class_out_of_range"].what == "class id 2 is outside 0..1 (2 class names)"


@pytest.mark.parametrize("command", ["inspect", "classes"])
def test_cli_warns_once_and_reports_skipped_in_json(cli, tmp_path, command):
    root = messy_set(tmp_path)
    code, out, err = cli("coco", command, root)
    assert code == 0
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: skipped 8 item(s): ")
    assert f"(first: {root / 'labels' / 'a.txt'}:line 2: same class and box as an earlier row)" in warnings[0]
    assert warnings[0].endswith("; --strict to stop instead, `detkit coco validate` for all")
    code, out, err = cli("coco", command, root, "--json")
    doc = json.loads(out)
    assert (
        doc["skipped"]["count"] == 8
        and doc["skipped"]["notes_count"] == 2
        and doc["skipped"]["by_code"] == EXPECTED
    )
    code, out, err = cli("coco", command, root, "--strict")
    assert (
        code == 2
        and out == ""
        and err
        == f"detkit: error: {root / 'labels' / 'a.txt'}:line 2: same class and box as an earlier row\n"
    )


def test_validate_reports_each_as_a_finding(cli_json, tmp_path):
    doc = cli_json("coco", "validate", messy_set(tmp_path), expect=1)
    got = {f["code"]: f["count"] for f in doc["findings"]}
    assert {k: got.get(k) for k in EXPECTED} == EXPECTED
    sev = {f["code"]: f["severity"] for f in doc["findings"]}
    assert (
        sev["label.orphan"] == "warning"
        and sev["image.corrupt"] == "error"
        and sev["label.polygon"] == "info"
    )
    orphan = next(f for f in doc["findings"] if f["code"] == "label.orphan")
    assert [e["record"] for e in orphan["examples"]] == ["orphan1.txt", "orphan2.txt"]


def test_nothing_usable_is_exit_2(cli, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "x.jpg").write_bytes(b"")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "x.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    code, out, err = cli("coco", "inspect", tmp_path)
    assert code == 2 and out == "" and "none of the 1 images could be read" in err and err.count("\n") == 1
    (tmp_path / "images" / "x.jpg").unlink()
    code, _, err = cli("coco", "inspect", tmp_path)
    assert code == 2 and "no images found for the 1 label files" in err


def test_probe_image_reads_headers_and_tails(tmp_path):
    good = write_image(tmp_path / "g.jpg", size=(30, 20))
    png = write_image(tmp_path / "g.png", size=(7, 5))
    assert probe_image(good) == (30, 20) and probe_image(png) == (7, 5)
    (tmp_path / "z.jpg").write_bytes(b"")
    (tmp_path / "t.jpg").write_bytes(good.read_bytes()[:-40])
    (tmp_path / "t.png").write_bytes(png.read_bytes()[:-12])
    (tmp_path / "n.jpg").write_text("not an image")
    for name, what in [
        ("z.jpg", "empty image file"),
        ("t.jpg", "truncated JPEG"),
        ("t.png", "truncated PNG"),
        ("n.jpg", "not a readable image"),
    ]:
        with pytest.raises(InputError, match=what):
            probe_image(tmp_path / name)


def test_coco_json_images_checked_against_files(cli_json, tmp_path):
    images = tmp_path / "imgs"
    write_image(images / "a.jpg", size=(64, 48))
    write_image(images / "b.jpg", size=(64, 48))  # declared 100x48: size mismatch
    (images / "c.jpg").write_bytes(b"")  # empty
    doc = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
            {"id": 2, "file_name": "b.jpg", "width": 100, "height": 48},
            {"id": 3, "file_name": "c.jpg", "width": 64, "height": 48},
            {"id": 4, "file_name": "gone.jpg", "width": 64, "height": 48},
        ],
        "annotations": [
            {"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0}
            for i in (1, 2, 3, 4)
        ],
        "categories": [{"id": 1, "name": "x"}],
    }
    p = tmp_path / "ann.json"
    p.write_text(json.dumps(doc))
    out = cli_json("coco", "validate", p, "--images", images, expect=1)
    got = {f["code"]: f for f in out["findings"]}
    assert {c: got[c]["count"] for c in ("image.missing_file", "image.size_mismatch", "image.empty")} == {
        "image.missing_file": 1,
        "image.size_mismatch": 1,
        "image.empty": 1,
    }
    assert got["image.size_mismatch"]["examples"][0]["note"] == "declared 100x48, file 64x48"
    assert got["image.missing_file"]["examples"][0]["id"] == 4
    # without --images and no image beside the json: no file checks at all (nothing to compare with)
    out = cli_json("coco", "validate", p, expect=0)
    assert not [f for f in out["findings"] if f["code"].startswith("image.")]


def test_convert_json_has_the_skipped_block(cli, tmp_path):
    code, out, err = cli(
        "coco", "convert", messy_set(tmp_path / "in"), tmp_path / "out.json", "--to", "coco", "--json"
    )
    assert (
        code == 0
        and json.loads(out)["skipped"]["by_code"] == EXPECTED
        and err.count("warning: skipped 8") == 1
    )


def test_listed_image_missing_and_darknet_side_by_side(tmp_path):
    # darknet style under a folder named images: labels beside the images, not in a ../labels mirror
    d = tmp_path / "images" / "set1"
    write_image(d / "a.jpg")
    (d / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (d / "train.txt").write_text(
        "images/set1/a.jpg\nimages/set1/gone.jpg\n"
    )  # a darknet image list, not a label
    ds = load_dataset(d)
    assert ds.num_images == 1 and ds.num_annotations == 1 and not ds.skipped
    y = tmp_path / "data.yaml"
    y.write_text(f"path: {tmp_path}\ntrain: {d / 'train.txt'}\nnames: [x]\n")
    ds = load_dataset(y)
    assert ds.num_images == 1 and [(s.code, s.where) for s in ds.skipped] == [
        ("image.missing_file", "line 2")
    ]
    with pytest.raises(InputError, match=r"train.txt:line 2: listed image .*gone.jpg does not exist"):
        load_dataset(y, strict=True)


def test_library_warning_names_no_flag(tmp_path, capsys):
    """The library's skip warning describes what was skipped; only the CLI adds its --strict hint."""
    from detkit.datasets.load import warn_skipped

    warn_skipped(load_dataset(messy_set(tmp_path)))
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: skipped 8 item(s): ")
    assert "--" not in warnings[0] and warnings[0].endswith("same class and box as an earlier row)")
