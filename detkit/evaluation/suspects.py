"""Label-error suspects: annotations a good detector disagrees with, ranked by how sure the disagreement is.

With D the detections scoring >= ``conf`` ("confident"), IoU between a detection and the ordinary (not
crowd) boxes of its image, and each class's recall at ``conf`` (the share of its boxes that a confident
detection of the class overlaps at IoU >= .50):

    missing label    a confident detection with IoU < ``near`` (.10) to every box of any class: an object
                     nobody labelled. score = the detection's score
    wrong class      a confident detection of class B with IoU >= .50 to a box of class A, where no confident
                     class-A detection overlaps that box at .50 and the detection overlaps no box of class B
                     at .50. score = the detection's score
    loose box        a confident detection with .30 <= IoU < .50 to a box of its class that no confident
                     detection of the class overlaps at .50 (the box is off the object). score = the
                     detection's score
    spurious label   a box that no detection (scoring >= ``low``, .10) of any class overlaps at IoU >=
                     ``near``, while its class is found well elsewhere (recall >= ``well``, .50, over its
                     other boxes). score = half that recall: a real object the detector missed is common
                     (1 - recall of all boxes are), so a box nothing found is weaker evidence than a
                     confident detection

Each annotation is named once (its highest-scoring suspicion); duplicate missing-label detections on one
spot (IoU >= .50 with a better one) are one suspect. Sorted by score, then image order. The scores of the
first three kinds are the detector's confidence, so the list means most for a well-calibrated detector
trained on other images than the ones checked. (FiftyOne's ``compute_mistakenness`` and cleanlab's object
detection label issues rank the same three disagreements; the thresholds here are TIDE's .10 / .50.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detkit.datasets.model import Dataset
from detkit.datasets.ops.draw import draw_images
from detkit.evaluation.matching import crowd_iou, pairs_by_key
from detkit.evaluation.per_image import COLOURS
from detkit.evaluation.predictions import Predictions, index_of

KINDS = ("missing_label", "wrong_class", "loose_box", "spurious_label")


def _segment_max(
    values: np.ndarray, owner: np.ndarray, n: int, ordered: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Per owner 0..n-1: the largest value (0 when none) and the first pair index holding it (-1 when
    none); ``ordered``: ``owner`` is sorted already."""
    best = np.zeros(n)
    arg = np.full(n, -1, np.int64)
    if not len(values):
        return best, arg
    order = np.arange(len(owner)) if ordered else np.argsort(owner, kind="stable")
    o, v = owner[order], values[order]
    seg = np.flatnonzero(np.r_[True, o[1:] != o[:-1]])
    mx = np.maximum.reduceat(v, seg)
    at_max = v == np.repeat(mx, np.diff(np.append(seg, len(v))))
    best[o[seg]] = mx
    arg[o[seg]] = np.minimum.reduceat(np.where(at_max, order, np.iinfo(np.int64).max), seg)
    return best, arg


