"""Dataset layouts as users bring them (detkit.datasets.formats.layouts): ultralytics data.yaml, Roboflow YOLO
and COCO exports, plain YOLO folders with split subfolders, class-name files; the split column, --split, and
the per-split tables of `inspect` / `classes`. Every fixture is built here, with counts known by
construction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detkit.datasets.load import declared_splits, detect_format, load_dataset
from detkit.errors import InputError


# ---- fixture builders (shared by test_lenient.py and test_leakage.py) ------------------------------------
def write_image(
    path: Path, size: tuple[int, int] = (64, 48), seed: int = 0, quality: int = 90, shift: int = 0
) -> Path:
    """A smooth random picture (8x8 noise upsampled): distinct per seed, stable under re-encoding."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    img = small.resize(size, Image.Resampling.BICUBIC)
    if shift:
        img = Image.fromarray(np.clip(np.asarray(img, dtype=np.int16) + shift, 0, 255).astype(np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".png":
        img.save(path)
    else:
        img.save(path, quality=quality)
    return path


def write_yolo_split(images: Path, labels: Path, rows: dict[str, str], seed: int = 0) -> None:
    """Images ``<stem>.jpg`` under ``images`` and, where ``rows[stem]`` is not None, ``<stem>.txt`` labels."""
    for k, (stem, text) in enumerate(rows.items()):
        write_image(images / f"{stem}.jpg", seed=seed * 100 + k)
        if text is not None:
            labels.mkdir(parents=True, exist_ok=True)
            (labels / f"{stem}.txt").write_text(text)


def ultralytics_set(root: Path, names_yaml: str = "names: [cat, dog]\n") -> Path:
    """datasets/ds/{images,labels}/{train,val}; data.yaml one folder up with ``path: ds``.

    train: a (2 boxes), b (1 box), c (no label file: background); val: listed in val.txt: d (1 box), e (0
        boxes).
    """
    ds = root / "ds"
    write_yolo_split(
        ds / "images" / "train",
        ds / "labels" / "train",
        {"a": "0 0.5 0.5 0.5 0.5\n1 0.25 0.25 0.1 0.1\n", "b": "1 0.5 0.5 0.2 0.2\n", "c": None},
    )
    write_yolo_split(
        ds / "images" / "val", ds / "labels" / "val", {"d": "0 0.5 0.5 0.3 0.3\n", "e": ""}, seed=1
    )
    (ds / "val.txt").write_text("./images/val/d.jpg\n./images/val/e.jpg\n")
    y = root / "data.yaml"
    y.write_text(f"path: ds\ntrain: images/train\nval: val.txt\ntest:\n{names_yaml}")
    return y


def roboflow_yolo(root: Path) -> Path:
    """A Roboflow YOLO export: data.yaml with ../ paths, train (2 images) / valid (1) / test (1)."""
    write_yolo_split(
        root / "train" / "images",
        root / "train" / "labels",
        {"t1": "0 0.5 0.5 0.2 0.2\n", "t2": "1 0.5 0.5 0.2 0.2\n"},
    )
    write_yolo_split(
        root / "valid" / "images", root / "valid" / "labels", {"v1": "1 0.4 0.4 0.2 0.2\n"}, seed=1
    )
    write_yolo_split(
        root / "test" / "images", root / "test" / "labels", {"s1": "0 0.5 0.5 0.4 0.4\n"}, seed=2
    )
    (root / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\nnc: 2\n"
        "names: ['helmet', 'head']\n\nroboflow:\n  workspace: x\n"
    )
    (root / "README.roboflow.txt").write_text("exported from roboflow\n")
    return root


def roboflow_coco(root: Path) -> Path:
    """A Roboflow COCO export, each json beside its images: train (2 images; 2 RBC, 1 cells), valid (1 image,
    1 RBC)."""
    cats = [
        {"id": 0, "name": "cells", "supercategory": "none"},
        {"id": 1, "name": "RBC", "supercategory": "cells"},
    ]
    for split, n_img, boxes, seed in (("train", 2, [(1, 1), (1, 0), (2, 1)], 0), ("valid", 1, [(1, 1)], 1)):
        d = root / split
        images = [{"id": i, "file_name": f"{split}_{i}.jpg", "width": 64, "height": 48} for i in range(n_img)]
        for k, im in enumerate(images):
            write_image(d / im["file_name"], seed=seed * 10 + k)
        anns = [
            {"id": k, "image_id": im - 1, "category_id": c, "bbox": [1, 2, 10, 10], "area": 100, "iscrowd": 0}
            for k, (im, c) in enumerate(boxes)
        ]
        (d / "_annotations.coco.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": cats})
        )
    (root / "README.roboflow.txt").write_text("exported from roboflow\n")
    return root


