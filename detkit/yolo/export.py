"""A trained detector out of detkit: ``detkit yolo export CKPT OUT --format onnx|torchscript``.

What is exported is :class:`Deployable`: the network built from the checkpoint's own config
(:func:`detkit.yolo.checkpoint.model_from_checkpoint`, EMA weights) with its input conversion and decode,

    uint8 (B, S, S, 3) RGB letterboxed canvas
      -> float (B, 3, S, S) = x / 255                     (detkit.yolo.engine.to_input's rule)
      -> raw (B, A, S/32, S/32, 5 + C)                    (the model)
      -> boxes (B, N, 4) xyxy in 0..1 of the input, clipped; scores (B, N, C) = objectness x class prob
                                                          (detkit.yolo.decode.decode, N = A * (S/32)^2)

so a user feeds it the letterbox of :func:`detkit.deploy.runtime.letterbox` and keeps what
:func:`detkit.deploy.runtime.postprocess` keeps; both are recorded in the file's metadata
(:func:`detector_metadata`) with the class names, anchors, the detkit version and the checkpoint's sha256.
ONNX: opset 17, checked with ``onnx.checker``; after writing, the file is run once on onnxruntime (when
installed) against PyTorch and the largest difference is reported. The same module runs checkpoints and
TorchScript files for ``yolo predict`` / ``yolo eval`` / :class:`detkit.Detector` (:func:`load_torch`).

Try it: detkit yolo export runs/y1/best.pt model.onnx && detkit yolo predict model.onnx photos/ --out preds
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from detkit import __version__
from detkit.deploy.export import (
    load_torchscript,
    torch_runner,
    torch_threads,
    write_export,
)
from detkit.deploy.formats import FORMATS, TORCHSCRIPT_SUFFIXES
from detkit.deploy.runtime import EXPORT_SCHEMA, PAD_VALUE, Exported
from detkit.errors import OptionError
from detkit.io import sha256_file
from detkit.train.common import resolve_device
from detkit.yolo.checkpoint import load_checkpoint, model_from_checkpoint
from detkit.yolo.config import check_img_size
from detkit.yolo.decode import decode


class Deployable(nn.Module):
    """The detector as it is exported: uint8 (B, S, S, 3) RGB -> boxes (B, N, 4), scores (B, N, C).

    Args:
        model: the YOLOv2 in eval mode; its config's ``xy_scale`` is the centre decoding the export keeps.
        anchors: (A, 2) anchors in grid cells.
    """

    def __init__(self, model: nn.Module, anchors) -> None:
        super().__init__()
        self.model = model
        self.xy_scale = float(model.cfg.xy_scale)
        self.register_buffer("anchors", torch.as_tensor(anchors, dtype=torch.float32).reshape(-1, 2))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision.ops import box_convert

        x = images.permute(0, 3, 1, 2).float().div(255.0).contiguous()
        boxes, obj, cls_prob = decode(self.model(x), self.anchors, self.xy_scale)
        xyxy = box_convert(boxes, "cxcywh", "xyxy").clamp(0.0, 1.0)
        return xyxy, obj[..., None] * cls_prob


def detector_metadata(
    ckpt: dict[str, Any], path: str | Path, img_size: int, batch: int | None, fmt: str
) -> dict[str, Any]:
    """What inference needs, stored in an export (and built the same way for a checkpoint)."""

    p = Path(path)
    p = p / "last.pt" if p.is_dir() else p
    cm = ckpt["class_map"]
    return {
        "schema": EXPORT_SCHEMA,
        "task": "detect",
        "format": fmt,
        "detkit_version": __version__,
        "torch_version": torch.__version__,
        "checkpoint": p.name,
        "checkpoint_sha256": sha256_file(p),
        "epoch": ckpt.get("epoch"),
        "img_size": int(img_size),
        "batch": batch,
        "input": {
            "name": "images",
            "shape": [batch if batch is not None else "batch", img_size, img_size, 3],
            "dtype": "uint8",
            "channels": "RGB",
            "scale": "x / 255, inside the graph",
        },
        "letterbox": {
            "rule": "r = min(S / w, S / h), centred: p' = r * p + ((S - w r) / 2, (S - h r) / 2)",
            "interpolation": "bilinear (cv2.warpAffine INTER_LINEAR)",
            "pad_value": PAD_VALUE,
        },
        "outputs": {
            "boxes": "(B, N, 4) xyxy normalised to the S x S input, clipped to 0..1",
            "scores": "(B, N, C) objectness x class probability",
        },
        "postprocess": "pairs (box, class) with score > conf, the best 4096, greedy NMS per class, max_det",
        "cat_ids": [int(c) for c in cm["cat_ids"]],
        "names": [str(n) for n in cm["names"]],
        "anchors": [list(map(float, a)) for a in ckpt["model_config"]["anchors"]],
        "model_config": ckpt["model_config"],
    }


def load_torch(path: str | Path, device: str = "auto", threads: int | None = None) -> Exported:
    """A checkpoint (``.pt``, or a run folder meaning its ``last.pt``) or a TorchScript export, ready for
    :func:`detkit.yolo.predict.detect`."""

    p = Path(path)
    dev = resolve_device(device)
    n = torch_threads(threads, dev)
    if p.suffix.lower() in TORCHSCRIPT_SUFFIXES:
        module, meta = load_torchscript(p, dev)
        return Exported(meta, torch_runner(module, dev), meta.get("batch"), "torchscript", n, str(dev))
    ckpt = load_checkpoint(p)
    model, _, img_size = model_from_checkpoint(ckpt)
    meta = detector_metadata(ckpt, p, img_size, None, "checkpoint")
    module = Deployable(model, meta["anchors"]).to(dev).eval()
    return Exported(meta, torch_runner(module, dev), None, "torch", n, str(dev))


def export(
    weights: str | Path,
    out: str | Path,
    fmt: str = "onnx",
    *,
    dynamic: bool = False,
    batch: int = 1,
    img_size: int | None = None,
) -> dict[str, Any]:
    """Write the detector of ``weights`` to ``out`` (atomically) and check it.

    Args:
        weights: a ``detkit yolo train`` checkpoint (or its run folder).
        out: the file to write (``.onnx`` / ``.ts``).
        fmt: ``onnx`` or ``torchscript``.
        dynamic: any batch size (else ``batch``, fixed).
        batch: the fixed batch size.
        img_size: input side (default: the training side).

    Returns:
        ``{"out", "format", "img_size", "batch", "bytes", "max_abs_diff"}`` (the difference to PyTorch on
        a check input, None when onnxruntime is not installed).
    """
    if fmt not in FORMATS:
        raise OptionError("format", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if batch < 1:
        raise OptionError("batch", f"must be at least 1, got {batch}")
    ckpt = load_checkpoint(weights)
    model, _, train_size = model_from_checkpoint(ckpt)
    size = check_img_size(int(img_size or train_size))
    fixed = None if dynamic else batch
    meta = detector_metadata(ckpt, weights, size, fixed, fmt)
    module = Deployable(model, meta["anchors"]).eval()
    example = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), np.uint8))
    return write_export(module, example, meta, out, fmt, dynamic, ("boxes", "scores"))
