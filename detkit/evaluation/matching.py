"""COCO's greedy matching at one IoU threshold, for every image and class at once (numpy, no Python loop
per image): which detections are true positives and which ground-truth boxes were found.

pycocotools' ``evaluateImg`` (area "all"), per image and class: detections best first (a stable sort, so
ties keep file order), only the ``max_det`` best; boxes in file order with crowd boxes last. Each detection
takes, among the boxes not yet matched, the one with the highest IoU >= t (the last of equal ones); when
no ordinary box qualifies, a crowd box with IoU >= t — IoU with a crowd box being the intersection over the
detection's own area — takes it, and the detection is then ignored (crowd boxes can take any number).

The loop runs in rounds: round r takes the r-th best detection of every (image, class) group at once, so
no group is in a round twice and what earlier rounds matched stays marked. A group leaves the rounds once its
ordinary boxes are all taken, unless it has a crowd region (its later detections are false positives), and
only groups with a box, or with more than ``max_det`` detections, are sorted at all. Equal, flag for flag, to
hotcoco's ``image_diagnostics`` and pycocotools' ``evalImgs`` (tests/evaluation/test_engine.py).
"""

from __future__ import annotations

import numpy as np

from detkit.datasets.model import Dataset
from detkit.evaluation.predictions import Predictions, index_of


def group_slices(groups: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by group: each group's first row and size (CSR)."""
    counts = np.bincount(groups, minlength=n_groups)
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64), counts


