"""`detkit coco inspect` and `detkit coco classes`: exact counts on hand-made and real data."""

from __future__ import annotations

import csv
import json

import numpy as np

from detkit.datasets import stats
from detkit.datasets.load import load_dataset, load_labels
from detkit.datasets.model import make_dataset
from detkit.datasets.stats import class_table, inspect_dataset
from tests.conftest import shared_path


def _small():
    ds = make_dataset(
        [(1, "a.jpg", 640, 480), (2, "b.jpg", 640, 480), (3, "c.jpg", 100, 50)],
        [
            (1, 1, 5, 10, 10, 20, 20),
            (2, 1, 9, 0, 0, 50, 50),
            (3, 2, 5, 0, 0, 100, 100),
            (4, 7, 42, 0, 0, 4, 2),
        ],
        [(5, "cat"), (9, "dog"), (11, "never")],
    )
    ds.iscrowd[2] = 1
    return ds


def test_inspect_counts_and_distributions():
    doc = inspect_dataset(_small())
    assert doc["counts"] == {
        "images": 3,
        "annotations": 4,
        "categories": 3,
        "crowd": 1,
        "images_without_annotations": 1,
        "categories_used": 2,
    }
    assert doc["image_sizes"]["distinct"] == 2
    assert doc["image_sizes"]["most_common"] == [
        {"width": 640, "height": 480, "images": 2},
        {"width": 100, "height": 50, "images": 1},
    ]
    # boxes per image 2, 1, 0 (the 4th box dangles)
    assert doc["boxes_per_image"]["max"] == 2 and doc["boxes_per_image"]["mean"] == 1.0
    assert [r["images"] for r in doc["boxes_per_image"]["histogram"][:3]] == [1, 1, 1]
    # areas 400, 2500, 10000, 8: small < 32², medium < 96², large
    assert {k: doc["size_split"][k] for k in ("small", "medium", "large")} == {
        "small": 2,
        "medium": 1,
        "large": 1,
    }
    assert (
        doc["box_width"]["min"] == 4 and doc["box_width"]["max"] == 100 and doc["box_area"]["median"] == 1450
    )
    assert doc["bbox_convention"].startswith("x, y, w, h in pixels")
    assert {(r["table"], r["field"]) for r in doc["schema"]} >= {
        ("annotations", "bbox"),
        ("annotations", "iscrowd"),
    }


def test_class_table_by_hand():
    rows = class_table(_small())
    assert rows == [
        {"id": 5, "name": "cat", "instances": 2, "images": 2, "share": 0.5},
        {"id": 42, "name": "<unknown id 42>", "instances": 1, "images": 1, "share": 0.25},
        {"id": 9, "name": "dog", "instances": 1, "images": 1, "share": 0.25},
        {"id": 11, "name": "never", "instances": 0, "images": 0, "share": 0.0},
    ]


def test_class_table_image_ids_too_far_apart_for_one_key():
    # the same boxes with image ids 1, 2**62 and 7: (class, image) pairs no longer fit one int64 key
    ds = _small()
    far = make_dataset(
        [(1, "a.jpg", 640, 480), (2**62, "b.jpg", 640, 480), (3, "c.jpg", 100, 50)],
        [
            (1, 1, 5, 10, 10, 20, 20),
            (2, 1, 9, 0, 0, 50, 50),
            (3, 2**62, 5, 0, 0, 100, 100),
            (4, 7, 42, 0, 0, 4, 2),
        ],
        [(5, "cat"), (9, "dog"), (11, "never")],
    )
    assert class_table(far) == class_table(ds)
    # and several boxes of one class in one image count that image once
    same = make_dataset([(1, "a.jpg", 10, 10)], [(k, 1, 5, 0, 0, 1, 1) for k in range(1, 4)], [(5, "cat")])
    assert class_table(same) == [{"id": 5, "name": "cat", "instances": 3, "images": 1, "share": 1.0}]


def test_class_table_contiguous_ids_with_dangling_ones():
    # ids 0..2 (a box's id is its row, no search) and boxes naming 7 and -1, which no category has
    boxes = [(1, 1, 0, 0, 0, 1, 1), (2, 1, 2, 0, 0, 1, 1), (3, 2, 2, 0, 0, 1, 1), (4, 2, 7, 0, 0, 1, 1)]
    ds = make_dataset(
        [(1, "a.jpg", 10, 10), (2, "b.jpg", 10, 10)],
        [*boxes, (5, 2, -1, 0, 0, 1, 1)],
        [(0, "a"), (1, "b"), (2, "c")],
    )
    got = {r["name"]: (r["id"], r["instances"], r["images"]) for r in class_table(ds)}
    assert got == {
        "c": (2, 2, 2),
        "a": (0, 1, 1),
        "<unknown id -1>": (-1, 1, 1),
        "<unknown id 7>": (7, 1, 1),
        "b": (1, 0, 0),
    }


def test_class_table_counts_alike_on_every_path():
    # categories 1..3 given out of order (a box's id gives its row through their sort), every box's id
    # known; image ids small (a flag per class and image), far apart (one sorted key per box), negative
    cats = [(3, "c"), (1, "a"), (2, "b")]
    boxes = [(1, 1, 3), (2, 1, 3), (3, 2, 3), (4, 2, 1), (5, 3, 1)]  # (id, image, category)
    for image_ids in ([1, 2, 3], [10**7, 2, 3], [-5, 2, 3]):
        images = [(i, f"{k}.jpg", 10, 10) for k, i in enumerate(image_ids)]
        anns = [(a, image_ids[i - 1], c, 0, 0, 1, 1) for a, i, c in boxes]
        assert class_table(make_dataset(images, anns, cats)) == [
            {"id": 3, "name": "c", "instances": 3, "images": 2, "share": 0.6},
            {"id": 1, "name": "a", "instances": 2, "images": 2, "share": 0.4},
            {"id": 2, "name": "b", "instances": 0, "images": 0, "share": 0.0},
        ], image_ids


