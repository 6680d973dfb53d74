"""`detkit coco split`: iterative stratification keeps every class's share, groups stay whole, same seed
same bytes, outputs in the input's format (records copied losslessly), bad options are one line, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from detkit.datasets.load import load_dataset
from detkit.datasets.ops.split import class_shares, largest_remainder, parse_ratios, split_dataset
from detkit.errors import DetkitError
from tests.datasets.ops_fixtures import skewed, write_coco, write_images

RATIOS = [0.8, 0.1, 0.1]
NAMES = ["train", "val", "test"]


def _image_counts(ds, which: np.ndarray) -> np.ndarray:
    """(C, K) images of each class in each split, counted directly from the boxes."""
    img, cat = ds.image_index(), ds.category_index()
    counts = np.zeros((ds.num_categories, 3), dtype=int)
    for c in range(ds.num_categories):
        for i in np.unique(img[cat == c]):
            counts[c, which[i]] += 1
    return counts


def _within_bound(counts: np.ndarray) -> bool:
    """Classes of up to 200 images within one image of r_j * n in every split, larger ones within
    1% of r_j."""
    n = counts.sum(axis=1, keepdims=True)
    dev = np.abs(counts - n * np.asarray(RATIOS))
    rare = n[:, 0] <= 200
    return bool((dev[rare] <= 1.0).all() and (dev[~rare] / n[~rare] <= 0.01).all())


def test_stratified_shares_on_a_skewed_set_and_a_random_split_misses_the_bound():
    ds, _, _ = skewed()
    res = split_dataset(ds, RATIOS, seed=0)
    assert [p.images.size for p in res.parts.values()] == [1600, 200, 200]  # exact sizes
    counts = _image_counts(ds, res.split_of_image)
    assert counts[5].sum() < 15 and counts[4].sum() < 25  # the rare classes really are rare
    assert _within_bound(counts), counts
    # the reported shares are these counts
    for c, row in enumerate(res.classes):
        assert row["images"] == counts[c].sum()
        assert [row["image_share"][n] for n in NAMES] == pytest.approx(counts[c] / counts[c].sum(), abs=1e-4)
    # background images spread in proportion too
    assert res.backgrounds[0] / sum(res.backgrounds) == pytest.approx(0.8, abs=0.01)
    # a uniform random split of the same sizes misses the bound: the test can fail
    which = np.zeros(ds.num_images, dtype=int)
    perm = np.random.default_rng(0).permutation(ds.num_images)
    which[perm[1600:1800]], which[perm[1800:]] = 1, 2
    assert not _within_bound(_image_counts(ds, which))


def test_worst_deviation_is_the_largest_share_error():
    ds, _, _ = skewed(500)
    res = split_dataset(ds, RATIOS, seed=3)
    rows, worst = class_shares(ds, res.split_of_image, NAMES, RATIOS, ds.image_index(), ds.category_index())
    devs = [(abs(r["image_share"][n] - q), r["name"], n) for r in rows for n, q in zip(NAMES, RATIOS)]
    assert worst["images"] == pytest.approx(max(devs)[0], abs=1e-4)
    assert worst["class"] == max(devs)[1]


def test_group_keeps_each_video_in_one_split():
    ds, _, _ = skewed(1000)
    res = split_dataset(ds, RATIOS, seed=0, group=r"^(vid\d+)_")
    video = np.array([f.split("_")[0] for f in ds.file_name])
    for v in np.unique(video):
        assert np.unique(res.split_of_image[video == v]).size == 1, v
    assert res.groups == 100 and res.unmatched == 0
    assert [p.images.size for p in res.parts.values()] == [800, 100, 100]  # groups of 10 fit exactly
    # without the group, videos are cut
    plain = split_dataset(ds, RATIOS, seed=0)
    assert any(np.unique(plain.split_of_image[video == v]).size > 1 for v in np.unique(video))


def test_ratio_parsing_and_sizes():
    assert parse_ratios("0.7,0.3") == [0.7, 0.3]
    assert largest_remainder([0.8, 0.1, 0.1], 11) == [9, 1, 1]
    assert largest_remainder([0.5, 0.25, 0.25], 7) == [3, 2, 2]  # 3.5, 1.75, 1.75: the .75s round up
    for bad in ("0.5,0.6", "1", "a,b", "0.2,0.2,0.2,0.4", "-0.2,1.2"):
        with pytest.raises(DetkitError):
            parse_ratios(bad)


# ---- CLI -----------------------------------------------------------------------------------------------
@pytest.fixture
def coco_set(tmp_path):
    """A COCO json (with polygons, extra fields and an extra top-level key) and its image files."""
    _, images, anns = skewed(200, seed=1)
    names = [f for _, f, _, _ in images]
    write_images(tmp_path / "data" / "images", names[:5])  # a few exist: links are made for them
    p = write_coco(
        tmp_path / "data" / "instances.json",
        images,
        anns,
        [(c, f"c{c - 1}") for c in range(1, 7)],
        info={"description": "t"},
        custom=[1, 2],
    )
    return p


def test_split_cli_writes_lossless_coco_and_same_seed_same_bytes(cli_json, coco_set, tmp_path):
    doc = cli_json("coco", "split", coco_set, tmp_path / "a", "--ratios", "0.8,0.1,0.1", "--seed", "0")
    assert [s["images"] for s in doc["splits"]] == [160, 20, 20]
    assert sum(s["boxes"] for s in doc["splits"]) == len(json.loads(coco_set.read_text())["annotations"])
    src = json.loads(coco_set.read_text())
    by_id = {a["id"]: a for a in src["annotations"]}
    seen = []
    for name in NAMES:
        out = json.loads((tmp_path / "a" / f"{name}.json").read_text())
        assert out["custom"] == [1, 2] and out["info"] == {"description": "t"}
        assert out["categories"] == src["categories"]
        for a in out["annotations"]:
            assert a == by_id[a["id"]]  # whole records: polygon and the extra field kept
        seen += [i["id"] for i in out["images"]]
        back = load_dataset(tmp_path / "a" / f"{name}.json")  # loads, with the image folder recorded
        assert back.image_root is not None and (tmp_path / "data" / "images").samefile(back.image_root)
    assert sorted(seen) == sorted(i["id"] for i in src["images"])
    cli_json("coco", "split", coco_set, tmp_path / "b", "--seed", "0")
    g = cli_json("coco", "split", coco_set, tmp_path / "g", "--group", r"^(vid\d+)_")
    assert g["groups"] == 20 and [s["images"] for s in g["splits"]] == [160, 20, 20]
    cli_json("coco", "split", coco_set, tmp_path / "c", "--seed", "1")
    same = [
        (tmp_path / "a" / f"{n}.json").read_bytes() == (tmp_path / "b" / f"{n}.json").read_bytes()
        for n in NAMES
    ]
    other = [
        (tmp_path / "a" / f"{n}.json").read_bytes() == (tmp_path / "c" / f"{n}.json").read_bytes()
        for n in NAMES
    ]
    assert all(same) and not all(other)


def test_split_to_yolo_writes_data_yaml_and_label_folders(cli_json, coco_set, tmp_path):
    out = tmp_path / "y"
    doc = cli_json("coco", "split", coco_set, out, "--ratios", "0.5,0.5", "--to", "yolo")
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["train"] == "train/images" and data["val"] == "val/images" and "test" not in data
    assert data["names"] == {k: f"c{k}" for k in range(6)} and data["nc"] == 6
    for s in doc["splits"]:
        assert len(list((out / s["name"] / "labels").glob("*.txt"))) == s["images"] == 100
        rows = sum(len(f.read_text().splitlines()) for f in (out / s["name"] / "labels").glob("*.txt"))
        assert rows == s["boxes"]
    assert doc["written"]["images_linked"] == 5  # the five image files that exist are linked
    assert (out / "train" / "images").is_dir() or (out / "val" / "images").is_dir()


def test_split_voc_writes_image_sets(cli_json, tmp_path):
    src = tmp_path / "voc"
    (src / "Annotations").mkdir(parents=True)
    for k in range(10):
        (src / "Annotations" / f"im{k}.xml").write_text(
            f"<annotation><filename>im{k}.jpg</filename>"
            "<size><width>50</width><height>40</height><depth>3</depth></size>"
            f"<object><name>{'cat' if k % 3 else 'dog'}</name>"
            "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>20</xmax>"
            "<ymax>30</ymax></bndbox></object></annotation>"
        )
    doc = cli_json("coco", "split", src, tmp_path / "out", "--ratios", "0.6,0.2,0.2")
    assert doc["to"] == "voc" and [s["images"] for s in doc["splits"]] == [6, 2, 2]
    sets = {n: (tmp_path / "out" / "ImageSets" / "Main" / f"{n}.txt").read_text().split() for n in NAMES}
    assert sorted(x for v in sets.values() for x in v) == sorted(f"im{k}" for k in range(10))
    assert len(list((tmp_path / "out" / "Annotations").glob("*.xml"))) == 10


def test_split_voc_of_nested_names_reads_back_with_its_splits(cli_json, tmp_path):
    """ImageSets lists name nested files by their path under Annotations/ (``sub0/im0``); the VOC loader
    matches them so (before: by base name only, so all 10 were 'split.unknown_item' and 'unassigned')."""
    from detkit.datasets.load import load_dataset
    from tests.datasets.ops_fixtures import write_coco, write_images

    names = [f"sub{i % 2}/im{i}.jpg" for i in range(10)]
    write_images(tmp_path / "src", names)
    src = write_coco(
        tmp_path / "src" / "instances.json",
        [(i + 1, n, 64, 48) for i, n in enumerate(names)],
        [(i + 1, i + 1, 1, 2, 2, 10, 10) for i in range(10)],
        [(1, "thing")],
    )
    cli_json("coco", "split", src, tmp_path / "out", "--to", "voc", "--ratios", "0.6,0.4")
    listed = (tmp_path / "out" / "ImageSets" / "Main" / "train.txt").read_text().split()
    assert len(listed) == 6 and all(x.startswith("sub") and "/" in x for x in listed)
    ds = load_dataset(tmp_path / "out")
    assert not [x for x in ds.skipped if x.code.startswith("split.")]
    assert sorted(ds.split_names()) == ["train", "val"]
    assert (ds.select_split("train").num_images, ds.select_split("val").num_images) == (6, 4)


@pytest.mark.parametrize(
    "args, what",
    [(["--ratios", "0.5,0.6"], "--ratios"), (["--group", "(unclosed"], "--group"), (["--to", "png"], "--to")],
)
def test_split_bad_options_exit_2(cli, coco_set, tmp_path, args, what):
    code, out, err = cli("coco", "split", coco_set, tmp_path / "o", *args)
    assert code == 2 and out == "" and what in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_split_refuses_a_non_empty_output_and_the_input(cli, coco_set, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    code, _, err = cli("coco", "split", coco_set, tmp_path / "full")
    assert code == 2 and "not an empty folder" in err and (tmp_path / "full" / "x").read_text() == "keep me"
    before = coco_set.read_bytes()
    code, _, err = cli("coco", "filter", coco_set, coco_set)
    assert code == 2 and "overwrite the input" in err and coco_set.read_bytes() == before


def test_ultralytics_layout_in_and_out(cli_json, tmp_path):
    """data.yaml in (train/val folders) -> yolo splits out: labels where ultralytics looks, counts kept."""
    from detkit.datasets.formats.layouts import label_path

    root = tmp_path / "ul"
    for sp, n in (("train", 8), ("val", 4)):
        write_images(root / "images" / sp, [f"{sp}{i}.jpg" for i in range(n)])
        (root / "labels" / sp).mkdir(parents=True)
        for i in range(n):
            (root / "labels" / sp / f"{sp}{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.2 0.2\n" if i % 3 else "")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: [cat, dog]\n")
    doc = cli_json("coco", "split", root / "data.yaml", tmp_path / "out", "--ratios", "0.5,0.25,0.25")
    assert doc["to"] == "yolo" and [s["images"] for s in doc["splits"]] == [6, 3, 3]
    out = tmp_path / "out"
    for sp in NAMES:
        images = sorted((out / sp / "images").rglob("*.jpg"))
        assert len(images) == {"train": 6, "val": 3, "test": 3}[sp]
        assert all(label_path(p).is_file() for p in images)  # ultralytics' images -> labels rule
    back = load_dataset(out / "data.yaml")
    assert (back.num_images, back.num_annotations) == (12, 7)