def _slots(groups: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows sorted by group: each row's position within its group, each group's first row and size."""
    starts, counts = group_slices(groups, n_groups)
    return np.arange(len(groups)) - starts[groups], starts, counts


def pairs_by_key(d_key: np.ndarray, g_key: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (detection, box) pair that shares a key (an image, or an image and class): indexes into
    ``d_key`` and ``g_key`` (both in 0..n_keys-1), detections in order."""
    order = np.argsort(g_key, kind="stable")
    start, count = group_slices(g_key[order], n_keys)
    cnt = count[d_key]
    first = np.concatenate([[0], np.cumsum(cnt)[:-1]]).astype(np.int64)
    pos = np.repeat(start[d_key] - first, cnt) + np.arange(cnt.sum())
    return np.repeat(np.arange(len(d_key)), cnt), order[pos]


def best_first(rows: np.ndarray, group: np.ndarray, score: np.ndarray) -> np.ndarray:
    """``rows`` (ascending) sorted by ``group``, then score high to low, then row: ``np.lexsort((rows,
    -score, group))``, faster. Each row's key (group, score rank, position) is packed into one int64 and
    sorted by value (numpy's SIMD sort); score ranks come from np.unique (equal scores share a rank, so ties
    keep row order as a stable sort does)."""
    n = len(rows)
    if not n:
        return rows
    uniq, inv = np.unique(score, return_inverse=True)
    n_s, top = len(uniq), int(group.max()) + 1
    if group.min() < 0 or not np.isfinite(uniq).all() or top * n_s * n >= 2**63:
        return rows[np.lexsort((rows, -score, group))]
    packed = (group.astype(np.int64) * n_s + (n_s - 1 - inv.reshape(-1))) * n + np.arange(n)
    return rows[np.sort(packed) % n]


def coco_matches(
    gt: Dataset, preds: Predictions, iou: float = 0.5, max_det: int = 100, image_ids: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Match as COCOeval does (module docstring).

    Args:
        gt, preds: checked predictions (every image and category id is in ``gt``).
        iou: the IoU threshold.
        max_det: detections kept per image and class.
        image_ids: the evaluated images (default all); others are flagged -1.

    Returns:
        (dt (N,) int8: 1 true positive, 0 false positive, -1 not counted (on a crowd region, beyond
        ``max_det``, or on an image not evaluated); gt (G,) int8: 1 found, 0 missed, -1 crowd or not
        evaluated).
    """
    n_cat = max(gt.num_categories, 1)
    img_ok = np.ones(gt.num_images, bool) if image_ids is None else np.isin(gt.image_id, image_ids)
    g_img, d_img = index_of(gt.image_id, gt.ann_image_id), index_of(gt.image_id, preds.image_id)
    g_cat, d_cat = index_of(gt.cat_id, gt.category_id), index_of(gt.cat_id, preds.category_id)
    g_use = (g_img >= 0) & (g_cat >= 0) & img_ok[np.maximum(g_img, 0)]
    d_use = (d_img >= 0) & (d_cat >= 0) & img_ok[np.maximum(d_img, 0)]
    g_key, d_key = g_img * n_cat + g_cat, d_img * n_cat + d_cat
    # the (image, class) groups that occur, numbered densely (a mask, not np.unique: no sort or hash)
    seen = np.zeros(gt.num_images * n_cat, bool)
    seen[g_key[g_use]] = True
    seen[d_key[d_use]] = True
    group_of = np.cumsum(seen) - 1  # key -> group number, valid where seen
    n_groups = int(seen.sum())
    # ground truth grouped (CSR): ordinary boxes first, crowd last, file order within each
    crowd_all = gt.iscrowd != 0
    g_rows = np.flatnonzero(g_use)
    g_rows = g_rows[np.lexsort((g_rows, crowd_all[g_rows], g_key[g_rows]))]
    g_box, crowd = gt.bbox[g_rows], crowd_all[g_rows]
    g_grp = group_of[g_key[g_rows]]
    _, g_start, g_count = _slots(g_grp, n_groups)
    used = np.zeros(len(g_rows), bool)
    plain_left = np.bincount(g_grp[~crowd], minlength=n_groups)  # ordinary boxes not yet taken, per group
    group_crowd = np.bincount(g_grp[crowd], minlength=n_groups) > 0  # a group with a crowd region
    # detections: best first within each group (stable), the max_det best. Only a group with a box or with
    # more than max_det detections needs the order (about half of the detections at val2017 scale); the
    # others' detections are all counted, all false positives
    d_rows = np.flatnonzero(d_use)
    d_grp = group_of[d_key[d_rows]]
    ordered = ((g_count > 0) | (np.bincount(d_grp, minlength=n_groups) > max_det))[d_grp]
    dt_flag = np.full(len(preds), -1, np.int8)
    dt_flag[d_rows[~ordered]] = 0
    d_rows = d_rows[ordered]
    d_rows = best_first(d_rows, d_key[d_rows], preds.score[d_rows])
    d_grp = group_of[d_key[d_rows]]
    d_rank, _, _ = _slots(d_grp, n_groups)
    dt_flag[d_rows[d_rank < max_det]] = 0
    thr = min(iou, 1 - 1e-10)
    # rounds as contiguous slices: detections with a box in their group, by rank
    live = (d_rank < max_det) & (g_count[d_grp] > 0)
    by_rank = np.flatnonzero(live)[np.argsort(d_rank[live], kind="stable")]
    bounds = np.searchsorted(d_rank[by_rank], np.arange(max_det + 1))
    for r in range(max_det):
        at = by_rank[bounds[r] : bounds[r + 1]]
        # a group whose ordinary boxes are all taken and that has no crowd region can match nothing more: its
        # detections stay false positives. (Groups only ever leave, so an empty round ends the loop.)
        at = at[(plain_left[d_grp[at]] > 0) | group_crowd[d_grp[at]]]
        sel, grp = d_rows[at], d_grp[at]
        if not len(sel):
            break
        # every (detection, box of its group) pair of this round, flat; seg: each detection's first pair
        cnt = g_count[grp]
        seg = np.concatenate([[0], np.cumsum(cnt)[:-1]])
        pos = np.repeat(g_start[grp] - seg, cnt) + np.arange(cnt.sum())
        owner = np.repeat(np.arange(len(sel)), cnt)
        ious = crowd_iou(preds.bbox[sel][owner], g_box[pos], crowd[pos])
        ok = ious >= thr
        value = np.where(ok & ~crowd[pos] & ~used[pos], ious, -1.0)
        best = np.maximum.reduceat(value, seg)
        has_plain = best >= 0
        # the last of equal best IoUs (pycocotools replaces on >=)
        chosen = np.maximum.reduceat(np.where((value == best[owner]) & (value >= 0), pos, -1), seg)
        used[chosen[has_plain]] = True
        plain_left[grp[has_plain]] -= 1  # (a group is in a round once: no repeated index)
        has_crowd = np.maximum.reduceat((ok & crowd[pos]).astype(np.int8), seg) > 0
        dt_flag[sel] = np.where(has_plain, 1, np.where(has_crowd, -1, 0))
    gt_flag = np.full(gt.num_annotations, -1, np.int8)
    gt_flag[g_rows[~crowd]] = used[~crowd]
    return dt_flag, gt_flag


def crowd_iou(d: np.ndarray, g: np.ndarray, is_crowd: np.ndarray) -> np.ndarray:
    """IoU of paired xywh boxes (n, 4); over the detection's own area where ``g`` is a crowd region
    (COCO's ``iscrowd`` overlap). 0 where the union is empty (pycocotools' 0/0 is NaN, which matches
    nothing: the same)."""
    iw = np.minimum(d[:, 0] + d[:, 2], g[:, 0] + g[:, 2]) - np.maximum(d[:, 0], g[:, 0])
    ih = np.minimum(d[:, 1] + d[:, 3], g[:, 1] + g[:, 3]) - np.maximum(d[:, 1], g[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    d_area = d[:, 2] * d[:, 3]
    union = np.where(is_crowd, d_area, d_area + g[:, 2] * g[:, 3] - inter)
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
