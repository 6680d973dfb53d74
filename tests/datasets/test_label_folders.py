"""Label folders under other names: a split whose images (almost) never find their label
file is a layout mistake, not a set of background images. A single nearby folder whose every stem is one of
the split's images is followed, in one line; otherwise the error names the folder searched and the folders
found nearby. A split with no label folder anywhere near is read as ultralytics reads it (a warning)."""

from __future__ import annotations

import pytest

from detkit.datasets.load import load_dataset
from detkit.errors import InputError
from tests.datasets.test_layouts import write_image, write_yolo_split


def roboflow_as_found(root, copy: bool = False):
    """data.yaml -> data/images/{train,val}; labels in data/labels/{train,val}-labels (a public repo's
    layout). train: a, b (1 box each), c (no label: background); val: d (2 boxes)."""
    data = root / "data"
    write_yolo_split(
        data / "images" / "train",
        data / "labels" / "train-labels",
        {"a": "0 0.5 0.5 0.2 0.2\n", "b": "1 0.5 0.5 0.4 0.4\n", "c": None},
    )
    write_yolo_split(
        data / "images" / "val",
        data / "labels" / "val-labels",
        {"d": "0 .5 .5 .1 .1\n1 .2 .2 .1 .1\n"},
        seed=1,
    )
    if copy:  # a second folder whose stems match as well: ambiguous
        write_yolo_split(data / "images" / "train", data / "labels" / "train-old", {"a": "0 .5 .5 .2 .2\n"})
    y = root / "data.yaml"
    y.write_text("train: data/images/train\nval: data/images/val\nnames: [cat, dog]\n")
    return y


def test_an_unambiguous_label_folder_is_followed_and_said_in_one_line(cli_json, cli, tmp_path):
    y = roboflow_as_found(tmp_path)
    ds = load_dataset(y)
    assert ds.num_images == 4 and ds.num_annotations == 4  # not 4 images and 0 annotations
    notes = [s for s in ds.skipped if s.code == "label.none_found"]
    assert len(notes) == 2 and all(s.kept for s in notes)
    assert notes[0].what == (
        f"split train: no label file in {tmp_path / 'data' / 'labels' / 'train'}; read the labels from "
        f"{tmp_path / 'data' / 'labels' / 'train-labels'} (2 .txt files, every stem one of these images)"
    )
    code, _, err = cli("coco", "inspect", y)
    assert code == 0 and "note: 2 label.none_found" in err and "1 image.no_label_file" in err
    doc = cli_json("coco", "classes", y)
    assert {r["name"]: r["instances"] for r in doc["classes"]} == {"cat": 2, "dog": 2}


def test_an_ambiguous_one_is_an_error_naming_the_folders(cli, tmp_path):
    y = roboflow_as_found(tmp_path, copy=True)
    code, _, err = cli("coco", "inspect", y)
    assert code == 2 and len(err.strip().splitlines()) == 1
    labels = tmp_path / "data" / "labels"
    assert f"{y}:train: 0 of 3 images of split train have a label file in {labels / 'train'}" in err
    assert f"{labels / 'train-labels'} holds 2 .txt files, 2 with these images' stems" in err
    assert f"{labels / 'train-old'} holds 1 .txt files, 1 with these images' stems" in err
    assert "a layout mistake, not 3 background images" in err


def test_almost_none_is_a_warning_and_strict_stops(tmp_path):
    rows = {f"i{k:02d}": None for k in range(25)}
    rows["i00"] = "0 0.5 0.5 0.2 0.2\n"  # 1 of 25 (4%) finds its label file
    write_yolo_split(tmp_path / "images", tmp_path / "labels", rows)
    (tmp_path / "lbl").mkdir()
    for k in range(1, 25):
        (tmp_path / "lbl" / f"i{k:02d}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    ds = load_dataset(tmp_path)
    warn = [s for s in ds.skipped if s.code == "label.none_found"]
    assert len(warn) == 1 and not warn[0].kept
    assert warn[0].what.startswith(f"1 of 25 images have a label file in {tmp_path / 'labels'}")
    with pytest.raises(InputError, match="1 of 25 images"):
        load_dataset(tmp_path, strict=True)


def test_no_label_folder_anywhere_is_a_warning_as_ultralytics_reads_it(tmp_path):
    for k in range(3):
        write_image(tmp_path / "test" / "images" / f"t{k}.jpg", seed=k)
    write_yolo_split(tmp_path / "train" / "images", tmp_path / "train" / "labels", {"a": "0 .5 .5 .2 .2\n"})
    ds = load_dataset(tmp_path)
    assert ds.num_images == 4
    warn = [s for s in ds.skipped if s.code == "label.none_found"]
    assert len(warn) == 1 and warn[0].where == "test" and "no label folder found nearby" in warn[0].what
