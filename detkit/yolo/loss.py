"""The YOLOv2 multi-part loss, vectorised over the batch, always in fp32.

With K responsible predictions k (see ``targets.build_targets``), every other prediction n, and
sigma the logistic function, the parts (each summed, then divided by the batch size B) are

    coord = lambda_coord * sum_k s_k * [ (sigma(t_x) - tx)^2 + (sigma(t_y) - ty)^2 + size_k ]
            size_k = (t_w - log(w / p_w))^2 + (t_h - log(h / p_h))^2          size_loss="log"
                   = (sqrt(b_w) - sqrt(w))^2 + (sqrt(b_h) - sqrt(h))^2          size_loss="sqrt"
            s_k = 2 - w*h (w, h normalised) when scale_by_size, else 1
    prior = warmup_weight * sum_n [ (sigma(t_x) - .5)^2 + (sigma(t_y) - .5)^2 + t_w^2 + t_h^2 ]
            (darknet's prior warm-up, only while seen_images < warmup_images; 0 after)
    obj   = lambda_obj * sum_k (target_k - sigma(t_o))^2,   target_k = IoU(pred box, its gt) if rescore else 1
    noobj = lambda_noobj * sum_n sigma(t_o)^2  over n not responsible and with best IoU(any gt) <=
    ignore_thresh
    cls   = lambda_cls * sum_k cross_entropy(class logits, class)

The "modern" preset (``box_loss="ciou"``) replaces all of this with the YOLOv4/v5 loss, over the
positives k of ``targets.build_targets_multi`` (several anchors and cells per box) and all N predictions:

    coord = lambda_coord * mean_k (1 - CIoU(decoded box_k, gt_k))          (GIoU with box_loss="giou")
    obj   = lambda_obj   * sum_{n positive} BCE(t_o, IoU_n) / N,   IoU_n = the best IoU(decoded, gt) there
    noobj = lambda_noobj * sum_{n other}    BCE(t_o, 0) / N
    cls   = lambda_cls   * mean_k cross_entropy(class logits, class, label_smoothing)

with the centres decoded with the model's ``xy_scale`` (2: a neighbouring cell reaches the centre).

Presets: "darknet" (region layer of yolo-voc.cfg: coord 1 with the 2 - w*h scale, log sizes, obj 5
with rescore, noobj 1, cls 1, prior warm-up over 12,800 images) and "course" (lambda_coord 5 with
sqrt sizes, noobj 0.5, obj target 1, no warm-up). The squared errors carry no 1/2: darknet's deltas
are the gradients of 1/2 (t - p)^2, so our coordinate and objectness gradients are 2x darknet's at the
same lambdas (classes match exactly).

Try it: python -m pytest tests/yolo/test_loss.py -q"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import complete_box_iou_loss, generalized_box_iou_loss

from detkit.boxes import pairwise_iou
from detkit.yolo.decode import WH_CLAMP, decode_boxes
from detkit.yolo.targets import build_targets, build_targets_multi

# IoU of every prediction with every ground-truth box of ITS image: (B, N, 4) x (B, M, 4) -> (B, N, M)
batched_iou = torch.vmap(partial(pairwise_iou, fmt="cxcywh"))


@dataclass
class LossConfig:
    """Weights and switches of the YOLOv2 loss; build with ``LossConfig.preset(name, **overrides)``."""

    name: str = "darknet"  # the preset it came from (``preset`` is the constructor's name)
    size_loss: str = "log"  # "log" (darknet) or "sqrt" (course)
    lambda_coord: float = 1.0
    lambda_obj: float = 5.0
    lambda_noobj: float = 1.0
    lambda_cls: float = 1.0
    rescore: bool = True  # objectness target = IoU(pred, gt) instead of 1
    scale_by_size: bool = True  # coordinate scale 2 - w*h (small boxes weigh more)
    ignore_thresh: float = 0.6
    warmup_images: int = 12800
    warmup_weight: float = 0.01
    box_loss: str = "mse"  # "mse" (YOLOv2's squared errors), "ciou" or "giou" on decoded boxes
    anchor_iou: float = 0.3  # iou losses: shape IoU from which an anchor is a positive too
    neighbours: bool = True  # iou losses: the two neighbouring cells are positives (needs xy_scale 2)
    label_smoothing: float = 0.0

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "modern": {
            "box_loss": "ciou",
            "lambda_coord": 0.05,
            "lambda_obj": 1.0,
            "lambda_noobj": 1.0,
            "lambda_cls": 0.05,
            "rescore": True,
            "scale_by_size": False,
            "warmup_images": 0,
        },
        "darknet": {},
        "course": {
            "size_loss": "sqrt",
            "lambda_coord": 5.0,
            "lambda_obj": 1.0,
            "lambda_noobj": 0.5,
            "lambda_cls": 1.0,
            "rescore": False,
            "scale_by_size": False,
            "warmup_images": 0,
        },
    }

    def __post_init__(self) -> None:
        if self.size_loss not in ("log", "sqrt"):
            raise ValueError(f"size_loss must be 'log' or 'sqrt', got {self.size_loss!r}")
        if self.box_loss not in ("mse", "ciou", "giou"):
            raise ValueError(f"box_loss must be 'mse', 'ciou' or 'giou', got {self.box_loss!r}")

    @classmethod
    def preset(cls, name: str = "modern", **overrides: Any) -> LossConfig:
        """A preset with some fields overridden; overrides set to None are ignored (handy for CLI options)."""
        if name not in cls.PRESETS:
            raise ValueError(f"loss preset must be one of {sorted(cls.PRESETS)}, got {name!r}")
        base = replace(cls(name=name), **cls.PRESETS[name])
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class YoloLoss(nn.Module):
    """YOLOv2 loss; ``forward(raw, gt, seen_images) -> (total, {"coord", "obj", "noobj", "cls",
    "prior"})``."""

    def __init__(
        self, cfg: LossConfig, anchors: list[tuple[float, float]], num_classes: int, xy_scale: float = 1.0
    ):
        """Args:
        cfg: the loss configuration.
        anchors: A anchor (w, h) in grid cells of the output grid.
        num_classes: C.
        xy_scale: the model's centre decoding (``YoloConfig.xy_scale``; used by the IoU losses).
        """
        super().__init__()
        self.cfg = cfg
        self.xy_scale = xy_scale
        self.num_classes = num_classes
        self.anchors = torch.as_tensor(anchors, dtype=torch.float32).reshape(
            -1, 2
        )  # (A, 2) cells, on the CPU
        self._anchors_on: dict[torch.device, torch.Tensor] = {}

    def _anchors(self, device: torch.device) -> torch.Tensor:
        # one copy per device, made once: a per-step host->device copy would stall the CUDA stream
        if device not in self._anchors_on:
            self._anchors_on[device] = self.anchors.to(device)
        return self._anchors_on[device]

    def forward(
        self, raw: torch.Tensor, gt: list[torch.Tensor] | torch.Tensor, seen_images: int = 0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Args:
        raw: (B, A, S_h, S_w, 5 + C) model output, any dtype (computed in fp32).
        gt: one (n_i, 5) tensor per image, rows (class_index, cx, cy, w, h) normalised 0..1. Pass
            them on the CPU, as the loader yields them: the targets are then built there and copied
            without blocking, so a CUDA step never waits for the GPU inside the loss. A padded
            (B, M, 5) tensor (padding rows with w = h = 0) works too.
        seen_images: images trained on so far (for the prior warm-up).

        Returns:
            total loss (scalar, with grad) and the detached parts, all divided by the batch size.
        """
        with torch.autocast(device_type=raw.device.type, enabled=False):
            parts = self._parts(raw.float(), gt, seen_images)
        total = parts["coord"] + parts["obj"] + parts["noobj"] + parts["cls"] + parts["prior"]
        return total, {k: v.detach() for k, v in parts.items()}

    def _parts(
        self, raw: torch.Tensor, gt: list[torch.Tensor] | torch.Tensor, seen_images: int
    ) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        B, A, S_h, S_w, K = raw.shape
        if (A, K) != (len(self.anchors), 5 + self.num_classes):
            raise ValueError(
                f"raw outputs {tuple(raw.shape)} do not fit {len(self.anchors)} anchors x "
                f"(5 + {self.num_classes} classes)"
            )
        if cfg.box_loss != "mse":
            return self._iou_parts(raw, gt)
        anchors = self._anchors(raw.device)
        gt_device = gt[0].device if len(gt) else raw.device
        t = build_targets(gt, self._anchors(gt_device), (S_h, S_w))
        t = {k: v.to(raw.device, non_blocking=True) for k, v in t.items()}
        idx = (t["b"], t["a"], t["j"], t["i"])
        # one split, so backward assembles the gradient of raw once instead of once per slice
        t_xy, t_wh, t_o, t_cls = raw.split([2, 2, 1, raw.shape[-1] - 5], dim=-1)
        p_xy, p_wh, p_cls = t_xy[idx], t_wh[idx], t_cls[idx]  # (K, 2), (K, 2), (K, C) responsible ones

        # --- coordinates
        xy_err = ((p_xy.sigmoid() - t["txy"]) ** 2).sum(1)  # (K,)
        if cfg.size_loss == "log":
            wh_err = ((p_wh - t["twh"]) ** 2).sum(1)
        else:
            # sqrt(p_w exp(t_w) / S_w) written as sqrt(p_w / S_w) exp(t_w / 2): no overflow, no sqrt(0)
            anc = anchors[t["a"]]  # (K, 2) cells
            sqrt_prior = torch.stack([anc[:, 0] / S_w, anc[:, 1] / S_h], dim=1).sqrt()
            sqrt_pred = sqrt_prior * (p_wh.clamp(-WH_CLAMP, WH_CLAMP) / 2).exp()
            wh_err = ((sqrt_pred - t["wh"].sqrt()) ** 2).sum(1)
        scale = 2.0 - t["wh"][:, 0] * t["wh"][:, 1] if cfg.scale_by_size else torch.ones_like(xy_err)
        coord = cfg.lambda_coord * (scale * (xy_err + wh_err)).sum()

        responsible = torch.zeros(B, A, S_h, S_w, dtype=torch.bool, device=raw.device)
        responsible[idx] = True
        prior = raw.new_zeros(())
        if seen_images < cfg.warmup_images and cfg.warmup_weight > 0:
            # pull every other prediction toward its anchor at the cell centre: sigma(t) -> .5, t_wh -> 0
            off = ((t_xy.sigmoid() - 0.5) ** 2).sum(-1) + (t_wh**2).sum(-1)  # (B, A, S_h, S_w)
            prior = cfg.warmup_weight * off.masked_fill(responsible, 0.0).sum()

        # --- objectness of responsible predictions
        with torch.no_grad():
            pred_boxes = decode_boxes(raw.detach()[..., :4], anchors)  # (B, A, S_h, S_w, 4) normalised cxcywh
        conf = t_o.squeeze(-1).sigmoid()  # (B, A, S_h, S_w)
        if cfg.rescore:
            # IoU of each responsible box with its own ground truth: (K, 1, 4) x (K, 1, 4) -> (K, 1, 1)
            obj_target = batched_iou(pred_boxes[idx][:, None], t["box"][:, None]).reshape(-1)
        else:
            obj_target = torch.ones_like(conf[idx])
        obj = cfg.lambda_obj * ((obj_target - conf[idx]) ** 2).sum()

        # --- no-object: all others, except those overlapping some ground truth by more than ignore_thresh
        gt_boxes, gt_mask = t["gt_boxes"], t["gt_mask"]  # (B, M, 4), (B, M)
        if gt_boxes.shape[1] > 0:
            with torch.no_grad():
                iou = batched_iou(pred_boxes.reshape(B, -1, 4), gt_boxes)  # (B, N, M)
                best = iou.masked_fill(~gt_mask[:, None, :], 0.0).amax(dim=2).view(B, A, S_h, S_w)
            noobj_mask = (best <= cfg.ignore_thresh) & ~responsible
        else:
            noobj_mask = ~responsible
        noobj = cfg.lambda_noobj * (conf**2).masked_fill(~noobj_mask, 0.0).sum()

        # --- classes
        cls = cfg.lambda_cls * F.cross_entropy(p_cls, t["cls"], reduction="sum")

        return {"coord": coord / B, "obj": obj / B, "noobj": noobj / B, "cls": cls / B, "prior": prior / B}

    def _iou_parts(self, raw: torch.Tensor, gt: list[torch.Tensor] | torch.Tensor) -> dict[str, torch.Tensor]:
        """The "modern" loss (see the module docstring): CIoU/GIoU, BCE objectness with an IoU target."""
        cfg = self.cfg
        B, A, S_h, S_w, _ = raw.shape
        anchors = self._anchors(raw.device)
        gt_device = gt[0].device if len(gt) else raw.device
        t = build_targets_multi(
            gt, self._anchors(gt_device), (S_h, S_w), cfg.anchor_iou, cfg.neighbours and self.xy_scale > 1
        )
        t = {k: v.to(raw.device, non_blocking=True) for k, v in t.items()}
        b, a, j, i = t["b"], t["a"], t["j"], t["i"]
        p = raw[b, a, j, i]  # (K, 5 + C)
        zero = raw.new_zeros(())
        # decoded boxes of the positives, in grid cells (the input is square, so IoUs are those of pixels)
        s = self.xy_scale
        grid_wh = raw.new_tensor([S_w, S_h])
        cxcy = p[:, 0:2].sigmoid() * s - (s - 1) / 2 + torch.stack([i, j], dim=1).float()
        wh = anchors[a] * p[:, 2:4].clamp(-WH_CLAMP, WH_CLAMP).exp()
        pred = torch.cat([cxcy - wh / 2, cxcy + wh / 2], dim=1)  # (K, 4) xyxy cells
        g = t["box"]
        g_xy, g_wh = g[:, 0:2] * grid_wh, g[:, 2:4] * grid_wh
        target = torch.cat([g_xy - g_wh / 2, g_xy + g_wh / 2], dim=1)
        if len(p):
            iou_loss = complete_box_iou_loss if cfg.box_loss == "ciou" else generalized_box_iou_loss
            coord = cfg.lambda_coord * iou_loss(pred, target, reduction="mean")
            cls = cfg.lambda_cls * F.cross_entropy(p[:, 5:], t["cls"], label_smoothing=cfg.label_smoothing)
        else:
            coord, cls = zero, zero
        with torch.no_grad():
            lt, rb = torch.maximum(pred[:, :2], target[:, :2]), torch.minimum(pred[:, 2:], target[:, 2:])
            inter = (rb - lt).clamp(min=0).prod(1)
            union = wh.prod(1) + g_wh.prod(1) - inter
            iou = (inter / union.clamp(min=1e-9)).clamp(0, 1)
            flat = ((b * A + a) * S_h + j) * S_w + i
            tobj = raw.new_zeros(B * A * S_h * S_w)
            tobj.scatter_reduce_(0, flat, iou if cfg.rescore else torch.ones_like(iou), "amax")
            pos = torch.zeros_like(tobj, dtype=torch.bool)
            pos[flat] = True
        bce = F.binary_cross_entropy_with_logits(raw[..., 4].reshape(-1), tobj, reduction="none")
        n = bce.numel()
        obj = cfg.lambda_obj * bce.masked_fill(~pos, 0.0).sum() / n
        noobj = cfg.lambda_noobj * bce.masked_fill(pos, 0.0).sum() / n
        return {"coord": coord, "obj": obj, "noobj": noobj, "cls": cls, "prior": zero}
