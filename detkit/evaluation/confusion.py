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


def _pair_iou(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU of each xywh box ``a`` (n, 4) with the boxes ``b`` (n, G, 4) of its image, and the intersection
    over the area of ``a`` (how COCO measures overlap with a crowd region); both (n, G)."""
    iw = np.minimum(a[:, None, 0] + a[:, None, 2], b[..., 0] + b[..., 2]) - np.maximum(
        a[:, None, 0], b[..., 0]
    )
    ih = np.minimum(a[:, None, 1] + a[:, None, 3], b[..., 1] + b[..., 3]) - np.maximum(
        a[:, None, 1], b[..., 1]
    )
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a, area_b = a[:, 2] * a[:, 3], b[..., 2] * b[..., 3]
    return inter / np.maximum(area_a[:, None] + area_b - inter, 1e-12), inter / np.maximum(
        area_a[:, None], 1e-12
    )


def _pad(groups: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, int]:
    """For rows already sorted by group: (row's slot within its group, group start offsets, widest group)."""
    counts = np.bincount(groups, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(len(groups)) - starts[groups]
    return slot, starts, int(counts.max(initial=0))


def confusion_matrix(
    gt: Dataset, preds: Predictions, conf: float = 0.25, iou: float = 0.45
) -> dict[str, Any]:
    """Counts and row-normalised rates (module docstring).

    The greedy matching runs in rounds over every image at once: round r takes each image's r-th best
    detection, so no image is ever in a round twice and the boxes it used stay marked between rounds.

    Returns:
        ``names`` (K classes + ``background``), ``category_ids``, ``matrix`` (K+1, K+1) counts,
        ``normalized`` (rows summing to 1; empty rows 0), ``conf``, ``iou``, ``ignored`` (on crowd regions).
    """
    cats = np.sort(gt.cat_id)
    k = len(cats)
    names = gt.category_names()
    m = np.zeros((k + 1, k + 1), dtype=np.int64)
    keep = preds.score >= conf
    d_img, d_cls = preds.image_id[keep], _lookup(cats, preds.category_id[keep])
    d_box, d_score = preds.bbox[keep], preds.score[keep]
    images = np.union1d(d_img, gt.ann_image_id)
    # ground truth padded per image: (images, widest, ...) with class -1 in the padding
    g_order = np.argsort(gt.ann_image_id, kind="stable")
    g_img = np.searchsorted(images, gt.ann_image_id[g_order])
    g_slot, _, g_w = _pad(g_img, len(images))
    crowd = gt.iscrowd[g_order] != 0
    g_box = np.zeros((len(images), max(g_w, 1), 4))
    g_cls = np.full((len(images), max(g_w, 1)), -1, dtype=np.int64)
    g_box[g_img, g_slot] = gt.bbox[g_order]
    g_cls[g_img, g_slot] = np.where(crowd, -2, _lookup(cats, gt.category_id[g_order]))  # -2: crowd
    used = g_cls < 0  # padding and crowd boxes are never matched
    # detections by image, best first (ties keep input order)
    d_order = np.lexsort((np.arange(len(d_score)), -d_score, d_img))
    di_img = np.searchsorted(images, d_img[d_order])
    d_rank, _, d_w = _pad(di_img, len(images))
    ignored = 0
    for r in range(d_w):
        sel = d_order[d_rank == r]
        rows = di_img[d_rank == r]
        ious, ioa = _pair_iou(d_box[sel], g_box[rows])
        cand = np.where(~used[rows] & (ious >= iou), ious, -1.0)
        same = np.where(g_cls[rows] == d_cls[sel, None], cand, -1.0)
        j = np.where(
            same.max(axis=1) >= 0,
            same.argmax(axis=1),
            np.where(cand.max(axis=1) >= 0, cand.argmax(axis=1), -1),
        )
        hit = j >= 0
        used[rows[hit], j[hit]] = True
        np.add.at(m, (g_cls[rows[hit], j[hit]], d_cls[sel[hit]]), 1)
        on_crowd = ((g_cls[rows] == -2) & (ioa >= iou)).any(axis=1) & ~hit
        ignored += int(on_crowd.sum())
        np.add.at(m, (k, d_cls[sel[~hit & ~on_crowd]]), 1)
    missed = ~used & (g_cls >= 0)
    np.add.at(m, (g_cls[missed], k), 1)
    rows_sum = m.sum(axis=1, keepdims=True)
    return {
        "names": [names[int(c)] for c in cats] + ["background"], "category_ids": cats.tolist(),
        "matrix": m.tolist(), "normalized": np.where(rows_sum > 0, m / np.maximum(rows_sum, 1), 0.0).round(6).tolist(),
        "conf": conf, "iou": iou, "ignored": ignored,
    }  # fmt: skip
