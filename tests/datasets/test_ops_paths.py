"""split / sample / filter / merge / draw follow the one file-name rule of :mod:`detkit.datasets.paths`:
unsafe names are counted and never written, safe ones are written under their canonical form inside OUT."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from detkit.datasets.formats.write import image_source, link_images, yolo_name
from tests.datasets.ops_fixtures import write_coco, write_images


def _tree(folder: Path) -> dict[str, bytes | str]:
    return {
        str(p.relative_to(folder)): (
            os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else "dir"
        )
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture
def hostile(tmp_path) -> tuple[Path, Path]:
    """A COCO json and its image folder. Every named file exists where the raw name, joined to the
    folder, points (``../evil.jpg``, the absolute path, a POSIX file literally called ``C:\\x.jpg``), so
    only the rule keeps them out; ``a\\b.jpg`` and ``x/../b2.jpg`` exist under their canonical names."""
    root = tmp_path / "ds" / "images"
    write_images(root, ["ok.jpg", "a/b.jpg", "b2.jpg", "C:\\x.jpg", "../evil.jpg", "../abs.jpg"], (16, 12))
    names = [
        "ok.jpg",
        "a\\b.jpg",
        "x/../b2.jpg",
        "../evil.jpg",
        str((root.parent / "abs.jpg").resolve()),
        "C:\\x.jpg",
    ]
    images = [(i + 1, n, 16, 12) for i, n in enumerate(names)]
    anns = [(i + 1, i + 1, 1, 1, 1, 4, 4) for i in range(len(names))]
    src = write_coco(tmp_path / "ds" / "instances.json", images, anns, [(1, "thing")])
    return src, root


@pytest.mark.parametrize(
    "args, images",
    [
        (["sample", "--n", "100", "--to", "yolo"], "images"),
        (["split", "--ratios", "1,0", "--to", "coco", "--copy-images"], "images"),
        (["filter", "--to", "voc"], "JPEGImages"),
    ],
)
def test_ops_write_only_safe_names_inside_out(cli_json, hostile, tmp_path, args, images):
    src, root = hostile
    before = _tree(tmp_path)
    out = tmp_path / "work" / "out"
    doc = cli_json("coco", args[0], src, out, *args[1:], "--image-root", root)
    after = _tree(tmp_path)
    new = sorted(set(after) - set(before))
    assert new and all(p == "work" or p.startswith("work/out") for p in new), new
    assert all(after[p] == before[p] for p in before)  # inputs untouched
    written = doc["written"]
    assert (written["unsafe_names"], written["images_linked"], written["images_missing"]) == (3, 3, 0)
    got = sorted(str(p.relative_to(out / images)) for p in (out / images).rglob("*") if p.is_file())
    assert got == ["a/b.jpg", "b2.jpg", "ok.jpg"]  # a\b.jpg as a/b.jpg, x/../b2.jpg as b2.jpg
    for name in got:
        assert (out / images / name).read_bytes() == (root / name).read_bytes()
        if args[-1] != "--copy-images":
            assert (out / images / name).resolve() == (root / name).resolve()


def test_yolo_labels_follow_the_canonical_names(cli_json, hostile, tmp_path):
    src, root = hostile
    cli_json("coco", "sample", src, tmp_path / "y", "--n", "100", "--to", "yolo", "--image-root", root)
    labels = sorted(
        str(p.relative_to(tmp_path / "y" / "labels")) for p in (tmp_path / "y" / "labels").rglob("*.txt")
    )
    # safe names under their canonical form; unsafe ones under convert's safe relative name
    abs_stem = str((root.parent / "abs").resolve()).lstrip("/")
    assert labels == sorted(["ok.txt", "a/b.txt", "b2.txt", "evil.txt", f"{abs_stem}.txt", "x.txt"])


def test_link_images_never_writes_through_a_taken_name(tmp_path):
    write_images(tmp_path / "src", ["p.jpg", "q.jpg"], (8, 8))
    p, q = tmp_path / "src" / "p.jpg", tmp_path / "src" / "q.jpg"
    dst = tmp_path / "out"
    pairs = [(p, "a/../p.jpg"), (p, "p.jpg"), (q, "p.jpg"), (q, "p.jpg/q.jpg"), (q, "q\\..\\..\\q.jpg")]
    assert link_images(pairs, dst) == {"images_linked": 2, "images_missing": 0, "unsafe_names": 3}
    assert sorted(os.listdir(dst)) == ["p.jpg"] and (dst / "p.jpg").resolve() == p.resolve()
    assert p.read_bytes() != b"" and q.read_bytes() != b""


@pytest.mark.parametrize(
    "name, source, out",
    [
        ("a\\b.jpg", "a/b.jpg", "a/b.jpg"),
        ("images\\..\\b.jpg", "b.jpg", "b.jpg"),
        ("images\\train\\c.jpg", "images/train/c.jpg", "train/c.jpg"),
        ("../c.jpg", None, "../c.jpg"),  # stays unsafe for link_images to count
        ("C:\\images\\c.jpg", None, "C:/c.jpg"),
    ],
)
def test_image_source_and_yolo_name(tmp_path, name, source, out):
    assert image_source(tmp_path, name) == (None if source is None else tmp_path / source)
    assert image_source(None, name) is None
    assert yolo_name(name) == out


def test_readers_find_a_backslash_name_where_the_ops_link_it(cli_json, hostile):
    """validate's image check and the YOLO training set read ``a\\b.jpg`` and ``x/../b2.jpg`` at their
    canonical paths (``a/b.jpg``, ``b2.jpg``), as the ops link them; only the unsafe names stay unread
    there."""
    from detkit.datasets.images import image_paths
    from detkit.datasets.load import load_dataset

    src, root = hostile
    ds = load_dataset(src)
    paths = image_paths(ds.file_name, root)
    assert [p.relative_to(root).as_posix() for p in paths[:3]] == ["ok.jpg", "a/b.jpg", "b2.jpg"]
    doc = cli_json("coco", "validate", src, "--images", root)  # path.* findings are warnings: exit 0
    codes = {f["code"] for f in doc["findings"]}
    assert {"path.climbs_out", "path.absolute"} <= codes and "image.missing_file" not in codes
    pytest.importorskip("torch")
    from detkit.yolo.data import DetectionDataset

    yolo = DetectionDataset(ds, image_root=root)
    assert [Path(p).relative_to(root).as_posix() for p in yolo.paths[:3]] == ["ok.jpg", "a/b.jpg", "b2.jpg"]


def test_unsafe_names_are_one_warning_line(cli, hostile, tmp_path):
    src, _ = hostile
    code, _, err = cli("coco", "sample", src, tmp_path / "o", "--n", "100", "--to", "yolo")
    assert code == 0 and "3 image file names are not linked: absolute, climbing out with '..'" in err
