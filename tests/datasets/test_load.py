"""The annotation model and its loaders, on the real files in ../shared/data and on generated data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detkit.datasets.load import detect_format, load_dataset
from detkit.errors import InputError
from tests.conftest import shared_path


def test_course_text_file_counts():
    ds = load_dataset(shared_path("sample_coco.txt"))
    assert ds.format == "text"
    assert ds.num_annotations == 10105
    assert len(np.unique(ds.category_id)) == 80
    x, y, w, h = ds.bbox.T
    past_edge = (x + w > ds.width) | (y + h > ds.height)
    assert int(past_edge.sum()) == 3564
    # first line: id: 0, height: 330, width: 1093, bbox:[69, 464, 312, 175]
    assert ds.category_names()[int(ds.category_id[0])] == "person"
    assert ds.bbox[0].tolist() == [69, 464, 312, 175]
    assert (ds.width[0], ds.height[0]) == (1093, 330)


def test_bccd_voc_counts():
    ds = load_dataset(shared_path("bccd", "BCCD"))
    assert ds.format == "voc"
    assert ds.num_images == 364 and ds.num_annotations == 4888
    names = ds.category_names()
    counts = {names[int(c)]: int(n) for c, n in zip(*np.unique(ds.category_id, return_counts=True))}
    assert counts == {"RBC": 4155, "WBC": 372, "Platelets": 361}
    assert int(((ds.bbox[:, 2] <= 0) | (ds.bbox[:, 3] <= 0)).sum()) == 2


def test_coco_fixture():
    ds = load_dataset(shared_path("coco-fixture", "coco", "annotations", "instances_val2017.json"))
    assert (ds.num_images, ds.num_annotations, ds.num_categories) == (1, 19, 80)
    assert (ds.width[0], ds.height[0]) == (640, 427)
    assert int(ds.cat_id.max()) == 90
    assert ds.image_root is not None and ds.image_root.endswith("val2017")


def test_synthetic_set_is_true_coco(shapes_dir):
    doc = json.loads((shapes_dir / "instances.json").read_text())
    assert {c["id"] for c in doc["categories"]} == {3, 7, 11}
    ds = load_dataset(shapes_dir / "instances.json")
    assert ds.num_images == 16 and ds.num_annotations == len(doc["annotations"]) > 16
    # every box inside its image, positive, and no larger than its polygon's box
    x, y, w, h = ds.bbox.T
    assert (w > 0).all() and (h > 0).all()
    assert (x >= -0.5).all() and (x + w <= 96.5).all() and (y + h <= 96.5).all()
    assert (ds.area <= w * h + 1e-6).all()
    assert ds.image_root == str(shapes_dir / "images")


def test_synthetic_set_is_deterministic(tmp_path):
    from detkit.data.synth import write_detection_set

    a = write_detection_set(tmp_path / "a", images=3, size=64, seed=5).read_bytes()
    b = write_detection_set(tmp_path / "b", images=3, size=64, seed=5).read_bytes()
    c = write_detection_set(tmp_path / "c", images=3, size=64, seed=6).read_bytes()
    assert a == b and a != c
    assert (tmp_path / "a/images/shape_00002.jpg").read_bytes() == (
        tmp_path / "b/images/shape_00002.jpg"
    ).read_bytes()


@pytest.mark.parametrize(
    "content, where",
    [
        (b"", None),
        (b'{"images": [{"id": 1, "width": 10, "height": 10}], "annotations": [', "truncated"),
        (b"[1, 2, 3]", "$"),
        (b'{"images": [{"id": 1, "width": "ten", "height": 10}]}', "$.images[0].width"),
        (b'{"images": [{"id": 1, "width": -4, "height": 10}]}', "$.images[0]"),
        (
            b'{"images": [], "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2]}]}',
            "bbox",
        ),
    ],
)
def test_bad_coco_json_is_one_line_error(tmp_path, content, where):
    p = tmp_path / "bad.json"
    p.write_bytes(content)
    with pytest.raises(InputError) as exc:
        load_dataset(p)
    msg = str(exc.value)
    assert "\n" not in msg and str(p) in msg
    if where:
        assert where in msg


def test_bad_text_line_names_the_line(tmp_path):
    p = tmp_path / "boxes.txt"
    p.write_text("id: 0, height: 330, width: 1093, bbox:[69, 464, 312, 175],\nid: x, height: 3\n")
    with pytest.raises(InputError, match=r"boxes.txt:line 2: expected"):
        load_dataset(p)
    p.write_bytes(b"id: 0, height: 330, width: 1093, bbox:[69, 464, 312, 175],\n\xff\xfe\n")
    with pytest.raises(InputError, match=r"line 2: not UTF-8"):
        load_dataset(p)


def test_detect_format(tmp_path, shapes_dir):
    assert detect_format(shapes_dir / "instances.json") == "coco"
    (tmp_path / "labels").mkdir()
    assert detect_format(tmp_path) == "yolo"
    with pytest.raises(InputError, match="no such file"):
        detect_format(tmp_path / "nope.json")


def test_cli_bad_input_is_one_line_exit_2(cli, tmp_path):
    p = tmp_path / "empty.json"
    p.write_text("")
    from detkit.cli import run

    assert run(["data", "synth", str(tmp_path / "x"), "--images", "0"]) == 2  # usage error


def test_memory_mapped_decode_matches_and_reports_lines(tmp_path, shapes_dir, monkeypatch):
    from detkit.datasets import load as loaders
    from detkit.datasets.formats import coco as coco_json

    src = shapes_dir / "instances.json"
    small = load_dataset(src)
    monkeypatch.setattr(coco_json, "MMAP_MIN_BYTES", 0)  # every file takes the mmap path
    mapped = load_dataset(src)
    assert np.array_equal(mapped.bbox, small.bbox) and list(mapped.file_name) == list(small.file_name)
    assert np.array_equal(loaders.load_labels(src).category_id, small.category_id)
    p = tmp_path / "bad.json"
    p.write_bytes(
        b'{"images": [\n{"id": 1, "width": 4, "height": 4},\n{"id": 2, "width": NaN, "height": 4}]}'
    )
    with pytest.raises(InputError, match=r"bad.json:line 3: NaN/Infinity is not a JSON number"):
        load_dataset(p)
    p.write_bytes(b'{"images": [], "info": {"x": "caf\xe9"}}')  # bad byte in a field the decoder skips
    with pytest.raises(InputError, match=r"line 1: not UTF-8 text \(byte 0xe9 at offset 33\)"):
        loaders.load_labels(p)


def test_ids_beyond_int64_are_input_errors(tmp_path):
    p = tmp_path / "big.json"
    p.write_text('{"images": [{"id": 99999999999999999999999, "width": 4, "height": 4}]}')
    with pytest.raises(InputError, match=r"\$\.images\[0\]\.id"):
        load_dataset(p)


def test_missing_area_and_iscrowd_are_filled_and_flagged(tmp_path):
    p = tmp_path / "a.json"
    p.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "width": 9, "height": 9}],
                "annotations": [
                    {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 3]},
                    {"id": 2, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 3], "area": 5, "iscrowd": 1},
                ],
                "categories": [{"id": 1, "name": "a"}],
            }
        )
    )
    ds = load_dataset(p)
    assert ds.area.tolist() == [6, 5] and ds.iscrowd.tolist() == [0, 1]
    assert ds.missing["area"].tolist() == [True, False] and ds.missing["iscrowd"].tolist() == [True, False]


def test_bccd_voc_image_sets_are_the_split_column():
    root = shared_path("bccd", "BCCD")
    ds = load_dataset(root)
    # ImageSets/Main: train 205 + val 87 + test 72 = 364 = every annotated image, each in exactly one list
    assert {s: int((ds.split == s).sum()) for s in ds.split_names()} == {"train": 205, "val": 87, "test": 72}
    assert ds.num_images == 364 and len(set(ds.file_name.tolist())) == 364 and not ds.skipped
    assert ds.image_id.tolist() == list(range(1, 365))  # each image once: the file order and ids are kept
    from detkit.datasets.load import declared_splits

    assert declared_splits(root) == ["train", "val", "test"]
    test = load_dataset(root, split="test")
    assert test.num_images == 72 and test.num_annotations == int(
        np.isin(ds.ann_image_id, ds.image_id[ds.split == "test"]).sum()
    )
    stems = {
        ln.strip() for ln in (root / "ImageSets" / "Main" / "test.txt").read_text().splitlines() if ln.strip()
    }
    assert {f.rsplit(".", 1)[0] for f in test.file_name} == stems
    # one split keeps the whole folder's ids: predictions made on the folder land on the same images
    whole = dict(zip(ds.file_name.tolist(), ds.image_id.tolist()))
    assert [whole[f] for f in test.file_name.tolist()] == test.image_id.tolist()
    assert test.image_id.tolist() != list(range(1, 73))
    boxes = {a: tuple(b) for a, b in zip(ds.ann_id.tolist(), ds.bbox.tolist())}
    assert all(boxes[a] == tuple(b) for a, b in zip(test.ann_id.tolist(), test.bbox.tolist()))


def test_voc_split_lists_with_gaps(tmp_path):
    ann, main = tmp_path / "Annotations", tmp_path / "ImageSets" / "Main"
    ann.mkdir()
    main.mkdir(parents=True)
    for stem in ("a", "b", "c"):
        (ann / f"{stem}.xml").write_text(
            f"<annotation><filename>{stem}.jpg</filename><size><width>9</width><height>9</height>"
            "</size><object><name>x</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax>"
            "<ymax>5</ymax></bndbox></object></annotation>"
        )
    (main / "train.txt").write_text("a\nghost\n")
    (main / "val.txt").write_text("a\nb\n")  # a in train and val: one image, counted once, in both
    ds = load_dataset(tmp_path)
    assert list(zip(ds.split, ds.file_name)) == [
        ("train+val", "a.jpg"),
        ("val", "b.jpg"),
        ("unassigned", "c.jpg"),
    ]
    assert ds.num_annotations == 3 and ds.image_index().tolist() == [0, 1, 2]
    assert ds.select_split("val").file_name.tolist() == ["a.jpg", "b.jpg"]
    assert load_dataset(tmp_path, split="train").file_name.tolist() == ["a.jpg"]
    assert ds.split_overlaps() == [
        "1 image is in both train (1) and val (2): validation measures training fit on those"
    ]
    assert [(s.code, s.where) for s in ds.skipped] == [
        ("split.unknown_item", "line 2"),
        ("split.unassigned", None),
    ]
    with pytest.raises(InputError, match=r"train.txt:line 2: 'ghost' has no annotation file"):
        load_dataset(tmp_path, strict=True)
