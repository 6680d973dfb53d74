"""Grad-CAM (Selvaraju et al. 2017) with forward/tensor hooks, and heat-map overlays."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detkit.errors import DetkitError


def _layer(model: nn.Module, layer: str) -> nn.Module:
    try:
        return model.get_submodule(layer)
    except AttributeError:
        names = [n for n, _ in model.named_children()]
        raise DetkitError(
            f"cam_layer {layer!r} is not a layer of this model (top level: {', '.join(names)})"
        ) from None


def _check_maps(layer: str, out: object) -> None:
    if not isinstance(out, torch.Tensor) or out.ndim != 4:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise DetkitError(
            f"cam_layer {layer!r} gives {shape}, not feature maps (B, C, H, W); "
            "pick a convolutional stage such as layer3 or layer4"
        )


@torch.no_grad()
def check_cam_layer(model: nn.Module, layer: str, size: int) -> None:
    """Fail early, with a one-line message, when ``layer`` is missing or gives no spatial maps."""
    module = _layer(model, layer)
    handle = module.register_forward_hook(lambda _m, _i, out: _check_maps(layer, out))
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, 3, size, size, device=next(model.parameters()).device))
    finally:
        handle.remove()
        model.train(was_training)


def grad_cam(model: nn.Module, x: torch.Tensor, layer: str, target: torch.Tensor | None = None):
    """Class-discriminative maps of ``layer`` for a batch.

    Each map is ReLU(sum_k alpha_k A_k) with alpha_k the spatial mean of d score / d A_k, upsampled
    bilinearly to the input size and scaled to [0, 1] per image.

    Args:
        model: the classifier (put in eval mode here).
        x: (B, 3, H, W) normalised input.
        layer: name of a submodule, e.g. ``layer3`` (16x16 with the 64x64 stem) or ``layer4``.
        target: (B,) class to explain; default the predicted class.
    Returns: maps (B, H, W) float in [0, 1], logits (B, C), explained classes (B,).
    """
    module = _layer(model, layer)
    saved: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        _check_maps(layer, out)
        saved["act"] = out
        out.register_hook(lambda g: saved.__setitem__("grad", g))

    handle = module.register_forward_hook(hook)
    model.eval()
    try:
        with torch.enable_grad():
            logits = model(x)
            cls = logits.argmax(1) if target is None else target
            model.zero_grad(set_to_none=True)
            logits.gather(1, cls[:, None]).sum().backward()
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
    act, grad = saved["act"].detach().float(), saved["grad"].float()
    alpha = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((alpha * act).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    cam = cam / cam.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    return cam, logits.detach(), cls


def overlay(rgb: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a [0, 1] map (H, W) as a jet heat map over an (H, W, 3) uint8 RGB image."""
    import cv2

    heat = cv2.applyColorMap(np.uint8(np.clip(cam, 0, 1) * 255), cv2.COLORMAP_JET)[..., ::-1]
    return np.uint8(np.clip((1 - alpha) * rgb + alpha * heat, 0, 255))