def find_suspects(
    gt: Dataset,
    preds: Predictions,
    conf: float = 0.5,
    low: float = 0.1,
    near: float = 0.1,
    iou: float = 0.5,
    loose: float = 0.3,
    well: float = 0.5,
) -> dict[str, Any]:
    """Ranked label-error suspects (module docstring).

    Args:
        gt, preds: checked predictions (every image and category known).
        conf: a detection is confident from this score.
        low: detections from this score count as touching a box (spurious label).
        near: IoU below which a detection and a box do not touch.
        iou: IoU of a match. loose: the lowest IoU of a loose box.
        well: a class is "found well" from this recall (spurious label).

    Returns:
        ``suspects`` (best first: ``rank``, ``kind``, ``score``, ``image_id``, ``file_name``, ``ann_id`` (None
        for a missing label), ``gt_class``, ``pred_class``, ``bbox`` (the box, or the detection for a missing
        label), ``pred_bbox``, ``pred_score``, ``iou``, ``record`` (the detection's place in its file)),
        ``counts`` per kind, ``recall`` per class name, and the thresholds.
    """
    names = gt.category_names()
    plain = np.flatnonzero(gt.iscrowd == 0)
    n_img = gt.num_images
    g_img = index_of(gt.image_id, gt.ann_image_id[plain])
    d_all = np.flatnonzero(preds.score >= min(low, conf))
    d_img_all = index_of(gt.image_id, preds.image_id[d_all])
    own, pos = pairs_by_key(d_img_all, g_img, n_img)
    ious = crowd_iou(preds.bbox[d_all[own]], gt.bbox[plain[pos]], np.zeros(len(own), bool))
    d_cat, g_cat = preds.category_id[d_all[own]], gt.category_id[plain[pos]]
    same = d_cat == g_cat
    confident = preds.score[d_all[own]] >= conf
    n_d, n_g = len(d_all), len(plain)
    # per box: touched by any detection (>= low); found by a confident detection of its class
    touched, _ = _segment_max(ious, pos, n_g)
    found = np.zeros(n_g, bool)
    found[pos[same & confident & (ious >= iou)]] = True
    # per class: recall at conf, and per box the recall of its class elsewhere (the box itself left out)
    cats = np.sort(gt.cat_id)
    k_g = index_of(cats, gt.category_id[plain])
    n_c = np.bincount(k_g, minlength=len(cats))
    f_c = np.bincount(k_g[found], minlength=len(cats))
    recall = np.where(n_c > 0, f_c / np.maximum(n_c, 1), 0.0)
    elsewhere = np.where(n_c[k_g] > 1, f_c[k_g] / np.maximum(n_c[k_g] - 1, 1), 0.0)
    # per confident detection: best IoU with any box, with a box of its class, with a box of another class
    any_best, _ = _segment_max(ious, own, n_d, True)
    same_best, same_arg = _segment_max(np.where(same, ious, -1.0), own, n_d, True)
    other_best, other_arg = _segment_max(np.where(~same, ious, -1.0), own, n_d, True)
    is_conf = preds.score[d_all] >= conf
    out: list[tuple[float, int, str, int, float]] = []  # (score, detection or -1, kind, box or -1, IoU)
    # missing label
    miss = np.flatnonzero(is_conf & (any_best < near))
    miss = _one_per_spot(preds, d_all, miss, iou)
    out += [(float(preds.score[d_all[i]]), int(i), "missing_label", -1, float(any_best[i])) for i in miss]
    # wrong class
    wc = np.flatnonzero(is_conf & (other_best >= iou) & (same_best < iou))
    box = pos[other_arg[wc]]
    wc, box = wc[~found[box]], box[~found[box]]
    out += [
        (float(preds.score[d_all[i]]), int(i), "wrong_class", int(b), float(other_best[i]))
        for i, b in zip(wc, box)
    ]
    # loose box
    lb = np.flatnonzero(is_conf & (same_best >= loose) & (same_best < iou))
    box = pos[same_arg[lb]]
    lb, box = lb[~found[box]], box[~found[box]]
    out += [
        (float(preds.score[d_all[i]]), int(i), "loose_box", int(b), float(same_best[i]))
        for i, b in zip(lb, box)
    ]
    # spurious label
    sp = np.flatnonzero((touched < near) & (elsewhere >= well))
    out += [(0.5 * float(elsewhere[b]), -1, "spurious_label", int(b), float(touched[b])) for b in sp]
    # one suspicion per box (the highest), then rank
    out.sort(key=lambda r: (-r[0], g_img[r[3]] if r[3] >= 0 else d_img_all[r[1]], r[3], r[1]))
    seen: set[int] = set()
    rows = []
    row_of = {int(i): r for r, i in enumerate(gt.image_id.tolist())}
    for score, i, kind, b, v in out:
        if b >= 0:
            if b in seen:
                continue
            seen.add(b)
        d = d_all[i] if i >= 0 else -1
        rows.append(_row(gt, preds, names, row_of, len(rows) + 1, kind, score, d, plain, b, v))
    return {
        "conf": conf,
        "low": low,
        "near": near,
        "iou": iou,
        "loose": loose,
        "well": well,
        "counts": {k: sum(r["kind"] == k for r in rows) for k in KINDS},
        "recall": {names[int(c)]: round(float(r), 6) for c, r in zip(cats, recall)},
        "suspects": rows,
    }


