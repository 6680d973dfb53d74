"""TIDE error breakdown (Bolya et al., "TIDE: A General Toolbox for Identifying Object Detection Errors",
ECCV 2020), computed by hotcoco and checked against the paper's definitions in tests/evaluation/test_tide.py.

With the foreground threshold t_f (``pos_thr``, .50) and the background threshold t_b (``bg_thr``, .10),
each false positive is one error, judged by its largest IoU with a ground-truth box:

    Cls    IoU >= t_f with a box of another class              fix: give it the right class
    Loc    t_b <= IoU < t_f with a box of its class            fix: move it onto that box
    Both   t_b <= IoU < t_f with a box of another class        fix: remove it
    Dupe   IoU >= t_f with a box of its class already matched  fix: remove it
           by a better-scoring detection
    Bkg    IoU < t_b with every box                            fix: remove it
    Miss   a box no detection matched or tried to (not Cls/Loc) fix: drop it from the ground truth

dAP of a type = AP50 after applying only that type's fixes - AP50 as it is (COCO's 101-point AP at t_f,
averaged over the classes with ground truth), so the dAPs say how much mAP50 fixing each would add.
"""

from __future__ import annotations

from typing import Any

from detkit.datasets.model import Dataset
from detkit.evaluation.engine import CocoCore, coco_evaluate
from detkit.evaluation.predictions import Predictions

TIDE_TYPES = ("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss")


def tide_errors(
    core: CocoCore,
    gt: Dataset | None = None,
    preds: Predictions | None = None,
    pos_thr: float = 0.5,
    bg_thr: float = 0.1,
) -> dict[str, Any]:
    """Counts and dAP per TIDE error type, plus the FP / FN oracles (module docstring).

    Args:
        core: an evaluation; a pycocotools one needs ``gt`` and ``preds`` (re-run on hotcoco for TIDE).
        pos_thr, bg_thr: t_f and t_b.

    Returns:
        ``ap50`` (the baseline), ``pos_thr``, ``bg_thr``, ``errors``: one row per type with ``type``,
        ``count`` and ``dAP``, and ``oracles``: dAP with every false positive removed (``FP``) and with
        every miss dropped (``FN``).
    """
    ev = core.evaluator
    if core.backend != "hotcoco":
        if gt is None or preds is None:
            raise ValueError("TIDE on a pycocotools evaluation needs gt and preds")
        ev = coco_evaluate(gt, preds, "hotcoco", image_ids=core.image_ids).evaluator
    t = ev.tide_errors(pos_thr=pos_thr, bg_thr=bg_thr)
    d, c = t["delta_ap"], t["counts"]
    return {
        "ap50": float(t["ap_base"]),
        "pos_thr": pos_thr,
        "bg_thr": bg_thr,
        "errors": [{"type": k, "count": int(c.get(k, 0)), "dAP": float(d.get(k, 0.0))} for k in TIDE_TYPES],
        "oracles": {"FP": float(d.get("FP", 0.0)), "FN": float(d.get("FN", 0.0))},
    }
