"""Raw YOLOv2 outputs <-> boxes, and the post-processing to detections (threshold + batched NMS).

For the prediction at anchor a, cell (j, i) of an S_h x S_w grid, with anchor (p_w, p_h) in cells:

    b_x = (sigmoid(t_x) + i) / S_w        b_w = p_w * exp(t_w) / S_w
    b_y = (sigmoid(t_y) + j) / S_h        b_h = p_h * exp(t_h) / S_h
    objectness = sigmoid(t_o)             class probabilities = softmax(class logits)

With ``xy_scale`` s != 1 (YOLOv4's scale_x_y, the ``modern`` recipe's 2) the centre is
b_x = (s * sigmoid(t_x) - (s - 1) / 2 + i) / S_w: it reaches (s - 1) / 2 cells past the cell's edges.

Boxes are normalised to the (letterboxed) network input. Anchors are in cells of the grid that ``raw``
has (YOLOv2's convention, 1 cell = 32 input pixels); anchors kept normalised to the input can be
passed as ``anchors_normalized * (S_w, S_h)`` for each input size.
t_w, t_h are clamped to +-WH_CLAMP before exp, so a wild prediction cannot overflow.

Try it: python -m pytest tests/yolo/test_decode.py -q
"""

from __future__ import annotations

import math

import torch
from torchvision.ops import box_convert

from detkit.deploy.runtime import postprocess as select
from detkit.yolo.targets import build_targets

WH_CLAMP = 8.0  # exp(8) ~ 3000 anchor widths: far beyond any image, far below fp32 overflow


