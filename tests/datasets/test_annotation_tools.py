"""CVAT for images 1.1, Label Studio JSON and LabelMe: readers on files written from each tool's documented
schema, detection from the path, a round trip through COCO, and one malformed file of each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detkit.datasets.load import detect_format, load_dataset

CVAT_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>7</id><name>cars</name><size>2</size><mode>annotation</mode>
      <labels>
        <label><name>car</name><color>#fa3253</color><type>any</type><attributes/></label>
        <label><name>person</name><color>#3d3df5</color><type>any</type><attributes/></label>
        <label><name>unused</name><color>#000000</color><type>any</type><attributes/></label>
      </labels>
    </task>
  </meta>
  <image id="0" name="a.jpg" width="640" height="480">
    <box label="car" source="manual" occluded="0" xtl="10.50" ytl="20.25" xbr="110.00" ybr="70.75"
      z_order="0">
      <attribute name="color">red</attribute>
    </box>
    <polygon label="person" source="manual" occluded="0" points="100.00,200.00;150.50,180.00;130.00,260.00"
      z_order="0"/>
    <points label="person" source="manual" occluded="0" points="1.00,2.00" z_order="0"/>
    <tag label="car" source="manual"/>
  </image>
  <image id="1" name="sub/b.jpg" width="320" height="240">
    <box label="person" source="manual" occluded="0" xtl="0" ytl="0" xbr="50" ybr="40" rotation="90.0"
      z_order="0"/>
  </image>
</annotations>
"""


def _rect(x, y, w, h, label, W=640, H=480, rotation=0):
    return {
        "id": f"r{label}{x}",
        "type": "rectanglelabels",
        "from_name": "label",
        "to_name": "image",
        "original_width": W,
        "original_height": H,
        "image_rotation": 0,
        "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, "rectanglelabels": [label]},
    }


LABEL_STUDIO = [
    {
        "id": 1,
        "data": {"image": "/data/upload/1/3f2a-a.jpg"},
        "annotations": [
            {
                "id": 1,
                "was_cancelled": False,
                "result": [
                    _rect(10, 25, 50, 12.5, "car"),
                    {
                        "id": "p1",
                        "type": "polygonlabels",
                        "from_name": "label",
                        "to_name": "image",
                        "original_width": 640,
                        "original_height": 480,
                        "value": {"points": [[10, 10], [20, 10], [15, 30]], "polygonlabels": ["person"]},
                    },
                    {"id": "c1", "type": "choices", "from_name": "time", "value": {"choices": ["day"]}},
                ],
            }
        ],
        "predictions": [],
    },
    {
        "id": 2,
        "data": {"image": "/data/local-files/?d=imgs/b.jpg"},
        "annotations": [
            {"id": 2, "was_cancelled": True, "result": [_rect(0, 0, 10, 10, "car", 320, 240)]},
            {
                "id": 3,
                "was_cancelled": False,
                "result": [_rect(50, 50, 10, 10, "car", 320, 240, rotation=90)],
            },
        ],
        "predictions": [],
    },
]

LABELME_A = {
    "version": "5.2.1",
    "flags": {},
    "shapes": [
        {
            "label": "car",
            "points": [[110, 70], [10, 20]],
            "group_id": None,
            "description": "",
            "shape_type": "rectangle",
            "flags": {},
        },
        {"label": "dog", "points": [[1, 2], [30, 4], [15, 40]], "group_id": None, "shape_type": "polygon"},
        {"label": "nose", "points": [[5, 5]], "group_id": None, "shape_type": "point"},
    ],
    "imagePath": "a.jpg",
    "imageData": None,
    "imageHeight": 480,
    "imageWidth": 640,
}
LABELME_B = {
    **LABELME_A,
    "shapes": [],
    "imagePath": "..\\images\\b.jpg",
    "imageWidth": 320,
    "imageHeight": 240,
}


@pytest.fixture
def cvat(tmp_path) -> Path:
    f = tmp_path / "cvat" / "annotations.xml"
    f.parent.mkdir()
    f.write_text(CVAT_XML)
    return f


