"""Box sizes in the geometry a detector sees, and anchors in every unit a detector config wants.

Normalisations of a box's (w, h) (both give fractions of the network input):
    image      w / image width, h / image height: the image is stretched to a square input
               (YOLOv2 paper, the course).
    letterbox  w / max(W, H), h / max(W, H): the long side is scaled to ``img_size`` keeping the
               aspect ratio, so a box keeps its shape (YOLOv3+ and ``detkit yolo train``).

Anchor units: normalised (0..1 of the input), grid cells (normalised x grid, YOLOv2's ``[region]``
convention, 13 at 416 px) and pixels (normalised x img_size, YOLOv3's ``[yolo]`` convention).
"""

from __future__ import annotations

import numpy as np

from detkit.anchors.config import NORMS, option_error
from detkit.datasets.model import Dataset


def dataset_wh(ds: Dataset, norm: str = "image") -> np.ndarray:
    """(N, 2) normalised box sizes of every annotation (NaN where the image id dangles).

    Args:
        ds: the loaded annotations.
        norm: ``image`` (divide by the image's width/height) or ``letterbox`` (by its long side).
    """
    if norm == "image":
        return ds.normalized_wh()
    if norm != "letterbox":
        raise option_error("norm", norm, f"choose from {', '.join(NORMS)}")
    idx = ds.image_index()
    ok = idx >= 0
    wh = np.full((ds.num_annotations, 2), np.nan)
    long_side = np.maximum(ds.width, ds.height)
    wh[ok] = ds.bbox[ok, 2:4] / long_side[idx[ok], None]
    return wh


def clean_wh(wh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep boxes with finite, positive width and height.

    Returns:
        (kept (M, 2) float64, boolean mask over the input rows of what was dropped).
    """
    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    dropped = ~(np.isfinite(wh).all(axis=1) & (wh > 0).all(axis=1))
    return np.ascontiguousarray(wh[~dropped]), dropped


def to_grid(anchors: np.ndarray, grid: int) -> np.ndarray:
    """Normalised anchors in grid cells (YOLOv2): normalised x grid."""
    return np.asarray(anchors, dtype=np.float64) * grid


def to_pixels(anchors: np.ndarray, img_size: int) -> np.ndarray:
    """Normalised anchors in pixels of a square ``img_size`` input: normalised x img_size."""
    return np.asarray(anchors, dtype=np.float64) * img_size


def darknet_line(anchors: np.ndarray, decimals: int = 4) -> str:
    """A darknet cfg ``anchors = w,h,  w,h, ...`` line (grid cells for ``[region]``, pixels for ``[yolo]``).

    Args:
        anchors: (k, 2) anchors in the unit the cfg wants.
        decimals: digits after the point; 0 writes whole numbers (YOLOv3 cfgs).
    """
    fmt = (lambda v: str(round(v))) if decimals == 0 else (lambda v: f"{v:.{decimals}f}")
    return "anchors = " + ",  ".join(f"{fmt(w)},{fmt(h)}" for w, h in np.asarray(anchors, dtype=np.float64))


def anchor_units(anchors: np.ndarray, grid: int, img_size: int) -> dict[str, object]:
    """Anchors in all units plus both darknet lines, as plain lists (for JSON and tables).

    Args:
        anchors: (k, 2) normalised anchors.
        grid: cells per side of the output grid (13 for a 416 input at stride 32).
        img_size: network input side in pixels.
    """
    a = np.asarray(anchors, dtype=np.float64)
    g, px = to_grid(a, grid), to_pixels(a, img_size)
    return {
        "anchors": a.tolist(),
        "anchors_grid": g.tolist(),
        "anchors_pixels": px.tolist(),
        "darknet": darknet_line(g, 4),
        "darknet_yolov3": darknet_line(px, 0),
    }
