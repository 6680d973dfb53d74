"""``evaluate(gt, preds) -> EvalResult``: every number ``detkit coco eval`` reports, as data.

The order of work: check the predictions (:mod:`.predictions`), run COCOeval once (:mod:`.engine`), then
read everything else off that one evaluation — per-class rows, PR curves and sizes from its accumulated
arrays, the F1 curve and anchor coverage from its IoU-.50 matches, slices by re-accumulating, TIDE from
its per-image matches — plus the confusion matrix (:mod:`.confusion`), which matches across classes.
``notes`` say what looks wrong in predictions that were scored as given (boxes past their image, images
without predictions). The IoU-.50 matches, the F1 curves, the confusion matrix and the notes need nothing
from COCOeval, so they are computed while hotcoco runs (:func:`_cocoeval_beside`).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from detkit.datasets.load import load_dataset
from detkit.datasets.model import Dataset
from detkit.errors import InputError
from detkit.evaluation import analysis
from detkit.evaluation.confusion import confusion_matrix
from detkit.evaluation.engine import STAT_NAMES, coco_evaluate, slice_stats
from detkit.evaluation.matching import coco_matches
from detkit.evaluation.per_image import per_image_errors, worst
from detkit.evaluation.predictions import (
    Predictions,
    boxes_overflowing,
    boxes_past_image,
    check_predictions,
    empty_boxes,
    from_results,
    ids_by_numbering,
    images_without_predictions,
    load_predictions,
)
from detkit.evaluation.tide import tide_errors

# names --fail-under and EvalResult.metric accept besides the 12 COCO keys
ALIASES = {"mAP": "AP", "mAP50": "AP50", "mAP75": "AP75"}


@dataclass
class EvalConfig:
    """Options of one evaluation (defaults: ultralytics' ``val`` for the confusion matrix, TIDE's
    for TIDE)."""

    backend: str = "hotcoco"
    lenient: bool = False
    conf: float = 0.25  # confusion matrix: detections scoring at least this
    iou: float = 0.45  # confusion matrix: IoU that makes a match
    tide: bool = False  # TIDE error breakdown (costs time and memory: docs/benchmarks.md)
    curves: bool = True  # PR and F1-confidence curves
    slices: dict[str, Any] | None = None  # name -> image ids (see analysis.load_slices)
    anchors: Any = None  # (k, 2) normalised anchors
    anchors_norm: str = "image"
    per_image: bool = False  # errors per image (at per_image_conf, default the best-F1 confidence)
    per_image_conf: float | None = None


@dataclass
class EvalResult:
    """Everything one evaluation reports (see ``as_dict`` for the JSON form)."""

    summary: dict[str, float]
    per_class: list[dict[str, Any]]
    counts: dict[str, int]
    backend: str
    findings: list[dict[str, Any]] = field(default_factory=list)  # what was dropped (lenient), counted
    notes: list[dict[str, Any]] = field(default_factory=list)  # what looks wrong but was scored as given
    sizes: list[dict[str, Any]] = field(default_factory=list)
    slices: dict[str, dict[str, float]] = field(default_factory=dict)
    pr_curves: dict[str, Any] = field(default_factory=dict)
    f1: dict[str, Any] = field(default_factory=dict)
    confusion: dict[str, Any] | None = None
    tide: dict[str, Any] | None = None
    anchors: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None
    per_image: dict[str, Any] | None = None  # per_image.per_image_errors (as_dict: totals and the worst 20)
    seconds: dict[str, float] = field(default_factory=dict)
    preds: Predictions | None = field(default=None, repr=False)  # the checked predictions scored

    def metric(self, name: str) -> float:
        """A summary number by name (the 12 COCO keys, mAP / mAP50 / mAP75, F1); KeyError when unknown."""
        if name == "F1":
            return float(self.f1["best"]["f1"]) if self.f1.get("best") else 0.0
        key = ALIASES.get(name, name)
        if key not in self.summary:
            raise KeyError(name)
        return max(self.summary[key], 0.0)  # -1: no ground truth of that kind

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (NaN as None; ``seconds`` left out so that the same inputs give the same
        document); shares the lists it holds (no deep copy of the curves)."""
        doc = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("seconds", "preds")}
        if self.per_image is not None:
            p = self.per_image
            doc["per_image"] = {k: p[k] for k in ("conf", "iou", "totals")} | {"worst": worst(p["rows"], 20)}
        return analysis.clean(doc)


