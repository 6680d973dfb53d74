"""Leakage between splits (detkit.datasets.images.find_leaks and `validate`): exact copies (same file or
same bytes) and near-duplicates (64-bit pHash within a few bits), reported as coded findings with pairs."""

from __future__ import annotations

import shutil

import numpy as np

from detkit.datasets.images import NEAR_DISTANCE, find_leaks, phash
from tests.datasets.test_layouts import write_image, write_yolo_split


def leaky_set(root):
    """train: a, b, c; val: a's bytes under another name, b re-encoded lighter (near), d (new);
    test: e (new)."""
    rows = {"a": "0 0.5 0.5 0.2 0.2\n", "b": "0 0.5 0.5 0.2 0.2\n", "c": "0 0.5 0.5 0.2 0.2\n"}
    write_yolo_split(root / "train" / "images", root / "train" / "labels", rows, seed=0)
    val = root / "valid" / "images"
    val.mkdir(parents=True)
    shutil.copy(root / "train" / "images" / "a.jpg", val / "copy_of_a.jpg")
    write_image(val / "b_again.jpg", seed=1, quality=60, shift=12)  # seed 1 = b's picture
    write_image(val / "d.jpg", seed=7)
    write_image(root / "test" / "images" / "e.jpg", seed=8)
    (root / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\nnames: [x]\n"
    )
    return root


def test_phash_separates_copies_from_other_pictures(tmp_path):
    base = phash(write_image(tmp_path / "b.jpg", seed=1))
    near = phash(write_image(tmp_path / "b2.jpg", seed=1, quality=60, shift=12))
    big = phash(write_image(tmp_path / "b3.png", size=(128, 96), seed=1))  # resized, other format
    others = [phash(write_image(tmp_path / f"o{k}.jpg", seed=k)) for k in range(2, 12)]
    dist = lambda a, b: int(np.bitwise_count(np.uint64(a) ^ np.uint64(b)))
    assert dist(base, near) <= 4 and dist(base, big) <= 4
    assert min(dist(base, o) for o in others) > 2 * NEAR_DISTANCE


def test_find_leaks_pairs(tmp_path):
    from detkit.datasets.images import image_paths
    from detkit.datasets.load import load_dataset

    ds = load_dataset(leaky_set(tmp_path))
    assert ds.split.tolist() == ["train", "train", "train", "val", "val", "val", "test"]
    leaks = find_leaks(image_paths(ds.file_name, ds.image_root), ds.split)
    got = sorted((lk.kind, ds.file_name[lk.a], ds.file_name[lk.b], lk.note.split()[0]) for lk in leaks)
    assert got == [
        ("exact", "train/images/a.jpg", "valid/images/copy_of_a.jpg", "same"),
        ("near", "train/images/b.jpg", "valid/images/b_again.jpg", "pHash"),
    ]
    near = next(lk for lk in leaks if lk.kind == "near")
    assert 0 < near.distance <= NEAR_DISTANCE
    assert find_leaks(image_paths(ds.file_name, ds.image_root), ds.split, near=False)[0].kind == "exact"


def test_validate_reports_leaks_as_findings(cli_json, tmp_path):
    root = leaky_set(tmp_path)
    doc = cli_json("coco", "validate", root, expect=0)
    got = {f["code"]: f for f in doc["findings"]}
    assert got["split.leak_exact"]["count"] == 1 and got["split.leak_near"]["count"] == 1
    assert (
        got["split.leak_exact"]["examples"][0]["record"]
        == "train:train/images/a.jpg = val:valid/images/copy_of_a.jpg"
    )
    assert got["split.leak_exact"]["examples"][0]["note"] == "same bytes"
    assert got["split.leak_near"]["severity"] == "warning"
    assert got["split.leak_near"]["details"]["max_distance_bits"] == NEAR_DISTANCE
    assert cli_json("coco", "validate", root, "--fail-on", "warning", expect=1)["failed"]


def test_one_folder_in_two_splits_is_an_exact_leak_per_image(cli_json, tmp_path):
    write_yolo_split(
        tmp_path / "images" / "train",
        tmp_path / "labels" / "train",
        {"a": "0 0.5 0.5 0.2 0.2\n", "b": "0 0.5 0.5 0.2 0.2\n"},
    )
    (tmp_path / "data.yaml").write_text(
        "train: images/train\nval: images/train\nnames: [x]\n"
    )  # coco128.yaml does this
    doc = cli_json("coco", "validate", tmp_path / "data.yaml", expect=0)
    exact = next(f for f in doc["findings"] if f["code"] == "split.leak_exact")
    assert exact["count"] == 2 and {e["note"] for e in exact["examples"]} == {"same file"}
    assert not [
        f for f in doc["findings"] if f["code"] == "split.leak_near"
    ]  # the same file is not also "near"


def test_one_split_has_no_leak_check(cli_json, tmp_path):
    leaky_set(tmp_path)
    v = cli_json("coco", "validate", tmp_path / "valid", expect=0)  # one export folder: no splits to compare
    assert v["images"] == 3 and not [f for f in v["findings"] if f["code"].startswith("split.")]
