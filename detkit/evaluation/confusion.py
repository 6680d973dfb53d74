"""A detection confusion matrix at one confidence and IoU threshold, with a background row and column.

    rows     ground-truth class 0..K-1, then ``background`` (a detection that matched no box: a false
    positive)
    columns  predicted class 0..K-1, then ``background`` (a box no detection matched: a miss)

Per image, detections scoring >= ``conf`` are taken best first (ties in input order). Each one takes the
unmatched ground-truth box of its own class with the highest IoU >= ``iou``; failing that, the unmatched box
of any class with the highest IoU >= ``iou`` (a confusion); failing that it is background. A detection whose
box lies on a crowd region (intersection over its own area >= ``iou``) is not counted, as COCO ignores it.
Crowd boxes themselves are never counted. Categories follow the ground truth in id order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detkit.datasets.model import Dataset
from detkit.evaluation.matching import best_first, crowd_iou, group_slices
from detkit.evaluation.predictions import Predictions, index_of


def confusion_matrix(
    gt: Dataset, preds: Predictions, conf: float = 0.25, iou: float = 0.45
) -> dict[str, Any]:
    """Counts and row-normalised rates (module docstring).

    Returns:
        ``names`` (K classes + ``background``), ``category_ids``, ``matrix`` (K+1, K+1) counts,
        ``normalized`` (rows summing to 1; empty rows 0), ``conf``, ``iou``, ``ignored`` (on crowd regions).
    """
    cats = np.sort(gt.cat_id)
    k = len(cats)
    names = gt.category_names()
    m = np.zeros((k + 1, k + 1), dtype=np.int64)
    det, box, state, found = confusion_match(gt, preds, conf, iou)
    hit, fp = state == 1, state == 0
    missed = found == 0
    g_cls, d_cls = index_of(cats, gt.category_id), index_of(cats, preds.category_id[det])
    rows = np.concatenate([g_cls[box[hit]], np.full(int(fp.sum()), k), g_cls[missed]]).astype(np.int64)
    cols = np.concatenate([d_cls[hit], d_cls[fp], np.full(int(missed.sum()), k)]).astype(np.int64)
    _count(m, rows, cols)
    rows_sum = m.sum(axis=1, keepdims=True)
    return {
        "names": [names[int(c)] for c in cats] + ["background"],
        "category_ids": cats.tolist(),
        "matrix": m.tolist(),
        "normalized": np.where(rows_sum > 0, m / np.maximum(rows_sum, 1), 0.0).round(6).tolist(),
        "conf": conf,
        "iou": iou,
        "ignored": int((state == -1).sum()),
    }


def confusion_match(
    gt: Dataset, preds: Predictions, conf: float = 0.25, iou: float = 0.45
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The matching behind :func:`confusion_matrix` (module docstring), per detection and per box.

    The greedy matching runs in rounds over every image at once: round r takes each image's r-th best
    detection and all the (detection, box of its image) pairs of the round are scored flat, so no image is
    in a round twice and the boxes earlier rounds took stay marked.

    Returns:
        (det (D,) the rows of ``preds`` scoring >= ``conf``; box (D,) the annotation row each one took, -1
        for none; state (D,) 1 took a box (of its class or another), 0 background (a false positive), -1 on
        a crowd region (not counted); found (A,) per annotation: 1 taken, 0 missed, -1 crowd).
    """
    cats = np.sort(gt.cat_id)
    keep = np.flatnonzero(preds.score >= conf)
    images = _sorted_unique(np.concatenate([preds.image_id[keep], gt.ann_image_id]))
    # ground truth by image (CSR)
    g_rows = np.argsort(gt.ann_image_id, kind="stable")
    g_img = np.searchsorted(images, gt.ann_image_id[g_rows])
    g_start, g_count = group_slices(g_img, len(images))
    g_box, g_cls, crowd = gt.bbox[g_rows], index_of(cats, gt.category_id[g_rows]), gt.iscrowd[g_rows] != 0
    used = crowd.copy()  # crowd boxes are never matched
    # detections by image, best first (ties keep input order), then in round order: round r holds each
    # image's r-th best detection
    d_rows = best_first(keep, np.searchsorted(images, preds.image_id[keep]), preds.score[keep])
    d_img = np.searchsorted(images, preds.image_id[d_rows])
    d_start, _ = group_slices(d_img, len(images))
    d_rank = np.arange(len(d_rows)) - d_start[d_img]
    order = np.argsort(d_rank, kind="stable")
    d_rows, d_img, d_rank = d_rows[order], d_img[order], d_rank[order]
    d_cls = index_of(cats, preds.category_id[d_rows])
    own, pos, ious, plain, on_crowd = _candidate_pairs(
        preds.bbox[d_rows], g_box, crowd, g_start[d_img], g_count[d_img], iou
    )
    n_rounds = int(d_rank.max(initial=-1)) + 1
    p_bounds = np.searchsorted(own, np.searchsorted(d_rank, np.arange(n_rounds + 1)))
    state = np.zeros(len(d_rows), np.int8)  # a detection without a candidate pair is background
    took = np.full(len(d_rows), -1, np.int64)
    for r in range(n_rounds):
        a, b = p_bounds[r], p_bounds[r + 1]
        if a == b:
            continue
        o, ps = own[a:b], pos[a:b]
        seg = np.flatnonzero(np.r_[True, o[1:] != o[:-1]])  # each detection's first pair
        det = o[seg]
        cand = np.where(plain[a:b] & ~used[ps], ious[a:b], -1.0)
        same = np.where(g_cls[ps] == d_cls[o], cand, -1.0)
        j_same, ok_same = _first_argmax(same, seg, ps)
        j_any, ok_any = _first_argmax(cand, seg, ps)
        j = np.where(ok_same, j_same, j_any)
        hit = ok_same | ok_any
        used[j[hit]] = True
        took[det[hit]] = j[hit]
        crowd_hit = np.maximum.reduceat(on_crowd[a:b].astype(np.int8), seg) > 0
        state[det] = np.where(hit, 1, np.where(crowd_hit, -1, 0))
    box = np.where(took >= 0, g_rows[np.maximum(took, 0)], -1)
    found = np.full(gt.num_annotations, -1, np.int8)
    found[g_rows[~crowd]] = used[~crowd]
    return d_rows, box, state, found


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """np.unique of an int array by one sort (np.unique also imports numpy.ma)."""
    a = np.sort(a)
    return a[np.r_[True, a[1:] != a[:-1]]] if len(a) else a