@pytest.fixture
def labelstudio(tmp_path) -> Path:
    f = tmp_path / "project-1-at-2024.json"
    f.write_text(json.dumps(LABEL_STUDIO, indent=1))
    return f


@pytest.fixture
def labelme(tmp_path) -> Path:
    d = tmp_path / "labelme"
    (d / "sub").mkdir(parents=True)
    (d / "a.json").write_text(json.dumps(LABELME_A))
    (d / "sub" / "b.json").write_text(json.dumps(LABELME_B))
    return d


def _boxes(ds) -> dict[tuple[str, str], np.ndarray]:
    """(file name, class name) -> the sorted (k, 4) boxes."""
    names = ds.category_names()
    out: dict[tuple[str, str], list] = {}
    idx = ds.image_index()
    for r in range(ds.num_annotations):
        key = (str(ds.file_name[idx[r]]), names[int(ds.category_id[r])])
        out.setdefault(key, []).append(ds.bbox[r])
    return {k: np.array(sorted(map(tuple, v))) for k, v in out.items()}


# ---- readers ------------------------------------------------------------------------------------------
def test_cvat_reads_boxes_polygons_rotated_boxes_and_declared_labels(cvat):
    assert detect_format(cvat) == "cvat" and detect_format(cvat.parent) == "cvat"
    ds = load_dataset(cvat.parent)
    assert ds.format == "cvat" and ds.num_images == 2 and ds.num_annotations == 3
    assert ds.file_name.tolist() == ["a.jpg", "sub/b.jpg"]
    assert ds.cat_name.tolist() == ["car", "person", "unused"]  # <meta> order, the unused label kept
    b = _boxes(ds)
    np.testing.assert_allclose(b[("a.jpg", "car")], [[10.5, 20.25, 99.5, 50.5]])
    np.testing.assert_allclose(b[("a.jpg", "person")], [[100, 180, 50.5, 80]])  # polygon: its box
    # 50 x 40 centred on (25, 20), turned 90 degrees: 40 x 50 on the same centre
    np.testing.assert_allclose(b[("sub/b.jpg", "person")], [[5, -5, 40, 50]], atol=1e-9)
    codes = {(s.code, s.kept) for s in ds.skipped}
    assert codes == {("shape.polygon", True), ("shape.unsupported", False)}
    note = next(s for s in ds.skipped if s.code == "shape.unsupported")
    assert note.what == "skipped shapes that are not boxes or polygons (1 points, 1 tag)"


def test_labelstudio_reads_percentages_of_the_image_size(labelstudio):
    assert detect_format(labelstudio) == "labelstudio"
    ds = load_dataset(labelstudio)
    assert ds.format == "labelstudio" and ds.num_images == 2
    assert ds.file_name.tolist() == ["3f2a-a.jpg", "imgs/b.jpg"]
    assert ds.width.tolist() == [640, 320] and ds.height.tolist() == [480, 240]
    b = _boxes(ds)
    np.testing.assert_allclose(b[("3f2a-a.jpg", "car")], [[64, 120, 320, 60]])  # 10%, 25%, 50%, 12.5%
    np.testing.assert_allclose(b[("3f2a-a.jpg", "person")], [[64, 48, 64, 96]])
    # the cancelled annotation is ignored; 32 x 24 at (160, 120) turned 90 degrees about its top-left corner
    np.testing.assert_allclose(b[("imgs/b.jpg", "car")], [[136, 120, 24, 32]], atol=1e-9)
    assert {(s.code, s.kept) for s in ds.skipped} == {("shape.polygon", True), ("shape.unsupported", False)}


def test_labelme_reads_a_folder_of_files(labelme):
    assert detect_format(labelme) == "labelme" and detect_format(labelme / "a.json") == "labelme"
    ds = load_dataset(labelme)
    assert ds.format == "labelme" and ds.num_images == 2 and ds.num_annotations == 2
    assert ds.file_name.tolist() == ["a.jpg", "images/b.jpg"]  # relative to the folder; Windows separators
    b = _boxes(ds)
    np.testing.assert_allclose(b[("a.jpg", "car")], [[10, 20, 100, 50]])  # corners in either order
    np.testing.assert_allclose(b[("a.jpg", "dog")], [[1, 2, 29, 38]])
    assert ds.cat_name.tolist() == ["car", "dog"]
    unsupported = [s for s in ds.skipped if s.code == "shape.unsupported"]
    assert len(unsupported) == 1 and "1 point" in unsupported[0].what


