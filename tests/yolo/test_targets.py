"""build_targets: responsible cell and anchor, regression targets, last-one-wins, padding."""

from __future__ import annotations

import math

import pytest
import torch

from detkit.yolo.targets import build_targets, pad_gt

ANCHORS = torch.tensor([[1.0, 1.0], [0.5, 2.0]])  # grid cells


def test_cell_anchor_and_regression_targets_by_hand():
    # 4x4 grid; box centre (0.5, 0.3) -> cell x = floor(2.0) = 2, y = floor(1.2) = 1
    # size in cells (0.8, 2.4): wh-IoU with (1, 1) = 0.8 / (1.92 + 1 - 0.8) = 0.377,
    #                           with (0.5, 2) = 1.0 / (1.92 + 1 - 1.0) = 0.521  -> anchor 1
    gt = [torch.tensor([[3.0, 0.5, 0.3, 0.2, 0.6]])]
    t = build_targets(gt, ANCHORS, (4, 4))
    assert t["b"].tolist() == [0] and t["a"].tolist() == [1]
    assert t["j"].tolist() == [1] and t["i"].tolist() == [2]
    assert t["cls"].tolist() == [3]
    assert t["txy"][0].tolist() == pytest.approx([0.0, 0.2], abs=1e-6)
    assert t["twh"][0].tolist() == pytest.approx([math.log(0.8 / 0.5), math.log(2.4 / 2.0)], abs=1e-6)
    assert t["wh"][0].tolist() == pytest.approx([0.2, 0.6])


def test_non_square_grid_uses_its_own_width_and_height():
    # 2 rows x 5 columns: centre (0.5, 0.3) -> i = floor(2.5) = 2, j = floor(0.6) = 0
    gt = [torch.tensor([[0.0, 0.5, 0.3, 0.2, 0.2]])]
    t = build_targets(gt, ANCHORS, (2, 5))
    assert (t["j"].item(), t["i"].item()) == (0, 2)
    assert t["txy"][0].tolist() == pytest.approx([0.5, 0.6], abs=1e-6)
    # size in cells (1.0, 0.4): anchor 0 (IoU 0.4) beats anchor 1 (0.2 / (0.4 + 1 - 0.2) = 0.167)
    assert t["a"].item() == 0
    assert t["twh"][0].tolist() == pytest.approx([0.0, math.log(0.4)], abs=1e-6)


def test_same_cell_and_anchor_last_box_wins():
    first = [0.0, 0.30, 0.30, 0.20, 0.20]  # cell (1, 1) of 4x4, anchor 0
    other = [1.0, 0.90, 0.90, 0.20, 0.20]  # cell (3, 3)
    last = [2.0, 0.40, 0.45, 0.22, 0.24]  # cell (1, 1) again, anchor 0
    t = build_targets([torch.tensor([first, other, last])], ANCHORS, (4, 4))
    assert t["cls"].tolist() == [1, 2]  # first dropped, order otherwise kept
    assert t["box"][1].tolist() == pytest.approx(last[1:])
    # the dropped box still takes part in the ignore rule
    assert t["gt_mask"].sum().item() == 3


def test_padding_empty_images_and_degenerate_boxes():
    gt = [
        torch.zeros(0, 5),
        torch.tensor([[1.0, 0.5, 0.5, 0.5, 0.5], [0.0, 0.2, 0.2, 0.0, 0.3]]),  # second has w = 0
        torch.tensor([[0.0, 1.0, 1.0, 0.1, 0.1]]),  # centre on the far edge -> last cell
    ]
    padded, mask = pad_gt(gt)
    assert padded.shape == (3, 2, 5)
    assert mask.tolist() == [[False, False], [True, False], [True, False]]
    t = build_targets(gt, ANCHORS, (4, 4))
    assert t["b"].tolist() == [1, 2]
    assert (t["j"][1].item(), t["i"][1].item()) == (3, 3)
    assert t["txy"][1].tolist() == pytest.approx([1.0, 1.0])


def test_batch_without_any_box():
    t = build_targets([torch.zeros(0, 5), torch.zeros(0, 5)], ANCHORS, (3, 3))
    assert len(t["b"]) == 0 and t["gt_boxes"].shape == (2, 0, 4)


def test_padded_tensor_input_gives_the_same_targets():
    gt = [
        torch.tensor([[1.0, 0.5, 0.5, 0.5, 0.5]]),
        torch.tensor([[0.0, 0.2, 0.7, 0.1, 0.3], [2.0, 0.8, 0.1, 0.2, 0.2]]),
    ]
    padded = torch.zeros(2, 3, 5)
    padded[0, :1], padded[1, :2] = gt[0], gt[1]
    a, b = build_targets(gt, ANCHORS, (4, 4)), build_targets(padded, ANCHORS, (4, 4))
    for k in ("b", "a", "j", "i", "txy", "twh", "cls"):
        assert torch.equal(a[k], b[k]), k
