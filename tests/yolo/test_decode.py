"""decode / encode / postprocess: the YOLOv2 box parametrisation, round trip, thresholds and NMS."""

from __future__ import annotations

import math

import pytest
import torch

from detkit.yolo.decode import decode, encode, postprocess

ANCHORS = [(1.0, 1.0), (2.0, 3.0)]


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_decode_one_prediction_by_hand():
    # grid 2 rows x 3 columns, 2 anchors, 2 classes; prediction at anchor 1, row 1, column 2
    raw = torch.zeros(1, 2, 2, 3, 7)
    raw[0, 1, 1, 2] = torch.tensor([0.5, -1.0, 0.2, -0.3, 1.5, 2.0, -1.0])
    boxes, obj, cls = decode(raw, ANCHORS)
    assert boxes.shape == (1, 12, 4) and obj.shape == (1, 12) and cls.shape == (1, 12, 2)
    n = 1 * 6 + 1 * 3 + 2  # flattened in (anchor, row, column) order
    expected = [(sig(0.5) + 2) / 3, (sig(-1.0) + 1) / 2, 2.0 * math.exp(0.2) / 3, 3.0 * math.exp(-0.3) / 2]
    assert boxes[0, n].tolist() == pytest.approx(expected, rel=1e-6)
    assert obj[0, n].item() == pytest.approx(sig(1.5))
    p0 = math.exp(2.0) / (math.exp(2.0) + math.exp(-1.0))
    assert cls[0, n].tolist() == pytest.approx([p0, 1 - p0], rel=1e-6)
    # an all-zero prediction sits on its cell centre with its anchor's size
    assert boxes[0, 0].tolist() == pytest.approx([0.5 / 3, 0.5 / 2, 1 / 3, 1 / 2])


def test_decode_clamps_sizes_before_exp():
    raw = torch.zeros(1, 1, 1, 1, 6)
    raw[..., 2] = 1e4
    boxes, _, _ = decode(raw, [(1.0, 1.0)])
    assert torch.isfinite(boxes).all()


def test_encode_then_postprocess_returns_the_ground_truth():
    gt = [
        torch.tensor([[2.0, 0.20, 0.30, 0.25, 0.40], [0.0, 0.70, 0.60, 0.50, 0.30]]),
        torch.zeros(0, 5),
        torch.tensor([[1.0, 0.55, 0.90, 0.10, 0.15]]),
    ]
    raw = encode(gt, ANCHORS, (4, 5), num_classes=3)
    assert raw.shape == (3, 2, 4, 5, 8)
    dets = postprocess(raw, ANCHORS, conf_thresh=0.5)
    for g, d in zip(gt, dets):
        order = torch.argsort(d["labels"])  # compare in class order
        want = g[torch.argsort(g[:, 0])] if len(g) else g
        cx, cy, w, h = want[:, 1], want[:, 2], want[:, 3], want[:, 4]
        xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)
        assert d["labels"][order].tolist() == want[:, 0].long().tolist()
        assert torch.allclose(d["boxes"][order], xyxy, atol=1e-5)
        assert d["scores"].tolist() == pytest.approx([0.999**2] * len(g), rel=1e-4)


def test_postprocess_nms_per_class_threshold_and_max_det():
    # three predictions on the same spot: two of class 0 (suppressed pair) and one of class 1
    raw = torch.zeros(1, 3, 1, 1, 7)  # 3 anchors, 1 cell, 2 classes
    raw[..., 4] = 5.0
    raw[0, 0, 0, 0, 5:] = torch.tensor([10.0, 0.0])
    raw[0, 1, 0, 0, 5:] = torch.tensor([9.0, 0.0])
    raw[0, 2, 0, 0, 5:] = torch.tensor([0.0, 10.0])
    anchors = [(0.5, 0.5)] * 3
    d = postprocess(raw, anchors, conf_thresh=0.5)[0]
    assert sorted(d["labels"].tolist()) == [0, 1]
    assert d["boxes"][0].tolist() == pytest.approx([0.25, 0.25, 0.75, 0.75])
    assert d["scores"].tolist() == sorted(d["scores"].tolist(), reverse=True)
    assert len(postprocess(raw, anchors, conf_thresh=0.5, max_det=1)[0]["scores"]) == 1
    assert len(postprocess(raw, anchors, conf_thresh=0.9999)[0]["scores"]) == 0


def test_postprocess_clips_to_the_image():
    raw = torch.zeros(1, 1, 1, 1, 6)
    raw[..., 2:4] = math.log(4.0)  # box 4x the image
    raw[..., 4] = 5.0
    d = postprocess(raw, [(1.0, 1.0)], conf_thresh=0.1)[0]
    assert d["boxes"].tolist() == [[0.0, 0.0, 1.0, 1.0]]