def evaluate(
    gt: Dataset, preds: Predictions | list[dict[str, Any]], config: EvalConfig | None = None, **options: Any
) -> EvalResult:
    """Score ``preds`` against ``gt`` the way pycocotools does, and analyse the errors.

    Args:
        gt: the ground truth.
        preds: :class:`Predictions` or COCO results rows (``image_id, category_id, bbox xywh, score``).
        config: an :class:`EvalConfig`; ``**options`` override its fields (``backend="pycocotools"``).

    Raises:
        InputError: a bad prediction (unknown image or category, bad score or box) unless ``lenient``; a
            ground truth without a single (non-crowd) box.
    """
    cfg = EvalConfig(**{**(asdict(config) if config else {}), **options})
    if not isinstance(preds, Predictions):
        preds = from_results(preds, source="predictions")
    preds, findings = check_predictions(gt, preds, lenient=cfg.lenient)
    return _evaluate_checked(gt, preds, cfg, findings)


def _evaluate_checked(
    gt: Dataset, preds: Predictions, cfg: EvalConfig, findings: list[dict[str, Any]]
) -> EvalResult:
    """:func:`evaluate` of predictions already checked against ``gt``."""
    gt, gt_findings = usable_gt(gt)
    findings = gt_findings + findings
    if not (gt.iscrowd == 0).any():
        raise InputError(
            gt.source or "ground truth",
            None,
            "has no boxes to score the predictions against"
            + (" (only crowd regions)" if gt.num_annotations else ""),
        )
    overflow = boxes_overflowing(preds)
    # numpy would warn (a source line on stderr) at each sum or product past float64; one note says it
    quiet = np.errstate(over="ignore", invalid="ignore") if overflow else contextlib.nullcontext()
    with quiet:
        return _evaluate_quiet(gt, preds, cfg, findings, overflow)


def _evaluate_quiet(
    gt: Dataset, preds: Predictions, cfg: EvalConfig, findings: list[dict[str, Any]], overflow
) -> EvalResult:
    core, (matches, f1, confusion, notes), sec = _cocoeval_beside(gt, preds, cfg)
    if overflow is not None:
        notes = [overflow, *notes]
    crowd = gt.iscrowd != 0
    res = EvalResult(
        summary=core.summary(),
        per_class=analysis.per_class(core, gt),
        backend=cfg.backend,
        findings=findings,
        counts={
            "images": gt.num_images,
            "gt_boxes": int((~crowd).sum()),
            "crowd_boxes": int(crowd.sum()),
            "predictions": len(preds),
            "categories": gt.num_categories,
        },
        sizes=_sizes(core, gt),
        f1=f1 or {},
        confusion=confusion,
        notes=notes,
        preds=preds,
    )
    t = time.perf_counter()
    if cfg.slices:
        res.slices = slice_stats(
            core, gt, preds, {k: np.asarray(v, dtype=np.int64) for k, v in cfg.slices.items()}
        )
    if cfg.curves:
        res.pr_curves = {"iou50": analysis.pr_curves(core, 0.5), "iou75": analysis.pr_curves(core, 0.75)}
    if matches is not None:
        res.calibration = analysis.calibration(preds.score, matches[0])
    if cfg.per_image:
        conf = cfg.per_image_conf
        if conf is None:
            conf = res.f1["best"]["conf"] if res.f1.get("best") else 0.25
        res.per_image = per_image_errors(gt, preds, conf)
    if cfg.anchors is not None:
        res.anchors = analysis.anchor_coverage(
            gt, matches[1], np.asarray(cfg.anchors, dtype=np.float64), cfg.anchors_norm
        )
    sec["analysis"] = time.perf_counter() - t
    t = time.perf_counter()
    if cfg.tide:
        res.tide = tide_errors(core, gt, preds)
    sec["tide"] = time.perf_counter() - t
    res.seconds = {k: round(v, 3) for k, v in sec.items()}
    return res


def _cocoeval_beside(gt: Dataset, preds: Predictions, cfg: EvalConfig) -> tuple[Any, tuple[Any, ...], dict]:
    """COCOeval, and beside it what does not need its result: the IoU-.50 matches, the F1 curves, the
    confusion matrix and the notes. hotcoco runs in a worker thread (Rust, which mostly lets go of Python's
    lock) while numpy does the rest here. pycocotools, pure Python, runs first instead. Returns (core,
    (matches, f1 curves, confusion matrix — each None when not asked —, notes), seconds)."""
    from concurrent.futures import ThreadPoolExecutor

    sec: dict[str, float] = {}

    def rest() -> tuple[Any, Any, Any, list[dict[str, Any]]]:
        t = time.perf_counter()
        matches = coco_matches(gt, preds, 0.5) if cfg.curves or cfg.anchors is not None else None
        f1 = confusion = None
        if cfg.curves:  # on COCOeval's category axis: the sorted ground-truth ids
            f1 = analysis.f1_curves(np.unique(gt.cat_id), gt, preds.category_id, preds.score, *matches)
        if cfg.conf is not None:
            confusion = confusion_matrix(gt, preds, conf=cfg.conf, iou=cfg.iou)
        notes = [
            n
            for n in (empty_boxes(preds), boxes_past_image(gt, preds), images_without_predictions(gt, preds))
            if n is not None
        ]
        sec["matching"] = time.perf_counter() - t
        return matches, f1, confusion, notes

    t = time.perf_counter()
    if cfg.backend != "hotcoco":
        core = coco_evaluate(gt, preds, cfg.backend)
        sec["cocoeval"] = time.perf_counter() - t
        return core, rest(), sec
    with ThreadPoolExecutor(1, thread_name_prefix="detkit-cocoeval") as pool:
        pending = pool.submit(coco_evaluate, gt, preds, cfg.backend)
        done = rest()
        core = pending.result()
    sec["cocoeval"] = time.perf_counter() - t
    return core, done, sec


