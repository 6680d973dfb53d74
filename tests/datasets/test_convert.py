"""`detkit coco convert`: round trips keep every box within 1 px and every class."""

from __future__ import annotations

import json
import os
from collections import defaultdict

import numpy as np
import pytest

from detkit.datasets.load import load_dataset
from detkit.datasets.ops.convert import convert
from tests.conftest import shared_path


def _boxes_by_image_and_class(ds) -> dict[tuple[str, str], np.ndarray]:
    names = ds.category_names()
    files = dict(zip(ds.image_id.tolist(), ds.file_name.tolist()))
    out = defaultdict(list)
    for im, c, b in zip(ds.ann_image_id.tolist(), ds.category_id.tolist(), ds.bbox):
        out[(files[im], names[c])].append(b)
    # order by rounded values so that boxes 1e-5 px apart still pair up
    return {k: np.array(sorted(v, key=lambda b: tuple(np.round(b)))) for k, v in out.items()}


def _assert_same(a, b, tol=1.0):
    ba, bb = _boxes_by_image_and_class(a), _boxes_by_image_and_class(b)
    assert ba.keys() == bb.keys()
    for k in ba:
        assert ba[k].shape == bb[k].shape, k
        assert np.abs(ba[k] - bb[k]).max() <= tol, k
    assert a.num_annotations == b.num_annotations
    assert sorted(a.file_name.tolist()) == sorted(b.file_name.tolist())


@pytest.mark.parametrize("to", ["yolo", "voc"])
def test_round_trip_through_yolo_and_voc(cli, shapes_dir, tmp_path, to):
    src = shapes_dir / "instances.json"
    assert cli("coco", "convert", src, tmp_path / to, "--to", to)[0] == 0
    assert cli("coco", "convert", tmp_path / to, tmp_path / "back.json", "--to", "coco")[0] == 0
    a, b = load_dataset(src), load_dataset(tmp_path / "back.json")
    _assert_same(a, b)
    # in fact far tighter than 1 px
    assert np.abs(np.sort(a.bbox, axis=0) - np.sort(b.bbox, axis=0)).max() < 0.001
    assert set(b.cat_name) == {"circle", "rectangle", "triangle"}


def test_yolo_layout(shapes_dir, tmp_path):
    ds = load_dataset(shapes_dir / "instances.json")
    result = convert(ds, tmp_path / "y", "yolo")
    assert result["images_linked"] == 16 and result["labels_written"] == 16
    assert (
        tmp_path / "y" / "classes.txt"
    ).read_text() == "circle\nrectangle\ntriangle\n"  # ids 3, 7, 11 -> 0, 1, 2
    first = ds.bbox[0]
    line = (tmp_path / "y" / "labels" / "shape_00000.txt").read_text().splitlines()[0].split()
    k = {3: "0", 7: "1", 11: "2"}[int(ds.category_id[0])]
    assert line[0] == k and float(line[1]) == pytest.approx((first[0] + first[2] / 2) / 96, abs=1e-7)
    assert (tmp_path / "y" / "images" / "shape_00000.jpg").is_file()
    with pytest.raises(Exception, match="not an empty folder"):
        convert(ds, tmp_path / "y", "yolo")


def test_course_text_to_coco(cli_json, tmp_path):
    src = shared_path("sample_coco.txt")
    doc = cli_json("coco", "convert", src, tmp_path / "t.json", "--to", "coco")
    assert doc["boxes"] == 10105 and doc["from"] == "text"
    coco = json.loads((tmp_path / "t.json").read_text())
    assert len(coco["annotations"]) == 10105 and len(coco["categories"]) == 80
    # one rule for class-indexed sources: class id 0 is category id 0 (index), or COCO's official 1 (coco80)
    assert (
        coco["annotations"][0]["bbox"] == [69, 464, 312, 175] and coco["annotations"][0]["category_id"] == 0
    )
    assert coco["images"][0]["width"] == 1093 and coco["images"][0]["height"] == 330
    _assert_same(load_dataset(src), load_dataset(tmp_path / "t.json"), tol=0)
    cli_json("coco", "convert", src, tmp_path / "t80.json", "--to", "coco", "--category-ids", "coco80")
    coco80 = json.loads((tmp_path / "t80.json").read_text())
    assert coco80["annotations"][0]["category_id"] == 1 and coco80["categories"][-1]["id"] == 90


def test_voc_to_yolo_to_coco_real(tmp_path):
    src = shared_path("bccd", "BCCD")
    a = load_dataset(src)
    convert(a, tmp_path / "y", "yolo")
    b = load_dataset(tmp_path / "y")
    assert b.num_images == 364 and b.num_annotations == 4888
    _assert_same(a, b)


def test_coco_to_coco_keeps_segmentations(shapes_dir, tmp_path):
    ds = load_dataset(shapes_dir / "instances.json")
    convert(ds, tmp_path / "c.json", "coco")
    got = json.loads((tmp_path / "c.json").read_text())
    # the one addition: where the images are, relative to the new file, under a key COCO readers ignore
    assert got.pop("detkit") == {"image_root": os.path.relpath(shapes_dir / "images", tmp_path)}
    assert got == json.loads((shapes_dir / "instances.json").read_text())
