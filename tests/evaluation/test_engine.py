"""hotcoco and pycocotools give the same 12 numbers and per-class AP (to 1e-9) on the edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from detkit.evaluation.analysis import per_class
from detkit.evaluation.engine import coco_evaluate
from detkit.evaluation.matching import best_first, coco_matches
from tests.evaluation.cases import backend_flags, gt_with_crowd, preds, random_case


def _both(gt, p, image_ids=None):
    return [coco_evaluate(gt, p, b, image_ids=image_ids) for b in ("hotcoco", "pycocotools")]


def _assert_same(gt, p, image_ids=None):
    hc, pc = _both(gt, p, image_ids)
    np.testing.assert_allclose(hc.stats, pc.stats, rtol=0, atol=1e-9)
    np.testing.assert_allclose(hc.precision, pc.precision, rtol=0, atol=1e-9)
    np.testing.assert_allclose(hc.recall, pc.recall, rtol=0, atol=1e-9)
    for a, b in zip(per_class(hc, gt), per_class(pc, gt)):
        for k in ("AP", "AP50", "AP75", "AR100"):
            assert (a[k] is None) == (b[k] is None) and (a[k] is None or abs(a[k] - b[k]) < 1e-9), (a, b)
    return hc


CASES = {
    # a detection on the crowd region is ignored, one on the dog is right, equal scores tie
    "crowd_and_ties": [
        (1, 1, 10, 10, 100, 100, 0.9),
        (1, 5, 200, 200, 20, 20, 0.9),
        (2, 5, 100, 100, 50, 50, 0.8),
        (2, 1, 50, 50, 300, 200, 0.7),
        (2, 1, 400, 300, 60, 90, 0.7),
        (2, 1, 52, 50, 300, 200, 0.7),
    ],
    "class_without_gt": [(1, 9, 10, 10, 100, 100, 0.9), (1, 1, 12, 10, 100, 100, 0.5)],
    "only_image_without_gt": [(3, 1, 10, 10, 100, 100, 0.9), (3, 5, 10, 10, 50, 50, 0.4)],
    "many_per_image": [(1, 1, 10 + i % 7, 10 + i % 5, 100, 100, round(1 - i / 300, 3)) for i in range(250)]
    + [(1, 5, 200, 200, 20, 20, 0.001)],
    # > 100 detections of a class without ground truth on one image (the 100 best counted), 3 on another
    "many_without_gt": [(1, 9, 10 + i % 5, 10, 50, 50, round(1 - i / 200, 3)) for i in range(150)]
    + [(3, 9, 5, 5, 20, 20, 0.5)] * 3
    + [(1, 1, 10, 10, 100, 100, 0.9)],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_parity_hand_made(name):
    _assert_same(gt_with_crowd(), preds(CASES[name]))


def test_empty_results_score_zero_on_both():
    hc = _assert_same(gt_with_crowd(), preds([]))
    assert hc.stats[0] == 0 and hc.stats[8] == 0


def test_known_values():
    """One perfect cat, dog missed: cat AP 1, dog AP 0, owl (no GT) None; mAP 0.5."""
    gt = gt_with_crowd()
    hc = _assert_same(
        gt,
        preds([(1, 1, 10, 10, 100, 100, 0.9), (2, 1, 50, 50, 300, 200, 0.8), (2, 1, 400, 300, 60, 90, 0.7)]),
    )
    rows = {r["name"]: r for r in per_class(hc, gt)}
    assert rows["cat"]["AP"] == 1.0 and rows["dog"]["AP"] == 0.0 and rows["owl"]["AP"] is None
    assert rows["cat"]["gt"] == 3 and rows["dog"]["gt"] == 1  # the crowd box is not counted
    assert hc.stats[0] == pytest.approx(0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parity_generated(seed):
    gt, p = random_case(seed)
    hc = _assert_same(gt, p)
    assert 0.05 < hc.stats[1] < 0.95  # a case with hits and misses, not a degenerate one
    _assert_same(gt, p, image_ids=gt.image_id[::2])  # a subset of images


@pytest.mark.parametrize("seed", [3, 4])
def test_matches_equal_both_backends(seed):
    """coco_matches (numpy rounds) = hotcoco's image_diagnostics = pycocotools' evalImgs, flag for flag,
    with crowd boxes, > 100 detections on an image and equal scores; also on a subset of images."""
    gt, p = random_case(seed)
    for ids in (None, gt.image_id[1::3]):
        ours = coco_matches(gt, p, 0.5, image_ids=ids)
        for core in _both(gt, p, image_ids=ids):
            for a, b in zip(ours, backend_flags(core, gt, p)):
                np.testing.assert_array_equal(a, b)
    dt, g = coco_matches(gt, p, 0.5)
    assert (dt == 1).sum() == (g == 1).sum() > 0 and (dt == -1).sum() > 0  # some on crowd / beyond 100


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_hand_made(name):
    gt, p = gt_with_crowd(), preds(CASES[name])
    for core in _both(gt, p):
        for a, b in zip(coco_matches(gt, p, 0.5), backend_flags(core, gt, p)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_best_first_is_the_stable_lexsort(seed):
    """Group ascending, score descending, row ascending on ties — with many equal scores, -0.0 beside 0.0,
    and a negative group (the lexsort fallback)."""
    rng = np.random.default_rng(seed)
    n = 2000
    rows = np.sort(rng.choice(10 * n, size=n, replace=False))
    group = rng.integers(0, 30, n)
    score = rng.integers(0, 20, n) / 19.0
    score[rng.uniform(size=n) < 0.05] = -0.0
    ref = rows[np.lexsort((rows, -score, group))]
    assert (best_first(rows, group, score) == ref).all()
    group[0] = -1
    assert (best_first(rows, group, score) == rows[np.lexsort((rows, -score, group))]).all()
    assert len(best_first(rows[:0], group[:0], score[:0])) == 0