def _as_anchors(anchors, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(anchors, dtype=torch.float32, device=like.device).reshape(-1, 2)


def grid_xy(S_h: int, S_w: int, device: torch.device) -> torch.Tensor:
    """(S_h, S_w, 2) cell offsets (i, j), i along x."""
    j, i = torch.meshgrid(
        torch.arange(S_h, device=device, dtype=torch.float32),
        torch.arange(S_w, device=device, dtype=torch.float32),
        indexing="ij",
    )
    return torch.stack([i, j], dim=-1)


def decode_boxes(raw: torch.Tensor, anchors: torch.Tensor, xy_scale: float = 1.0) -> torch.Tensor:
    """(B, A, S_h, S_w, >=4) raw -> (B, A, S_h, S_w, 4) normalised cxcywh, keeping the grid layout."""
    A, S_h, S_w = raw.shape[1:4]
    raw = raw.float()
    g = grid_xy(S_h, S_w, raw.device)  # (S_h, S_w, 2)
    t = raw[..., 0:4]
    wh = (
        anchors.view(1, A, 1, 1, 2) * t[..., 2:4].clamp(-WH_CLAMP, WH_CLAMP).exp()
    )  # (B, A, S_h, S_w, 2) cells
    # cells -> 0..1 with Python scalars (a tensor made from a list is a blocking host->device copy on CUDA)
    if xy_scale == 1.0:
        x = (t[..., 0].sigmoid() + g[..., 0]) / S_w
        y = (t[..., 1].sigmoid() + g[..., 1]) / S_h
    else:
        off = (xy_scale - 1.0) / 2
        x = (t[..., 0].sigmoid() * xy_scale - off + g[..., 0]) / S_w
        y = (t[..., 1].sigmoid() * xy_scale - off + g[..., 1]) / S_h
    return torch.stack([x, y, wh[..., 0] / S_w, wh[..., 1] / S_h], dim=-1)


def decode(
    raw: torch.Tensor, anchors, xy_scale: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decode raw outputs into boxes, objectness and class probabilities, flattened over (A, S_h, S_w).

    Args:
        raw: (B, A, S_h, S_w, 5 + C) model output.
        anchors: (A, 2) anchor w, h in grid cells (tensor or list of pairs).
        xy_scale: the model's centre scale (``YoloConfig.xy_scale``).

    Returns:
        boxes (B, N, 4) normalised cxcywh, obj (B, N), cls_prob (B, N, C), N = A * S_h * S_w.
    """
    B = raw.shape[0]
    raw = raw.float()
    boxes = decode_boxes(raw, _as_anchors(anchors, raw), xy_scale).reshape(B, -1, 4)
    obj = raw[..., 4].sigmoid().reshape(B, -1)
    cls_prob = raw[..., 5:].softmax(dim=-1).reshape(B, -1, raw.shape[-1] - 5)
    return boxes, obj, cls_prob


def encode(
    gt: list[torch.Tensor], anchors, grid_hw: tuple[int, int], num_classes: int, confidence: float = 0.999
) -> torch.Tensor:
    """The raw output a perfect model would give for ``gt``: the inverse of ``decode`` (for tests).

    Every responsible prediction (see ``targets.build_targets``) decodes to its box with objectness
    ``confidence`` and its class at probability ``confidence``; every other prediction has objectness
    ~1e-9. Boxes with no prediction of their own (same cell and anchor as a later box) are lost.

    Args:
        gt: one (n_i, 5) tensor per image, rows (class_index, cx, cy, w, h) normalised.
        anchors: (A, 2) anchor w, h in grid cells.
        grid_hw: (S_h, S_w).
        num_classes: C.
        confidence: objectness and class probability of the responsible predictions.
    """
    S_h, S_w = grid_hw
    device = gt[0].device if len(gt) else torch.device("cpu")
    anchors = torch.as_tensor(anchors, dtype=torch.float32, device=device).reshape(-1, 2)
    t = build_targets(gt, anchors, grid_hw)
    raw = torch.zeros(len(gt), len(anchors), S_h, S_w, 5 + num_classes, device=device)
    raw[..., 4] = math.log(1e-9)
    eps = 1e-6
    idx = (t["b"], t["a"], t["j"], t["i"])
    raw[idx + (slice(0, 2),)] = torch.logit(t["txy"].clamp(eps, 1 - eps))
    raw[idx + (slice(2, 4),)] = t["twh"]
    raw[idx + (4,)] = math.log(confidence / (1 - confidence))
    # class logits: log-odds that give the true class probability `confidence` under softmax
    cls_logits = torch.zeros(len(t["cls"]), num_classes, device=device)
    if num_classes > 1:
        cls_logits[torch.arange(len(t["cls"]), device=device), t["cls"]] = math.log(
            confidence * (num_classes - 1) / (1 - confidence)
        )
    raw[idx + (slice(5, None),)] = cls_logits
    return raw


@torch.no_grad()
def postprocess(
    raw: torch.Tensor,
    anchors,
    conf_thresh: float = 0.005,
    iou_thresh: float = 0.45,
    max_det: int = 100,
    max_candidates: int = 4096,
    xy_scale: float = 1.0,
) -> list[dict[str, torch.Tensor]]:
    """Detections per image: score = objectness x class probability, threshold, per-class NMS.

    Every (box, class) pair above ``conf_thresh`` is a candidate (multi-label, as darknet and COCO
    evaluation want); at most ``max_candidates`` of the best per image enter NMS.

    Args:
        raw: (B, A, S_h, S_w, 5 + C) model output.
        anchors: (A, 2) anchor w, h in grid cells.
        conf_thresh: minimum score.
        iou_thresh: NMS IoU threshold (per class).
        max_det: detections kept per image, best first.
        max_candidates: cap on candidates per image before NMS.
        xy_scale: the model's centre scale (``YoloConfig.xy_scale``; 1 for YOLOv2).

    Returns:
        one dict per image: boxes (k, 4) xyxy normalised and clipped to 0..1, scores (k,),
        labels (k,) class index.
    """
    boxes, obj, cls_prob = decode(raw, anchors, xy_scale)  # (B, N, 4), (B, N), (B, N, C)
    xyxy = box_convert(boxes, "cxcywh", "xyxy").clamp(0.0, 1.0).float().cpu().numpy()
    scores = (obj[..., None] * cls_prob).float().cpu().numpy()  # (B, N, C)
    out = []
    for n in range(len(xyxy)):  # the one NMS every path uses (export, predict, Detector, this)
        kb, ks, kl = select(xyxy[n], scores[n], conf_thresh, iou_thresh, max_det, max_candidates)
        out.append(
            {
                "boxes": torch.from_numpy(kb).to(raw.device, torch.float32),
                "scores": torch.from_numpy(ks).to(raw.device),
                "labels": torch.from_numpy(kl).to(raw.device),
            }
        )
    return out
