"""Per-class rows, the F1-confidence curve and anchor coverage on cases worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detkit.datasets.model import make_dataset
from detkit.errors import InputError
from detkit.evaluation.analysis import CONF_GRID, load_slices
from detkit.evaluation.result import evaluate
from tests.evaluation.cases import gt_with_crowd, preds

GT = make_dataset(
    [(1, "a.jpg", 100, 100), (2, "b.jpg", 100, 100)],
    [(1, 1, 1, 10, 10, 10, 10), (2, 2, 1, 20, 20, 50, 10)],
    [(1, "A"), (2, "B")],
)


def test_f1_curve_by_hand():
    # class A, 2 boxes: a hit at .9, a false positive at .6, a hit at .3
    p = preds([(1, 1, 10, 10, 10, 10, 0.9), (1, 1, 60, 60, 10, 10, 0.6), (2, 1, 20, 20, 50, 10, 0.3)])
    f1 = evaluate(GT, p, tide=False, conf=None).f1
    curve = np.asarray(f1["per_class"]["1"]["f1"])
    expect = np.select([CONF_GRID <= 0.3, CONF_GRID <= 0.6, CONF_GRID <= 0.9], [0.8, 0.5, 2 / 3], 0.0)
    np.testing.assert_allclose(curve, expect, atol=1e-6)  # P 2/3 R 1; P 1/2 R 1/2; P 1 R 1/2; nothing
    assert f1["per_class"]["1"]["best"] == {
        "conf": 0.3,
        "f1": pytest.approx(0.8),
        "precision": pytest.approx(2 / 3),
        "recall": 1.0,
    }
    assert f1["best"]["conf"] == 0.3 and list(f1["per_class"]) == ["1"]  # B has no ground truth: no curve


def test_anchor_coverage_by_hand():
    # box 1 (0.1 x 0.1 of its image) fits anchor [0.1, 0.1] exactly and is found; box 2 (0.5 x 0.1) fits
    # no anchor (best IoU 0.03 / 0.11 = 0.27 with [0.3, 0.3]) and is missed
    p = preds([(1, 1, 10, 10, 10, 10, 0.9)])
    a = evaluate(GT, p, tide=False, conf=None, anchors=[[0.1, 0.1], [0.3, 0.3]], anchors_norm="image").anchors
    rows = {r["best_anchor_iou"]: (r["gt"], r["matched"]) for r in a["buckets"]}
    assert rows == {"0.0-0.3": (1, 0), "0.3-0.5": (0, 0), "0.5-0.7": (0, 0), "0.7-1.0": (1, 1)}
    assert a["mean_best_iou_matched"] == pytest.approx(1.0)
    assert a["mean_best_iou_missed"] == pytest.approx(0.03 / 0.11)


def test_per_class_and_sizes():
    p = preds([(1, 1, 10, 10, 10, 10, 0.9)])
    r = evaluate(GT, p, tide=False, conf=None)
    rows = {x["name"]: x for x in r.per_class}
    assert rows["A"]["gt"] == 2 and rows["A"]["AP50"] == pytest.approx(51 / 101) and rows["A"]["AR100"] == 0.5
    assert rows["B"]["AP"] is None
    assert [(s["size"], s["gt"]) for s in r.sizes] == [
        ("small", 2),
        ("medium", 0),
        ("large", 0),
    ]  # 100 and 500 px² < 32²
    assert (
        r.metric("mAP50") == pytest.approx(51 / 101) and r.metric("APl") == 0.0
    )  # -1 (no large boxes) reads 0


def test_slices_file(tmp_path):
    gt = gt_with_crowd()
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"night": [1, "c.jpg"], "day": ["b"]}))
    assert {k: v.tolist() for k, v in load_slices(f, gt).items()} == {"night": [1, 3], "day": [2]}
    f.write_text(json.dumps({"night": [1, "zzz.jpg"]}))
    with pytest.raises(InputError, match=r"\$.night\[1\]"):
        load_slices(f, gt)


def test_ground_truth_with_undeclared_image_or_category_is_counted_not_scored():
    gt = make_dataset(
        [(1, "a.jpg", 100, 100)],
        [(1, 1, 1, 10, 10, 20, 20), (2, 7, 1, 10, 10, 20, 20), (3, 1, 5, 0, 0, 9, 9)],
        [(1, "A")],
    )
    for backend in (
        "hotcoco",
        "pycocotools",
    ):  # as COCOeval, which only sees the declared images and categories
        r = evaluate(gt, preds([(1, 1, 10, 10, 20, 20, 0.9)]), backend=backend)
        assert r.summary["AP"] == pytest.approx(1.0) and r.counts["gt_boxes"] == 1
        assert [(f["code"], f["count"]) for f in r.findings] == [
            ("gt.dangling_image", 1),
            ("gt.dangling_category", 1),
        ]


def test_grid_bins_equal_searchsorted_at_every_edge():
    """The F1 curve's bin of a score: each grid value, the floats just below and above it, 0, > 1, random."""
    from detkit.evaluation.analysis import grid_bins

    rng = np.random.default_rng(0)
    scores = np.concatenate(
        [
            CONF_GRID,
            np.nextafter(CONF_GRID, -1),
            np.nextafter(CONF_GRID, 2),
            np.arange(101) * 0.01,
            [0.0, 5e-324, 1.0, 1.5, 1e300],
            rng.uniform(0, 1.2, 100_000),
        ]
    )
    assert np.array_equal(grid_bins(scores), np.searchsorted(CONF_GRID, scores, side="right"))


def test_calibration_by_hand():
    """Scores 0.95 (TP), 0.91 (FP), 0.15 (FP), 0.12 (FP), one not counted: bins 9 and 1;
    bin 9: conf 0.93, accuracy 0.5; bin 1: conf 0.135, accuracy 0. ECE = (2 * 0.43 + 2 * 0.135) / 4."""
    from detkit.evaluation.analysis import calibration

    s = np.array([0.95, 0.91, 0.15, 0.12, 0.5])
    flag = np.array([1, 0, 0, 0, -1], np.int8)
    c = calibration(s, flag)
    assert [b["count"] for b in c["bins"]] == [0, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert c["bins"][9]["conf"] == pytest.approx(0.93) and c["bins"][9]["accuracy"] == 0.5
    assert c["bins"][0]["conf"] is None
    assert c["ece"] == pytest.approx((2 * 0.43 + 2 * 0.135) / 4)
    assert c["mce"] == pytest.approx(0.43)
    assert calibration(np.zeros(0), np.zeros(0, np.int8))["ece"] is None


@pytest.mark.parametrize("seed", [0, 1])
def test_calibration_equals_hotcocos(seed):
    """From the IoU-.50 matches already made: hotcoco's ``calibration`` bin for bin (counts, ECE, MCE)."""
    from detkit.evaluation.engine import coco_evaluate
    from tests.evaluation.cases import random_case

    gt, p = random_case(seed)
    mine = evaluate(gt, p, tide=False).calibration
    ref = coco_evaluate(gt, p).evaluator.calibration(n_bins=10, iou_threshold=0.5)
    assert [b["count"] for b in mine["bins"]] == [b["count"] for b in ref["bins"]]
    assert mine["ece"] == pytest.approx(ref["ece"], abs=1e-12)
    assert mine["mce"] == pytest.approx(ref["mce"], abs=1e-12)
