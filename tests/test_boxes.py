"""The shared box formats and IoU functions, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detkit.boxes import BoxFormat, convert, pairwise_iou, wh_iou


def test_convert_round_trip_numpy_and_torch():
    xywh = np.array([[10.0, 20.0, 30.0, 40.0]])
    assert convert(xywh, "xywh", "xyxy").tolist() == [[10, 20, 40, 60]]
    assert convert(xywh, "xywh", "cxcywh").tolist() == [[25, 40, 30, 40]]
    t = torch.tensor(xywh)
    assert torch.allclose(
        convert(t, BoxFormat.XYWH, BoxFormat.CXCYWH), torch.tensor([[25.0, 40, 30, 40]], dtype=t.dtype)
    )
    back = convert(convert(xywh, "xywh", "cxcywh"), "cxcywh", "xywh")
    assert np.allclose(back, xywh)


def test_pairwise_iou_hand_computed():
    a = np.array([[0, 0, 2, 2]], dtype=float)
    b = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]], dtype=float)
    # overlap 1x1 = 1; union 4 + 4 - 1 = 7
    assert np.allclose(pairwise_iou(a, b), [[1 / 7, 1.0, 0.0]])
    assert torch.allclose(
        pairwise_iou(torch.tensor(a), torch.tensor(b)), torch.tensor([[1 / 7, 1.0, 0.0]], dtype=torch.float64)
    )


def test_wh_iou_is_corner_aligned_iou():
    # (2, 4) vs (4, 2): inter 2*2 = 4, union 8 + 8 - 4 = 12
    assert wh_iou(np.array([[2.0, 4.0]]), np.array([[4.0, 2.0]]))[0, 0] == pytest.approx(1 / 3)
    # same as xyxy IoU of the boxes placed at the origin
    rng = np.random.default_rng(0)
    wa, wb = rng.uniform(0.1, 5, (6, 2)), rng.uniform(0.1, 5, (5, 2))
    xyxy = lambda wh: np.concatenate([np.zeros_like(wh), wh], axis=1)
    assert np.allclose(wh_iou(wa, wb), pairwise_iou(xyxy(wa), xyxy(wb)))
    assert torch.allclose(wh_iou(torch.tensor(wa), torch.tensor(wb)), torch.tensor(wh_iou(wa, wb)))
