"""YOLOv2 model: output shapes per backbone and input size, Darknet-19 layout, init, config, weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from detkit.yolo.model import Darknet19, SpaceToDepth, YoloConfig, YOLOv2

VOC_ANCHORS = [
    (1.3221, 1.73145),
    (3.19275, 4.00944),
    (5.05587, 8.09892),
    (9.47112, 4.84053),
    (11.2364, 10.0071),
]


@pytest.mark.parametrize(
    "backbone,width,device",
    # the ResNets run on the meta device: the real forward code, shapes only, no arithmetic
    [
        ("darknet19", 0.125, "cpu"),
        ("darknet19", 1.0, "meta"),
        ("resnet18", 1.0, "meta"),
        ("resnet50", 1.0, "meta"),
    ],
)
def test_output_shapes_at_416_320_and_non_square(backbone, width, device):
    with torch.device(device):
        model = YOLOv2(YoloConfig(num_classes=3, anchors=VOC_ANCHORS, backbone=backbone, width=width)).eval()
    with torch.no_grad():
        for (h, w), grid in (((416, 416), (13, 13)), ((320, 320), (10, 10)), ((256, 384), (8, 12))):
            out = model(torch.zeros(1, 3, h, w, device=device))
            assert out.shape == (1, 5, *grid, 8), (backbone, h, w)


def test_input_must_be_a_multiple_of_32():
    model = YOLOv2(YoloConfig(num_classes=2, anchors=[(1.0, 1.0)], width=0.125))
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.zeros(1, 3, 100, 96))


def test_darknet19_layout_full_width():
    net = Darknet19(width=1.0)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 18
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.modules()) == 5
    assert sorted({m.kernel_size[0] for m in convs}) == [1, 3]
    assert all(c.bias is None for c in convs)  # batch norm carries the bias
    assert (net.c4, net.c5) == (512, 1024)
    acts = [m for m in net.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(acts) == 18 and acts[0].negative_slope == 0.1
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 18


def test_full_model_channels_and_passthrough():
    model = YOLOv2(YoloConfig(num_classes=20, anchors=VOC_ANCHORS))
    # passthrough: 1x1 to 64 channels at stride 16, space-to-depth -> 256 channels, + 1024 = 1280
    assert model.fuse.conv.in_channels == 1280
    assert model.head.out_channels == 5 * 25 and model.head.kernel_size == (1, 1)
    # YOLOv2-VOC's parameter count: 50.6 M
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(50.66e6, rel=1e-3)
    plain = YOLOv2(YoloConfig(num_classes=20, anchors=VOC_ANCHORS, width=0.125, passthrough=False))
    assert not hasattr(plain, "passthrough") and plain.fuse.conv.in_channels == 128


def test_space_to_depth_moves_each_2x2_block_into_channels():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = SpaceToDepth(2)(x)  # (1, 4, 2, 2)
    assert y.shape == (1, 4, 2, 2)
    assert y[0, :, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]  # the top-left block
    assert y[0, :, 1, 1].tolist() == [10.0, 11.0, 14.0, 15.0]


def test_initial_objectness_is_about_one_percent():
    torch.manual_seed(0)
    model = YOLOv2(YoloConfig(num_classes=3, anchors=VOC_ANCHORS, width=0.125)).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 128, 128))
    assert out[..., 4].sigmoid().mean().item() == pytest.approx(0.01, rel=0.05)
    assert out[..., 2:4].abs().max().item() < 0.5  # sizes start near their anchors


def test_config_round_trip():
    cfg = YoloConfig(
        num_classes=4, anchors=[[1, 2], [3, 4]], backbone="resnet18", width=0.5, passthrough=False
    )
    d = cfg.to_dict()
    assert d == {
        "num_classes": 4,
        "anchors": [[1.0, 2.0], [3.0, 4.0]],
        "backbone": "resnet18",
        "width": 0.5,
        "passthrough": False,
        "head_stride": 32,
        "xy_scale": 1.0,
    }
    assert YoloConfig.from_dict(d) == cfg
    with pytest.raises(ValueError):
        YoloConfig(num_classes=4, anchors=[(1, 1)], backbone="vgg16")


def test_weights_load_from_local_files(tmp_path):
    import torchvision

    torch.manual_seed(1)
    tv = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(tv.state_dict(), path)
    model = YOLOv2(
        YoloConfig(num_classes=2, anchors=[(1.0, 1.0)], backbone="resnet18", width=0.125), weights=path
    )
    assert torch.equal(model.backbone.stem[0].weight, tv.conv1.weight)
    assert torch.equal(model.backbone.layer4[1].conv2.weight, tv.layer4[1].conv2.weight)

    cfg = YoloConfig(num_classes=2, anchors=[(1.0, 1.0)], width=0.125)
    src = YOLOv2(cfg)
    torch.save({"model": src.state_dict()}, tmp_path / "ckpt.pt")  # a checkpoint: backbone part taken
    dst = YOLOv2(cfg, weights=tmp_path / "ckpt.pt")
    assert torch.equal(dst.backbone.stage4[0].conv.weight, src.backbone.stage4[0].conv.weight)

    with pytest.raises(ValueError, match="resnet18"):  # darknet weights into a resnet
        YOLOv2(
            YoloConfig(num_classes=2, anchors=[(1.0, 1.0)], backbone="resnet18"), weights=tmp_path / "ckpt.pt"
        )


def test_channels_last_and_bf16_autocast_give_the_same_shape():
    model = YOLOv2(YoloConfig(num_classes=3, anchors=VOC_ANCHORS, width=0.125)).to(
        memory_format=torch.channels_last
    )
    x = torch.rand(2, 3, 64, 96).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.shape == (2, 5, 2, 3, 8)