def test_inspect_counts_them_and_notes_the_polygons(cli_json, cvat, labelstudio, labelme):
    for path, boxes in ((cvat, 3), (labelstudio, 3), (labelme, 2)):
        doc = cli_json("coco", "inspect", path)
        assert doc["counts"]["annotations"] == boxes and doc["counts"]["images"] == 2
        assert doc["skipped"]["by_code"]["shape.polygon"] == 1


def test_strict_stops_at_a_skipped_shape(cli, cvat):
    code, _, err = cli("coco", "inspect", cvat, "--strict")
    assert code == 2 and "shape.unsupported" not in err
    assert f"{cvat}: skipped shapes that are not boxes or polygons (1 points, 1 tag)" in err


# ---- malformed files: the file, the record and the problem in one line, exit 2 ----------------------------
def test_malformed_cvat(cli, tmp_path):
    f = tmp_path / "bad.xml"
    f.write_text(CVAT_XML.replace('xtl="10.50"', 'xtl="ten"'))
    code, _, err = cli("coco", "inspect", f, "--strict")
    assert code == 2
    assert err.strip().endswith(f"{f}:<image name=\"a.jpg\"> <box> #1: xtl is not a number: 'ten'")
    assert len(err.strip().splitlines()) == 1
    ds = load_dataset(f)  # lenient: the box is skipped and named, the rest is read
    assert ds.num_annotations == 2 and ds.skipped[0].where == '<image name="a.jpg"> <box> #1'
    f.write_text(CVAT_XML[:400])
    code, _, err = cli("coco", "inspect", f)
    assert code == 2 and f"{f}:line " in err and "malformed XML" in err


def test_malformed_labelstudio(cli, tmp_path):
    f = tmp_path / "ls.json"
    doc = json.loads(json.dumps(LABEL_STUDIO))
    doc[0]["annotations"][0]["result"][0]["value"]["x"] = "abc"
    f.write_text(json.dumps(doc))
    code, _, err = cli("coco", "inspect", f, "--strict")
    assert code == 2
    assert err.strip().endswith(f"{f}:$[0].annotations[0].result[0]: x is not a number: 'abc'")
    f.write_text('[\n{"id": 1,\n "data": {"image": "a.jpg"} ]')
    code, _, err = cli("coco", "inspect", f)
    assert code == 2 and f"{f}:line 3: malformed JSON" in err
    # JSON-MIN (the flat export): said by name, not only 'missing data'
    f.write_text(
        '[{"image": "/data/upload/1/a.jpg", "id": 1, "label": [{"x": 1, "rectanglelabels": ["c"]}]}]'
    )
    code, _, err = cli("coco", "inspect", f, "--strict")
    assert code == 2 and err.count("\n") == 1
    assert f"{f}:$[0]: missing 'data' object (Label Studio's JSON-MIN export; export as 'JSON')" in err


def test_malformed_labelme(cli, labelme):
    bad = {**LABELME_A, "shapes": [{"label": "car", "points": [[1, 2]], "shape_type": "rectangle"}]}
    (labelme / "a.json").write_text(json.dumps(bad))
    code, _, err = cli("coco", "inspect", labelme, "--strict")
    assert code == 2
    assert err.strip().endswith(f"{labelme / 'a.json'}:shapes[0]: a rectangle needs 2 or more [x, y] points")
    ds = load_dataset(labelme)
    assert ds.num_images == 2 and ds.num_annotations == 0 and ds.skipped[0].code == "record.wrong_type"


