"""One box-format enum and one IoU, shared by anchors, targets, loss and evaluation.

Formats (all in the same units, pixels or normalised):
    XYWH    top-left x, y, width, height  (COCO's ``bbox``)
    XYXY    x0, y0, x1, y1                 (VOC, torchvision.ops)
    CXCYWH  centre x, centre y, width, height (YOLO labels, detector outputs)

numpy arrays stay in numpy (no torch import for dataset commands); torch tensors go through
``torchvision.ops`` (box_convert, box_iou).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import numpy as np


class BoxFormat(str, Enum):
    XYWH = "xywh"
    XYXY = "xyxy"
    CXCYWH = "cxcywh"


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def convert(boxes: Any, src: BoxFormat | str, dst: BoxFormat | str) -> Any:
    """Convert ``(..., 4)`` boxes between formats; numpy in -> numpy out, torch in -> torch out.

    Args:
        boxes: array or tensor whose last dimension is 4.
        src: format of ``boxes``.
        dst: wanted format.
    """
    src, dst = BoxFormat(src), BoxFormat(dst)
    if src == dst:
        return boxes
    if _is_torch(boxes):
        from torchvision.ops import box_convert

        return box_convert(boxes, in_fmt=src.value, out_fmt=dst.value)
    b = np.asarray(boxes, dtype=np.float64)
    # go through xyxy
    if src == BoxFormat.XYWH:
        x0, y0 = b[..., 0], b[..., 1]
        x1, y1 = x0 + b[..., 2], y0 + b[..., 3]
    elif src == BoxFormat.CXCYWH:
        x0, y0 = b[..., 0] - b[..., 2] / 2, b[..., 1] - b[..., 3] / 2
        x1, y1 = b[..., 0] + b[..., 2] / 2, b[..., 1] + b[..., 3] / 2
    else:
        x0, y0, x1, y1 = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    if dst == BoxFormat.XYXY:
        return np.stack([x0, y0, x1, y1], axis=-1)
    if dst == BoxFormat.XYWH:
        return np.stack([x0, y0, x1 - x0, y1 - y0], axis=-1)
    return np.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], axis=-1)


def pairwise_iou(a: Any, b: Any, fmt: BoxFormat | str = BoxFormat.XYXY) -> Any:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4) -> (N, M).

    torch tensors use ``torchvision.ops.box_iou``; numpy arrays a vectorised numpy version with
    the same definition (degenerate boxes have IoU 0).
    """
    if _is_torch(a):
        from torchvision.ops import box_iou

        return box_iou(convert(a, fmt, BoxFormat.XYXY), convert(b, fmt, BoxFormat.XYXY))
    a = convert(np.asarray(a, dtype=np.float64), fmt, BoxFormat.XYXY)
    b = convert(np.asarray(b, dtype=np.float64), fmt, BoxFormat.XYXY)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def wh_iou(wh_a: Any, wh_b: Any) -> Any:
    """IoU of boxes that share a corner (or centre), from their sizes only: (N, 2) x (M, 2) -> (N, M).

    This is YOLOv2's anchor metric: ``min(w)·min(h) / (w_a·h_a + w_b·h_b - min(w)·min(h))``. It is
    what k-means anchors cluster with and what assigns a ground-truth box to its best anchor.
    Works for numpy arrays and torch tensors alike.
    """
    if _is_torch(wh_a):
        import torch

        inter = torch.minimum(wh_a[:, None, 0], wh_b[None, :, 0]) * torch.minimum(
            wh_a[:, None, 1], wh_b[None, :, 1]
        )
        union = (wh_a[:, 0] * wh_a[:, 1])[:, None] + (wh_b[:, 0] * wh_b[:, 1])[None, :] - inter
        return inter / union.clamp_min(torch.finfo(union.dtype).tiny)
    wh_a = np.asarray(wh_a, dtype=np.float64)
    wh_b = np.asarray(wh_b, dtype=np.float64)
    inter = np.minimum(wh_a[:, None, 0], wh_b[None, :, 0]) * np.minimum(wh_a[:, None, 1], wh_b[None, :, 1])
    union = (wh_a[:, 0] * wh_a[:, 1])[:, None] + (wh_b[:, 0] * wh_b[:, 1])[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)
