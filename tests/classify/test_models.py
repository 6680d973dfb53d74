from __future__ import annotations

import pytest
import torch

from detkit.classify.models import build_model, load_weights
from detkit.errors import DetkitError


def _feature_sizes(model: torch.nn.Module, size: int) -> dict[str, tuple]:
    shapes = {}
    for name in ("layer1", "layer3", "layer4"):
        getattr(model, name).register_forward_hook(
            lambda m, i, o, n=name: shapes.__setitem__(n, tuple(o.shape))
        )
    model.eval()(torch.zeros(1, 3, size, size))
    return shapes


def test_64_stem_keeps_resolution():
    m = build_model("resnet18", num_classes=7)
    assert (m.conv1.kernel_size, m.conv1.stride) == ((3, 3), (1, 1))
    assert isinstance(m.maxpool, torch.nn.Identity) and m.fc.out_features == 7
    s = _feature_sizes(m, 64)
    assert (
        s["layer1"] == (1, 64, 64, 64) and s["layer3"] == (1, 256, 16, 16) and s["layer4"] == (1, 512, 8, 8)
    )


def test_imagenet_stem_and_width():
    m = build_model("resnet18", 10, stem="imagenet")
    assert (m.conv1.kernel_size, m.conv1.stride) == ((7, 7), (2, 2))
    assert _feature_sizes(m, 64)["layer3"] == (1, 256, 4, 4)
    thin = build_model("resnet18", 10, width=0.25)
    s = _feature_sizes(thin, 32)
    assert s["layer1"][1] == 16 and s["layer4"] == (1, 128, 4, 4) and thin.fc.in_features == 128
    assert build_model("resnet50", 10, width=0.25).fc.in_features == 512  # 128 x bottleneck expansion 4
    with pytest.raises(DetkitError, match="model 'vgg16' is not a known model") as err:
        build_model("vgg16", 10)
    assert err.value.cli_message().startswith("--model 'vgg16'")  # the CLI names the flag


def test_load_weights_skips_mismatched_layers(tmp_path):
    src = build_model("resnet18", 10, width=0.25)
    torch.save({"model": src.state_dict()}, tmp_path / "w.pt")
    dst = build_model("resnet18", 3, width=0.25)
    loaded, skipped = load_weights(dst, tmp_path / "w.pt")
    assert len(loaded) == len(dst.state_dict()) - 2
    assert skipped == ["fc.bias", "fc.weight"]
    assert torch.equal(dst.layer2[0].conv1.weight, src.layer2[0].conv1.weight)
    with pytest.raises(DetkitError, match="weights file not found"):
        load_weights(dst, tmp_path / "missing.pt")


def test_load_weights_prefers_the_ema_of_a_last_checkpoint(tmp_path):
    raw, ema = build_model("resnet18", 3, width=0.25), build_model("resnet18", 3, width=0.25)
    torch.save(
        {"model": raw.state_dict(), "ema": {"module": ema.state_dict(), "updates": 3}}, tmp_path / "last.pt"
    )
    dst = build_model("resnet18", 3, width=0.25)
    _, skipped = load_weights(dst, tmp_path / "last.pt")
    assert skipped == [] and torch.equal(dst.fc.weight, ema.fc.weight)
