"""torchvision ResNets, random init, with the 64x64 stem (3x3 stride-1 conv, no max-pool) by default.

The ImageNet stem (7x7 stride-2 conv + max-pool) shrinks a 64x64 image to 16x16 before the first block;
the 64x64 stem keeps it at 64x64, so layer3's Grad-CAM map is 16x16 and layer4's 8x8. ``width`` < 1 thins
every layer (a CI/debug knob; the recipe uses 1.0). Weights come only from local files.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from detkit.errors import InputError, OptionError
from detkit.io import torch_load

ARCHS = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
}
STEMS = ("64", "imagenet")


class _ScaledResNet(ResNet):
    """torchvision's ResNet with every layer's channel count multiplied by ``width``."""

    def __init__(self, block: type, layers: list[int], num_classes: int, width: float):
        self._width, self._first = width, True
        super().__init__(block, layers, num_classes=num_classes)
        c = self._ch(64)
        self.conv1 = nn.Conv2d(3, c, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.fc = nn.Linear(self._ch(512) * block.expansion, num_classes)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")

    def _ch(self, planes: int) -> int:
        return max(4, round(planes * self._width))

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if self._first:  # torchvision sets inplanes = 64 before the first layer
            self.inplanes, self._first = self._ch(64), False
        return super()._make_layer(block, self._ch(planes), blocks, stride, dilate)


def build_model(
    name: str = "resnet18", num_classes: int = 200, stem: str = "64", width: float = 1.0
) -> nn.Module:
    """A randomly initialised ResNet.

    Args:
        name: resnet18, resnet34 or resnet50.
        num_classes: size of the final layer.
        stem: ``"64"`` (3x3 stride-1 conv, no max-pool; for 64x64 inputs) or ``"imagenet"``.
        width: channel multiplier (1.0 = torchvision's model).
    """
    if name not in ARCHS:
        raise OptionError("model", f"{name!r} is not a known model; choose from {', '.join(ARCHS)}")
    if stem not in STEMS:
        raise OptionError("stem", f"{stem!r} is not a known stem; choose from {', '.join(STEMS)}")
    block, layers = ARCHS[name]
    if width == 1.0:
        model = ResNet(block, layers, num_classes=num_classes)
    else:
        model = _ScaledResNet(block, layers, num_classes, width)
    if stem == "64":
        c = model.conv1.out_channels
        model.conv1 = nn.Conv2d(3, c, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        model.maxpool = nn.Identity()
    return model


def checkpoint_weights(ckpt: dict) -> dict:
    """The weights to evaluate or start from: the EMA's when the checkpoint has them, else the model's."""
    ema = ckpt.get("ema")
    if isinstance(ema, dict) and "module" in ema:  # last.pt keeps the EMA's full state
        return ema["module"]
    return ema or ckpt["model"]


def load_weights(model: nn.Module, path: str | Path) -> tuple[list[str], list[str]]:
    """Load a local state dict (a detkit checkpoint, or a torchvision ``.pth``) where shapes match.

    Layers whose shape differs (the classifier for another class count, the stem for another stem) keep
    their random init. Returns the loaded and the skipped parameter names.
    """
    path = Path(path)
    obj = torch_load(path, "weights file")
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = checkpoint_weights(obj)
    if not isinstance(obj, dict):
        raise InputError(path, None, "expected a state dict")
    own = model.state_dict()
    take = {k.removeprefix("module."): v for k, v in obj.items() if torch.is_tensor(v)}
    take = {k: v for k, v in take.items() if k in own and own[k].shape == v.shape}
    if not take:
        raise InputError(path, None, "no parameter matches this model (wrong architecture?)")
    model.load_state_dict(take, strict=False)
    return sorted(take), sorted(k for k in own if k not in take)