def _split_sizes(ds) -> dict[str, int]:
    return {s: int((ds.split == s).sum()) for s in ds.split_names()}


# ---- ultralytics data.yaml -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "names", ["names: [cat, dog]\n", "names:\n  0: cat\n  1: dog\n", "nc: 2\nnames:\n  - cat\n  - dog\n"]
)
def test_ultralytics_yaml_splits_names_and_backgrounds(tmp_path, names):
    y = ultralytics_set(tmp_path, names)
    assert detect_format(y) == "yolo" and declared_splits(y) == ["train", "val"]
    ds = load_dataset(y)
    assert list(ds.cat_name) == ["cat", "dog"] and list(ds.cat_id) == [0, 1]
    assert _split_sizes(ds) == {"train": 3, "val": 2} and ds.num_annotations == 4
    assert list(ds.file_name) == [
        "images/train/a.jpg",
        "images/train/b.jpg",
        "images/train/c.jpg",
        "images/val/d.jpg",
        "images/val/e.jpg",
    ]
    assert ds.image_root == str(tmp_path / "ds") and (ds.width[0], ds.height[0]) == (64, 48)
    # a's second box: class 1 at cx .25 cy .25 w .1 h .1 of 64x48 -> x 12.8, y 9.6, w 6.4, h 4.8 px
    assert ds.category_id.tolist() == [0, 1, 1, 0] and np.allclose(ds.bbox[1], [12.8, 9.6, 6.4, 4.8])
    # c has no label file: a background image, noted (kept), not skipped
    assert [(s.code, s.kept) for s in ds.skipped] == [("image.no_label_file", True)]
    val = load_dataset(y, split="val")
    assert val.num_images == 2 and set(val.split) == {"val"} and val.num_annotations == 1


def test_nc_alone_and_bad_names(tmp_path):
    y = ultralytics_set(tmp_path, "nc: 3\n")
    assert list(load_dataset(y).cat_name) == ["class0", "class1", "class2"]
    y.write_text("path: ds\ntrain: images/train\nnc: 3\nnames: [a, b]\n")
    with pytest.raises(InputError, match=r"data.yaml:nc: nc is 3 but names lists 2 classes"):
        load_dataset(y)


def test_yaml_errors_name_the_file_and_key(cli, tmp_path):
    y = ultralytics_set(tmp_path)
    y.write_text("path: ds\ntrain: images/nope\nnames: [a]\n")
    code, out, err = cli("coco", "inspect", y)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"{y}:train: 'images/nope' does not exist" in err
    y.write_text("path: ds\ntrain: [images/train\nnames: [a]\n")
    code, _, err = cli("coco", "classes", y)
    assert code == 2 and f"{y}:line 3: not valid YAML" in err
    y.write_text("names: [a]\n")
    code, _, err = cli("coco", "inspect", y)
    assert code == 2 and "no train / val / test key" in err
    (tmp_path / "empty" / "images" / "train").mkdir(parents=True)
    y.write_text("path: empty\ntrain: images/train\nnames: [a]\n")
    code, _, err = cli("coco", "inspect", y)
    assert code == 2 and "no images found" in err


def test_list_of_sources_and_absolute_txt(tmp_path):
    y = ultralytics_set(tmp_path)
    lst = tmp_path / "abs.txt"
    lst.write_text(f"{tmp_path / 'ds/images/val/d.jpg'}\n")
    y.write_text(f"path: ds\ntrain: [images/train, {lst}]\nnames: [cat, dog]\n")
    ds = load_dataset(y)
    assert _split_sizes(ds) == {"train": 4} and ds.num_annotations == 4