def test_images_per_class_of_boxes_in_image_order_a_block_at_a_time(monkeypatch):
    # boxes in image order are counted a block at a time, each block ending where an image does: blocks of
    # 4 boxes against a count by hand, with an image of 6 boxes (more than a block) and repeated pairs
    monkeypatch.setattr(stats, "_BOXES", 4)
    rng = np.random.default_rng(0)
    im = np.sort(np.concatenate([rng.integers(0, 30, 40), np.full(6, 12)]))
    pos = rng.integers(0, 5, len(im))
    want = [len({i for p, i in zip(pos.tolist(), im.tolist()) if p == r}) for r in range(5)]
    calls = []
    real = stats._images_per_row_in_order
    monkeypatch.setattr(stats, "_images_per_row_in_order", lambda *a: calls.append(1) or real(*a))
    assert stats._images_per_row(pos, im, 5).tolist() == want and calls == [1]
    shuffled = rng.permutation(len(im))  # not in image order: one sorted key per box
    assert stats._images_per_row(pos[shuffled], im[shuffled], 5).tolist() == want and calls == [1]


def test_labels_fast_path_matches_full_load(shapes_dir):
    path = shapes_dir / "instances.json"
    assert class_table(load_labels(path)) == class_table(load_dataset(path))
    assert load_labels(path).num_images == 16


def test_bccd_classes_cli(cli, cli_json, tmp_path):
    path = shared_path("bccd", "BCCD")
    doc = cli_json("coco", "classes", path)
    assert [(r["name"], r["instances"], r["images"]) for r in doc["classes"]] == [
        ("RBC", 4155, 349),
        ("WBC", 372, 358),
        ("Platelets", 361, 201),
    ]
    code, out, _ = cli(
        "coco", "classes", path, "--markdown", "--csv", tmp_path / "c.csv", "--plot", tmp_path / "c.png"
    )
    assert code == 0
    # with ImageSets/Main's splits side by side: 2382 + 968 + 805 = 4155
    assert (
        out.splitlines()[2] == "| 2 | RBC | 4155 | 349 | 85.00% | 2382 | 84.9% | 968 | 85.1% | 805 | 85.2% |"
    )
    rows = list(csv.DictReader((tmp_path / "c.csv").read_text().splitlines()))
    assert {k: rows[2][k] for k in ("id", "name", "instances", "images", "share")} == {
        "id": "1",
        "name": "Platelets",
        "instances": "361",
        "images": "201",
        "share": "0.073854",
    }
    # ImageSets/Main splits side by side: the three splits' instances add up to the total
    assert sum(int(rows[2][f"{s}_instances"]) for s in ("train", "val", "test")) == 361
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_course_text_classes_and_inspect(cli_json):
    path = shared_path("sample_coco.txt")
    doc = cli_json("coco", "classes", path)
    assert len(doc["classes"]) == 80 and sum(r["instances"] for r in doc["classes"]) == 10105
    assert doc["classes"][0] == {
        "id": 50,
        "name": "spoon",
        "instances": 153,
        "images": 153,
        "share": 0.015141,
    }
    ins = cli_json("coco", "inspect", path)
    assert ins["counts"]["annotations"] == 10105 and ins["counts"]["images"] == 10105


def test_coco_fixture_inspect(cli_json):
    doc = cli_json(
        "coco", "inspect", shared_path("coco-fixture", "coco", "annotations", "instances_val2017.json")
    )
    assert (
        doc["counts"]["images"] == 1
        and doc["counts"]["annotations"] == 19
        and doc["counts"]["categories"] == 80
    )
    assert doc["image_sizes"]["most_common"] == [{"width": 640, "height": 427, "images": 1}]
    split = doc["size_split"]
    assert split["small"] + split["medium"] + split["large"] == 19


def test_out_dirs_write_summaries(cli, shapes_dir, tmp_path):
    path = shapes_dir / "instances.json"
    assert cli("coco", "classes", path, "--out", tmp_path / "c")[0] == 0
    s = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert s["kind"] == "coco.classes" and s["plots"] == {"classes": "classes.png"}
    assert (tmp_path / "c" / "classes.png").is_file() and (tmp_path / "c" / "run.json").is_file()
    assert {r["name"] for r in s["tables"]["classes"]} == {"circle", "rectangle", "triangle"}
    assert sum(r["instances"] for r in s["tables"]["classes"]) == s["metrics"]["annotations"]
    assert cli("coco", "inspect", path, "--out", tmp_path / "i")[0] == 0
    s = json.loads((tmp_path / "i" / "summary.json").read_text())
    assert s["kind"] == "coco.inspect" and s["metrics"]["images"] == 16
    assert np.isclose(
        sum(s["metrics"][f"boxes_{k}"] for k in ("small", "medium", "large")), s["metrics"]["annotations"]
    )


def test_terminal_tables(cli, shapes_dir):
    code, out, _ = cli("coco", "inspect", shapes_dir / "instances.json")
    assert code == 0 and "top-left" in out and "bbox" in out and "COCO size split" in out
    code, out, _ = cli("coco", "classes", shapes_dir / "instances.json")
    assert code == 0 and "rectangle" in out
