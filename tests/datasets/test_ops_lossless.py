"""`detkit coco sample / filter / split / merge` on a Roboflow COCO export folder keep every record whole:
segmentations and extra keys (``license``, ``date_captured``, Roboflow's ``extra``) survive, as they do
for a single COCO json. Only what the folder's reading changes is changed: image ids and box ids of the
later splits move past the earlier ones', and file names gain their split folder (``valid/v0.jpg``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.datasets.ops_fixtures import write_images

TOP = {
    "info": {"year": "2026", "description": "Exported from roboflow.com"},
    "licenses": [{"id": 1, "url": "https://creativecommons.org/licenses/by/4.0/", "name": "CC BY 4.0"}],
}
CATS = [
    {"id": 0, "name": "cells", "supercategory": "none"},
    {"id": 1, "name": "RBC", "supercategory": "cells"},
    {"id": 2, "name": "WBC", "supercategory": "cells"},
]


def _image(i: int, name: str) -> dict:
    return {
        "id": i,
        "license": 1,
        "file_name": name,
        "height": 48,
        "width": 64,
        "date_captured": "2026-11-30T07:00:00+00:00",
        "extra": {"name": f"orig_{name}"},
    }


def _ann(a: int, img: int, cat: int, x: float) -> dict:
    return {
        "id": a,
        "image_id": img,
        "category_id": cat,
        "bbox": [x, 2, 10, 8],
        "area": 80,
        "segmentation": [[x, 2, x + 10, 2, x + 10, 10, x, 10]],
        "iscrowd": 0,
        "extra": {},
    }


# split folder -> (images, annotations); Roboflow numbers every split's ids from 0
SPLITS = {
    "train": (
        [_image(0, "t0.jpg"), _image(1, "t1.jpg")],
        [_ann(0, 0, 1, 1), _ann(1, 0, 2, 20), _ann(2, 1, 1, 3.5)],
    ),
    "valid": ([_image(0, "v0.jpg")], [_ann(0, 0, 2, 4)]),
}


@pytest.fixture
def roboflow(tmp_path) -> Path:
    root = tmp_path / "export"
    for split, (images, anns) in SPLITS.items():
        write_images(root / split, [i["file_name"] for i in images])
        doc = {**TOP, "categories": CATS, "images": images, "annotations": anns}
        (root / split / "_annotations.coco.json").write_text(json.dumps(doc))
    return root


# What the folder reads as: valid's image 0 -> id 2 (past train's 0, 1), its box 0 -> id 3 (past 0..2).
EXPECTED_IMAGES = [
    {**_image(0, "t0.jpg"), "file_name": "train/t0.jpg"},
    {**_image(1, "t1.jpg"), "file_name": "train/t1.jpg"},
    {**_image(2, "v0.jpg"), "file_name": "valid/v0.jpg", "extra": {"name": "orig_v0.jpg"}},
]
EXPECTED_ANNS = [*SPLITS["train"][1], {**_ann(3, 2, 2, 4)}]


def _records(path: Path) -> dict:
    doc = json.loads(path.read_text())
    return {k: doc[k] for k in ("info", "licenses", "images", "annotations", "categories")}


def test_sample_of_a_roboflow_folder_keeps_every_record_whole(cli_json, roboflow, tmp_path):
    out = tmp_path / "all.json"
    doc = cli_json("coco", "sample", roboflow, out, "--n", "10")
    assert (doc["images"], doc["boxes"]) == (3, 4)
    want = {**TOP, "images": EXPECTED_IMAGES, "annotations": EXPECTED_ANNS, "categories": CATS}
    assert _records(out) == want
    # the recorded image folder is the export, so the split-prefixed names find their files
    from detkit.datasets.load import load_dataset

    ds = load_dataset(out)
    assert all((Path(ds.image_root) / str(f)).is_file() for f in ds.file_name)


def test_filter_of_a_roboflow_folder_keeps_segmentations_and_extra_keys(cli_json, roboflow, tmp_path):
    out = tmp_path / "wbc.json"
    doc = cli_json("coco", "filter", roboflow, out, "--classes", "WBC", "--empty", "drop")
    assert (doc["images"], doc["boxes"], doc["categories"]) == (2, 2, 1)
    assert _records(out) == {
        **TOP,
        "images": [EXPECTED_IMAGES[0], EXPECTED_IMAGES[2]],
        "annotations": [EXPECTED_ANNS[1], EXPECTED_ANNS[3]],
        "categories": [CATS[2]],
    }


def test_one_split_of_a_roboflow_folder_is_lossless_too(cli_json, roboflow, tmp_path):
    out = tmp_path / "val.json"
    cli_json("coco", "sample", roboflow, out, "--n", "10", "--split", "valid")
    rec = _records(out)
    assert rec["images"] == [{**_image(0, "v0.jpg"), "file_name": "valid/v0.jpg"}]
    assert rec["annotations"] == SPLITS["valid"][1] and rec["categories"] == CATS


def test_split_and_merge_of_a_roboflow_folder_keep_segmentations(cli_json, roboflow, tmp_path):
    cli_json("coco", "split", roboflow, tmp_path / "s", "--ratios", "0.5,0.5")
    parts = [json.loads((tmp_path / "s" / f"{n}.json").read_text()) for n in ("train", "val")]
    anns = [a for p in parts for a in p["annotations"]]
    assert sorted(anns, key=lambda a: a["id"]) == EXPECTED_ANNS
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"images": [_image(0, "o.jpg")], "annotations": [], "categories": CATS}))
    cli_json("coco", "merge", roboflow, other, tmp_path / "m.json")
    merged = json.loads((tmp_path / "m.json").read_text())
    assert [a["segmentation"] for a in merged["annotations"]] == [a["segmentation"] for a in EXPECTED_ANNS]
    assert [i["extra"] for i in merged["images"][:3]] == [i["extra"] for i in EXPECTED_IMAGES]