# ---- Roboflow exports ------------------------------------------------------------------------------------
def test_roboflow_yolo_export(tmp_path):
    root = roboflow_yolo(tmp_path / "export")
    assert detect_format(root) == "yolo"
    for src in (root, root / "data.yaml"):
        ds = load_dataset(src)
        assert _split_sizes(ds) == {"train": 2, "val": 1, "test": 1}
        assert list(ds.cat_name) == ["helmet", "head"] and ds.num_annotations == 4 and not ds.skipped
        assert ds.file_name[2] == "valid/images/v1.jpg"
    assert load_dataset(root, split="valid").num_images == 1  # Roboflow's folder name works as well as 'val'
    # the same folders without the yaml (names then come from nowhere)
    (root / "data.yaml").unlink()
    ds = load_dataset(root)
    assert _split_sizes(ds) == {"train": 2, "val": 1, "test": 1} and list(ds.cat_name) == ["class0", "class1"]


def test_roboflow_coco_export(tmp_path, cli_json):
    root = roboflow_coco(tmp_path / "export")
    assert detect_format(root) == "coco" and declared_splits(root) == ["train", "val"]
    ds = load_dataset(root)
    assert _split_sizes(ds) == {"train": 2, "val": 1} and ds.num_annotations == 4
    assert len(set(ds.image_id.tolist())) == 3 and len(set(ds.ann_id.tolist())) == 4  # ids offset per split
    assert list(ds.file_name) == ["train/train_0.jpg", "train/train_1.jpg", "valid/valid_0.jpg"]
    assert (Path(ds.image_root) / ds.file_name[2]).is_file()
    assert ds.image_index().min() >= 0  # every box still finds its image
    val = load_dataset(root, split="val")
    assert val.num_images == 1 and val.image_id.tolist() == [0]  # one split: the json's own ids
    doc = cli_json("coco", "classes", root)
    rbc = next(r for r in doc["classes"] if r["name"] == "RBC")
    assert rbc["instances"] == 3 and rbc["splits"] == {
        "train": {"instances": 2, "images": 2, "share": 0.666667},
        "val": {"instances": 1, "images": 1, "share": 1.0},
    }
    v = cli_json("coco", "validate", root, expect=1)  # Roboflow numbers annotations from 0, as here
    assert v["images"] == 3 and [(f["code"], f["count"]) for f in v["findings"]] == [
        ("annotation.id_zero", 1)
    ]


# ---- plain YOLO folders, class-name files --------------------------------------------------------------
def test_coco128_layout_with_split_subfolders_and_names_above(tmp_path):
    root = tmp_path / "coco128"
    write_yolo_split(
        root / "images" / "train2017",
        root / "labels" / "train2017",
        {"x": "0 0.5 0.5 0.1 0.1\n", "y": "1 0.5 0.5 0.1 0.1\n"},
    )
    (root / "obj.names").write_text("person\nbicycle\n")
    ds = load_dataset(root)
    assert _split_sizes(ds) == {"train": 2} and list(ds.cat_name) == ["person", "bicycle"]
    # a labels folder given directly finds the names two folders up and the images beside
    ds = load_dataset(root / "labels" / "train2017")
    assert ds.num_images == 2 and list(ds.cat_name) == ["person", "bicycle"]


def test_classes_txt_beside_labels(tmp_path):
    write_yolo_split(tmp_path / "images", tmp_path / "labels", {"a": "2 0.5 0.5 0.1 0.1\n"})
    (tmp_path / "labels" / "classes.txt").write_text("a\nb\nc\n")
    ds = load_dataset(tmp_path)
    assert list(ds.cat_name) == ["a", "b", "c"] and ds.split is None and not ds.skipped


# ---- the CLI: --split and splits side by side --------------------------------------------------------------
def test_inspect_and_classes_show_splits(cli, cli_json, tmp_path):
    y = ultralytics_set(tmp_path)
    doc = cli_json("coco", "inspect", y)
    assert doc["splits"] == [
        {"split": "train", "images": 3, "annotations": 3, "images_without_annotations": 1, "share": 0.6},
        {"split": "val", "images": 2, "annotations": 1, "images_without_annotations": 1, "share": 0.4},
    ]
    assert doc["skipped"]["count"] == 0 and doc["skipped"]["by_code"] == {"image.no_label_file": 1}
    doc = cli_json("coco", "classes", y)
    assert doc["splits"] == ["train", "val"]
    assert {r["name"]: r["splits"] for r in doc["classes"]} == {
        "cat": {
            "train": {"instances": 1, "images": 1, "share": 0.333333},
            "val": {"instances": 1, "images": 1, "share": 1.0},
        },
        "dog": {
            "train": {"instances": 2, "images": 2, "share": 0.666667},
            "val": {"instances": 0, "images": 0, "share": 0.0},
        },
    }
    code, out, _ = cli("coco", "classes", y)
    assert code == 0 and "train %" in out and "val %" in out and "train 3, val 2" in out
    doc = cli_json("coco", "classes", y, "--split", "val")
    assert doc["images"] == 2 and "splits" not in doc or doc["splits"] == ["val"]
    code, _, err = cli("coco", "inspect", y, "--split", "test")
    assert code == 2 and "no split 'test' (this yaml has train, val)" in err


