"""Paths taken from records never lead a write outside the output folder, converted files find their
images, and one category-id rule holds both ways."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detkit.datasets.checks.validate import validate_path
from detkit.datasets.formats.write import _check_inside
from detkit.datasets.load import load_dataset
from detkit.datasets.model import default_image_root
from detkit.datasets.ops.convert import class_indexes, convert
from detkit.datasets.paths import inside, name_problem, safe_relative
from detkit.errors import DetkitError
from detkit.io import remove_leftovers


@pytest.mark.parametrize(
    "name, code, safe",
    [
        ("a.jpg", None, "a.jpg"),
        ("sub/./a.jpg", None, "sub/a.jpg"),
        ("./a.jpg", None, "a.jpg"),
        ("a//b.jpg", None, "a/b.jpg"),
        ("sub/../a.jpg", None, "a.jpg"),  # stays inside: not a finding
        ("a\\b.jpg", None, "a/b.jpg"),  # a Windows export: backslashes are separators
        ("images\\..\\a.jpg", None, "a.jpg"),
        ("a:b.jpg", "path.absolute", "b.jpg"),  # 'a:' is a drive on Windows
        ("ab:c.jpg", None, "ab:c.jpg"),  # not a drive: a legal POSIX name
        ("/home/u/images/a.jpg", "path.absolute", "home/u/images/a.jpg"),
        ("//server/a.jpg", "path.absolute", "server/a.jpg"),
        ("\\\\server\\share\\a.jpg", "path.absolute", "server/share/a.jpg"),
        ("\\a.jpg", "path.absolute", "a.jpg"),
        ("C:/x.jpg", "path.absolute", "x.jpg"),
        ("C:\\data\\x.jpg", "path.absolute", "data/x.jpg"),
        ("c:x.jpg", "path.absolute", "x.jpg"),
        ("/../a.jpg", "path.absolute", "a.jpg"),  # absolute wins over climbing
        ("../../etc/passwd", "path.climbs_out", "etc/passwd"),
        ("..\\evil.jpg", "path.climbs_out", "evil.jpg"),
        ("x/../../b.jpg", "path.climbs_out", "b.jpg"),
        ("a/../..", "path.climbs_out", ""),
        ("c\0.jpg", "path.invalid", "c_.jpg"),
        ("/c\0.jpg", "path.invalid", "c_.jpg"),  # a NUL wins over everything
        ("", "path.invalid", ""),
        (".", "path.invalid", ""),
        ("a/..", "path.invalid", ""),
        ("images/", "path.invalid", "images"),
        ("images\\", "path.invalid", "images"),
    ],
)
def test_name_problem_and_safe_relative(name, code, safe):
    assert name_problem(name) == code
    assert safe_relative(name) == safe


def _tiny_jpeg(path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(path)


@pytest.fixture
def hostile(tmp_path) -> Path:
    """A COCO json whose file names are absolute, climb out, hold a NUL or name no file; a file
    ``images/a.txt`` beside the real image is what the issue's convert overwrote."""
    root = tmp_path / "ds"
    _tiny_jpeg(root / "images" / "a.jpg")
    (root / "images" / "a.txt").write_text("mine")
    names = [str((root / "images" / "a.jpg").resolve()), "../../etc/passwd", "x/../../b.jpg", "c\0.jpg", "."]
    doc = {
        "images": [{"id": i + 1, "file_name": n, "width": 8, "height": 8} for i, n in enumerate(names)],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2], "area": 4, "iscrowd": 0}
        ],
        "categories": [{"id": 1, "name": "a"}],
    }
    (root / "annotations").mkdir()
    (root / "annotations" / "instances.json").write_text(json.dumps(doc))
    return root


def _tree(folder: Path) -> dict[str, bytes | str]:
    return {
        str(p.relative_to(folder)): (
            os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else "dir"
        )
        for p in sorted(folder.rglob("*"))
    }


def test_validate_names_every_unsafe_file_name(hostile):
    report = validate_path(hostile / "annotations" / "instances.json")
    got = {f.code: f.count for f in report.findings if f.code.startswith("path.")}
    assert got == {"path.absolute": 1, "path.climbs_out": 2, "path.invalid": 2}
    ex = next(f for f in report.findings if f.code == "path.climbs_out").examples[0]
    assert ex["record"] == "$.images[1]" and ex["id"] == 2 and "'../../etc/passwd'" in ex["note"]


