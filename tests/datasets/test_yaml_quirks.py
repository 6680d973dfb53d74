"""data.yaml quirks: ``coco128.yaml`` declares train and val as the same folder. Each image
is counted once with its memberships (``train+val``); one warning names the overlap in inspect, classes,
anchors and ``yolo train``; orphan label files are counted once; ``anchors kmeans --split``."""

from __future__ import annotations

import pytest

from detkit.datasets.load import load_dataset, shared_images_line
from tests.datasets.test_layouts import write_yolo_split

SAME = "train and val are the same 3 images: validation measures training fit"


@pytest.fixture
def coco128(tmp_path):
    """images/train2017: a (2 boxes: person, dog), b (1 person), c (background); one orphan label z.txt;
    the yaml names the folder as train and as val, as ultralytics' coco128.yaml does."""
    write_yolo_split(
        tmp_path / "images" / "train2017",
        tmp_path / "labels" / "train2017",
        {"a": "0 0.5 0.5 0.5 0.5\n1 0.25 0.25 0.1 0.1\n", "b": "0 0.5 0.5 0.2 0.2\n", "c": None},
    )
    (tmp_path / "labels" / "train2017" / "z.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    y = tmp_path / "coco128.yaml"
    y.write_text("path: .\ntrain: images/train2017\nval: images/train2017\nnames: [person, dog]\n")
    return y


def test_each_image_is_counted_once_with_its_memberships(coco128):
    ds = load_dataset(coco128)
    assert ds.num_images == 3 and ds.num_annotations == 3  # not 6 and 6
    assert ds.split.tolist() == ["train+val"] * 3
    assert ds.split_names() == ["train", "val"]
    assert ds.select_split("val").num_images == 3 and ds.select_split("train").num_annotations == 3
    assert [s.code for s in ds.skipped if not s.kept] == ["label.orphan"]  # one orphan file, said once
    assert ds.split_overlaps() == [SAME]
    assert load_dataset(coco128, split="val").num_images == 3


def test_inspect_and_classes_warn_once(cli, cli_json, coco128):
    code, out, err = cli("coco", "inspect", coco128)
    assert code == 0 and err.count(SAME) == 1 and "1 label.orphan" in err
    doc = cli_json("coco", "inspect", coco128)
    assert doc["counts"]["images"] == 3 and doc["split_overlaps"] == [SAME]
    assert [(r["split"], r["images"], r["annotations"]) for r in doc["splits"]] == [
        ("train", 3, 3),
        ("val", 3, 3),
    ]
    code, out, err = cli("coco", "classes", coco128)
    assert code == 0 and err.count(SAME) == 1
    doc = cli_json("coco", "classes", coco128)
    assert {r["name"]: (r["instances"], r["images"]) for r in doc["classes"]} == {
        "person": (2, 2),
        "dog": (1, 1),
    }


def test_anchors_count_each_box_once_and_take_a_split(cli, cli_json, coco128):
    code, _, err = cli("anchors", "kmeans", coco128, "--k", "2", "--json")
    assert code == 0 and err.count(SAME) == 1
    assert cli_json("anchors", "kmeans", coco128, "--k", "2")["boxes"] == 3
    assert cli_json("anchors", "kmeans", coco128, "--k", "2", "--split", "val")["boxes"] == 3
    code, _, err = cli("anchors", "kmeans", coco128, "--k", "2", "--split", "test")
    assert code == 2 and "no split 'test' (this yaml has train, val)" in err


def test_anchors_split_keeps_only_that_split(cli_json, tmp_path):
    write_yolo_split(tmp_path / "images" / "train", tmp_path / "labels" / "train", {"a": "0 .5 .5 .2 .2\n"})
    write_yolo_split(
        tmp_path / "images" / "val",
        tmp_path / "labels" / "val",
        {"b": "0 .5 .5 .1 .1\n0 .2 .2 .1 .1\n"},
        seed=1,
    )
    y = tmp_path / "data.yaml"
    y.write_text("train: images/train\nval: images/val\nnames: [x]\n")
    assert cli_json("anchors", "kmeans", y, "--k", "1")["boxes"] == 3
    assert cli_json("anchors", "kmeans", y, "--k", "1", "--split", "val")["boxes"] == 2
    assert cli_json("anchors", "kmeans", y, "--k", "1", "--split", "train")["boxes"] == 1


def test_yolo_train_says_it_validates_on_its_training_images(coco128, capsys):
    from detkit.yolo.config import TrainConfig
    from detkit.yolo.setup import _load_data

    data = _load_data(TrainConfig(data=str(coco128), out="unused"), None)
    assert data["train_ds"].num_images == data["val_ds"].num_images == 3
    assert capsys.readouterr().err.count(SAME) == 1
    assert shared_images_line(data["train_ds"], data["train_ds"].subset_images([1])) == (
        "1 image is in both train (3) and val (1): validation measures training fit on those"
    )


def test_lists_naming_one_image_twice_give_it_one_row(tmp_path):
    """train.txt lists a and b, val.txt lists b and c (and b again), all from images/all: b is one row in
    train+val, its two boxes read once."""
    write_yolo_split(
        tmp_path / "images" / "all",
        tmp_path / "labels" / "all",
        {
            "a": "0 0.5 0.5 0.5 0.5\n",
            "b": "1 0.5 0.5 0.2 0.2\n0 0.2 0.2 0.1 0.1\n",
            "c": "1 0.5 0.5 0.4 0.4\n",
        },
    )
    (tmp_path / "train.txt").write_text("images/all/a.jpg\nimages/all/b.jpg\n")
    (tmp_path / "val.txt").write_text("images/all/b.jpg\nimages/all/c.jpg\n./images/all/b.jpg\n")
    y = tmp_path / "data.yaml"
    y.write_text("path: .\ntrain: train.txt\nval: val.txt\nnames: [person, dog]\n")
    ds = load_dataset(y)
    assert ds.file_name.tolist() == ["images/all/a.jpg", "images/all/b.jpg", "images/all/c.jpg"]
    assert ds.split.tolist() == ["train", "train+val", "val"]
    assert ds.num_annotations == 4 and ds.ann_image_id.tolist() == [1, 2, 2, 3]
    assert [s.code for s in ds.skipped] == []
    assert ds.select_split("val").num_annotations == 3
