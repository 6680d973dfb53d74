"""YOLOv2 (Redmon & Farhadi, 2016): Darknet-19 or a torchvision ResNet, the passthrough layer, a 1x1 head.

Layout, nanoGPT style: small modules in dependency order, then the config, then the model.

    input (B, 3, H, W), H and W multiples of 32
      backbone     -> p4 (B, C4, H/16, W/16)   the "26x26" stage at 416
                   -> p5 (B, C5, H/32, W/32)   the "13x13" stage at 416
      neck         p5 -> conv3x3 -> conv3x3                               (B, Ch, H/32, W/32)
      passthrough  p4 -> conv1x1 (64) -> space-to-depth x2                (B, 256, H/32, W/32)
      concat, conv3x3, conv1x1 -> (B, A*(5+C), H/32, W/32) -> (B, A, H/32, W/32, 5+C)

With ``head_stride=16`` (the ``modern`` recipe) the head sits on the passthrough features instead:

      p4 -> conv1x1 (256w)  |  neck(p5) -> conv1x1 (256w) -> upsample x2      (B, ., H/16, W/16)
      concat, conv3x3 (512w), conv1x1 -> (B, A, H/16, W/16, 5+C)

a 26x26 grid at 416 (20x15 cells of 16 px for a 320x240 image) instead of 13x13: half the centre
scatter for small objects, at about 1/10 more FLOPs at width 0.5.

The last dimension holds the raw outputs (t_x, t_y, t_w, t_h, t_o, class logits...); see
``detkit.yolo.decode`` for what they mean. Anchors live in the loss and the decoder, not here.

Try it:
    python -m pytest tests/yolo/test_model.py -q
    python bench/yolo_step.py --device cpu --steps 3 --batch 4      # FLOPs per image and a training step
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from detkit.io import torch_load

# initial objectness probability: most of the A*S*S predictions are background, so starting at
# sigmoid(t_o) ~ 0.01 keeps the no-object term from swamping the first steps (RetinaNet's prior).
OBJ_PRIOR = 0.01


class ConvBNAct(nn.Module):
    """Darknet's unit: conv (no bias) -> batch norm -> leaky ReLU(0.1)."""

    def __init__(self, c_in: int, c_out: int, k: int = 3, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SpaceToDepth(nn.Module):
    """YOLOv2's "reorg": (B, C, H, W) -> (B, C*s*s, H/s, W/s), every s x s block folded into channels."""

    def __init__(self, stride: int = 2):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(x, self.stride)


def _ch(c: int, width: float) -> int:
    """Channels scaled by the width multiplier, at least 8 and a multiple of 8 (tensor-core friendly)."""
    return max(8, round(c * width / 8) * 8)


class Darknet19(nn.Module):
    """Darknet-19 without its classifier: 18 convs, 5 max-pools; returns the stride-16 and stride-32 maps."""

    # (kind, channels) per layer; "M" is a 2x2 max-pool. The split marks the passthrough source.
    STAGE4: ClassVar[list] = [
        (3, 32),
        "M",
        (3, 64),
        "M",
        (3, 128),
        (1, 64),
        (3, 128),
        "M",
        (3, 256),
        (1, 128),
        (3, 256),
        "M",
        (3, 512),
        (1, 256),
        (3, 512),
        (1, 256),
        (3, 512),
    ]
    STAGE5: ClassVar[list] = ["M", (3, 1024), (1, 512), (3, 1024), (1, 512), (3, 1024)]

    def __init__(self, width: float = 1.0):
        super().__init__()
        c_in = 3
        self.stage4, c_in = self._make(self.STAGE4, c_in, width)
        self.c4 = c_in
        self.stage5, c_in = self._make(self.STAGE5, c_in, width)
        self.c5 = c_in

    @staticmethod
    def _make(spec: list, c_in: int, width: float) -> tuple[nn.Sequential, int]:
        layers: list[nn.Module] = []
        for item in spec:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                k, c = item
                layers.append(ConvBNAct(c_in, _ch(c, width), k))
                c_in = _ch(c, width)
        return nn.Sequential(*layers), c_in

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p4 = self.stage4(x)  # (B, 512w, H/16, W/16)
        p5 = self.stage5(p4)  # (B, 1024w, H/32, W/32)
        return p4, p5


class ResNetBackbone(nn.Module):
    """A torchvision ResNet (random init) cut before its pooling; returns layer3 (stride 16) and layer4."""

    def __init__(self, name: str):
        super().__init__()
        import torchvision

        net = getattr(torchvision.models, name)(weights=None)  # never downloads
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2)
        self.layer3, self.layer4 = net.layer3, net.layer4
        self.c4 = net.layer3[-1].conv1.in_channels  # 256 (resnet18) / 1024 (resnet50)
        self.c5 = net.fc.in_features  # 512 / 2048

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p4 = self.layer3(self.stem(x))  # (B, c4, H/16, W/16)
        p5 = self.layer4(p4)  # (B, c5, H/32, W/32)
        return p4, p5

    def load_torchvision_state_dict(self, sd: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
        """Load a torchvision ResNet state_dict (fc.* ignored); returns (missing, unexpected) keys."""
        # torchvision names: conv1/bn1/layer1/layer2 went into self.stem as indices 0, 1, 4, 5
        rename = {"conv1.": "stem.0.", "bn1.": "stem.1.", "layer1.": "stem.4.", "layer2.": "stem.5."}
        mapped = {}
        for k, v in sd.items():
            for old, new in rename.items():
                if k.startswith(old):
                    k = new + k[len(old) :]
                    break
            mapped[k] = v
        res = self.load_state_dict(mapped, strict=False)
        unexpected = [k for k in res.unexpected_keys if not k.startswith("fc.")]
        return list(res.missing_keys), unexpected


BACKBONES = ("darknet19", "resnet18", "resnet50")


@dataclass
class YoloConfig:
    """What a YOLOv2 is built from; saved in checkpoints via ``to_dict`` / ``from_dict``.

    Args:
        num_classes: C, the number of contiguous class indices 0..C-1.
        anchors: A anchor (w, h) pairs in grid cells (the YOLOv2 convention: 1 cell = 32 px).
        backbone: "darknet19", "resnet18" or "resnet50" (torchvision, random init).
        width: channel multiplier for Darknet-19 and the head (0.125 or 0.25 for tiny test models).
        passthrough: concatenate the space-to-depth stride-16 features at stride 32.
        head_stride: 32 (YOLOv2: the head at H/32) or 16 (the head on the passthrough features, the
            neck upsampled onto them). Anchors are in cells of this grid.
        xy_scale: centre decoding b_x = (s * sigmoid(t_x) - (s - 1) / 2 + i) / S_w (YOLOv4's
            scale_x_y): 1 is YOLOv2's sigmoid offset inside the cell, 2 reaches half a cell past its edges
            (what lets the neighbouring cells predict an object, see ``targets.build_targets``).
    """

    num_classes: int
    anchors: list[tuple[float, float]] = field(default_factory=list)
    backbone: str = "darknet19"
    width: float = 1.0
    passthrough: bool = True
    head_stride: int = 32
    xy_scale: float = 1.0

    def __post_init__(self) -> None:
        self.anchors = [(float(w), float(h)) for w, h in self.anchors]
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.head_stride not in (16, 32):
            raise ValueError(f"head_stride must be 16 or 32, got {self.head_stride!r}")
        if self.num_classes < 1 or not self.anchors:
            raise ValueError("need num_classes >= 1 and at least one anchor")

    @property
    def num_anchors(self) -> int:
        return len(self.anchors)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["anchors"] = [list(a) for a in self.anchors]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> YoloConfig:
        keys = ("num_classes", "anchors", "backbone", "width", "passthrough", "head_stride", "xy_scale")
        return cls(**{k: d[k] for k in keys if k in d})


class YOLOv2(nn.Module):
    """YOLOv2 detector; ``forward`` returns raw outputs (B, A, H/s, W/s, 5 + C), s = ``cfg.head_stride``."""

    divisor = 32  # input sides must be multiples of this (the backbone's stride)

    def __init__(self, cfg: YoloConfig, weights: str | Path | None = None):
        super().__init__()
        self.cfg = cfg
        if cfg.backbone == "darknet19":
            self.backbone = Darknet19(cfg.width)
            c_head = _ch(1024, cfg.width)
        else:
            self.backbone = ResNetBackbone(cfg.backbone)
            c_head = _ch(min(self.backbone.c5, 1024), cfg.width)
        c4, c5 = self.backbone.c4, self.backbone.c5
        self.neck = nn.Sequential(ConvBNAct(c5, c_head, 3), ConvBNAct(c_head, c_head, 3))
        c_cat = c_head
        if cfg.head_stride == 16:
            c_lat = _ch(256, cfg.width)
            self.lateral = ConvBNAct(c4, c_lat, 1)
            self.reduce = ConvBNAct(c_head, c_lat, 1)
            c_head = _ch(512, cfg.width)
            c_cat = 2 * c_lat
        elif cfg.passthrough:
            c_pt = _ch(64, cfg.width)
            self.passthrough = nn.Sequential(ConvBNAct(c4, c_pt, 1), SpaceToDepth(2))
            c_cat += 4 * c_pt
        self.fuse = ConvBNAct(c_cat, c_head, 3)
        self.head = nn.Conv2d(c_head, cfg.num_anchors * (5 + cfg.num_classes), 1)
        self._init_weights()
        if weights is not None:
            self.load_backbone(weights)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.head:
                nn.init.kaiming_normal_(m.weight, a=0.1, mode="fan_in", nonlinearity="leaky_relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # small head weights: every prediction starts near its anchor prior (t ~ 0) ...
        nn.init.normal_(self.head.weight, std=0.01)
        bias = torch.zeros(self.cfg.num_anchors, 5 + self.cfg.num_classes)
        bias[:, 4] = math.log(OBJ_PRIOR / (1 - OBJ_PRIOR))  # ... and sigmoid(t_o) ~ 0.01
        with torch.no_grad():
            self.head.bias.copy_(bias.flatten())

    def load_backbone(self, path: str | Path) -> None:
        """Load backbone weights from a local file (never downloads).

        Accepts a torchvision ResNet state_dict, a Darknet19 state_dict (``model.backbone``'s keys),
        a full YOLOv2 state_dict or a checkpoint dict holding one under "model"; only the backbone
        part is taken. Raises ValueError when nothing matches or shapes disagree.
        """

        sd = torch_load(path, "weights file")
        if isinstance(sd, dict) and isinstance(sd.get("model"), dict):
            sd = sd["model"]
        if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise ValueError(f"{path}: not a state_dict (a mapping of names to tensors)")
        if any(k.startswith("backbone.") for k in sd):
            sd = {k[len("backbone.") :]: v for k, v in sd.items() if k.startswith("backbone.")}
        try:
            if isinstance(self.backbone, ResNetBackbone):
                missing, unexpected = self.backbone.load_torchvision_state_dict(sd)
            else:
                res = self.backbone.load_state_dict(sd, strict=False)
                missing, unexpected = list(res.missing_keys), list(res.unexpected_keys)
        except RuntimeError as e:  # shape mismatch
            raise ValueError(f"{path}: weights do not fit the {self.cfg.backbone} backbone: {e}") from None
        n_own = len(self.backbone.state_dict())
        if unexpected or len(missing) == n_own:
            raise ValueError(
                f"{path}: not {self.cfg.backbone} backbone weights "
                f"({len(missing)} of {n_own} keys missing, unexpected e.g. {unexpected[:3]})"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        if H % self.divisor or W % self.divisor:
            raise ValueError(f"input height and width must be multiples of 32, got {H}x{W}")
        p4, p5 = self.backbone(x)
        y = self.neck(p5)  # (B, Ch, H/32, W/32)
        if self.cfg.head_stride == 16:
            up = F.interpolate(self.reduce(y), scale_factor=2.0, mode="nearest")  # (B, Cl, H/16, W/16)
            y = torch.cat([self.lateral(p4), up], dim=1)  # (B, 2*Cl, H/16, W/16)
        elif self.cfg.passthrough:
            y = torch.cat([self.passthrough(p4), y], dim=1)  # (B, 4*Cpt + Ch, H/32, W/32)
        y = self.head(self.fuse(y))  # (B, A*(5+C), H/s, W/s)
        A, K, s = self.cfg.num_anchors, 5 + self.cfg.num_classes, self.stride
        return y.view(B, A, K, H // s, W // s).permute(0, 1, 3, 4, 2)  # (B, A, H/s, W/s, 5+C)

    @property
    def stride(self) -> int:
        """Input pixels per output cell."""
        return self.cfg.head_stride
