"""Hand-made evaluation cases shared by the tests (ground truth as a Dataset, predictions as columns)."""

from __future__ import annotations

import numpy as np

from detkit.datasets.model import Dataset, lookup, make_dataset
from detkit.evaluation.engine import CocoCore
from detkit.evaluation.predictions import Predictions


def preds(rows: list[tuple]) -> Predictions:
    """(image_id, category_id, x, y, w, h, score) rows -> Predictions."""
    a = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    return Predictions(
        a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2:6].copy(), a[:, 6].copy(), source="test"
    )


def gt_with_crowd() -> Dataset:
    """3 images, category ids with gaps (1, 5, 9; 9 has no ground truth), one crowd box, image 3 empty."""
    ds = make_dataset(
        [(1, "a.jpg", 640, 480), (2, "b.jpg", 640, 480), (3, "c.jpg", 640, 480)],
        [
            (1, 1, 1, 10, 10, 100, 100),
            (2, 1, 5, 200, 200, 20, 20),
            (3, 2, 1, 50, 50, 300, 200),
            (4, 2, 5, 0, 0, 640, 480),
            (5, 2, 1, 400, 300, 60, 90),
        ],
        [(1, "cat"), (5, "dog"), (9, "owl")],
    )
    ds.iscrowd[3] = 1  # a crowd region over all of image 2
    return ds


