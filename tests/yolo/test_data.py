"""detkit.yolo.data: letterbox maths, targets, augmentation, multi-scale batches, bad images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detkit.datasets.model import make_dataset
from detkit.deploy.runtime import letterbox_transform, unletterbox
from detkit.yolo.data import Augment, ClassMap, DetectionDataset, build_loader, transform_boxes
from detkit.yolo.sampler import MULTI_SCALE_SIZES, YoloBatchSampler, multi_scale_sizes
from detkit.yolo.splits import select_images


def _write_image(path, w, h, value=90):
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), value, np.uint8))


@pytest.fixture
def tiny(tmp_path):
    """Two images (200x100 and 100x100) with hand-placed boxes; category ids 7 and 11."""
    _write_image(tmp_path / "img" / "a.jpg", 200, 100)
    _write_image(tmp_path / "img" / "b.jpg", 100, 100)
    ds = make_dataset(
        [(5, "a.jpg", 200, 100), (9, "b.jpg", 100, 100)],
        [
            (1, 5, 11, 10, 20, 100, 50),
            (2, 9, 7, 0, 0, 50, 100),
            (3, 9, 7, 10, 10, 0, 5),
        ],  # the last is degenerate
        [(7, "seven"), (11, "eleven")],
    )
    return ds, tmp_path / "img"


def test_letterbox_and_back():
    r, tx, ty = letterbox_transform(200, 100, 128)
    assert (r, tx, ty) == (0.64, 0.0, 32.0)
    # box 10,20 .. 110,70 -> 6.4, 44.8 .. 70.4, 76.8 on the input
    norm = np.array([[6.4, 44.8, 70.4, 76.8]]) / 128
    np.testing.assert_allclose(unletterbox(norm, 128, (r, tx, ty), 200, 100), [[10, 20, 110, 70]], atol=1e-9)
    # parts outside the image are clipped to it
    np.testing.assert_allclose(
        unletterbox(np.array([[0, 0, 1, 1]]), 128, (r, tx, ty), 200, 100), [[0, 0, 200, 100]]
    )


def test_class_map_round_trip():
    cm = ClassMap([3, 7, 11], ["circle", "rectangle", "triangle"])
    assert cm.to_index(np.array([11, 3, 7, 5])).tolist() == [2, 0, 1, -1]
    assert cm.to_category_id(2) == 11
    assert ClassMap.from_dict(cm.to_dict()) == cm


def test_eval_targets_are_the_letterboxed_boxes(tiny):
    ds, root = tiny
    d = DetectionDataset(ds, root, img_size=128)
    assert d.class_map.cat_ids == [7, 11]
    s = d[0]  # image 5, 200x100: r = 0.64, pad 32 on top
    assert s["image"].shape == (3, 128, 128) and s["image"].dtype == torch.uint8
    assert s["image_id"] == 5 and s["orig_size"] == (200, 100) and s["transform"] == (0.64, 0.0, 32.0)
    # class index 1 (id 11); centre (38.4, 60.8), size 64 x 32, divided by 128
    torch.testing.assert_close(s["target"], torch.tensor([[1.0, 0.3, 0.475, 0.5, 0.25]]))
    assert s["image"][:, 0, 64].tolist() == [114, 114, 114]  # the grey border
    # image 9: the degenerate box is not a target
    torch.testing.assert_close(d[1]["target"], torch.tensor([[0.0, 0.25, 0.5, 0.5, 1.0]]))


def test_flip_mirrors_the_boxes(tiny):
    ds, root = tiny
    d = DetectionDataset(
        ds, root, img_size=128, augment=Augment(flip=1.0, hsv=(0, 0, 0), scale=0, translate=0)
    )
    torch.testing.assert_close(d[(0, 128, 3)]["target"], torch.tensor([[1.0, 0.7, 0.475, 0.5, 0.25]]))


def test_transform_boxes_clips_and_drops():
    aug = Augment(min_size=2, min_visible=0.25)
    boxes = np.array(
        [[10, 10, 30, 30], [-90, 0, 10, 100], [0, 0, 1, 50], [90, 90, 150, 150]], dtype=np.float64
    )
    kept, keep = transform_boxes(boxes, 1.0, 0.0, 0.0, 100, aug)
    # 2nd: 10% inside -> dropped; 3rd: 1 px wide -> dropped; 4th: clipped to 90..100 (10x10 of 60x60 < 25%) ->
    # dropped
    assert keep.tolist() == [True, False, False, False]
    kept, keep = transform_boxes(np.array([[80.0, 80, 120, 120]]), 1.0, 0.0, 0.0, 100, aug)
    assert kept.tolist() == [[80, 80, 100, 100]]  # a quarter inside: kept, clipped


def test_augmented_boxes_stay_inside_and_are_seeded(tiny):
    ds, root = tiny
    d = DetectionDataset(ds, root, img_size=96, augment=Augment(scale=0.5, translate=0.3), seed=4)
    a, b, c = d[(0, 96, 1)], d[(0, 96, 1)], d[(0, 96, 2)]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["target"], b["target"])
    assert not torch.equal(a["image"], c["image"])
    for t in (a["target"], c["target"]):
        xyxy = torch.cat([t[:, 1:3] - t[:, 3:5] / 2, t[:, 1:3] + t[:, 3:5] / 2], 1)
        assert (xyxy >= -1e-6).all() and (xyxy <= 1 + 1e-6).all()


def test_multi_scale_sizes_change_every_10_batches_deterministically():
    sampler = torch.utils.data.SequentialSampler(range(400))
    bs = YoloBatchSampler(sampler, 4, True, 416, multi_scale=True, seed=1)
    sizes = [batch[0][1] for batch in bs]
    assert len(sizes) == 100 and set(sizes) <= set(MULTI_SCALE_SIZES)
    groups = [sizes[i : i + 10] for i in range(0, 100, 10)]
    assert all(len(set(g)) == 1 for g in groups)
    assert len({g[0] for g in groups}) > 1
    assert sizes == [b[0][1] for b in YoloBatchSampler(sampler, 4, True, 416, multi_scale=True, seed=1)]
    bs.set_epoch(1)
    assert [b[0][2] for b in bs][:1] == [1]  # the epoch travels with every item


def test_multi_scale_sizes_follow_the_base_size_and_skip_resumes_inside_an_epoch():
    assert multi_scale_sizes(416) == MULTI_SCALE_SIZES == tuple(range(320, 609, 32))
    assert multi_scale_sizes(128) == (96, 128, 160, 192)
    sampler = torch.utils.data.SequentialSampler(range(100))
    bs = YoloBatchSampler(sampler, 4, True, 128, multi_scale=True, seed=3)
    full = list(bs)
    assert {b[0][1] for b in full} <= {96, 128, 160, 192}
    bs.set_epoch(0, skip=7)
    assert len(bs) == 25 - 7 and list(bs) == full[7:]  # same indices and sizes as the uninterrupted epoch
    bs.set_epoch(0)
    assert list(bs) == full


def test_loader_same_batches_with_and_without_workers(tiny):
    ds, root = tiny
    d = DetectionDataset(ds, root, img_size=64, augment=Augment(), seed=3)
    runs = []
    for workers in (0, 2):
        loader = build_loader(d, batch_size=1, train=True, workers=workers, seed=3)
        loader.batch_sampler.set_epoch(2)
        runs.append([(b["image_ids"].tolist(), b["images"].clone(), b["targets"][0].clone()) for b in loader])
    assert len(runs[0]) == 2
    for (i0, x0, t0), (i1, x1, t1) in zip(*runs):
        assert i0 == i1 and torch.equal(x0, x1) and torch.equal(t0, t1)


def test_corrupt_and_missing_images_are_reported_and_skipped(tiny):
    _, root = tiny
    (root / "b.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    ds2 = make_dataset(
        [(5, "a.jpg", 200, 100), (9, "b.jpg", 100, 100), (10, "gone.jpg", 10, 10)], [], [(7, "seven")]
    )
    d = DetectionDataset(ds2, root, img_size=64)
    assert d.missing == [str(root / "gone.jpg")] and len(d) == 2
    batches = list(build_loader(d, batch_size=2, train=False, workers=0))
    assert len(batches) == 1
    assert batches[0]["bad"] == [str(root / "b.jpg")]
    assert batches[0]["image_ids"].tolist() == [5] and batches[0]["images"].shape == (1, 3, 64, 64)


def test_select_images_by_list_and_limit(tiny, tmp_path):
    ds, _ = tiny
    lst = tmp_path / "train.txt"
    lst.write_text("b\n")
    assert select_images(ds, lst).image_id.tolist() == [9]
    assert select_images(ds, None, limit=1).image_id.tolist() == [5]