def test_split_on_a_file_without_splits_is_exit_2(cli, shapes_dir, tmp_path):
    src = tmp_path / "split train" / "a.json"  # a folder named like the message: only the message changes
    src.parent.mkdir()
    src.write_bytes((shapes_dir / "instances.json").read_bytes())
    code, _, err = cli("coco", "inspect", src, "--split", "train")
    assert code == 2 and err == f"detkit: error: {src}: --split train: this coco file has no splits\n"
    with pytest.raises(InputError) as e:  # the Python API's words name the keyword argument
        load_dataset(src, split="train")
    assert str(e.value) == f"{src}: split train: this coco file has no splits"


# ---- yolo train --data data.yaml: train on train, validate on val -----------------------------------------
def test_trainer_takes_train_and_val_from_the_yaml(tmp_path):
    from detkit.yolo.splits import has_split, load_split

    y = ultralytics_set(tmp_path)
    assert has_split(y, "val") and not has_split(y, "test")
    train, val = load_split(y, split="train"), load_split(y, split="val")
    assert (train.num_images, val.num_images) == (3, 2) and set(train.split) == {"train"}
    # an explicit image list wins over the declared split
    lst = tmp_path / "only_d.txt"
    lst.write_text("d\n")
    assert load_split(y, lst, split="val").file_name.tolist() == ["images/val/d.jpg"]
    # a source without splits: the whole set, whatever split is asked for
    write_yolo_split(tmp_path / "flat" / "images", tmp_path / "flat" / "labels", {"z": "0 0.5 0.5 0.1 0.1\n"})
    assert load_split(tmp_path / "flat", split="val").num_images == 1


def test_yolo_train_data_yaml_uses_train_and_val(tmp_path):
    from detkit.yolo.config import TrainConfig
    from detkit.yolo.setup import _load_data

    y = ultralytics_set(tmp_path)
    d = _load_data(TrainConfig(data=str(y), out=str(tmp_path / "run")), None)
    assert d["train_ds"].file_name.tolist() == [
        "images/train/a.jpg",
        "images/train/b.jpg",
        "images/train/c.jpg",
    ]
    assert d["val_ds"].file_name.tolist() == ["images/val/d.jpg", "images/val/e.jpg"]
    assert d["class_map"].names == ["cat", "dog"]


def test_coco_folder_with_images_and_a_readme_is_coco(tmp_path, shapes_dir):
    import shutil

    shutil.copytree(shapes_dir, tmp_path / "set")
    (tmp_path / "set" / "annotations").mkdir()
    (tmp_path / "set" / "instances.json").rename(tmp_path / "set" / "annotations" / "instances_val.json")
    (tmp_path / "set" / "README.txt").write_text("a COCO set\n")
    assert detect_format(tmp_path / "set") == "coco" and load_dataset(tmp_path / "set").num_images == 16


def test_classes_markdown_has_split_columns(cli, tmp_path):
    code, out, _ = cli("coco", "classes", ultralytics_set(tmp_path), "--markdown")
    assert code == 0
    assert out.splitlines()[0] == "| id | name | instances | images | share | train | train % | val | val % |"
    assert out.splitlines()[2] == "| 0 | cat | 2 | 2 | 50.00% | 1 | 33.3% | 1 | 100.0% |"


def test_converted_yaml_set_reads_back(cli, tmp_path):
    y = ultralytics_set(tmp_path / "src")
    assert cli("coco", "convert", y, tmp_path / "y", "--to", "yolo")[0] == 0
    # one folder per split (tests/datasets/test_convert_splits.py): y/train/labels/a.txt beside
    # y/train/images/a.jpg
    assert (tmp_path / "y" / "train" / "labels" / "a.txt").is_file()
    ds = load_dataset(tmp_path / "y")
    assert (ds.num_images, ds.num_annotations) == (5, 4) and list(ds.cat_name) == ["cat", "dog"]
    assert not [s for s in ds.skipped if not s.kept]
