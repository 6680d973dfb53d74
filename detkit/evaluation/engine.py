"""COCO evaluation (pycocotools' COCOeval semantics) of :class:`Predictions` against a :class:`Dataset`.

Two backends compute the same numbers: ``hotcoco`` (Rust, the default: built straight from the columns,
no Python dict per box) and ``pycocotools`` (the reference, kept as the cross-check). Both give

    stats       (12,)              AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl
    precision   (T, R, K, A, M)    T=10 IoU thresholds .50:.05:.95, R=101 recall points, K categories
                                   (sorted ids), A=4 areas (all, small, medium, large), M=3 maxDets (1, 10,
                                   100);
                                   -1 where a category has no ground truth
    recall      (T, K, A, M)
    scores      (T, R, K, A, M)    the score at which each precision point is reached

Which detection matched which box, per detection, comes from :mod:`detkit.evaluation.matching`.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detkit.datasets.model import Dataset
from detkit.evaluation.predictions import Predictions

BACKENDS = ("hotcoco", "pycocotools")
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


@dataclass
class CocoCore:
    """What COCOeval's evaluate + accumulate + summarize produce (see the module docstring)."""

    stats: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray
    cat_ids: np.ndarray  # (K,) the category axis
    iou_thrs: np.ndarray  # (T,)
    rec_thrs: np.ndarray  # (R,)
    image_ids: np.ndarray  # the images evaluated
    backend: str
    evaluator: Any = field(default=None, repr=False)  # the backend's COCOeval (kept for re-slicing)

    def summary(self) -> dict[str, float]:
        return {k: float(v) for k, v in zip(STAT_NAMES, self.stats)}


def _images(gt: Dataset) -> list[dict[str, Any]]:
    return [
        {"id": i, "file_name": str(f), "width": w, "height": h}
        for i, f, w, h in zip(
            gt.image_id.tolist(), gt.file_name.tolist(), gt.width.tolist(), gt.height.tolist()
        )
    ]


def _categories(gt: Dataset) -> list[dict[str, Any]]:
    return [
        {"id": i, "name": str(n), "supercategory": ""}
        for i, n in zip(gt.cat_id.tolist(), gt.cat_name.tolist())
    ]


def _dt_array(preds: Predictions) -> np.ndarray:
    """(N, 7) image_id, x, y, w, h, score, category_id: the array form both libraries' loadRes take."""
    a = np.empty((len(preds), 7))
    a[:, 0], a[:, 1:5], a[:, 5], a[:, 6] = preds.image_id, preds.bbox, preds.score, preds.category_id
    return a


# ---- hotcoco -------------------------------------------------------------------------------------------
def _hotcoco_eval(gt: Dataset, preds: Predictions, image_ids: np.ndarray | None):
    import hotcoco

    coco_gt = hotcoco.COCO.from_arrays(
        _images(gt),
        _categories(gt),
        gt.ann_image_id,
        gt.category_id,
        gt.bbox,
        ids=gt.ann_id,
        area=gt.area,
        iscrowd=gt.iscrowd,
    )
    coco_dt = coco_gt.load_res(_dt_array(preds) if len(preds) else np.zeros((0, 7)))
    ev = hotcoco.COCOeval(coco_gt, coco_dt, "bbox")
    if image_ids is not None:
        ev.params.imgIds = [int(i) for i in image_ids]
    ev.evaluate()
    ev.accumulate()
    ev.summary_lines()  # fills ev.stats without printing
    return ev


# ---- pycocotools ---------------------------------------------------------------------------------------
def _pycoco_eval(gt: Dataset, preds: Predictions, image_ids: np.ndarray | None):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    anns = [
        {"id": a, "image_id": i, "category_id": c, "bbox": b, "area": ar, "iscrowd": cr}
        for a, i, c, b, ar, cr in zip(
            gt.ann_id.tolist(),
            gt.ann_image_id.tolist(),
            gt.category_id.tolist(),
            gt.bbox.tolist(),
            gt.area.tolist(),
            gt.iscrowd.tolist(),
        )
    ]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress on stdout
        coco_gt = COCO()
        coco_gt.dataset = {
            "info": {},
            "images": _images(gt),
            "annotations": anns,
            "categories": _categories(gt),
        }
        coco_gt.createIndex()
        if len(preds):
            coco_dt = coco_gt.loadRes(_dt_array(preds))
        else:  # loadRes([]) raises IndexError; an empty result set scores 0
            coco_dt = COCO()
            coco_dt.dataset = {
                "images": coco_gt.dataset["images"],
                "categories": coco_gt.dataset["categories"],
                "annotations": [],
            }
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        if image_ids is not None:
            ev.params.imgIds = [int(i) for i in image_ids]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def coco_evaluate(
    gt: Dataset, preds: Predictions, backend: str = "hotcoco", image_ids: np.ndarray | None = None
) -> CocoCore:
    """COCOeval (bbox) of checked predictions; see the module docstring for what comes back.

    Args:
        gt: the ground truth (its ``area`` and ``iscrowd`` columns are used as COCO uses them).
        preds: predictions already checked by :func:`~detkit.evaluation.predictions.check_predictions`.
        backend: ``hotcoco`` or ``pycocotools``.
        image_ids: evaluate only these images (default: all of ``gt``).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    ev = (_hotcoco_eval if backend == "hotcoco" else _pycoco_eval)(gt, preds, image_ids)
    e, p = ev.eval, ev.params
    return CocoCore(
        stats=np.asarray(ev.stats, dtype=np.float64),
        precision=np.asarray(e["precision"]),
        recall=np.asarray(e["recall"]),
        scores=np.asarray(e["scores"]),
        cat_ids=np.asarray(p.catIds, dtype=np.int64),
        iou_thrs=np.asarray(p.iouThrs, dtype=np.float64),
        rec_thrs=np.asarray(p.recThrs, dtype=np.float64),
        image_ids=np.asarray(p.imgIds, dtype=np.int64),
        backend=backend,
        evaluator=ev,
    )


def slice_stats(
    core: CocoCore, gt: Dataset, preds: Predictions, slices: dict[str, np.ndarray]
) -> dict[str, dict[str, float]]:
    """The 12 numbers on each named subset of images (hotcoco re-accumulates without new IoUs)."""
    if core.backend == "hotcoco" and slices:
        got = core.evaluator.slice_by({k: [int(i) for i in v] for k, v in slices.items()})
        return {k: {s: float(got[k][s]) for s in STAT_NAMES} for k in slices}
    return {k: coco_evaluate(gt, preds, core.backend, image_ids=v).summary() for k, v in slices.items()}
