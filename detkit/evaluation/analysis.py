"""What the COCO numbers hide: per-class AP, AP by size and slice, PR and F1-confidence curves, anchor fit.

From the accumulated arrays of :class:`~detkit.evaluation.engine.CocoCore` (precision (T, R, K, A, M),
recall (T, K, A, M)) — area index 0 = all, 1..3 = small / medium / large; maxDets index -1 = 100:

    AP_k        mean of precision[:, :, k, 0, -1] over the entries > -1 (COCO's own per-class AP)
    AP50_k      the same at IoU .50 (t = 0), AP75_k at IoU .75 (t = 5)
    AR100_k     mean of recall[:, k, 0, -1] over the entries > -1

The F1-confidence curve (ultralytics' ``val`` curve) uses the detections matched at IoU .50 (COCO's greedy
matching, 100 per image and class): for a threshold c, P(c) = TP / (TP + FP) and R(c) = TP / GT over the
detections scoring >= c (P = 1 when none does), F1 = 2PR / (P + R). The overall curve is the mean of the
per-class curves, and its maximum gives the deployment confidence (the highest c that reaches it).

Anchor coverage: each ground-truth box's best IoU with any anchor, boxes and anchors centred on a common point
and sized in the anchors' normalisation (``image``: w / W, h / H; ``letterbox``: w / max(W, H)), bucketed,
with the recall at IoU .50 of the boxes in each bucket."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from detkit.anchors.units import dataset_wh
from detkit.datasets.model import Dataset
from detkit.errors import InputError
from detkit.evaluation.engine import CocoCore
from detkit.evaluation.predictions import index_of

AREAS = ("all", "small", "medium", "large")
CONF_GRID = np.round(np.linspace(0.0, 1.0, 101), 2)  # thresholds of the F1 curve
ANCHOR_BUCKETS = (0.0, 0.3, 0.5, 0.7, 1.0 + 1e-9)


def _mean_valid(a: np.ndarray) -> float | None:
    v = a[a > -1]
    return float(v.mean()) if v.size else None


def per_class(core: CocoCore, gt: Dataset, image_ids: np.ndarray | None = None) -> list[dict[str, Any]]:
    """One row per category: id, name, GT boxes (non-crowd), AP, AP50, AP75, APs/m/l, AR100 (None: no GT)."""
    names = gt.category_names()
    use = gt.iscrowd == 0
    if image_ids is not None:
        use &= np.isin(gt.ann_image_id, image_ids)
    cats, counts = np.unique(gt.category_id[use], return_counts=True)
    n_gt = dict(zip(cats.tolist(), counts.tolist()))
    rows = []
    for k, c in enumerate(core.cat_ids.tolist()):
        p = core.precision[:, :, k, :, -1]
        rows.append(
            {
                "category_id": c,
                "name": names.get(c, str(c)),
                "gt": int(n_gt.get(c, 0)),
                "AP": _mean_valid(p[:, :, 0]),
                "AP50": _mean_valid(p[0, :, 0]),
                "AP75": _mean_valid(p[5, :, 0]),
                "APs": _mean_valid(p[:, :, 1]),
                "APm": _mean_valid(p[:, :, 2]),
                "APl": _mean_valid(p[:, :, 3]),
                "AR100": _mean_valid(core.recall[:, k, 0, -1]),
            }
        )
    return rows


def pr_curves(core: CocoCore, iou: float) -> dict[str, Any]:
    """COCO's interpolated precision at the 101 recall points, per class and averaged, at one IoU."""
    t = int(np.argmin(np.abs(core.iou_thrs - iou)))
    p = core.precision[t, :, :, 0, -1]  # (R, K)
    valid = (p > -1).all(axis=0)
    mean = p[:, valid].mean(axis=1) if valid.any() else np.zeros(len(core.rec_thrs))
    return {
        "iou": float(core.iou_thrs[t]),
        "recall": core.rec_thrs.round(2).tolist(),
        "mean": mean.round(6).tolist(),
        "per_class": {
            str(c): p[:, k].round(6).tolist() for k, c in enumerate(core.cat_ids.tolist()) if valid[k]
        },
    }


def grid_bins(score: np.ndarray, grid: np.ndarray = CONF_GRID) -> np.ndarray:
    """How many ``grid`` thresholds each score reaches: ``np.searchsorted(grid, score, "right")`` without a
    binary search. The grid is k / m (m = its length - 1; ``CONF_GRID``, or COCOeval's recall thresholds),
    so k = floor(m s) is the answer's last threshold or one off it (rounding), and two comparisons with the
    grid settle it."""
    k = np.clip(np.floor(score * (len(grid) - 1)), 0, len(grid) - 1).astype(np.int64)
    nxt = np.minimum(k + 1, len(grid) - 1)
    return k + (grid[k] <= score) + ((k + 1 < len(grid)) & (grid[nxt] <= score))


