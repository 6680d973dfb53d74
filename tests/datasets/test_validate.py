"""`detkit coco validate`: every finding code with exact counts, exit codes, --fix, and the real files."""

from __future__ import annotations

import json
import math

import pytest

from detkit.datasets.checks.findings import Findings
from detkit.datasets.checks.fix import plan_fix
from detkit.datasets.checks.raw import load_coco_lenient
from detkit.datasets.checks.validate import check_dataset, validate_path
from tests.conftest import shared_path

NAN = math.nan


def _ann(id, image_id=1, category_id=2, bbox=(1, 1, 5, 5), **kw):
    a = {
        "id": id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": list(bbox),
        "area": bbox[2] * bbox[3],
        "iscrowd": 0,
    }
    a.update(kw)
    return a


BROKEN = {
    "images": [
        {"id": 1, "file_name": "a.jpg", "width": 100, "height": 50},
        {"id": 2, "file_name": "b.jpg", "width": 100, "height": 100},  # no annotations
        {"id": 1, "file_name": "a2.jpg", "width": 100, "height": 50},  # duplicate id
        {"id": 4, "file_name": "c.jpg", "width": "640", "height": 10},  # wrong type -> skipped
        {"id": 5, "file_name": "d.jpg", "width": NAN, "height": 10},  # NaN
        {"id": 6, "file_name": "e.jpg", "width": 0, "height": 10},  # bad size
        "oops",  # unparsable
        {"id": 8, "height": 10},  # missing width
    ],
    "annotations": [
        _ann(1, bbox=(10, 10, 20, 20), category_id=1, segmentation=[[10, 10, 30, 10, 30, 30]]),
        _ann(2, bbox=(10, 10, 20, 20), category_id=1),  # duplicate box of annotations[0]
        _ann(2, bbox=(0, 0, 5, 5)),  # duplicate annotation id
        _ann(0),  # id 0
        _ann(5, image_id=99),  # dangling image
        _ann(6, category_id=42, bbox=(2, 2, 5, 5)),  # dangling category
        _ann(7, bbox=(3, 3, 0, 5)),  # degenerate
        _ann(8, bbox=(3, 3, 0.5, 5)),  # sub-pixel
        _ann(9, bbox=(90, 40, 20, 20)),  # past right and bottom
        _ann(10, bbox=(120, 10, 5, 5)),  # wholly outside
        _ann(11, bbox=(4, 4, 6, 6), area=50),  # area > w*h
        {"id": 12, "image_id": 1, "category_id": 2, "bbox": [5, 5, 6, 6]},  # no area, no iscrowd
        _ann(13, bbox=(6, 6, 6, 6), area=30, iscrowd=2),  # bad iscrowd
        _ann(14, bbox=["1", 2, 3, 4]),  # wrong type -> skipped
        _ann(15, bbox=(7, 7, 6, 6), area=NAN),  # NaN area
        _ann(16, bbox=(8, 8, 6, 6), area=30, segmentation=[[1, 2, 3, 4]]),  # short polygon
        _ann(17, bbox=(9, 9, 6, 6), area=30, segmentation=[[1, 2, 3, 4, 5, 6, 7]]),  # odd polygon
        {"id": 18, "image_id": 1, "bbox": [1, 1, 2, 2]},  # missing category_id -> skipped
        _ann(20, bbox=(NAN, 1, 2, 2), area=4),  # NaN in box
    ],
    "categories": [
        {"id": 1, "name": "a"},
        {"id": 2, "name": "b"},
        {"id": 3, "name": "unused"},
        {"id": 1, "name": "dup"},
    ],
}
EXPECTED = {
    "record.unparsable": 1,
    "record.missing_field": 2,
    "record.wrong_type": 2,
    "value.non_finite": 3,
    "image.bad_size": 1,
    "image.duplicate_id": 1,
    "category.duplicate_id": 1,
    "annotation.duplicate_id": 1,
    "annotation.id_zero": 1,
    "annotation.dangling_image_id": 1,
    "annotation.dangling_category_id": 1,
    "bbox.non_positive_size": 1,
    "bbox.outside_image": 1,
    "segmentation.bad_polygon": 2,
    "bbox.out_of_bounds": 2,
    "bbox.sub_pixel": 1,
    "annotation.duplicate_box": 1,
    "annotation.area_inconsistent": 1,
    "annotation.missing_area": 1,
    "annotation.missing_iscrowd": 1,
    "annotation.bad_iscrowd": 1,
    "image.no_annotations": 3,
    "category.unused": 1,
}