@pytest.mark.parametrize("to", ["yolo", "voc"])
def test_convert_writes_only_inside_its_folder(cli_json, hostile, tmp_path, to):
    src = hostile / "annotations" / "instances.json"
    before = _tree(tmp_path)
    out = tmp_path / "work" / "out"
    doc = cli_json("coco", "convert", src, out, "--to", to)
    after = _tree(tmp_path)
    new = sorted(set(after) - set(before))
    assert new and all(p == "work" or p.startswith("work/out") for p in new), new
    assert all(after[p] == before[p] for p in before)  # nothing beside the source images changed
    assert (hostile / "images" / "a.txt").read_text() == "mine"
    assert doc["renamed"] == 5 and doc["images"] == 5
    assert {"file_name": "../../etc/passwd", "written_as": "etc/passwd"} in doc["renamed_examples"]
    sub, ext = ("labels", ".txt") if to == "yolo" else ("Annotations", ".xml")
    written = sorted(str(p.relative_to(out / sub)) for p in (out / sub).rglob(f"*{ext}"))
    abs_stem = str((hostile / "images" / "a").resolve()).lstrip("/")
    if to == "yolo":  # a YOLO layout drops images/ folders from names (paths.yolo_relative)
        abs_stem = abs_stem.replace("/images/", "/")
    assert written == sorted([f"{abs_stem}{ext}", f"etc/passwd{ext}", f"b{ext}", f"c_{ext}", f"image_5{ext}"])
    # every link points at the real image; no link leads a write out
    links = [p for p in out.rglob("*") if p.is_symlink()]
    assert len(links) == 1 and links[0].resolve() == (hostile / "images" / "a.jpg").resolve()


def test_convert_names_that_collide_after_mapping_are_refused(cli, tmp_path):
    doc = {
        "images": [
            {"id": 1, "file_name": "/a.jpg", "width": 8, "height": 8},
            {"id": 2, "file_name": "a.jpg", "width": 8, "height": 8},
        ],
        "annotations": [],
        "categories": [{"id": 1, "name": "a"}],
    }
    (tmp_path / "c.json").write_text(json.dumps(doc))
    code, _, err = cli("coco", "convert", tmp_path / "c.json", tmp_path / "out", "--to", "yolo")
    assert code == 2 and err.count("\n") == 1 and "would share the label file" in err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.tmp-*"))


def test_a_write_through_a_symlink_out_is_refused(tmp_path):
    folder, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (folder / "labels").symlink_to(elsewhere)
    assert not inside(folder, folder / "labels" / "a.txt") and inside(folder, folder / "ok" / "a.txt")
    with pytest.raises(DetkitError, match="outside the output folder"):
        _check_inside(folder, folder / "labels" / "a.txt")


def test_leftovers_of_killed_runs_are_removed_live_ones_kept(tmp_path, shapes_dir):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        for pid in (dead.pid, live.pid):
            (tmp_path / f".out.tmp-{pid}" / "labels").mkdir(parents=True)
        (tmp_path / ".other.tmp-1").mkdir()  # another output's leftovers are not ours to judge
        assert remove_leftovers(tmp_path / "out") == [str(tmp_path / f".out.tmp-{dead.pid}")]
        assert (tmp_path / f".out.tmp-{live.pid}").is_dir() and (tmp_path / ".other.tmp-1").is_dir()
    finally:
        live.kill()
        live.wait()
    (tmp_path / f".out.tmp-{live.pid}").rename(tmp_path / f".out.tmp-{dead.pid}")
    result = convert(load_dataset(shapes_dir / "instances.json"), tmp_path / "out", "yolo")
    assert result["removed_leftovers"] == [str(tmp_path / f".out.tmp-{dead.pid}")]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp-1", "out"]


# ---- converted files find their images ------------------------------------------------------------
def test_converted_json_records_its_image_folder(cli_json, shapes_dir, tmp_path):
    cli_json("coco", "convert", shapes_dir / "instances.json", tmp_path / "y", "--to", "yolo")
    out = tmp_path / "deeper" / "conv.json"
    doc = cli_json("coco", "convert", tmp_path / "y", out, "--to", "coco")
    assert doc["image_root"] == "../y/images"
    assert json.loads(out.read_text())["detkit"] == {"image_root": "../y/images"}
    ds = load_dataset(out)
    assert Path(ds.image_root).resolve() == (tmp_path / "y" / "images").resolve()
    assert all((Path(ds.image_root) / f).is_file() for f in ds.file_name)
    # the folder moved away: the recorded root is ignored and the usual guess applies
    (tmp_path / "y").rename(tmp_path / "gone")
    assert load_dataset(out).image_root == default_image_root(out)


def test_training_hint_names_images_when_none_are_found(tmp_path, shapes_dir):
    from detkit.yolo.data import build_loader

    doc = json.loads((shapes_dir / "instances.json").read_text())
    (tmp_path / "lost.json").write_text(json.dumps(doc))
    with pytest.raises(DetkitError, match="name the image folder") as exc:
        build_loader(str(tmp_path / "lost.json"), tmp_path, img_size=64, batch_size=2)
    assert "pass --images DIR (the folder the file names" in exc.value.cli_message()


