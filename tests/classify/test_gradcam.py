from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from detkit.classify.gradcam import grad_cam, overlay
from detkit.classify.models import build_model
from detkit.errors import DetkitError


def test_gradcam_of_last_block_equals_class_activation_map():
    # before global average pooling and a linear layer, d score / d A_k = w_ck / (h w) everywhere, so
    # Grad-CAM reduces to Zhou et al.'s CAM: ReLU(sum_k w_ck A_k), up to scale
    torch.manual_seed(0)
    model = build_model("resnet18", 4, width=0.25).eval()
    x = torch.randn(3, 3, 32, 32)
    acts = {}
    model.layer4.register_forward_hook(lambda m, i, o: acts.__setitem__("a", o.detach()))
    target = torch.tensor([0, 2, 3])
    maps, logits, cls = grad_cam(model, x, "layer4", target=target)
    w = model.fc.weight.detach()[target]  # (B, K)
    cam = F.relu((w[:, :, None, None] * acts["a"]).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    cam = cam / cam.flatten(1).amax(1)[:, None, None]
    assert maps.shape == (3, 32, 32) and torch.equal(cls, target)
    assert torch.allclose(maps, cam, atol=1e-5)
    assert torch.allclose(logits, model(x), atol=1e-5)
    assert all(p.grad is None for p in model.parameters())


def test_gradcam_default_target_and_bad_layer():
    model = build_model("resnet18", 4, width=0.25)
    x = torch.randn(2, 3, 32, 32)
    maps, logits, cls = grad_cam(model, x, "layer3")
    assert torch.equal(cls, logits.argmax(1))
    assert maps.min() >= 0 and torch.allclose(maps.flatten(1).amax(1), torch.ones(2))
    with pytest.raises(DetkitError, match="not a layer of this model"):
        grad_cam(model, x, "layer9")


def test_overlay_blends_jet():
    rgb = np.zeros((2, 2, 3), np.uint8)
    out = overlay(rgb, np.array([[0.0, 1.0], [1.0, 0.0]]), alpha=1.0)
    assert out[0, 0].tolist() == [0, 0, 128] and out[0, 1].tolist() == [128, 0, 0]  # jet: blue .. red
