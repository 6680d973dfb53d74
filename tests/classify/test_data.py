from __future__ import annotations

import os
import shutil

import cv2
import numpy as np
import pytest

from detkit.classify import data as D
from detkit.errors import DetkitError, InputError


def test_scan_tiny_imagenet_layout(tiny_set):
    cat = D.scan_dataset(tiny_set)
    wnids = (tiny_set / "wnids.txt").read_text().split()
    assert cat.layout == "tiny-imagenet"
    assert cat.classes == wnids  # wnids.txt order, not sorted
    assert cat.classes != sorted(cat.classes)
    assert cat.names[0] == (tiny_set / "words.txt").read_text().split("\n")[0].split("\t")[1].split(",")[0]
    assert len(cat) == 300
    assert (cat.group == D.TRAIN).sum() == 250 and (cat.group == D.VAL).sum() == 50
    assert np.bincount(cat.labels).tolist() == [60] * 5
    # val labels come from val_annotations.txt
    first = (tiny_set / "val" / "val_annotations.txt").read_text().split("\n")[0].split("\t")
    i = cat.files.index(f"val/images/{first[0]}")
    assert cat.classes[cat.labels[i]] == first[1]


def test_grayscale_jpeg_decodes_to_rgb(tiny_set):
    from PIL import Image

    cat = D.scan_dataset(tiny_set)
    gray = [f for f in cat.files if Image.open(tiny_set / f).mode == "L"]
    assert gray, "the synthetic set should contain grayscale JPEGs"
    img = D.decode_image(tiny_set / gray[0], 64)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
    assert D.decode_image(tiny_set / gray[0], 16).shape == (16, 16, 3)


def test_scan_imagefolder(tmp_path):
    from PIL import Image

    for cls, n in (("cat", 3), ("dog", 2)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            Image.new("L", (8, 8), 10 * i).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    cat = D.scan_dataset(tmp_path)
    assert cat.layout == "imagefolder" and cat.classes == ["cat", "dog"]
    assert cat.files == ["cat/0.png", "cat/1.png", "cat/2.png", "dog/0.png", "dog/1.png"]
    assert cat.labels.tolist() == [0, 0, 0, 1, 1]
    assert (cat.group == D.TRAIN).all()
    with pytest.raises(InputError) as e:  # no val/ folder: the option's value in the library's words
        D.make_split(cat, "official", 0.7, 0)
    assert str(e.value) == (
        f"{tmp_path}: val='official' needs a labelled val folder (val/val_annotations.txt, or val/<class>/ "
        "beside train/)"
    )
    assert e.value.cli_message().startswith(f"{tmp_path}: --val official needs a labelled val folder (")


def test_stratified_split_counts_and_seed():
    labels = np.array([0] * 10 + [1] * 7 + [2] * 3 + [3] * 2)
    tr, va = D.stratified_split(labels, 0.7, seed=3)
    # round(0.7 n): 7 of 10, 5 of 7 (4.9), 2 of 3 (2.1), and 1 of 2 (1.4) - each class keeps >= 1 val image
    assert np.bincount(labels[tr]).tolist() == [7, 5, 2, 1]
    assert np.bincount(labels[va]).tolist() == [3, 2, 1, 1]
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(len(labels)))
    tr2, va2 = D.stratified_split(labels, 0.7, seed=3)
    assert tr.tolist() == tr2.tolist() and va.tolist() == va2.tolist()
    tr3, _ = D.stratified_split(labels, 0.7, seed=4)
    assert tr.tolist() != tr3.tolist()
    with pytest.raises(DetkitError):
        D.stratified_split(labels, 1.0, seed=0)


def test_split_modes_and_roundtrip(tiny_set, tmp_path):
    cat = D.scan_dataset(tiny_set)
    tr, va = D.make_split(cat, "official", 0.7, 0)
    assert (cat.group[tr] == D.TRAIN).all() and (cat.group[va] == D.VAL).all() and len(va) == 50
    tr, va = D.make_split(cat, "split", 0.7, 0)
    assert (
        np.bincount(cat.labels[tr]).tolist() == [42] * 5
    )  # 70% of 60 per class, train and val folders pooled
    D.save_split(tmp_path / "split.json", cat, tr, va, seed=0)
    tr2, va2 = D.load_split(tmp_path / "split.json", cat)
    assert tr2.tolist() == tr.tolist() and va2.tolist() == va.tolist()


