"""`detkit coco filter` and `detkit coco sample`: exact counts on hand-made sets, classes by name or id,
box-size bounds, what happens to emptied images, seeded samples that keep whole images, YOLO in -> YOLO out.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from detkit.datasets.formats.write import write_one
from detkit.datasets.load import load_dataset
from detkit.datasets.model import make_dataset
from detkit.datasets.ops.select import filter_dataset, sample_dataset
from detkit.datasets.ops.source import Part, Source
from detkit.errors import DetkitError
from tests.datasets.ops_fixtures import skewed, write_coco, write_images

# 4 images; boxes (w x h): img1 person 10x10, car 2x30; img2 car 40x40; img3 person 4x4; img4 none
IMAGES = [(1, "a.jpg", 100, 100), (2, "b.jpg", 100, 100), (3, "c.jpg", 100, 100), (4, "d.jpg", 100, 100)]
ANNS = [(1, 1, 1, 0, 0, 10, 10), (2, 1, 3, 5, 5, 2, 30), (3, 2, 3, 1, 1, 40, 40), (4, 3, 1, 0, 0, 4, 4)]
CATS = [(1, "Person"), (3, "traffic_light")]


def _ds():
    return make_dataset(IMAGES, ANNS, CATS, source="t.json")


@pytest.mark.parametrize(
    "kwargs, images, boxes, cats",
    [
        ({}, [0, 1, 2, 3], [0, 1, 2, 3], [0, 1]),
        ({"classes": ["person"]}, [0, 1, 2, 3], [0, 3], [0]),
        ({"classes": ["Traffic Light"], "empty": "drop"}, [0, 1], [1, 2], [1]),
        ({"classes": ["3"], "empty": "only"}, [2, 3], [], [1]),  # an id; only the images left empty
        ({"min_area": 50}, [0, 1, 2, 3], [0, 1, 2], [0, 1]),
        ({"max_area": 100, "empty": "drop"}, [0, 2], [0, 1, 3], [0, 1]),
        ({"min_side": 5}, [0, 1, 2, 3], [0, 2], [0, 1]),
        ({"min_side": 5, "empty": "drop"}, [0, 1], [0, 2], [0, 1]),
        ({"empty": "only"}, [3], [], [0, 1]),
    ],
)
def test_filter_exact_rows(kwargs, images, boxes, cats):
    sel = filter_dataset(_ds(), **kwargs)
    assert sel.part.images.tolist() == images
    assert sel.part.annotations.tolist() == boxes
    assert sel.part.categories.tolist() == cats


def test_filter_reports_what_it_dropped():
    sel = filter_dataset(_ds(), classes=["person"], min_side=5, empty="drop")
    assert sel.dropped == {"class": 2, "min_side": 1, "images_empty": 3}
    assert sel.as_dict()["images"] == 1 and sel.as_dict()["boxes"] == 1


def test_sample_exact_count_whole_images_and_seeded():
    ds, _, _ = skewed(300)
    a, b, c = (sample_dataset(ds, 40, seed=s) for s in (0, 0, 1))
    assert a.part.images.size == 40 and np.all(np.diff(a.part.images) > 0)  # file order
    assert a.part.images.tolist() == b.part.images.tolist() != c.part.images.tolist()
    kept = np.isin(ds.image_index(), a.part.images)
    assert a.part.annotations.tolist() == np.flatnonzero(kept).tolist()  # every box of every kept image
    assert sample_dataset(ds, 1000).part.images.size == 300


def test_stratified_sample_keeps_class_shares():
    ds, _, _ = skewed(2000)
    sel = sample_dataset(ds, 500, seed=0, stratify=True)
    assert sel.part.images.size == 500
    img, cat = ds.image_index(), ds.category_index()
    for c in range(ds.num_categories):
        total = np.unique(img[cat == c]).size
        kept = np.intersect1d(np.unique(img[cat == c]), sel.part.images).size
        assert abs(kept - total / 4) <= max(1.0, 0.01 * total), (c, kept, total)


# ---- CLI -----------------------------------------------------------------------------------------------
def test_filter_cli_coco_json_keeps_records_whole(cli_json, tmp_path):
    src = write_coco(tmp_path / "in.json", IMAGES, ANNS, CATS)
    doc = cli_json(
        "coco",
        "filter",
        src,
        tmp_path / "out.json",
        "--classes",
        "person,3",
        "--min-area",
        "50",
        "--empty",
        "drop",
    )
    assert (doc["images"], doc["boxes"], doc["categories"]) == (2, 3, 2)
    assert doc["dropped"] == {"min_area": 1, "images_empty": 2}
    out, whole = json.loads((tmp_path / "out.json").read_text()), json.loads(src.read_text())
    assert out["annotations"] == [whole["annotations"][i] for i in (0, 1, 2)]
    assert [i["id"] for i in out["images"]] == [1, 2]


def test_sample_cli_json_and_seed(cli_json, tmp_path):
    _, images, anns = skewed(120)
    src = write_coco(tmp_path / "in.json", images, anns, [(c, f"c{c}") for c in range(1, 7)])
    a = cli_json("coco", "sample", src, tmp_path / "a.json", "--n", "25", "--seed", "4")
    cli_json("coco", "sample", src, tmp_path / "b.json", "--n", "25", "--seed", "4")
    assert a["images"] == 25 and a["seed"] == 4 and a["dropped"] == {"images": 95}
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    out = json.loads((tmp_path / "a.json").read_text())
    assert len(out["annotations"]) == a["boxes"]


def test_yolo_in_yolo_out(cli_json, tmp_path):
    root = tmp_path / "yolo"
    write_images(root / "images", ["p.jpg", "q.jpg", "r.jpg"], size=(100, 50))
    (root / "labels").mkdir()
    (root / "labels" / "p.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.2 0.2 0.1 0.1\n")
    (root / "labels" / "q.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    (root / "labels" / "r.txt").write_text("")
    (root / "classes.txt").write_text("dog\ncat\n")
    doc = cli_json("coco", "filter", root, tmp_path / "out", "--classes", "cat", "--empty", "drop")
    assert doc["to"] == "yolo" and (doc["images"], doc["boxes"]) == (2, 2)
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "labels").glob("*.txt")) == ["p.txt", "q.txt"]
    assert (out / "labels" / "p.txt").read_text().split()[0] == "0"  # cat is class 0 of the output
    assert yaml.safe_load((out / "data.yaml").read_text())["names"] == {0: "cat"}
    assert doc["written"]["images_linked"] == 2 and (out / "images" / "p.jpg").is_file()


def test_unknown_class_and_bad_empty_are_one_line_exit_2(cli, tmp_path):
    src = write_coco(tmp_path / "in.json", IMAGES, ANNS, CATS)
    code, out, err = cli("coco", "filter", src, tmp_path / "o.json", "--classes", "zebra")
    assert code == 2 and out == "" and "no class 'zebra'" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("coco", "filter", src, tmp_path / "o.json", "--empty", "sometimes")
    assert code == 2 and "--empty" in err
    assert not (tmp_path / "o.json").exists()


def test_copy_images_into_the_output_folder(cli, cli_json, tmp_path):
    write_images(tmp_path / "images", ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    src = write_coco(tmp_path / "in.json", IMAGES, ANNS, CATS)
    doc = cli_json(
        "coco", "filter", src, tmp_path / "out", "--classes", "person", "--empty", "drop", "--copy-images"
    )
    assert doc["written"]["images_linked"] == 2
    copied = sorted((tmp_path / "out" / "images").iterdir())
    assert [p.name for p in copied] == ["a.jpg", "c.jpg"] and not any(p.is_symlink() for p in copied)
    out = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert out["detkit"] == {"image_root": "images"}
    code, _, err = cli(
        "coco", "filter", src, tmp_path / "x.json", "--copy-images"
    )  # a .json cannot hold images
    assert (
        code == 2
        and err
        == f"detkit: error: {tmp_path / 'x.json'}: --copy-images needs an output folder, not a .json file\n"
    )
    ds = load_dataset(src)
    with pytest.raises(DetkitError) as e:  # the Python API's words name the keyword argument
        write_one(
            Source(src, ds), Part.of_images(ds, np.arange(2)), tmp_path / "x.json", "coco", copy_images=True
        )
    assert str(e.value) == f"{tmp_path / 'x.json'}: copy_images=True needs an output folder, not a .json file"


@pytest.mark.parametrize("command", ["split", "merge", "filter", "sample", "draw"])
def test_help_example_and_missing_input_one_line(cli, tmp_path, command):
    code, out, _ = cli("coco", command, "--help")
    assert code == 0 and f"Example: detkit coco {command}" in out
    missing = tmp_path / "missing.json"
    extra = [missing] if command == "merge" else []
    code, out, err = cli("coco", command, missing, *extra, tmp_path / "out")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith(f"detkit: error: {missing}") and "no such file" in err
    assert not (tmp_path / "out").exists()


def test_a_failed_write_leaves_no_output(tmp_path, monkeypatch):
    """Outputs are staged beside OUT and renamed at the end: a failure leaves neither OUT nor a
    temp folder."""
    from detkit.datasets.formats import write
    from detkit.datasets.ops.source import load_source

    src_path = write_coco(tmp_path / "in.json", IMAGES, ANNS, CATS)
    src = load_source(src_path)
    part = filter_dataset(src.ds).part

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(write, "write_data_yaml", boom)
    with pytest.raises(RuntimeError):
        write.write_one(src, part, tmp_path / "out", "yolo")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.json"]