def f1_curves(
    cats: np.ndarray,
    gt: Dataset,
    pred_cat: np.ndarray,
    pred_score: np.ndarray,
    dt_flag: np.ndarray,
    gt_flag: np.ndarray,
) -> dict[str, Any]:
    """Precision, recall and F1 against the confidence threshold (module docstring), and each best F1.

    Args:
        cats: the category axis (sorted ids, as COCOeval's).
        gt: the ground truth (its category column, aligned with ``gt_flag``).
        pred_cat, pred_score: per detection.
        dt_flag, gt_flag: from :func:`~detkit.evaluation.matching.coco_matches` at IoU .50.
    """
    # counts per (class, threshold) by histogram, no loop over detections per class: a detection scoring s
    # counts at the grid thresholds c <= s, i.e. at indices below b = #(grid <= s)
    counted = dt_flag >= 0
    k_dt = index_of(cats, pred_cat[counted])
    ok = k_dt >= 0
    b = grid_bins(pred_score[counted])
    cells = (k_dt * (len(CONF_GRID) + 1) + b)[ok]
    shape = (len(cats), len(CONF_GRID) + 1)
    n_all = np.bincount(cells, minlength=shape[0] * shape[1]).reshape(shape)
    n_tp = np.bincount(cells, weights=dt_flag[counted][ok], minlength=shape[0] * shape[1]).reshape(shape)
    n_at = n_all[:, ::-1].cumsum(axis=1)[:, ::-1][:, 1:]  # (K, len(CONF_GRID)): scoring >= each threshold
    tp_at = n_tp[:, ::-1].cumsum(axis=1)[:, ::-1][:, 1:]
    k_gt = index_of(cats, gt.category_id[gt_flag >= 0])
    gt_count = np.bincount(k_gt[k_gt >= 0], minlength=len(cats))
    f1s, per = [], {}
    for k, c in enumerate(cats.tolist()):
        n_gt = int(gt_count[k])
        if n_gt == 0:
            continue
        n, tps = n_at[k], tp_at[k]
        prec = np.where(n > 0, tps / np.maximum(n, 1), 1.0)
        rec = tps / n_gt
        f1 = 2 * prec * rec / np.maximum(prec + rec, 1e-16)
        f1s.append(f1)
        b = _last_argmax(f1)
        # a class no detection reached: no threshold is best (not the top of the grid)
        best = _best(b, f1, prec, rec) if f1[b] > 0 else None
        per[str(c)] = {"f1": f1.round(6).tolist(), "best": best}
    if not f1s:
        return {"conf": CONF_GRID.tolist(), "mean_f1": [0.0] * len(CONF_GRID), "best": None, "per_class": {}}
    mean = np.mean(f1s, axis=0)
    b = _last_argmax(mean)
    return {
        "conf": CONF_GRID.tolist(),
        "mean_f1": mean.round(6).tolist(),
        "best": {"conf": float(CONF_GRID[b]), "f1": float(mean[b])} if mean[b] > 0 else None,
        "per_class": per,
    }


def _last_argmax(v: np.ndarray) -> int:
    """The highest threshold that reaches the best F1 (the strictest one a deployment can use)."""
    return len(v) - 1 - int(np.argmax(v[::-1]))


def _best(b: int, f1: np.ndarray, p: np.ndarray, r: np.ndarray) -> dict[str, float]:
    return {"conf": float(CONF_GRID[b]), "f1": float(f1[b]), "precision": float(p[b]), "recall": float(r[b])}


