"""Anchor metrics: hand-computed IoUs, the paper's mean IoU, recall metrics and the elbow."""

from __future__ import annotations

import numpy as np
import pytest

from detkit.anchors.metrics import (
    anchor_metrics,
    best_iou,
    best_possible_recall,
    elbow,
    mean_iou,
    ratio_recall,
    stock_anchors,
)
from detkit.boxes import wh_iou


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ((2, 3), (3, 2), 4 / 8),  # inter 2x2, union 6 + 6 - 4
        ((1, 1), (2, 2), 1 / 4),  # one inside the other: area ratio
        ((4, 1), (1, 4), 1 / 7),  # crossing: inter 1, union 4 + 4 - 1
        ((3, 5), (3, 5), 1.0),
        ((0.1, 0.2), (0.2, 0.1), 0.01 / 0.03),
    ],
)
def test_hand_computed_pairs(a, b, expected):
    best, arg = best_iou(np.array([a], float), np.array([b], float))
    assert best[0] == pytest.approx(expected, rel=1e-12)
    assert arg[0] == 0
    assert wh_iou(np.array([a], float), np.array([b], float))[0, 0] == pytest.approx(expected, rel=1e-12)


def test_best_iou_equals_wh_iou_including_ties():
    rng = np.random.default_rng(3)
    wh = rng.uniform(0.01, 1, (2000, 2))
    anchors = np.concatenate([rng.uniform(0.01, 1, (6, 2)), wh[:1], wh[:1]])  # a duplicate anchor: a tie
    ref = wh_iou(wh, anchors)
    best, arg = best_iou(wh, anchors)
    np.testing.assert_allclose(best, ref.max(1), rtol=1e-12)
    np.testing.assert_array_equal(arg, ref.argmax(1))
    assert arg[0] == 6  # the tie goes to the lower index, like argmax


def test_mean_iou_is_the_papers_avg_iou():
    # YOLOv2 "Avg IOU": for every box, the IoU with its closest centroid, averaged over boxes
    boxes = [(2, 3), (1, 1), (4, 1), (3, 3)]
    anchors = [(3, 2), (1, 4)]
    by_hand = []
    for bw, bh in boxes:
        ious = [
            min(bw, aw) * min(bh, ah) / (bw * bh + aw * ah - min(bw, aw) * min(bh, ah)) for aw, ah in anchors
        ]
        by_hand.append(max(ious))
    # (2,3): max(4/8, 2/8); (1,1): max(1/6, 1/4); (4,1): max(3/7, 1/7); (3,3): max(6/9, 3/10)
    assert by_hand == pytest.approx([0.5, 0.25, 3 / 7, 2 / 3])
    assert mean_iou(np.array(boxes, float), np.array(anchors, float)) == pytest.approx(
        np.mean(by_hand), rel=1e-12
    )


def test_best_possible_recall_and_ratio_recall():
    anchors = np.array([[1.0, 1.0]])
    wh = np.array([[1.0, 1.0], [0.8, 0.8], [0.5, 0.5], [3.9, 1.0], [4.1, 1.0]])
    # IoUs 1, 0.64, 0.25, 1/3.9, 1/4.1 -> two above 0.5
    assert best_possible_recall(wh, anchors, 0.5) == pytest.approx(2 / 5)
    # ratios 1, 1.25, 2, 3.9, 4.1 -> four below 4
    assert ratio_recall(wh, anchors, 4.0) == pytest.approx(4 / 5)
    m = anchor_metrics(wh, anchors)
    assert m["bpr"] == pytest.approx(2 / 5) and m["ratio_recall"] == pytest.approx(4 / 5)
    assert m["mean_iou"] == pytest.approx(np.mean([1, 0.64, 0.25, 1 / 3.9, 1 / 4.1]))


def test_elbow_picks_the_knee():
    assert elbow([1, 2, 3, 4, 5, 6], [0.2, 0.55, 0.6, 0.63, 0.65, 0.66]) == 2
    assert elbow([1, 2, 3, 4, 5], [0.1, 0.2, 0.3, 0.7, 0.72]) == 4
    assert elbow([3, 5], [0.5, 0.6]) == 5  # no elbow with two points: the largest k


def test_stock_anchors_are_normalised():
    s = stock_anchors()
    np.testing.assert_allclose(s["yolov3_coco"][0], [10 / 416, 13 / 416])
    np.testing.assert_allclose(s["yolov2_voc"][-1], [11.2364 / 13, 10.0071 / 13])
    assert s["yolov3_coco"].shape == (9, 2) and s["yolov2_voc"].shape == (5, 2)
