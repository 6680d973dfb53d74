"""`detkit coco convert` of a source with splits (data.yaml, YOLO or Roboflow export, VOC ImageSets) keeps
them apart: one COCO json per split (``OUT/<split>.json``), one YOLO or VOC folder per split
(``OUT/<split>/``, YOLO with ``OUT/data.yaml``), ``--split NAME`` for one of them, ``--split all`` for
everything in one output. A single-split source converts as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detkit.datasets.load import load_dataset
from tests.datasets.test_layouts import ultralytics_set
from tests.datasets.test_ops_lossless import SPLITS, roboflow  # noqa: F401  (fixture)

# ultralytics_set: train a (2 boxes), b (1 box), c (background); val d (1 box), e (none); images 64x48.
# a's rows: 0 0.5 0.5 0.5 0.5 -> x 16, y 12, w 32, h 24 px; 1 0.25 0.25 0.1 0.1 -> x 12.8, y 9.6, w 6.4, h
# 4.8.


def _coco(path: Path) -> dict:
    return json.loads(path.read_text())


def test_two_splits_give_one_coco_json_each(cli, tmp_path):
    y = ultralytics_set(tmp_path / "src")
    code, _, err = cli("coco", "convert", y, tmp_path / "out", "--to", "coco")
    assert code == 0, err
    # and the summary.json detkit report shows, which no reader takes for annotations
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["summary.json", "train.json", "val.json"]
    train, val = _coco(tmp_path / "out" / "train.json"), _coco(tmp_path / "out" / "val.json")
    assert [i["file_name"] for i in train["images"]] == ["a.jpg", "b.jpg", "c.jpg"]
    assert [i["file_name"] for i in val["images"]] == ["d.jpg", "e.jpg"]
    assert (len(train["annotations"]), len(val["annotations"])) == (3, 1)
    boxes = [a["bbox"] for a in train["annotations"][:2]]
    assert boxes == [[16, 12, 32, 24], pytest.approx([12.8, 9.6, 6.4, 4.8])]
    assert [(c["id"], c["name"]) for c in val["categories"]] == [(0, "cat"), (1, "dog")]
    # each json records its own image folder: every image is found again
    for name, n in (("train", 3), ("val", 2)):
        ds = load_dataset(tmp_path / "out" / f"{name}.json")
        assert ds.num_images == n and all((Path(ds.image_root) / f).is_file() for f in ds.file_name)
    assert "train.json (3 images, 3 boxes)" in err and "val.json (2 images, 1 boxes)" in err


def test_split_val_gives_only_val_as_before(cli, tmp_path):
    y = ultralytics_set(tmp_path / "src")
    code, _, _ = cli("coco", "convert", y, tmp_path / "val.json", "--to", "coco", "--split", "val")
    doc = _coco(tmp_path / "val.json")
    assert code == 0 and len(doc["images"]) == 2 and len(doc["annotations"]) == 1


def test_a_json_output_for_two_splits_is_refused_with_the_ways_out(cli, tmp_path):
    y = ultralytics_set(tmp_path / "src")
    code, out, err = cli("coco", "convert", y, tmp_path / "c.json", "--to", "coco")
    assert code == 2 and out == "" and not (tmp_path / "c.json").exists()
    assert "splits train, val" in err and "--split" in err and "Traceback" not in err
    # --split all: every split in one json (the split is not recorded)
    assert cli("coco", "convert", y, tmp_path / "c.json", "--to", "coco", "--split", "all")[0] == 0
    assert len(_coco(tmp_path / "c.json")["images"]) == 5


def test_two_splits_to_yolo_give_split_folders_and_a_data_yaml(cli, tmp_path):
    import yaml

    y = ultralytics_set(tmp_path / "src")
    assert cli("coco", "convert", y, tmp_path / "y", "--to", "yolo")[0] == 0
    root = tmp_path / "y"
    assert yaml.safe_load((root / "data.yaml").read_text()) == {
        "train": "train/images",
        "val": "val/images",
        "nc": 2,
        "names": {0: "cat", 1: "dog"},
    }
    first = (root / "train" / "labels" / "a.txt").read_text().splitlines()[0]
    assert first == "0 0.5000000 0.5000000 0.5000000 0.5000000"
    image = tmp_path / "src" / "ds" / "images" / "train" / "a.jpg"
    assert (root / "train" / "images" / "a.jpg").resolve() == image.resolve()
    ds = load_dataset(root)
    assert ds.split_names() == ["train", "val"] and ds.num_annotations == 4
    assert [int((ds.split == s).sum()) for s in ("train", "val")] == [3, 2]
    assert not [s for s in ds.skipped if not s.kept]


def test_two_splits_to_voc_give_one_voc_folder_per_split(cli, tmp_path):
    y = ultralytics_set(tmp_path / "src")
    assert cli("coco", "convert", y, tmp_path / "v", "--to", "voc")[0] == 0
    train, val = load_dataset(tmp_path / "v" / "train"), load_dataset(tmp_path / "v" / "val")
    assert (train.num_images, train.num_annotations, val.num_images, val.num_annotations) == (3, 3, 2, 1)
    assert sorted(train.file_name) == ["a.jpg", "b.jpg", "c.jpg"]


def test_roboflow_coco_folder_converts_to_its_split_files_losslessly(cli, roboflow, tmp_path):  # noqa: F811
    code, _, err = cli("coco", "convert", roboflow, tmp_path / "out", "--to", "coco")
    assert code == 0, err
    for folder, name in (("train", "train"), ("valid", "val")):
        got = _coco(tmp_path / "out" / f"{name}.json")
        src = _coco(roboflow / folder / "_annotations.coco.json")
        assert {k: v for k, v in got.items() if k != "detkit"} == src  # segmentations, extra keys: all kept
        ds = load_dataset(tmp_path / "out" / f"{name}.json")
        assert all((Path(ds.image_root) / f).is_file() for f in ds.file_name)
    one = tmp_path / "val.json"
    assert cli("coco", "convert", roboflow, one, "--to", "coco", "--split", "valid")[0] == 0
    assert _coco(one)["annotations"] == SPLITS["valid"][1]


def test_a_source_with_one_split_converts_to_one_output(cli, tmp_path):
    y = ultralytics_set(tmp_path / "src")
    y.write_text(y.read_text().replace("val: val.txt\n", ""))
    assert cli("coco", "convert", y, tmp_path / "c.json", "--to", "coco")[0] == 0
    assert len(_coco(tmp_path / "c.json")["images"]) == 3


def test_bccd_voc_image_sets_become_three_coco_files(cli_json, tmp_path):
    from tests.conftest import shared_path

    bccd = shared_path("bccd", "BCCD")  # ImageSets/Main: train 205, val 87, test 72 ids (trainval unused)
    doc = cli_json("coco", "convert", bccd, tmp_path / "c", "--to", "coco")
    got = {n: (r["images"], r["boxes"]) for n, r in doc["splits"].items()}
    assert got == {"train": (205, 2805), "val": (87, 1138), "test": (72, 945)}
    assert (doc["images"], doc["boxes"]) == (364, 4888)
    val = load_dataset(tmp_path / "c" / "val.json")
    assert val.num_images == 87 and (Path(val.image_root) / str(val.file_name[0])).is_file()


def test_yolo_output_of_nested_names_is_found_by_ultralytics_rule(cli, tmp_path):
    """A single-split COCO file whose names sit under ``images/val/`` converts to ``OUT/images/val/x.jpg`` and
    ``OUT/labels/val/x.txt``: ultralytics' rule (the last ``/images/`` of an image path -> ``/labels/``, the
    suffix -> ``.txt``) finds every label file (before: ``OUT/images/images/val/x.jpg``, labels not found)."""
    from tests.datasets.ops_fixtures import write_coco, write_images

    root = tmp_path / "src"
    names = ["images/val/x.jpg", "images/val/sub/y.jpg", "z.jpg"]
    write_images(root, names)
    src = write_coco(
        root / "instances.json",
        [(i + 1, n, 64, 48) for i, n in enumerate(names)],
        [(1, 1, 1, 4, 4, 8, 8), (2, 2, 1, 1, 1, 10, 10)],
        [(1, "thing")],
    )
    out = tmp_path / "out"
    code, _, err = cli("coco", "convert", src, out, "--to", "yolo", "--images", root)
    assert code == 0, err
    images = sorted(p.relative_to(out).as_posix() for p in (out / "images").rglob("*.jpg"))
    assert images == ["images/val/sub/y.jpg", "images/val/x.jpg", "images/z.jpg"]
    for img in images:
        label = "/labels/".join(str(out / img).rsplit("/images/", 1)).rsplit(".", 1)[0] + ".txt"
        assert Path(label).is_file(), label
    assert (out / "labels" / "val" / "x.txt").read_text().startswith("0 ")