# ---- one category-id rule, both directions --------------------------------------------------------
def _yolo_set(root: Path, classes: list[str], rows: dict[str, str]) -> Path:
    for stem, text in rows.items():
        _tiny_jpeg(root / "images" / f"{stem}.jpg")
        (root / "labels").mkdir(parents=True, exist_ok=True)
        (root / "labels" / f"{stem}.txt").write_text(text)
    (root / "classes.txt").write_text("".join(f"{c}\n" for c in classes))
    return root


@pytest.mark.parametrize("rule, ids", [(None, [0, 1, 2]), ("index", [0, 1, 2]), ("coco80", [1, 2, 3])])
def test_category_ids_rule_both_ways(cli, tmp_path, rule, ids):
    src = _yolo_set(
        tmp_path / "y", ["person", "bicycle", "car"], {"a": "2 0.5 0.5 0.25 0.25\n0 0.2 0.2 0.1 0.1\n"}
    )
    opt = ["--category-ids", rule] if rule else []
    assert cli("coco", "convert", src, tmp_path / "c.json", "--to", "coco", *opt)[0] == 0
    coco = json.loads((tmp_path / "c.json").read_text())
    assert [c["id"] for c in coco["categories"]] == ids
    assert sorted(a["category_id"] for a in coco["annotations"]) == sorted([ids[2], ids[0]])
    assert cli("coco", "convert", tmp_path / "c.json", tmp_path / "back", "--to", "yolo", *opt)[0] == 0
    back = (tmp_path / "back" / "labels" / "a.txt").read_text().split("\n")
    assert [ln.split()[0] for ln in back if ln] == ["2", "0"]
    names = (tmp_path / "back" / "classes.txt").read_text().splitlines()
    assert names[:3] == ["person", "bicycle", "car"] and len(names) == (80 if rule == "coco80" else 3)


def test_category_ids_that_do_not_fit_the_rule_are_one_line(cli, shapes_dir, tmp_path):
    code, _, err = cli(
        "coco",
        "convert",
        shapes_dir / "instances.json",
        tmp_path / "y",
        "--to",
        "yolo",
        "--category-ids",
        "coco80",
    )
    assert code == 0  # shapes ids 3, 7, 11 are official COCO ids: classes 2, 6, 10
    assert (tmp_path / "y" / "classes.txt").read_text().splitlines()[2] == "circle"
    doc = json.loads((shapes_dir / "instances.json").read_text())
    doc["categories"][0]["id"] = 12  # not an official id
    for a in doc["annotations"]:
        a["category_id"] = 12 if a["category_id"] == 3 else a["category_id"]
    (tmp_path / "odd.json").write_text(json.dumps(doc))
    code, _, err = cli(
        "coco", "convert", tmp_path / "odd.json", tmp_path / "y2", "--to", "yolo", "--category-ids", "coco80"
    )
    assert code == 2 and err == (
        f"detkit: error: {tmp_path / 'odd.json'}: category id 12 is not one of COCO's 80 official ids "
        "(--category-ids coco80)\n"
    )
    with pytest.raises(DetkitError) as e:  # the Python API's words name the keyword argument
        class_indexes(load_dataset(tmp_path / "odd.json"), "coco80")
    assert str(e.value).endswith(
        "category id 12 is not one of COCO's 80 official ids (category_ids='coco80')"
    )


def test_windows_and_empty_names_one_rule_for_validate_and_convert(cli_json, tmp_path):
    root = tmp_path / "ds" / "images"
    _tiny_jpeg(root / "a" / "b.jpg")
    _tiny_jpeg(root / "c.jpg")
    names = ["a\\b.jpg", "x/../c.jpg", "C:\\x.jpg", "", "dir/"]
    doc = {
        "images": [{"id": i + 1, "file_name": n, "width": 8, "height": 8} for i, n in enumerate(names)],
        "annotations": [],
        "categories": [{"id": 1, "name": "a"}],
    }
    src = tmp_path / "ds" / "instances.json"
    src.write_text(json.dumps(doc))
    report = validate_path(src)
    got = {f.code: f.count for f in report.findings if f.code.startswith("path.")}
    assert got == {"path.absolute": 1, "path.invalid": 2}
    out = tmp_path / "y"
    res = cli_json("coco", "convert", src, out, "--to", "yolo", "--images", root)
    assert res["renamed"] == 3
    labels = sorted(str(p.relative_to(out / "labels")) for p in (out / "labels").rglob("*.txt"))
    assert labels == ["a/b.txt", "c.txt", "dir.txt", "image_4.txt", "x.txt"]
    links = sorted(str(p.relative_to(out / "images")) for p in (out / "images").rglob("*") if p.is_symlink())
    assert links == ["a/b.jpg", "c.jpg"]  # read from root/a/b.jpg and root/c.jpg, the canonical names
