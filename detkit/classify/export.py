"""A trained classifier out of detkit: ``detkit classify export CKPT OUT --format onnx|torchscript``, and the
torch side of the one loader of a classifier (:func:`detkit.classify.checkpoint.load_classifier`, which
runs an ONNX file on onnxruntime without importing this module).

What is exported is the network with its input normalisation,

    uint8 (B, S, S, 3) RGB  ->  (x / 255 - mean) / std  ->  ResNet  ->  logits (B, C)

(:func:`detkit.classify.augment.normalize`, the one of training, traced into the graph), so a user feeds
images resized to S (bilinear) and takes a softmax; the class folders (wnids), their names, S, mean and std,
the detkit version and the checkpoint's sha256 travel in the file's metadata (:func:`classifier_metadata`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from detkit import __version__
from detkit.classify.augment import normalize
from detkit.classify.checkpoint import load_checkpoint
from detkit.classify.models import build_model, checkpoint_weights
from detkit.deploy.export import load_torchscript, torch_runner, torch_threads, write_export
from detkit.deploy.formats import FORMATS, TORCHSCRIPT_SUFFIXES
from detkit.deploy.runtime import EXPORT_SCHEMA, Exported
from detkit.errors import OptionError
from detkit.io import sha256_file
from detkit.train.common import resolve_device


def load_torch(path: Path, device: str = "auto", threads: int | None = None) -> Exported:
    """A classify checkpoint (``best.pt`` / ``last.pt``) or a TorchScript (``.ts``) on torch, ready to give
    logits of uint8 (B, S, S, 3) RGB images (``Exported.run``); arguments as
    :func:`detkit.classify.checkpoint.load_classifier`."""
    p = Path(path)
    dev = resolve_device(device)
    n = torch_threads(threads, dev)
    if p.suffix.lower() in TORCHSCRIPT_SUFFIXES:
        module, meta = load_torchscript(p, dev, task="classify")
        return Exported(meta, torch_runner(module, dev), meta.get("batch"), "torchscript", n, str(dev))
    module, meta = deployable(p, None, "checkpoint")
    return Exported(meta, torch_runner(module.to(dev), dev), None, "torch", n, str(dev))


def classifier_metadata(ckpt: dict[str, Any], path: Path, batch: int | None, fmt: str) -> dict[str, Any]:
    """What inference needs, stored in an export (and built the same way for a checkpoint)."""
    cfg = ckpt["config"]
    s = int(cfg["img_size"])
    return {
        "schema": EXPORT_SCHEMA,
        "task": "classify",
        "format": fmt,
        "detkit_version": __version__,
        "torch_version": torch.__version__,
        "checkpoint": path.name,
        "checkpoint_sha256": sha256_file(path),
        "epoch": ckpt.get("epoch"),
        "img_size": s,
        "batch": batch,
        "input": {
            "name": "images",
            "shape": [batch if batch is not None else "batch", s, s, 3],
            "dtype": "uint8",
            "channels": "RGB",
            "resize": f"bilinear to {s} x {s} (PIL), no crop",
            "normalisation": "(x / 255 - mean) / std, inside the graph",
        },
        "mean": [float(v) for v in ckpt["mean"]],
        "std": [float(v) for v in ckpt["std"]],
        "outputs": {"logits": "(B, C) class logits; softmax gives the probabilities"},
        "classes": list(ckpt["classes"]),
        "names": list(ckpt["names"]),
        "config": {k: cfg.get(k) for k in ("data", "model", "stem", "width", "img_size", "val", "cache_dir")},
    }


def deployable(weights: Path, batch: int | None, fmt: str):
    """(module uint8 (B, S, S, 3) -> logits, metadata) of a checkpoint, EMA weights, eval mode."""

    class Deployable(nn.Module):
        def __init__(self, model: nn.Module, mean, std) -> None:
            super().__init__()
            self.model = model
            self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
            self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return self.model(normalize(images, self.mean, self.std).contiguous())

    ckpt = load_checkpoint(Path(weights))
    cfg = ckpt["config"]
    model = build_model(cfg["model"], len(ckpt["classes"]), cfg["stem"], cfg.get("width", 1.0))
    model.load_state_dict(checkpoint_weights(ckpt))
    meta = classifier_metadata(ckpt, Path(weights), batch, fmt)
    return Deployable(model.eval(), meta["mean"], meta["std"]).eval(), meta


def export(
    weights: str | Path, out: str | Path, fmt: str = "onnx", *, dynamic: bool = False, batch: int = 1
) -> dict[str, Any]:
    """Write the classifier of ``weights`` to ``out`` (atomically) and check it against PyTorch (see
    :func:`detkit.yolo.export.export`; the same writer)."""
    if fmt not in FORMATS:
        raise OptionError("format", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if batch < 1:
        raise OptionError("batch", f"must be at least 1, got {batch}")
    module, meta = deployable(Path(weights), None if dynamic else batch, fmt)
    s = meta["img_size"]
    example = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (batch, s, s, 3), np.uint8))
    return write_export(module, example, meta, out, fmt, dynamic, ("logits",))
