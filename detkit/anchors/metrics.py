"""How good a set of anchors is for a set of boxes, in the units both detector families use.

- mean IoU: mean over boxes of the IoU with the closest anchor, boxes sharing a corner (the YOLOv2
  paper's "Avg IOU", Table 1).
- best-possible recall (BPR): share of boxes whose best anchor IoU exceeds a threshold (0.5): the
  boxes an IoU-matched detector (YOLOv2/v3) can assign to some anchor at all.
- ratio recall: ultralytics' metric, share of boxes with max(w/aw, aw/w, h/ah, ah/h) < 4 for some
  anchor: the boxes a ratio-matched detector (YOLOv5+) can assign.
- elbow: the k of a mean-IoU-vs-k sweep after which more anchors stop paying.

All functions take (N, 2) widths/heights and (k, 2) anchors in the same units.
"""

from __future__ import annotations

import numpy as np

# COCO's stock anchors, for comparison: YOLOv3 (pixels at 416, letterbox) and YOLOv2-VOC (grid cells of 13).
YOLOV3_COCO_PIXELS_416 = (
    (10, 13),
    (16, 30),
    (33, 23),
    (30, 61),
    (62, 45),
    (59, 119),
    (116, 90),
    (156, 198),
    (373, 326),
)
YOLOV2_VOC_GRID_13 = (
    (1.3221, 1.73145),
    (3.19275, 4.00944),
    (5.05587, 8.09892),
    (9.47112, 4.84053),
    (11.2364, 10.0071),
)


def stock_anchors() -> dict[str, np.ndarray]:
    """Published anchors in normalised units (fractions of the network input)."""
    return {
        "yolov3_coco": np.asarray(YOLOV3_COCO_PIXELS_416, dtype=np.float64) / 416.0,
        "yolov2_voc": np.asarray(YOLOV2_VOC_GRID_13, dtype=np.float64) / 13.0,
    }


def best_iou(wh: np.ndarray, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU of each box with its closest anchor and that anchor's index: (N,), (N,) int64.

    Same values as ``detkit.boxes.wh_iou(wh, anchors).max(1)`` / ``.argmax(1)`` (ties go to the
    lower index), but loops over the k anchors so memory stays O(N) and no (N, k) matrix is built:
    this is the inner loop of k-means on a million boxes.

    Args:
        wh: (N, 2) positive box widths and heights; computed in float32 if given float32, else float64.
        anchors: (k, 2) positive anchor widths and heights.
    """
    wh = np.asarray(wh)
    if wh.dtype != np.float32:  # float32 stays float32 (twice as fast, for k-means restarts)
        wh = wh.astype(np.float64, copy=False)
    anchors = np.asarray(anchors, dtype=wh.dtype)
    w, h = np.ascontiguousarray(wh[:, 0]), np.ascontiguousarray(wh[:, 1])
    area = w * h
    best = np.full(len(wh), -1.0, dtype=wh.dtype)
    arg = np.zeros(len(wh), dtype=np.int64)
    inter = np.empty_like(w)
    tmp = np.empty_like(w)
    better = np.empty(len(wh), dtype=bool)
    for j, (aw, ah) in enumerate(anchors):
        # iou = inter / (area + aw*ah - inter), in preallocated buffers (no (N, k) temporaries)
        np.minimum(w, aw, out=inter)
        np.minimum(h, ah, out=tmp)
        inter *= tmp
        np.subtract(area, inter, out=tmp)
        tmp += aw * ah
        np.divide(inter, tmp, out=tmp)
        np.greater(tmp, best, out=better)  # strict: ties keep the lower index, like argmax
        np.maximum(best, tmp, out=best)
        np.copyto(arg, j, where=better)
    return best, arg


def mean_iou(wh: np.ndarray, anchors: np.ndarray) -> float:
    """Mean over boxes of the IoU with the closest anchor (YOLOv2's "Avg IOU"), 0..1."""
    if len(wh) == 0:
        return float("nan")
    return float(best_iou(wh, anchors)[0].mean())


def best_possible_recall(wh: np.ndarray, anchors: np.ndarray, iou_thr: float = 0.5) -> float:
    """Share of boxes whose best anchor IoU exceeds ``iou_thr`` (IoU-matched detectors)."""
    return float((best_iou(wh, anchors)[0] > iou_thr).mean())


def ratio_recall(wh: np.ndarray, anchors: np.ndarray, thr: float = 4.0) -> float:
    """Ultralytics' metric: share of boxes with max(w/aw, aw/w, h/ah, ah/h) < ``thr`` for some anchor."""
    wh = np.asarray(wh, dtype=np.float64)
    best = np.zeros(len(wh))
    for aw, ah in np.asarray(anchors, dtype=np.float64):
        rw, rh = wh[:, 0] / aw, wh[:, 1] / ah
        # min over the four ratios' reciprocals = 1 / max(ratio); keep the best anchor per box
        x = np.minimum(np.minimum(rw, 1 / rw), np.minimum(rh, 1 / rh))
        np.maximum(best, x, out=best)
    return float((best > 1.0 / thr).mean())


def anchor_metrics(
    wh: np.ndarray, anchors: np.ndarray, iou_thr: float = 0.5, ratio_thr: float = 4.0
) -> dict[str, float]:
    """mean IoU, BPR at ``iou_thr`` and ratio recall at ``ratio_thr`` in one pass over the boxes."""
    best, _ = best_iou(wh, anchors)
    return {
        "mean_iou": float(best.mean()),
        "bpr": float((best > iou_thr).mean()),
        "ratio_recall": ratio_recall(wh, anchors, ratio_thr),
    }


def elbow(ks: list[int] | np.ndarray, values: list[float] | np.ndarray) -> int:
    """The k of the elbow of an increasing curve: the point farthest above the chord from first to last.

    With fewer than three points there is no elbow and the largest k is returned.

    Args:
        ks: increasing k values.
        values: mean IoU (or any increasing, flattening score) per k.
    """
    ks = np.asarray(ks, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if len(ks) < 3 or v[-1] == v[0]:
        return int(ks[-1])
    # normalise both axes to 0..1 so the answer does not depend on their units (Kneedle)
    x = (ks - ks[0]) / (ks[-1] - ks[0])
    y = (v - v[0]) / (v[-1] - v[0])
    return int(ks[int(np.argmax(y - x))])