def _candidate_pairs(
    d_box: np.ndarray,
    g_box: np.ndarray,
    crowd: np.ndarray,
    start: np.ndarray,
    count: np.ndarray,
    iou: float,
    chunk: int = 4096,
) -> tuple[np.ndarray, ...]:
    """The (detection, box of its image) pairs that can take part in the matching, in detection order.

    Args:
        d_box: (N, 4) detections; start, count: (N,) the CSR slice of ``g_box`` rows of each one's image.

    Returns:
        own (P,) detection, pos (P,) box row, iou (P,), plain (P,): an ordinary box with IoU >= ``iou``,
        on_crowd (P,): a crowd box covering >= ``iou`` of the detection. Built ``chunk`` detections at a time
        so that the full pair list (~1M at val2017 scale) never lives in memory at once.
    """
    parts = []
    for lo in range(0, len(d_box), chunk):  # chunks small enough for the CPU cache
        cnt = count[lo : lo + chunk]
        first = np.concatenate([[0], np.cumsum(cnt)[:-1]])
        pos = np.repeat(start[lo : lo + chunk] - first, cnt) + np.arange(cnt.sum())
        own = np.repeat(np.arange(lo, lo + len(cnt)), cnt)
        # IoU, or over the detection's own area for a crowd region (how COCO measures overlap with one)
        ious, c = crowd_iou(d_box[own], g_box[pos], crowd[pos]), crowd[pos]
        plain, on_crowd = ~c & (ious >= iou), c & (ious >= iou)
        keep = plain | on_crowd
        parts.append((own[keep], pos[keep], ious[keep], plain[keep], on_crowd[keep]))
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool), np.zeros(0, bool)
    return tuple(np.concatenate(c) for c in zip(*parts))


def _count(m: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
    """m[rows, cols] += 1 for every pair (repeats add up)."""
    m += np.bincount(rows * m.shape[1] + cols, minlength=m.size).reshape(m.shape)


def _first_argmax(v: np.ndarray, seg: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per segment of ``v``: the ``pos`` of its first maximum, and whether that maximum is >= 0."""
    best = np.maximum.reduceat(v, seg)
    owner = np.repeat(np.arange(len(seg)), np.diff(np.append(seg, len(v))))
    big = np.iinfo(np.int64).max
    j = np.minimum.reduceat(np.where(v == best[owner], pos, big), seg)
    return j, best >= 0