def random_case(
    seed: int, n_images: int = 60, n_boxes: int = 300, n_dets: int = 3000
) -> tuple[Dataset, Predictions]:
    """A generated case: jittered copies of the boxes (some with the wrong class), background boxes,
    crowd boxes, equal scores, more than 100 detections on some images, category ids with gaps."""
    rng = np.random.default_rng(seed)
    cats = [(1, "a"), (3, "b"), (4, "c"), (10, "d"), (11, "e")]
    ids = np.array([c for c, _ in cats])
    im = rng.integers(1, n_images + 1, n_boxes)
    wh = rng.uniform(4, 200, (n_boxes, 2))
    xy = rng.uniform(0, 400, (n_boxes, 2))
    anns = [(k + 1, int(i), int(rng.choice(ids[:4])), *xy[k], *wh[k]) for k, i in enumerate(im)]
    ds = make_dataset([(i, f"{i:04d}.jpg", 640, 640) for i in range(1, n_images + 1)], anns, cats)
    ds.iscrowd[rng.uniform(size=n_boxes) < 0.05] = 1
    src = rng.integers(0, n_boxes, n_dets // 2)
    box = ds.bbox[src] + rng.normal(0, 0.15, (len(src), 4)) * np.c_[ds.bbox[src, 2:], ds.bbox[src, 2:]]
    box[:, 2:] = np.maximum(box[:, 2:], 0.5)
    cat = np.where(rng.uniform(size=len(src)) < 0.15, rng.choice(ids, len(src)), ds.category_id[src])
    nb = n_dets - len(src)
    bimg = np.where(rng.uniform(size=nb) < 0.3, 1, rng.integers(1, n_images + 1, nb))  # image 1 gets > 100
    bbox = np.c_[rng.uniform(0, 500, (nb, 2)), rng.uniform(2, 150, (nb, 2))]
    rows = np.c_[
        np.r_[ds.ann_image_id[src], bimg],
        np.r_[cat, rng.choice(ids, nb)],
        np.r_[box, bbox],
        np.round(rng.uniform(size=n_dets), 1),
    ]  # one decimal: many equal scores
    return ds, preds(rows.tolist())


def backend_flags(
    core: CocoCore, gt: Dataset, preds: Predictions, iou: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """The reference for coco_matches: the match flags read off each backend's own evaluation.

    Returns:
        (dt (N,) int8: 1 true positive, 0 false positive, -1 not counted (on a crowd region, beyond the
        100 best of its image and class, or on an image not evaluated);
        gt (G,) int8: 1 matched, 0 missed, -1 ignored (crowd, or its image not evaluated)).
    """
    dt_flag = np.full(len(preds), -1, dtype=np.int8)
    gt_flag = np.full(gt.num_annotations, -1, dtype=np.int8)
    if core.backend == "hotcoco":
        d = core.evaluator.image_diagnostics(iou_thr=iou, score_thr=1.0)
        dt_ids, dt_st = _dict_cols(d["dt_status"])
        gt_ids, gt_st = _dict_cols(d["gt_status"])
        dt_flag[dt_ids - 1] = dt_st == "tp"  # load_res numbers detections 1..N in order
        rows = lookup(gt.ann_id, gt_ids)
        gt_flag[rows[rows >= 0]] = (gt_st == "matched")[rows >= 0]
        return dt_flag, gt_flag
    t = int(np.argmin(np.abs(core.iou_thrs - iou)))
    ev = core.evaluator
    for e in ev.evalImgs:
        if e is None or e["aRng"] != ev.params.areaRng[0]:
            continue
        ids = np.asarray(e["dtIds"], dtype=np.int64)
        if ids.size:
            keep = ~np.asarray(e["dtIgnore"][t], dtype=bool)
            dt_flag[ids[keep] - 1] = np.asarray(e["dtMatches"][t])[keep] > 0
        gids = np.asarray(e["gtIds"], dtype=np.int64)
        if gids.size:
            rows = lookup(gt.ann_id, gids)
            keep = ~np.asarray(e["gtIgnore"], dtype=bool)
            gt_flag[rows[keep]] = np.asarray(e["gtMatches"][t])[keep] > 0
    return dt_flag, gt_flag


def _dict_cols(d: dict) -> tuple[np.ndarray, np.ndarray]:
    return np.fromiter(d.keys(), np.int64, len(d)), np.array(list(d.values()), dtype=object)


def injected_label_errors(seed: int = 0, n_images: int = 120) -> tuple[Dataset, Predictions, dict[int, str]]:
    """A generated ground truth, detections made from the *clean* truth as a good detector would (97% of
    the boxes found, jittered by 4% of their size, scores 0.55-1; three background detections per image
    scoring below 0.45), then the truth corrupted: 20 boxes deleted, 20 classes flipped, 20 boxes shifted
    by 45% of their width (IoU with the object ~0.38).

    Returns:
        (the corrupted ground truth, the detections, {annotation id: the injected kind}; a deleted box's
        entry is keyed by the negative id of the detection row made from it).
    """
    rng = np.random.default_rng(seed)
    cats = [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "e")]
    anns, k = [], 0
    for i in range(1, n_images + 1):
        for cell in rng.choice(9, 6, replace=False):
            w, h = rng.uniform(40, 150, 2)
            x = (cell % 3) * 210 + rng.uniform(0, 200 - w)
            y = (cell // 3) * 210 + rng.uniform(0, 200 - h)
            k += 1
            anns.append([k, i, int(rng.integers(1, 6)), x, y, w, h])
    a = np.asarray(anns, dtype=np.float64)
    found = rng.uniform(size=len(a)) < 0.97
    src = a[found]
    box = src[:, 3:7] + rng.normal(0, 0.04, (len(src), 4)) * np.c_[src[:, 5:7], src[:, 5:7]]
    det = np.c_[src[:, 1], src[:, 2], box, rng.uniform(0.55, 1.0, len(src))]
    nb = 3 * n_images
    bkg = np.c_[
        rng.integers(1, n_images + 1, nb),
        rng.integers(1, 6, nb),
        rng.uniform(0, 500, (nb, 2)),
        rng.uniform(20, 120, (nb, 2)),
        rng.uniform(0.0, 0.45, nb),
    ]
    p = np.r_[det, bkg]
    # corrupt 60 distinct boxes
    pick = rng.choice(len(a), 60, replace=False)
    truth: dict[int, str] = {}
    det_of = {int(j): r for r, j in enumerate(np.flatnonzero(found))}
    for j in pick[20:40]:
        a[j, 2] = 1 + (a[j, 2] % 5)  # another class
        truth[int(a[j, 0])] = "wrong_class"
    for j in pick[40:]:
        a[j, 3] += 0.45 * a[j, 5]
        truth[int(a[j, 0])] = "loose_box"
    for j in pick[:20]:
        truth[-det_of.get(int(j), -1) - 1] = "missing_label"  # the detection made from it (none: -0)
    keep = np.ones(len(a), bool)
    keep[pick[:20]] = False
    gt = make_dataset(
        [(i, f"{i:04d}.jpg", 640, 640) for i in range(1, n_images + 1)],
        [(int(r[0]), int(r[1]), int(r[2]), *r[3:7]) for r in a[keep]],
        cats,
    )
    pr = Predictions(
        p[:, 0].astype(np.int64), p[:, 1].astype(np.int64), p[:, 2:6].copy(), p[:, 6].copy(), source="test"
    )
    return gt, pr, truth