# ---- calibration -------------------------------------------------------------------------------------------
def calibration(score: np.ndarray, dt_flag: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """How well the scores read as probabilities of being right at IoU .50 (a reliability diagram).

    The counted detections (``dt_flag`` >= 0, from :func:`~detkit.evaluation.matching.coco_matches` at IoU
    .50) fall into ``bins`` equal score bins [i/B, (i+1)/B) (the last one closed; scores above 1 in it).
    Per bin: n_b, the mean score conf_b and the share of true positives acc_b;

        ECE = sum_b n_b / N |acc_b - conf_b|        MCE = max_b |acc_b - conf_b| (bins with detections)

    Returns:
        ``bins`` (per bin: ``lo``, ``hi``, ``count``, ``conf`` and ``accuracy``, None when empty), ``ece``,
        ``mce`` (None without detections).
    """
    counted = dt_flag >= 0
    s, tp = score[counted], (dt_flag[counted] == 1).astype(np.float64)
    b = np.clip(np.floor(s * bins), 0, bins - 1).astype(np.int64)
    n = np.bincount(b, minlength=bins)
    conf_sum = np.bincount(b, weights=s, minlength=bins)
    tp_sum = np.bincount(b, weights=tp, minlength=bins)
    rows, gaps = [], []
    for i in range(bins):
        c = float(conf_sum[i] / n[i]) if n[i] else None
        a = float(tp_sum[i] / n[i]) if n[i] else None
        if n[i]:
            gaps.append((int(n[i]), abs(a - c)))
        rows.append({"lo": i / bins, "hi": (i + 1) / bins, "count": int(n[i]), "conf": c, "accuracy": a})
    total = sum(k for k, _ in gaps)
    return {
        "bins": rows,
        "ece": sum(k * g for k, g in gaps) / total if total else None,
        "mce": max(g for _, g in gaps) if gaps else None,
    }


# ---- slices ----------------------------------------------------------------------------------------------
def load_slices(path: str | Path, gt: Dataset) -> dict[str, np.ndarray]:
    """``{"night": [image ids or file names], ...}`` -> image ids per slice; an unknown entry is an error."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(path, None, f"cannot read slices ({e})") from None
    if not isinstance(doc, dict) or not all(isinstance(v, list) for v in doc.values()):
        raise InputError(path, "$", 'expected {"slice name": [image ids or file names], ...}')
    by_name: dict[str, int] = {}
    for i, f in zip(gt.image_id.tolist(), gt.file_name.tolist()):
        for key in (str(f), Path(str(f)).name, Path(str(f)).stem):
            by_name.setdefault(key, i)
    known = set(gt.image_id.tolist())
    out = {}
    for name, items in doc.items():
        ids = []
        for j, v in enumerate(items):
            i = (
                v
                if isinstance(v, int) and v in known
                else by_name.get(str(v))
                if isinstance(v, str)
                else None
            )
            if i is None:
                raise InputError(
                    path,
                    f"$.{name}[{j}]",
                    f"{v!r} is neither an image id nor a file name of the ground truth",
                )
            ids.append(i)
        if not ids:
            raise InputError(path, f"$.{name}", "the slice is empty")
        out[str(name)] = np.unique(np.asarray(ids, dtype=np.int64))
    return out


# ---- anchors ---------------------------------------------------------------------------------------------
def load_anchors(path: str | Path) -> tuple[np.ndarray, str]:
    """(k, 2) normalised anchors and their normalisation from an anchors.json of ``detkit anchors kmeans``."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        a = np.asarray([[float(w), float(h)] for w, h in doc["anchors_normalized"]], dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(
            path, None, f"not an anchors file ('anchors_normalized': [[w, h], ...]) ({e})"
        ) from None
    norm = doc.get("norm", "image")
    if not len(a) or not (np.isfinite(a).all() and (a > 0).all()):
        raise InputError(
            path, "$.anchors_normalized", "needs at least one anchor with positive, finite sizes"
        )
    if norm not in ("image", "letterbox"):
        raise InputError(path, "$.norm", f"unknown norm {norm!r} (image or letterbox)")
    return a, norm


def anchor_coverage(gt: Dataset, gt_flag: np.ndarray, anchors: np.ndarray, norm: str) -> dict[str, Any]:
    """Recall at IoU .50 of the ground-truth boxes bucketed by their best IoU with any anchor (docstring)."""

    wh = dataset_wh(gt, norm)
    use = (gt_flag >= 0) & np.isfinite(wh).all(axis=1) & (wh > 0).all(axis=1)
    wh, hit = wh[use], gt_flag[use] == 1
    inter = np.minimum(wh[:, None, 0], anchors[None, :, 0]) * np.minimum(wh[:, None, 1], anchors[None, :, 1])
    union = wh.prod(axis=1)[:, None] + anchors.prod(axis=1)[None, :] - inter
    best = (inter / union).max(axis=1) if len(wh) else np.zeros(0)
    rows = []
    for lo, hi in itertools.pairwise(ANCHOR_BUCKETS):
        m = (best >= lo) & (best < hi)
        n = int(m.sum())
        rows.append(
            {
                "best_anchor_iou": f"{lo:.1f}-{min(hi, 1.0):.1f}",
                "gt": n,
                "matched": int(hit[m].sum()),
                "recall": float(hit[m].mean()) if n else None,
            }
        )
    missed = best[~hit]
    return {
        "norm": norm,
        "anchors": anchors.tolist(),
        "buckets": rows,
        "mean_best_iou_matched": _mean(best[hit]),
        "mean_best_iou_missed": _mean(missed),
    }


def _mean(a: np.ndarray) -> float | None:
    return float(a.mean()) if a.size else None


def clean(x: Any) -> Any:
    """NaN -> None, recursively (JSON has no NaN)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items()}
    if isinstance(x, list):
        if x and all(type(v) is float for v in x) and all(map(math.isfinite, x)):
            return x  # a curve: nothing to replace (shared, not copied)
        return [clean(v) for v in x]
    return x