def test_decode_cache_reused_until_data_changes(tmp_path):
    from detkit.data.synth_classify import write_classify_set

    root = write_classify_set(tmp_path / "d", classes=2, per_class=6, seed=1, size=32)
    cat = D.scan_dataset(root)
    arr, reused = D.decode_cache(cat, 16, tmp_path / "cache", workers=2)
    assert not reused and arr.shape == (12, 16, 16, 3) and arr.dtype == np.uint8
    assert (arr[3] == D.decode_image(root / cat.files[3], 16)).all()
    again, reused = D.decode_cache(cat, 16, tmp_path / "cache")
    assert reused and (np.asarray(again) == np.asarray(arr)).all()
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    st = os.stat(root / cat.files[0])
    os.utime(root / cat.files[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # "edited" file
    _, reused = D.decode_cache(cat, 16, tmp_path / "cache")
    assert not reused
    caches = list((tmp_path / "cache").glob("*.npy"))
    assert len(caches) == 1  # the cache of the data before the edit is gone, not left to fill the disk
    caches[0].write_bytes(caches[0].read_bytes()[:100])  # a cache cut short (disk full, killed copy)
    arr, reused = D.decode_cache(cat, 16, tmp_path / "cache")
    assert not reused and (arr[3] == D.decode_image(root / cat.files[3], 16)).all()


def test_corrupt_jpeg_is_reported_by_path(tmp_path, cli):
    from detkit.data.synth_classify import write_classify_set

    root = write_classify_set(tmp_path / "d", classes=2, per_class=6, seed=1, size=32)
    cat = D.scan_dataset(root)
    bad = root / cat.files[4]
    bad.write_bytes(bad.read_bytes()[:200])  # truncated JPEG
    with pytest.raises(DetkitError) as exc:
        D.decode_cache(cat, 32, tmp_path / "cache")
    assert str(exc.value).startswith(f"{bad}: cannot decode image")
    assert not list((tmp_path / "cache").glob("*"))  # no half-written cache left behind
    code, out, err = cli(
        "classify", "train", "--data", root, "--out", tmp_path / "run", "--device", "cpu", "--batch", "4"
    )
    assert code == 2 and out == ""
    assert err.startswith(f"detkit: error: {bad}: cannot decode image") and "Traceback" not in err


def test_missing_files_are_reported(tmp_path):
    from detkit.data.synth_classify import write_classify_set

    root = write_classify_set(tmp_path / "d", classes=2, per_class=6, seed=1, size=32)
    (root / "val" / "images" / "val_0.JPEG").unlink()
    with pytest.raises(InputError) as exc:
        D.scan_dataset(root)
    assert str(exc.value) == (
        f"{root / 'val' / 'images' / 'val_0.JPEG'}: listed in "
        f"{root / 'val' / 'val_annotations.txt'}:1 but missing"
    )


def test_wnids_without_a_folder_are_left_out_with_one_warning(tmp_path, capsys):
    """A subset of Tiny ImageNet copied with the original wnids.txt: the classes are those with images;
    one warning counts the others (and their val_annotations.txt lines, whose images were not copied)."""
    from detkit.data.synth_classify import write_classify_set

    root = write_classify_set(tmp_path / "d", classes=4, per_class=6, seed=1, size=32)
    wnids = (root / "wnids.txt").read_text().split()
    ann = (root / "val" / "val_annotations.txt").read_text().splitlines()
    gone = wnids[1:3]
    for w in gone:
        shutil.rmtree(root / "train" / w)
    for line in ann:
        name, w = line.split("\t")[:2]
        if w in gone:
            (root / "val" / "images" / name).unlink()
    n_val = sum(line.split("\t")[1] in gone for line in ann)
    capsys.readouterr()
    cat = D.scan_dataset(root)
    assert cat.classes == [wnids[0], wnids[3]]
    assert len(cat) == 2 * 6 and (cat.group == D.VAL).sum() == len(ann) - n_val > 0
    assert capsys.readouterr().err == (
        f"warning: {root / 'wnids.txt'}: 2 of 4 classes have no train/<wnid>/images folder and are left out "
        f"with their {n_val} val_annotations.txt lines ({gone[0]}, {gone[1]}); the other 2 are the classes\n"
    )
    for w in (wnids[0], wnids[3]):
        shutil.rmtree(root / "train" / w)
    with pytest.raises(
        InputError, match="none of the 4 classes in wnids.txt has a train/<wnid>/images folder"
    ):
        D.scan_dataset(root)


def test_empty_class_folder_is_an_error(tmp_path):
    from detkit.data.synth_classify import write_classify_set

    root = write_classify_set(tmp_path / "d", classes=2, per_class=6, seed=1, size=32)
    (root / "train" / "n00000000" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text((root / "wnids.txt").read_text() + "n00000000\n")
    with pytest.raises(InputError, match=r"1 class folder\(s\) hold no training images .*: n00000000"):
        D.scan_dataset(root)
    folder = tmp_path / "f"
    for c in ("a", "b"):
        (folder / c).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(folder / c / f"{i}.png"), np.full((8, 8, 3), 40 * i, np.uint8))
    (folder / "emptycls").mkdir()
    with pytest.raises(InputError, match="emptycls"):
        D.scan_dataset(folder)


def test_layout_mistakes_are_named(tmp_path):
    from detkit.data.synth_classify import write_classify_set

    root = write_classify_set(tmp_path / "d", classes=2, per_class=6, seed=1, size=32)
    (root / "wnids.txt").unlink()
    with pytest.raises(InputError, match="wnids.txt: missing"):
        D.scan_dataset(root)
    with pytest.raises(InputError, match="is a file"):
        D.scan_dataset(root / "words.txt")
