"""TIDE against its definitions (Bolya et al. 2020): one hand-made case per error type, where that error
occurs once, and its dAP equals AP50 after applying the paper's fix by hand minus AP50 before
(both scored by pycocotools)."""

from __future__ import annotations

import pytest

from detkit.datasets.model import make_dataset
from detkit.evaluation.engine import coco_evaluate
from detkit.evaluation.tide import TIDE_TYPES, tide_errors
from tests.evaluation.cases import preds

G1, G2 = (10, 10, 100, 100), (300, 300, 100, 100)
NEAR_G2 = (354, 300, 100, 100)  # IoU with G2 = 4600 / 15400 = 0.30: between t_b = .1 and t_f = .5


def _gt(boxes=(G1, G2)):
    return make_dataset(
        [(1, "a.jpg", 640, 480)], [(k + 1, 1, 1, *b) for k, b in enumerate(boxes)], [(1, "A"), (2, "B")]
    )


# name: (predictions, the same predictions with that error fixed as the paper says, fixed ground truth)
CASES = {
    "Cls": ([(1, 1, *G1, 0.9), (1, 2, *G2, 0.8)], [(1, 1, *G1, 0.9), (1, 1, *G2, 0.8)], None),  # right class
    "Loc": (
        [(1, 1, *G1, 0.9), (1, 1, *NEAR_G2, 0.8)],
        [(1, 1, *G1, 0.9), (1, 1, *G2, 0.8)],
        None,
    ),  # onto its box
    "Dupe": (
        [(1, 1, *G1, 0.9), (1, 1, *G1, 0.8), (1, 1, *G2, 0.7)],
        [(1, 1, *G1, 0.9), (1, 1, *G2, 0.7)],
        None,
    ),
    "Bkg": (
        [(1, 1, *G1, 0.9), (1, 1, 500, 10, 50, 50, 0.8), (1, 1, *G2, 0.7)],
        [(1, 1, *G1, 0.9), (1, 1, *G2, 0.7)],
        None,
    ),
    "Miss": ([(1, 1, *G1, 0.9)], [(1, 1, *G1, 0.9)], (G1,)),  # the missed box leaves the ground truth
}


def _ap50(gt, rows):
    return float(coco_evaluate(gt, preds(rows), "pycocotools").stats[1])


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_error_type(kind):
    rows, fixed, fixed_gt = CASES[kind]
    gt = _gt()
    t = tide_errors(coco_evaluate(gt, preds(rows)))
    counts = {e["type"]: e["count"] for e in t["errors"]}
    assert counts == {k: int(k == kind) for k in TIDE_TYPES}
    assert t["ap50"] == pytest.approx(_ap50(gt, rows), abs=1e-12)
    gt_fixed = _gt(fixed_gt) if fixed_gt else gt
    expected = _ap50(gt_fixed, fixed) - _ap50(gt, rows)
    assert expected > 0.1  # the error costs something
    d = {e["type"]: e["dAP"] for e in t["errors"]}
    assert d[kind] == pytest.approx(expected, abs=1e-9)


def test_both_is_removed_and_its_box_counts_as_missed():
    """Both (IoU .3 with a box of another class): the fix removes it — nothing gained here, since class B
    has no ground truth — and the box it was near is a Miss, as Miss covers all but Cls / Loc targets."""
    rows = [(1, 1, *G1, 0.9), (1, 2, *NEAR_G2, 0.8)]
    gt = _gt()
    t = tide_errors(coco_evaluate(gt, preds(rows)))
    counts = {e["type"]: e["count"] for e in t["errors"]}
    assert counts == {"Cls": 0, "Loc": 0, "Both": 1, "Dupe": 0, "Bkg": 0, "Miss": 1}
    d = {e["type"]: e["dAP"] for e in t["errors"]}
    assert d["Both"] == pytest.approx(_ap50(gt, rows[:1]) - _ap50(gt, rows), abs=1e-9) == 0
    assert d["Miss"] == pytest.approx(_ap50(_gt((G1,)), rows) - _ap50(gt, rows), abs=1e-9)


def test_pycocotools_backend_gives_the_same_tide():
    rows, _, _ = CASES["Dupe"]
    gt = _gt()
    assert tide_errors(coco_evaluate(gt, preds(rows), "pycocotools"), gt, preds(rows)) == tide_errors(
        coco_evaluate(gt, preds(rows))
    )
