"""Anchor priors for YOLOv2 training: from an anchors.json, IoU k-means on the training boxes, or VOC's.

Anchors are (w, h) in cells of the output grid at the training size (``img_size / stride`` cells a side:
stride 32 for YOLOv2's head, 16 for the modern recipe's).
The network sees letterboxed images (long side = ``img_size``), so a box of w x h pixels in a W x H
image covers ``w / max(W, H) * img_size / 32`` cells. ``detkit anchors kmeans`` writes
``anchors_normalized`` either image-normalised (w / W, the default) or letterbox-normalised
(w / max(W, H)); the former is converted with the images' median aspect, exact when all share one:

    letterbox w = (w / W) * (W / max(W, H)) = (w / W) * fx

With no file and at least ``k`` distinct box shapes, :func:`resolve_anchors` runs IoU k-means on the
letterbox-normalised training boxes; otherwise it falls back to YOLOv2's VOC anchors, rescaled from the 13x13
grid of 416 to the grid of ``img_size``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from detkit.anchors.kmeans import iou_kmeans
from detkit.anchors.metrics import YOLOV2_VOC_GRID_13
from detkit.anchors.units import clean_wh, dataset_wh
from detkit.console import warn
from detkit.errors import DetkitError

# YOLOv2's VOC anchors, in cells of the 13x13 grid at 416 (yolo-voc.cfg)
VOC_ANCHORS = list(YOLOV2_VOC_GRID_13)  # the YOLOv2 paper's VOC anchors, grid cells at 13x13


def _anchor_pairs(doc: Any, path: str) -> list[tuple[float, float]]:
    """The normalised (w, h) pairs of an anchors.json, each checked (one line naming the file if not)."""
    try:
        raw = doc["anchors_normalized"]
        pairs = [(float(w), float(h)) for w, h in raw]
    except (KeyError, TypeError, ValueError):
        raise DetkitError(
            f"{path}: not an anchors file ('anchors_normalized' must be a list of [w, h] pairs)"
        ) from None
    if not pairs:
        raise DetkitError(f"{path}: 'anchors_normalized' is empty")
    for w, h in pairs:
        if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
            raise DetkitError(f"{path}: anchor [{w}, {h}] needs a positive, finite width and height")
    return pairs


def letterbox_factors(ds) -> tuple[float, float, float]:
    """(fx, fy, spread): what turns image-normalised sizes (w/W, h/H) into letterbox ones (w/max(W, H)),
    as medians over the images, and how far single images stray from them (0 when all share an aspect)."""
    W, H = np.asarray(ds.width, float), np.asarray(ds.height, float)
    ok = (W > 0) & (H > 0)
    if not ok.any():
        return 1.0, 1.0, 0.0
    fx, fy = W[ok] / np.maximum(W[ok], H[ok]), H[ok] / np.maximum(W[ok], H[ok])
    mx, my = float(np.median(fx)), float(np.median(fy))
    return mx, my, float(max(np.abs(fx - mx).max(), np.abs(fy - my).max()))


def resolve_anchors(
    path: str | None, ds, img_size: int, k: int = 5, seed: int = 0, stride: int = 32
) -> tuple[list[tuple[float, float]], str]:
    """Anchors in grid cells at ``img_size``: from an anchors.json, else IoU k-means on ``ds``, else VOC's.

    The network sees letterboxed images (long side = ``img_size``), so anchors are letterbox-normalised:
    k-means runs on w / max(W, H), and an anchors.json made with ``--norm image`` (the default of
    ``detkit anchors kmeans``) is converted by the images' aspect (exact when they share one).

    Args:
        stride: input pixels per cell of the output grid (16 for the modern head: the anchors come out
            in its cells, twice the numbers of the 32-pixel grid).

    Returns:
        (anchors, where they came from).
    """

    grid = img_size / stride
    if path is not None:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise DetkitError(f"{path}: cannot read anchors ({e})") from None
        pairs = _anchor_pairs(doc, path)
        norm = doc.get("norm", "image") if isinstance(doc, dict) else "image"
        if norm == "image":
            fx, fy, spread = letterbox_factors(ds)
            pairs = [(w * fx, h * fy) for w, h in pairs]
            if spread > 0.05:
                warn(
                    f"{path}: image-normalised anchors were converted to the letterbox with the images' "
                    "median aspect; anchors made with norm='letterbox' are exact for mixed aspects",
                    flags={
                        "anchors made with norm='letterbox' are exact": "`detkit anchors kmeans --norm "
                        "letterbox` gives exact ones"
                    },
                )
        elif norm != "letterbox":
            raise DetkitError(f"{path}: unknown norm {norm!r} (image or letterbox)")
        return [(w * grid, h * grid) for w, h in pairs], str(path)

    wh, _ = clean_wh(dataset_wh(ds, "letterbox"))
    if len(np.unique(wh, axis=0)) >= k:
        res = iou_kmeans(wh, k, seed=seed, restarts=3)
        return [
            (float(w) * grid, float(h) * grid) for w, h in res.anchors
        ], f"iou k-means (k={k}) on the training boxes"
    return [(w * grid / 13, h * grid / 13) for w, h in VOC_ANCHORS], "YOLOv2 VOC anchors"
