"""A detection confusion matrix at one confidence and IoU threshold, with a background row and column.

    rows     ground-truth class 0..K-1, then ``background`` (a detection that matched no box: a false positive)
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

from detkit.coco.model import Dataset, _lookup
from detkit.evaluation.predictions import Predictions


def confusion_matrix(
    gt: Dataset, preds: Predictions, conf: float = 0.25, iou: float = 0.45
) -> dict[str, Any]:
    """Counts and row-normalised rates (module docstring).

    The greedy matching runs in rounds over every image at once: round r takes each image's r-th best
    detection and all the (detection, box of its image) pairs of the round are scored flat, so no image is
    in a round twice and the boxes earlier rounds took stay marked.

    Returns:
        ``names`` (K classes + ``background``), ``category_ids``, ``matrix`` (K+1, K+1) counts,
        ``normalized`` (rows summing to 1; empty rows 0), ``conf``, ``iou``, ``ignored`` (on crowd regions).
    """
    cats = np.sort(gt.cat_id)
    k = len(cats)
    names = gt.category_names()
    m = np.zeros((k + 1, k + 1), dtype=np.int64)
    keep = np.flatnonzero(preds.score >= conf)
    images = np.union1d(preds.image_id[keep], gt.ann_image_id)
    # ground truth by image (CSR)
    g_rows = np.argsort(gt.ann_image_id, kind="stable")
    g_img = np.searchsorted(images, gt.ann_image_id[g_rows])
    g_start, g_count = _csr(g_img, len(images))
    g_box, g_cls, crowd = gt.bbox[g_rows], _lookup(cats, gt.category_id[g_rows]), gt.iscrowd[g_rows] != 0
    used = crowd.copy()  # crowd boxes are never matched
    # detections by image, best first (ties keep input order)
    d_rows = keep[np.lexsort((keep, -preds.score[keep], preds.image_id[keep]))]
    d_img = np.searchsorted(images, preds.image_id[d_rows])
    d_start, _ = _csr(d_img, len(images))
    d_rank = np.arange(len(d_rows)) - d_start[d_img]
    d_cls = _lookup(cats, preds.category_id[d_rows])
    ignored = 0
    by_rank = np.argsort(d_rank, kind="stable")  # rounds as contiguous slices
    n_rounds = int(d_rank.max(initial=-1)) + 1
    bounds = np.searchsorted(d_rank[by_rank], np.arange(n_rounds + 1))
    for r in range(n_rounds):
        at = by_rank[bounds[r] : bounds[r + 1]]
        cnt = g_count[d_img[at]]
        fp = np.zeros(len(at), bool)
        fp[cnt == 0] = True
        with_gt = np.flatnonzero(cnt > 0)
        if len(with_gt):
            sel, cnt = at[with_gt], cnt[with_gt]
            seg = np.concatenate([[0], np.cumsum(cnt)[:-1]])
            pos = np.repeat(g_start[d_img[sel]] - seg, cnt) + np.arange(cnt.sum())
            owner = np.repeat(np.arange(len(sel)), cnt)
            ious, ioa = _pair_iou(preds.bbox[d_rows[sel]][owner], g_box[pos])
            cand = np.where(~used[pos] & (ious >= iou), ious, -1.0)
            same = np.where(g_cls[pos] == d_cls[sel][owner], cand, -1.0)
            j_same, ok_same = _first_argmax(same, seg, pos)
            j_any, ok_any = _first_argmax(cand, seg, pos)
            j = np.where(ok_same, j_same, j_any)
            hit = ok_same | ok_any
            used[j[hit]] = True
            _count(m, g_cls[j[hit]], d_cls[sel[hit]])
            on_crowd = np.maximum.reduceat((crowd[pos] & (ioa >= iou)).astype(np.int8), seg) > 0
            ignored += int((on_crowd & ~hit).sum())
            fp[with_gt] = ~hit & ~on_crowd
        _count(m, np.full(int(fp.sum()), k), d_cls[at[fp]])
    missed = ~used
    _count(m, g_cls[missed], np.full(int(missed.sum()), k))
    rows_sum = m.sum(axis=1, keepdims=True)
    return {
        "names": [names[int(c)] for c in cats] + ["background"], "category_ids": cats.tolist(),
        "matrix": m.tolist(), "normalized": np.where(rows_sum > 0, m / np.maximum(rows_sum, 1), 0.0).round(6).tolist(),
        "conf": conf, "iou": iou, "ignored": ignored,
    }  # fmt: skip


def _count(m: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
    """m[rows, cols] += 1 for every pair (repeats add up)."""
    m += np.bincount(rows * m.shape[1] + cols, minlength=m.size).reshape(m.shape)


def _csr(groups: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """First row and size of each group, for rows sorted by group."""
    counts = np.bincount(groups, minlength=n)
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64), counts


def _first_argmax(v: np.ndarray, seg: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per segment of ``v``: the ``pos`` of its first maximum, and whether that maximum is >= 0."""
    best = np.maximum.reduceat(v, seg)
    owner = np.repeat(np.arange(len(seg)), np.diff(np.append(seg, len(v))))
    big = np.iinfo(np.int64).max
    j = np.minimum.reduceat(np.where(v == best[owner], pos, big), seg)
    return j, best >= 0


def _pair_iou(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU of paired xywh boxes (n, 4), and the intersection over the area of each ``a`` box (how COCO
    measures overlap with a crowd region)."""
    iw = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a, area_b = a[:, 2] * a[:, 3], b[:, 2] * b[:, 3]
    return inter / np.maximum(area_a + area_b - inter, 1e-12), inter / np.maximum(area_a, 1e-12)