def usable_gt(gt: Dataset) -> tuple[Dataset, list[dict[str, Any]]]:
    """The ground truth without boxes whose image or category is not declared (COCOeval never sees them:
    it evaluates the declared images and categories), each kind reported as a counted finding."""
    bad_img, bad_cat = gt.image_index() < 0, gt.category_index() < 0
    if not (bad_img.any() or bad_cat.any()):
        return gt, []
    findings = []
    for code, mask, what in (
        ("gt.dangling_image", bad_img, "image_id"),
        ("gt.dangling_category", bad_cat, "category_id"),
    ):
        if mask.any():
            i = int(np.argmax(mask))
            col = gt.ann_image_id if what == "image_id" else gt.category_id
            findings.append(
                {
                    "code": code,
                    "count": int(mask.sum()),
                    "message": f"ground-truth boxes whose {what} is not declared (not scored)",
                    "example": f"{gt.source}:{gt.record(i)}: {what} {int(col[i])}",
                }
            )
    keep = ~(bad_img | bad_cat)
    cols = {
        k: getattr(gt, k)[keep] for k in ("ann_id", "ann_image_id", "category_id", "bbox", "area", "iscrowd")
    }
    rec = None if gt.ann_record is None else gt.ann_record[keep]
    return replace(gt, **cols, ann_record=rec, missing={k: v[keep] for k, v in gt.missing.items()}), findings


def _sizes(core, gt: Dataset) -> list[dict[str, Any]]:
    """AP and AR100 by COCO size (area < 32², < 96², larger; by the ground truth's ``area``) and GT counts."""
    use = gt.iscrowd == 0
    rng = [(0, 32**2), (32**2, 96**2), (96**2, 1e10)]
    s = core.summary()
    return [
        {
            "size": name,
            "gt": int((use & (gt.area >= lo) & (gt.area <= hi)).sum()),
            "AP": _or_none(s[f"AP{name[0]}"]),
            "AR100": _or_none(s[f"AR{name[0]}"]),
        }
        for name, (lo, hi) in zip(("small", "medium", "large"), rng)
    ]


def _or_none(v: float) -> float | None:
    return None if v < 0 else v  # COCOeval's -1: no ground truth of that size


def load_checked(
    gt_path: str | Path,
    pred_path: str | Path,
    gt_format: str | None = None,
    gt_split: str | None = None,
    pred_format: str | None = None,
    lenient: bool = False,
) -> tuple[Dataset, Predictions, list[dict[str, Any]]]:
    """The ground truth and the checked predictions read from files, with the findings of what was dropped
    (``lenient``; otherwise a bad prediction raises :class:`~detkit.errors.InputError`)."""

    gt = load_dataset(gt_path, format=gt_format, split=gt_split)
    preds, unmatched = load_predictions(pred_path, gt, pred_format)
    preds, findings = check_predictions(gt, preds, lenient=lenient, unmatched=unmatched)
    return gt, preds, findings


def load_and_evaluate(
    gt_path: str | Path,
    pred_path: str | Path,
    gt_format: str | None = None,
    gt_split: str | None = None,
    pred_format: str | None = None,
    slices: str | Path | None = None,
    anchors: str | Path | None = None,
    **options: Any,
) -> tuple[Dataset, EvalResult]:
    """Read the ground truth (``gt_split``: only that split of a multi-split source), predictions, slices and
    anchors from files, then :func:`evaluate`."""
    gt, preds, findings = load_checked(
        gt_path, pred_path, gt_format, gt_split, pred_format, bool(options.get("lenient"))
    )
    if slices is not None:
        options["slices"] = analysis.load_slices(slices, gt)
    if anchors is not None:
        options["anchors"], options["anchors_norm"] = analysis.load_anchors(anchors)
    res = _evaluate_checked(gt, preds, EvalConfig(**options), findings)
    res.notes += [
        n for n in (ids_by_numbering(gt, preds),) if n is not None
    ]  # a file's ids, not detkit's own
    return gt, res


__all__ = ["STAT_NAMES", "EvalConfig", "EvalResult", "evaluate", "load_and_evaluate"]