@pytest.fixture
def broken(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text(json.dumps(BROKEN))  # allow_nan: writes NaN literals like Python tools do
    return p


def test_every_finding_code_with_exact_counts(broken):
    report = validate_path(broken)
    got = {f.code: f.count for f in report.findings}
    assert got == EXPECTED
    by = {f.code: f for f in report.findings}
    assert by["annotation.duplicate_box"].examples == [
        {"file": str(broken), "record": "$.annotations[1]", "id": 2, "note": "bbox 10, 10, 20, 20"}
    ]
    assert by["record.wrong_type"].examples[0]["record"] == "$.images[3].width"
    assert by["record.wrong_type"].examples[1]["record"] == "$.annotations[13].bbox"
    assert (
        by["bbox.out_of_bounds"].details["past_right"] == 2
        and by["bbox.out_of_bounds"].details["past_bottom"] == 1
    )
    assert [f.severity for f in report.findings][:1] == ["error"] and report.findings[-1].severity == "info"
    assert report.counts == {"error": 19, "warning": 8, "info": 4}


def test_typed_fast_path_agrees_with_lenient_pass(shapes_dir, tmp_path):
    """Well-typed files take the typed decoder (polygons checked on raw bytes); findings must not differ."""
    doc = json.loads((shapes_dir / "instances.json").read_text())
    anns = doc["annotations"]
    anns[0]["segmentation"] = [[1, 2, 3, 4]]
    anns[1]["segmentation"] = [[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6, 7]]
    anns[2]["segmentation"] = {"size": [96, 96], "counts": "abc"}
    anns[3]["segmentation"] = [1, 2, 3, 4, 5, 6]
    anns[4]["id"] = 0
    anns[5]["bbox"] = [90, 90, 20, 20]
    del anns[6]["area"], anns[6]["iscrowd"]
    anns.append(dict(anns[7], id=10_000))
    p = tmp_path / "typed.json"
    p.write_text(json.dumps(doc, indent=2))  # pretty-printed: whitespace inside the raw segmentations
    fast = validate_path(p)
    fnd = Findings(str(p))
    check_dataset(load_coco_lenient(p, fnd)[0], fnd)
    assert [f.as_dict() for f in fast.findings] == [f.as_dict() for f in fnd.as_list()]
    got = {f.code: f.count for f in fast.findings}
    assert got["segmentation.bad_polygon"] == 3 and got["annotation.id_zero"] == 1
    assert got["annotation.duplicate_box"] == 1 and got["annotation.missing_area"] == 1
    notes = [
        e["note"]
        for e in fast.findings[[f.code for f in fast.findings].index("segmentation.bad_polygon")].examples
    ]
    assert notes == [
        "polygon 0 has 4 coordinates",
        "polygon 1 has 7 coordinates",
        "polygon 0 is not a list of numbers",
    ]


def test_fail_on_exit_codes(cli, broken, shapes_dir):
    code, out, _ = cli("coco", "validate", broken)
    assert code == 1
    # the registry's text names the library's fix; validate's printer names the flag that runs it
    by = {f.code: f for f in validate_path(broken).findings}
    assert (
        by["annotation.missing_area"].message
        == "annotation has no 'area' (COCOeval needs it; the fix fills w*h)"
    )
    assert "annotation has no 'area' (COCOeval needs it; --fix fills w*h)" in out
    assert cli("coco", "validate", broken, "--fail-on", "never")[0] == 0
    clean = shapes_dir / "instances.json"
    assert cli("coco", "validate", clean, "--fail-on", "warning")[0] == 0
    fixture = shared_path("coco-fixture", "coco", "annotations", "instances_val2017.json")
    assert cli("coco", "validate", fixture, "--fail-on", "warning")[0] == 0  # only info: 69 unused categories
    doc = json.loads(cli("coco", "validate", fixture, "--fail-on", "warning", "--json")[1])
    assert [(f["code"], f["count"]) for f in doc["findings"]] == [("category.unused", 69)]


def test_synthetic_polygon_areas_are_not_flagged(shapes_dir):
    """Synthetic shapes store polygon areas (<= box area): consistent, nothing to report."""
    report = validate_path(shapes_dir / "instances.json")
    assert report.findings == []


def test_fix_lists_every_change_and_never_touches_input(cli, broken, tmp_path):
    before = broken.read_bytes()
    out = tmp_path / "clean.json"
    code, stdout, _ = cli("coco", "validate", broken, "--fix", out, "--json")
    assert code == 1 and broken.read_bytes() == before
    fix = json.loads(stdout)["fix"]
    assert fix["counts"] == {
        "clip": 2,
        "drop_degenerate": 3,
        "drop_duplicate": 1,
        "set_area": 3,
        "fill_area": 1,
        "fill_iscrowd": 1,
        "drop_bad_image": 2,
        "drop_unusable": 5,
        "drop_dangling_image_id": 1,
        "drop_dangling_category_id": 1,
        "set_id": 1,
        "drop_bad_polygons": 2,
        "drop_duplicate_image_id": 1,
        "drop_duplicate_category_id": 1,
    }
    assert {"action": "set_id", "record": "$.annotations[3]", "id": 0, "before": 0, "after": 18} in fix[
        "changes"
    ]
    clip = [c for c in fix["changes"] if c["action"] == "clip"]
    assert clip[0] == {
        "action": "clip",
        "record": "$.annotations[8]",
        "id": 9,
        "before": [90, 40, 20, 20],
        "after": [90, 40, 10, 10],
    }
    doc = json.loads(out.read_text())
    kept = {a["id"]: a for a in doc["annotations"]}
    assert kept[9]["bbox"] == [90, 40, 10, 10] and kept[9]["area"] == 100
    assert kept[12]["area"] == 36 and kept[12]["iscrowd"] == 0
    assert kept[1]["segmentation"] == [[10, 10, 30, 10, 30, 30]]  # other fields carried over
    assert 7 not in kept and 10 not in kept and 20 not in kept
    after = {f.code for f in validate_path(out).findings}
    gone = {
        "bbox.non_positive_size",
        "bbox.out_of_bounds",
        "bbox.outside_image",
        "annotation.duplicate_box",
        "annotation.missing_area",
        "annotation.missing_iscrowd",
        "annotation.area_inconsistent",
        "record.wrong_type",
        "record.missing_field",
        "record.unparsable",
        "value.non_finite",
        "image.bad_size",
    }
    assert not after & gone
    assert not validate_path(out).fails("error")  # what --fix writes passes --fail-on error
    assert 16 in kept and "segmentation" not in kept[16]  # its one polygon was short
    # refuses to overwrite its input
    assert cli("coco", "validate", broken, "--fix", broken)[0] == 2 and broken.read_bytes() == before


def test_fix_of_a_well_typed_file_copies_untouched_records_verbatim(cli, shapes_dir, tmp_path):
    doc = json.loads((shapes_dir / "instances.json").read_text())
    doc["annotations"][0]["bbox"] = [90, 1, 20, 10]  # 96 px image: clipped to w 6, area 60
    del doc["annotations"][1]["area"]
    doc["annotations"].append(dict(doc["annotations"][2], id=99999))  # exact duplicate box
    doc["extra_key"] = {"kept": True}
    src = tmp_path / "in.json"
    src.write_text(json.dumps(doc))
    code, out, _ = cli("coco", "validate", src, "--fix", tmp_path / "out.json", "--json")
    assert code == 0  # warnings only (out of bounds, missing area, duplicate box); --fail-on error
    fix = json.loads(out)["fix"]
    assert fix["counts"] == {"clip": 1, "set_area": 1, "drop_duplicate": 1, "fill_area": 1}
    got = json.loads((tmp_path / "out.json").read_text())
    assert (
        got["extra_key"] == {"kept": True}
        and got["images"] == doc["images"]
        and got["categories"] == doc["categories"]
    )
    a0 = got["annotations"][0]
    assert (
        a0["bbox"] == [90, 1, 6, 10]
        and a0["area"] == 60
        and a0["segmentation"] == doc["annotations"][0]["segmentation"]
    )
    assert got["annotations"][1]["area"] == round(
        doc["annotations"][1]["bbox"][2] * doc["annotations"][1]["bbox"][3], 4
    )
    assert got["annotations"][2:] == doc["annotations"][2:-1]  # untouched, byte for byte in value
    assert validate_path(tmp_path / "out.json").findings == []


def test_course_text_file_out_of_bounds_count(cli):
    path = shared_path("sample_coco.txt")
    doc = json.loads(cli("coco", "validate", path, "--json")[1])
    by = {f["code"]: f for f in doc["findings"]}
    assert by["bbox.out_of_bounds"]["count"] == 3564
    assert by["bbox.out_of_bounds"]["details"]["past_right"] == 1799
    assert by["bbox.out_of_bounds"]["details"]["past_bottom"] == 1765
    assert by["bbox.outside_image"]["count"] == 801
    assert by["bbox.out_of_bounds"]["examples"][0] == {
        "file": str(path),
        "record": "line 1",
        "id": 1,
        "note": "bbox 69, 464, 312, 175 in 1093x330",
    }
    assert set(by) == {"bbox.out_of_bounds", "bbox.outside_image"}


def test_bccd_two_degenerate_boxes(cli, tmp_path):
    path = shared_path("bccd", "BCCD")
    report = validate_path(path)
    # ImageSets/Main splits: val's BloodImage_00037 and train's _00038 are two frames of one slide (pHash
    # distance 4)
    assert [(f.code, f.count) for f in report.findings] == [
        ("bbox.non_positive_size", 2),
        ("split.leak_near", 1),
    ]
    assert report.findings[1].examples[0]["record"] == "val:BloodImage_00037.jpg = train:BloodImage_00038.jpg"
    assert [e["record"] for e in report.findings[0].examples] == [
        "BloodImage_00338.xml <object> #13",
        "BloodImage_00343.xml <object> #4",
    ]
    doc, changes = plan_fix(report)
    assert [c["action"] for c in changes] == ["drop_degenerate", "drop_degenerate"]
    assert len(doc["annotations"]) == 4886


def test_validate_out_dir_summary(cli, broken, tmp_path):
    code, _, _ = cli("coco", "validate", broken, "--out", tmp_path / "v", "--fail-on", "never")
    s = json.loads((tmp_path / "v" / "summary.json").read_text())
    assert code == 0 and s["kind"] == "coco.validate"
    assert {r["code"]: r["count"] for r in s["tables"]["findings"]} == EXPECTED
    assert (tmp_path / "v" / "run.json").is_file()


def test_raw_provenance_maps_rows_to_records_and_follows_a_subset(broken):
    """Each kept row's index in the file (unusable records skipped), and the same after subset_images."""
    ds, _ = load_coco_lenient(broken, Findings(str(broken)))
    prov = ds.raw
    assert prov.image_raw_index.tolist() == [0, 1, 2, 4, 5]  # 3 wrong type, 6 unparsable, 7 missing width
    assert prov.raw_index.tolist() == [*range(13), 14, 15, 16, 18]  # 13 wrong bbox, 17 no category_id
    assert prov.category_raw_index.tolist() == [0, 1, 2, 3]
    assert prov.bad_polygon_rows == [14, 15]  # annotations[15] and [16]
    assert ds.extra == {}  # no info / licenses in the file; provenance is not a format leftover
    sub = ds.subset_images([1])  # both rows with id 1; drops the box on image 99 (row 4)
    assert sub.raw.image_raw_index.tolist() == [0, 2]
    assert sub.raw.raw_index.tolist() == [0, 1, 2, 3, *range(5, 13), 14, 15, 16, 18]
    assert sub.raw.bad_polygon_rows == [13, 14]
    assert sub.raw.category_raw_index.tolist() == [0, 1, 2, 3]