# ---- writers: a round trip through COCO within 1e-6 px --------------------------------------------------
@pytest.mark.parametrize("to,out", [("cvat", "t.xml"), ("labelstudio", "t.json"), ("labelme", "t")])
def test_round_trip_through_coco(cli, shapes_dir, tmp_path, to, out):
    src = shapes_dir / "instances.json"
    assert cli("coco", "convert", src, tmp_path / out, "--to", to)[0] == 0
    assert detect_format(tmp_path / out) == to
    assert cli("coco", "convert", tmp_path / out, tmp_path / "back.json", "--to", "coco")[0] == 0
    a, b = load_dataset(src), load_dataset(tmp_path / "back.json")
    assert a.num_images == b.num_images and a.num_annotations == b.num_annotations
    ba, bb = _boxes(a), _boxes(b)
    assert ba.keys() == bb.keys()
    assert max(np.abs(ba[k] - bb[k]).max() for k in ba) < 1e-6
    assert sorted(b.file_name.tolist()) == sorted(a.file_name.tolist())
    assert set(zip(a.file_name.tolist(), a.width.tolist())) == set(
        zip(b.file_name.tolist(), b.width.tolist())
    )


def test_labelme_output_links_the_images_beside_the_files(shapes_dir, tmp_path):
    from detkit.datasets.ops.convert import convert

    ds = load_dataset(shapes_dir / "instances.json")
    result = convert(ds, tmp_path / "lm", "labelme")
    assert result["images_linked"] == 16 and result["boxes"] == ds.num_annotations
    first = json.loads((tmp_path / "lm" / f"{Path(ds.file_name[0]).stem}.json").read_text())
    assert (
        first["imagePath"] == Path(ds.file_name[0]).name and (tmp_path / "lm" / first["imagePath"]).is_file()
    )
    assert {s["shape_type"] for s in first["shapes"]} <= {"rectangle"}


def test_cvat_keeps_splits_as_subsets(tmp_path):
    from detkit.datasets.model import make_dataset
    from detkit.datasets.ops.convert import convert

    ds = make_dataset(
        [(1, "a.jpg", 10, 10), (2, "b.jpg", 10, 10)], [(1, 1, 1, 1, 2, 3, 4)], [(1, "x")], source="s"
    )
    ds.split = np.array(["train", "val"], dtype=object)
    convert(ds, tmp_path / "c.xml", "cvat")
    back = load_dataset(tmp_path / "c.xml")
    assert back.split.tolist() == ["train", "val"]
    assert load_dataset(tmp_path / "c.xml", split="val").file_name.tolist() == ["b.jpg"]


def test_dataset_operations_and_validate_read_them(cli, cli_json, labelstudio, labelme, tmp_path):
    code, _, err = cli("coco", "sample", labelstudio, tmp_path / "s", "--n", "1")
    assert code == 0, err
    assert (tmp_path / "s" / "annotations.json").is_file()
    doc = cli_json("coco", "validate", labelme)
    found = {f["code"]: f for f in doc["findings"]}
    assert found["shape.unsupported"]["examples"][0]["record"] == "a.json"
    assert found["shape.polygon"]["count"] == 1
    doc = cli_json("coco", "validate", labelstudio)
    assert doc["findings"][0]["examples"][0]["record"] == "whole file"


@pytest.mark.parametrize("to", ["cvat", "labelstudio"])
def test_a_folder_output_links_the_images_where_the_reader_looks(shapes_dir, tmp_path, to):
    from detkit.datasets.ops.convert import convert

    ds = load_dataset(shapes_dir / "instances.json")
    result = convert(ds, tmp_path / "out", to)
    assert result["images_linked"] == 16
    back = load_dataset(tmp_path / "out")
    assert back.format == to and Path(back.image_root) == tmp_path / "out" / "images"
    assert all((Path(back.image_root) / str(f)).is_file() for f in back.file_name)


def test_cvat_subsets_are_declared_splits(tmp_path):
    from detkit.datasets.load import declared_splits

    f = tmp_path / "a.xml"
    f.write_text(
        CVAT_XML.replace('name="a.jpg"', 'name="a.jpg" subset="Train"').replace(
            'name="sub/b.jpg"', 'name="sub/b.jpg" subset="Validation"'
        )
    )
    assert declared_splits(f) == ["train", "val"]
    assert load_dataset(f, split="val").file_name.tolist() == ["sub/b.jpg"]