def _one_per_spot(preds: Predictions, d_all: np.ndarray, idx: np.ndarray, iou: float) -> np.ndarray:
    """``idx`` (into ``d_all``) less the detections overlapping a better-scoring one of the list at >=
    ``iou`` in the same image (any class): one suspect per unlabelled object."""
    if len(idx) < 2:
        return idx
    rows = d_all[idx]
    idx = idx[np.lexsort((rows, -preds.score[rows]))]
    _, img = np.unique(preds.image_id[d_all[idx]], return_inverse=True)
    own, pos = pairs_by_key(img, img, int(img.max()) + 1)
    later = pos > own  # pairs (better, worse) within an image, by rank
    own, pos = own[later], pos[later]
    v = crowd_iou(preds.bbox[d_all[idx[pos]]], preds.bbox[d_all[idx[own]]], np.zeros(len(own), bool))
    drop = np.zeros(len(idx), bool)
    drop[pos[v >= iou]] = True  # (a detection dropped for one better still drops those it covers: simple)
    return idx[~drop]


def _row(gt, preds, names, row_of, rank, kind, score, d, plain, b, v) -> dict[str, Any]:
    a = plain[b] if b >= 0 else -1
    img = int(gt.ann_image_id[a]) if a >= 0 else int(preds.image_id[d])
    r = row_of[img]
    return {
        "rank": rank,
        "kind": kind,
        "score": round(score, 6),
        "image_id": img,
        "file_name": str(gt.file_name[r]),
        "ann_id": int(gt.ann_id[a]) if a >= 0 else None,
        "gt_class": names.get(int(gt.category_id[a])) if a >= 0 else None,
        "pred_class": names.get(int(preds.category_id[d])) if d >= 0 else None,
        "bbox": [round(float(x), 2) for x in (gt.bbox[a] if a >= 0 else preds.bbox[d])],
        "pred_bbox": [round(float(x), 2) for x in preds.bbox[d]] if d >= 0 else None,
        "pred_score": round(float(preds.score[d]), 6) if d >= 0 else None,
        "iou": round(v, 4),
        "record": preds.record(int(d)) if d >= 0 else None,
    }


def draw_suspects(gt: Dataset, suspects: list[dict[str, Any]], out: Any) -> list[str]:
    """Draw each image holding one of ``suspects`` once (in rank order) with
    :func:`detkit.datasets.ops.draw.draw_images`: the image's boxes in the ground-truth colour (a suspected
    one tagged with its rank and kind), and the detection that disagrees in the false-positive colour.
    Returns the JPEGs."""

    names = gt.category_names()
    row_of = {int(i): r for r, i in enumerate(gt.image_id.tolist())}
    tagged = {s["ann_id"]: s for s in suspects if s["ann_id"] is not None}
    layers: dict[int, tuple[list, list[str], list]] = {}
    for s in suspects:
        layers.setdefault(row_of[s["image_id"]], ([], [], []))
    img_row = index_of(gt.image_id, gt.ann_image_id)
    for a in np.flatnonzero((gt.iscrowd == 0) & np.isin(img_row, list(layers))).tolist():
        layer = layers[int(img_row[a])]
        s = tagged.get(int(gt.ann_id[a]))
        name = names.get(int(gt.category_id[a]), str(int(gt.category_id[a])))
        layer[0].append(gt.bbox[a])
        layer[1].append(f"#{s['rank']} {s['kind']}: {name}" if s else name)
        layer[2].append(COLOURS["gt"])
    for s in suspects:
        if s["pred_bbox"] is not None:
            layer = layers[row_of[s["image_id"]]]
            tag = f"{s['pred_class']} {s['pred_score']:.2f}"
            layer[0].append(s["pred_bbox"])
            layer[1].append(tag if s["ann_id"] is not None else f"#{s['rank']} {s['kind']}: {tag}")
            layer[2].append(COLOURS["fp"])
    overlay = {r: (np.asarray(b, dtype=np.float64).reshape(-1, 4), t, c) for r, (b, t, c) in layers.items()}
    drawn = draw_images(gt, np.array(list(layers), dtype=np.int64), out, overlay=overlay)
    return [d.jpeg for d in drawn]
