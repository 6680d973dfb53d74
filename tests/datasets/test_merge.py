"""`detkit coco merge`: classes unified by name (case and spacing ignored) with exact id remaps, colliding
image / box ids renumbered past the largest, the same file one image, file names relative to the common
image folder, each image's source recorded, records otherwise copied as they are."""

from __future__ import annotations

import json

import pytest

from detkit.datasets.load import load_dataset
from tests.datasets.ops_fixtures import write_coco, write_images


@pytest.fixture
def two_sets(tmp_path):
    """A: person=1, car=2 in a/images; B: Car=1, dog=5, "Person "=7 in b/images (ids overlapping A's)."""
    write_images(tmp_path / "a" / "images", ["x.jpg", "y.jpg"])
    write_images(tmp_path / "b" / "images", ["x.jpg", "z.jpg"])
    a = write_coco(
        tmp_path / "a" / "ann.json",
        [(1, "x.jpg", 64, 48), (2, "y.jpg", 64, 48)],
        [(1, 1, 1, 1, 1, 10, 10), (2, 1, 2, 5, 5, 10, 10), (3, 2, 1, 2, 2, 8, 8)],
        [(1, "person"), (2, "car")],
        info={"from": "a"},
    )
    b = write_coco(
        tmp_path / "b" / "ann.json",
        [(1, "x.jpg", 64, 48), (3, "z.jpg", 64, 48)],
        [(1, 1, 1, 3, 3, 6, 6), (2, 3, 5, 4, 4, 9, 9), (9, 3, 7, 0, 0, 5, 5)],
        [(1, "Car"), (5, "dog"), (7, "Person ")],
        info={"from": "b"},
    )
    return a, b


def test_merge_remaps_classes_and_ids_exactly(cli_json, two_sets, tmp_path):
    a, b = two_sets
    doc = cli_json("coco", "merge", a, b, tmp_path / "m.json")
    out = json.loads((tmp_path / "m.json").read_text())
    assert [(c["id"], c["name"]) for c in out["categories"]] == [(1, "person"), (2, "car"), (5, "dog")]
    # images: A keeps 1, 2; B's 1 collides -> 4 (past every id seen, B's 3 included); B's 3 is free
    assert [(i["id"], i["file_name"], i["detkit_source"]) for i in out["images"]] == [
        (1, "a/images/x.jpg", str(a)),
        (2, "a/images/y.jpg", str(a)),
        (4, "b/images/x.jpg", str(b)),
        (3, "b/images/z.jpg", str(b)),
    ]
    # boxes: A keeps 1, 2, 3; B's 1, 2 collide -> 10, 11 (past 9); B's 9 is free
    got = [(x["id"], x["image_id"], x["category_id"], x["note"]) for x in out["annotations"]]
    assert got == [
        (1, 1, 1, "ann1"),
        (2, 1, 2, "ann2"),
        (3, 2, 1, "ann3"),
        (10, 4, 2, "ann1"),
        (11, 3, 5, "ann2"),
        (9, 3, 1, "ann9"),
    ]
    assert out["annotations"][3]["segmentation"] == [
        [3, 3, 9, 3, 9, 9]
    ]  # re-encoded records keep every field
    assert out["info"] == {"from": "a"}
    assert doc["image_source"] == [0, 0, 1, 1]
    assert [
        (s["images"], s["shared_images"], s["images_renumbered"], s["boxes"], s["boxes_renumbered"])
        for s in doc["sources"]
    ] == [(2, 0, 0, 3, 0), (2, 0, 1, 3, 2)]
    # the merged file loads, and its recorded image folder reaches every image
    ds = load_dataset(tmp_path / "m.json")
    assert ds.num_images == 4 and ds.num_annotations == 6
    assert all((tmp_path / ds.image_root / f).is_file() for f in ds.file_name)


def test_map_renames_before_merging(cli_json, two_sets, tmp_path):
    a, b = two_sets
    cli_json("coco", "merge", a, b, tmp_path / "m.json", "--map", "dog=Person", "--map", "car=vehicle")
    out = json.loads((tmp_path / "m.json").read_text())
    assert [(c["id"], c["name"]) for c in out["categories"]] == [(1, "person"), (2, "vehicle")]
    assert [x["category_id"] for x in out["annotations"]] == [1, 2, 1, 2, 1, 1]


def test_same_image_in_two_files_is_one_image(cli_json, tmp_path):
    write_images(tmp_path / "images", ["x.jpg", "y.jpg"])
    a = write_coco(tmp_path / "a.json", [(1, "x.jpg", 64, 48)], [(1, 1, 1, 1, 1, 5, 5)], [(1, "cat")])
    b = write_coco(
        tmp_path / "b.json",
        [(7, "x.jpg", 64, 48), (8, "y.jpg", 64, 48)],
        [(1, 7, 1, 2, 2, 6, 6), (2, 8, 1, 3, 3, 4, 4)],
        [(1, "Cat")],
    )
    doc = cli_json("coco", "merge", a, b, tmp_path / "out")
    out = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert [(i["id"], i["file_name"]) for i in out["images"]] == [(1, "x.jpg"), (8, "y.jpg")]
    assert [(x["id"], x["image_id"]) for x in out["annotations"]] == [(1, 1), (3, 1), (2, 8)]  # B's 1 -> 3
    assert doc["sources"][1]["shared_images"] == 1
    assert load_dataset(tmp_path / "out" / "annotations.json").image_root is not None


def test_merge_to_yolo_links_every_image_under_its_new_name(cli_json, two_sets, tmp_path):
    a, b = two_sets
    doc = cli_json("coco", "merge", a, b, tmp_path / "y", "--to", "yolo")
    root = tmp_path / "y"
    assert (root / "classes.txt").read_text().split("\n")[:3] == ["person", "car", "dog"]
    assert doc["written"]["images_linked"] == 4
    # "images" folders leave the names, so ultralytics' images -> labels rule finds every label file
    names = sorted(p.relative_to(root / "images").as_posix() for p in (root / "images").rglob("*.jpg"))
    assert names == ["a/x.jpg", "a/y.jpg", "b/x.jpg", "b/z.jpg"]
    assert (root / "labels" / "b" / "z.txt").read_text().split("\n")[0].split()[0] == "2"  # dog


def test_merge_needs_two_inputs_and_refuses_to_overwrite_one(cli, two_sets, tmp_path):
    a, b = two_sets
    code, out, err = cli("coco", "merge", a, tmp_path / "m.json")
    assert code == 2 and out == "" and "at least two inputs" in err
    before = b.read_bytes()
    code, _, err = cli("coco", "merge", a, b, b)
    assert code == 2 and "overwrite the input" in err and b.read_bytes() == before
    code, _, err = cli("coco", "merge", a, b, tmp_path / "m.json", "--map", "nothing")
    assert code == 2 and "--map" in err


def _two_unrelated():
    """Two inputs whose image folders share no parent below ``/`` (/data1/... and /mnt/...)."""
    from pathlib import Path

    from detkit.datasets.model import make_dataset
    from detkit.datasets.ops.source import Source

    srcs = []
    images = [(1, "x.jpg", 64, 48), (2, "sub/y.jpg", 64, 48)]
    for path, root in (("/data1/proj/a.json", "/data1/proj/images"), ("/mnt/usb/set/a.json", "/mnt/usb/set")):
        ds = make_dataset(images, [(1, 1, 1, 1, 1, 5, 5)], [(1, "cat")])
        ds.image_root = root
        srcs.append(Source(Path(path), ds))
    return srcs


def test_inputs_without_a_common_folder_get_short_names_by_input():
    from detkit.datasets.ops.merge import merge_sources

    m = merge_sources(_two_unrelated())
    # the same stem twice: the inputs' folders name them; no path from / (was data1/proj/images/x.jpg)
    assert m.file_name.tolist() == ["proj/x.jpg", "proj/sub/y.jpg", "set/x.jpg", "set/sub/y.jpg"]
    assert m.common_root is None


def test_input_labels_are_short_and_unique():
    from pathlib import Path

    from detkit.datasets.ops.merge import input_labels

    paths = [
        "/a/coco.json",
        "/b/coco.json",
        "/c/d/data.yaml",
        "/e/valid/_annotations.coco.json",
        "/f/BCCD",
        "/g/x/ann.json",
        "/h/x/ann.json",
        "/i/.hidden.json",
    ]
    assert input_labels([Path(p) for p in paths]) == ["a", "b", "d", "valid", "BCCD", "x-6", "x-7", "hidden"]


def test_merge_of_unrelated_folders_links_images_under_short_names(cli, cli_json, tmp_path):
    import os
    import shutil
    import tempfile

    other = next(
        (
            d
            for d in ("/dev/shm", "/var/tmp")
            if os.access(d, os.W_OK) and os.path.commonpath([d, str(tmp_path)]) == "/"
        ),
        None,
    )
    if other is None:
        pytest.skip("no writable folder outside the test's tmp folder's top folder (/dev/shm, /var/tmp)")
    from pathlib import Path

    far = Path(tempfile.mkdtemp(dir=other))
    try:
        write_images(tmp_path / "a" / "images", ["x.jpg"])
        write_images(far / "b" / "images", ["x.jpg"])
        a = write_coco(tmp_path / "a" / "a.json", [(1, "x.jpg", 64, 48)], [], [(1, "cat")])
        b = write_coco(far / "b" / "b.json", [(1, "x.jpg", 64, 48)], [], [(1, "cat")])
        cli_json("coco", "merge", a, b, tmp_path / "m")
        out = json.loads((tmp_path / "m" / "annotations.json").read_text())
        assert [i["file_name"] for i in out["images"]] == ["a/x.jpg", "b/x.jpg"]
        ds = load_dataset(tmp_path / "m" / "annotations.json")  # the links under m/images reach both
        assert [(Path(ds.image_root) / f).resolve() for f in ds.file_name] == [
            (tmp_path / "a" / "images" / "x.jpg").resolve(),
            (far / "b" / "images" / "x.jpg").resolve(),
        ]
        # a .json output has no folder to link into: short names, no image folder recorded, said on stderr
        code, _, err = cli("coco", "merge", a, b, tmp_path / "m.json")
        out = json.loads((tmp_path / "m.json").read_text())
        assert code == 0 and [i["file_name"] for i in out["images"]] == ["a/x.jpg", "b/x.jpg"]
        assert "detkit" not in out and "share no parent folder" in err
    finally:
        shutil.rmtree(far, ignore_errors=True)
