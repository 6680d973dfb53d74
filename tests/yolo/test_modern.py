"""The modern recipe: stride-16 head, xy_scale decoding, several positives per box, CIoU + BCE loss,
mosaic, per-recipe defaults and --model sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchvision.ops import complete_box_iou_loss

from detkit.datasets.model import make_dataset
from detkit.yolo.config import TrainConfig
from detkit.yolo.data import Augment, DetectionDataset
from detkit.yolo.decode import decode_boxes, postprocess
from detkit.yolo.loss import LossConfig, YoloLoss
from detkit.yolo.model import YoloConfig, YOLOv2
from detkit.yolo.targets import build_targets_multi

ANCHORS = torch.tensor([[1.0, 1.0], [0.5, 2.0]])  # grid cells


def test_stride_16_head_gives_a_grid_twice_as_fine():
    torch.manual_seed(0)
    cfg = YoloConfig(num_classes=3, anchors=[(1, 1), (2, 2)], width=0.125, head_stride=16, xy_scale=2.0)
    model = YOLOv2(cfg).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 96, 64))
    assert out.shape == (1, 2, 6, 4, 8) and model.stride == 16
    assert out[..., 4].sigmoid().mean().item() == pytest.approx(0.01, rel=0.05)
    assert YoloConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="head_stride"):
        YoloConfig(num_classes=3, anchors=[(1, 1)], head_stride=8)


def test_xy_scale_decoding_reaches_half_a_cell_past_the_edges():
    raw = torch.zeros(1, 1, 2, 2, 4)
    raw[0, 0, 1, 1, :2] = torch.tensor([30.0, -30.0])  # sigmoid -> 1 and 0
    b1 = decode_boxes(raw, torch.ones(1, 2), xy_scale=1.0)
    b2 = decode_boxes(raw, torch.ones(1, 2), xy_scale=2.0)
    # t = 0: the cell centre either way, (0 + .5) / 2
    assert b1[0, 0, 0, 0, :2].tolist() == b2[0, 0, 0, 0, :2].tolist() == [0.25, 0.25]
    # cell (i=1, j=1): x = (1 + 1) / 2 vs (2 - .5 + 1) / 2; y = (0 + 1) / 2 vs (0 - .5 + 1) / 2
    assert b1[0, 0, 1, 1, :2].tolist() == pytest.approx([1.0, 0.5])
    assert b2[0, 0, 1, 1, :2].tolist() == pytest.approx([1.25, 0.25])


def test_multi_positive_assignment_by_hand():
    # 4x4 grid; centre (0.55, 0.3) -> cells x 2.2, y 1.2: cell (i=2, j=1), left of centre in x and
    # above in y, so the neighbours are (i=1, j=1) and (i=2, j=0).
    # size in cells (0.8, 2.4): shape IoU 0.377 with (1, 1) and 0.521 with (0.5, 2): both >= 0.3
    gt = [torch.tensor([[3.0, 0.55, 0.3, 0.2, 0.6]])]
    t = build_targets_multi(gt, ANCHORS, (4, 4), anchor_iou=0.3)
    got = sorted(zip(t["a"].tolist(), t["j"].tolist(), t["i"].tolist()))
    assert got == sorted((a, j, i) for a in (0, 1) for j, i in ((1, 2), (1, 1), (0, 2)))
    assert t["cls"].tolist() == [3] * 6 and t["b"].tolist() == [0] * 6
    # a higher threshold keeps only the best anchor; no neighbours: one positive
    t = build_targets_multi(gt, ANCHORS, (4, 4), anchor_iou=0.6, neighbours=False)
    assert (t["a"].tolist(), t["j"].tolist(), t["i"].tolist()) == ([1], [1], [2])
    # a neighbour outside the grid is dropped: centre (0.2, 2.2) cells, the left half of column 0 (i = -1
    # is out) and the upper half of row 2 (j = 1 is in)
    t = build_targets_multi([torch.tensor([[0.0, 0.05, 0.55, 0.25, 0.25]])], ANCHORS, (4, 4), 0.9)
    assert sorted(zip(t["j"].tolist(), t["i"].tolist())) == [(1, 0), (2, 0)]


def test_modern_loss_by_hand():
    # one box, one anchor (1, 1), 2x2 grid, no neighbours: the positive is (a=0, j=0, i=0)
    cfg = LossConfig.preset("modern", neighbours=False, lambda_cls=1.0, lambda_coord=1.0)
    loss = YoloLoss(cfg, [(1.0, 1.0)], num_classes=2, xy_scale=2.0)
    gt = [torch.tensor([[1.0, 0.25, 0.25, 0.5, 0.25]])]  # centre (0.5, 0.5) cells, size (1, 0.5) cells
    raw = torch.zeros(1, 1, 2, 2, 7)
    raw[..., 4] = -2.0
    _, parts = loss(raw, gt)
    # t = 0 decodes to the cell centre with the anchor's size (1 x 1 cells): IoU = 0.5 / 1 = 0.5
    pred, target = torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([[0.0, 0.25, 1.0, 0.75]])
    assert parts["coord"].item() == pytest.approx(complete_box_iou_loss(pred, target).item(), rel=1e-5)
    bce = lambda x, y: (
        -(y * math.log(1 / (1 + math.exp(-x))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-x))))
    )
    assert parts["obj"].item() == pytest.approx(bce(-2.0, 0.5) / 4, rel=1e-5)  # IoU target, mean over 4
    assert parts["noobj"].item() == pytest.approx(3 * bce(-2.0, 0.0) / 4, rel=1e-5)
    assert parts["cls"].item() == pytest.approx(math.log(2), rel=1e-5)  # uniform logits over 2 classes
    assert parts["prior"].item() == 0.0


def test_modern_loss_is_smallest_on_the_perfect_box_and_has_gradients():
    cfg = LossConfig.preset("modern")
    loss = YoloLoss(cfg, [(1.0, 1.0), (2.0, 1.0)], num_classes=2, xy_scale=2.0)
    gt = [torch.tensor([[0.0, 0.4, 0.6, 0.3, 0.2]]), torch.zeros(0, 5)]
    raw = torch.zeros(2, 2, 4, 4, 7, requires_grad=True)
    total, parts = loss(raw, gt)
    total.backward()
    assert raw.grad[0].abs().sum() > 0 and torch.isfinite(raw.grad).all()
    assert raw.grad[1, ..., :4].abs().sum() == 0  # an image without boxes only pushes objectness down
    assert parts["coord"] > 0
    with torch.no_grad():  # a perfect box for every positive: no box loss
        t = build_targets_multi(gt, loss.anchors, (4, 4), cfg.anchor_iou)
        perfect = torch.zeros(2, 2, 4, 4, 7)
        for b, a, j, i, box in zip(t["b"], t["a"], t["j"], t["i"], t["box"]):
            off = (box[:2] * 4 - torch.stack([i, j]).float() + 0.5) / 2
            perfect[b, a, j, i, :2] = torch.logit(off)
            perfect[b, a, j, i, 2:4] = torch.log(box[2:] * 4 / loss.anchors[a])
    assert loss(perfect, gt)[1]["coord"].item() == pytest.approx(0.0, abs=1e-5)


def test_recipe_defaults_and_model_sizes():
    m = TrainConfig(data="d", out="o").resolved()
    assert (m.loss, m.model, m.width, m.optimizer, m.lr) == ("modern", "n", 0.25, "adamw", 3e-3)
    assert (m.head_stride, m.xy_scale, m.mosaic) == (16, 2.0, 1.0)
    for preset in ("darknet", "course"):  # the papers' recipes keep the values they had
        d = TrainConfig(data="d", out="o", loss=preset).resolved()
        assert (d.width, d.optimizer, d.lr, d.head_stride, d.xy_scale, d.mosaic) == (
            1.0,
            "sgd",
            1e-3,
            32,
            1,
            0,
        )
    assert TrainConfig(data="d", out="o", model="n").resolved().width == 0.25
    assert TrainConfig(data="d", out="o", model="n", width=0.125).resolved().width == 0.125  # width wins
    resolved = TrainConfig(data="d", out="o", model="m").resolved()
    assert resolved.resolved() == resolved  # resume resolves again: a fixed point
    with pytest.raises(Exception, match="model must be one of n, s, m, l"):
        TrainConfig(data="d", out="o", model="xl").validate()
    with pytest.raises(Exception, match="xy_scale other than 1 needs the modern loss"):
        TrainConfig(data="d", out="o", loss="darknet", xy_scale=2.0).validate()


def test_postprocess_uses_the_models_xy_scale():
    raw = torch.full((1, 1, 2, 2, 6), -30.0)
    raw[0, 0, 0, 0, :5] = torch.tensor([30.0, 30.0, 0.0, 0.0, 30.0])  # certain; sigmoid(t_xy) = 1
    one = postprocess(raw, [(1.0, 1.0)], conf_thresh=0.5)[0]["boxes"]
    two = postprocess(raw, [(1.0, 1.0)], conf_thresh=0.5, xy_scale=2.0)[0]["boxes"]
    assert one[0].tolist() == pytest.approx([0.25, 0.25, 0.75, 0.75])  # centre (1, 1) cells, 1 x 1
    assert two[0].tolist() == pytest.approx([0.5, 0.5, 1.0, 1.0])  # centre (1.5, 1.5), clipped


@pytest.fixture
def four(tmp_path):
    import cv2

    rows, anns = [], []
    for k in range(4):
        cv2.imwrite(str(tmp_path / f"{k}.jpg"), np.full((100, 100, 3), 40 * k, np.uint8))
        rows.append((k + 1, f"{k}.jpg", 100, 100))
        anns.append((k + 1, k + 1, 7, 10, 20, 50, 40))  # x 10..60, y 20..60
    return make_dataset(rows, anns, [(7, "seven")]), tmp_path


def test_mosaic_places_four_images_around_a_seeded_centre(four):
    ds, root = four
    aug = Augment(flip=0.0, hsv=(0, 0, 0), mosaic=1.0, mosaic_scale=0.0, mosaic_until=3)
    d = DetectionDataset(ds, root, img_size=128, augment=aug, seed=5)
    s = d[(0, 128, 1)]
    # replay the sample's draws: the mosaic coin, the 3 other images, the centre, the scale
    rng = np.random.default_rng((5, 1, 0))
    rng.random()
    rng.integers(0, 4, 3)
    xc, yc = rng.uniform(64, 192, 2)
    # image 0 (top-left) ends at the centre: q = 1.28 p + (c - 128) - 128 + 64, then clipped to 0..128
    ox, oy = xc - 128 - 64, yc - 128 - 64
    want = np.clip([10 * 1.28 + ox, 20 * 1.28 + oy, 60 * 1.28 + ox, 60 * 1.28 + oy], 0, 128)
    t = s["target"].numpy()
    boxes = np.stack(
        [t[:, 1] - t[:, 3] / 2, t[:, 2] - t[:, 4] / 2, t[:, 1] + t[:, 3] / 2, t[:, 2] + t[:, 4] / 2], 1
    )
    if (want[2] - want[0]) >= 2 and (want[3] - want[1]) >= 2:
        assert np.abs(boxes * 128 - want).max(axis=1).min() < 1e-3
    assert (boxes >= -1e-6).all() and (boxes <= 1 + 1e-6).all() and len(t) >= 1
    assert torch.equal(d[(0, 128, 1)]["image"], s["image"])  # seeded: the same sample again
    # the pixel at the centre's upper-left is image 0's grey (0), at its lower-right image 3's or another's
    img = s["image"].numpy()
    assert img[:, int(yc - 64) - 2, int(xc - 64) - 2].tolist() == [0, 0, 0]
    # from mosaic_until on, the plain sample: the very one an Augment without mosaic gives
    plain = DetectionDataset(ds, root, img_size=128, augment=Augment(flip=0.0, hsv=(0, 0, 0)), seed=5)
    assert torch.equal(d[(0, 128, 3)]["image"], plain[(0, 128, 3)]["image"])
    assert torch.equal(d[(0, 128, 3)]["target"], plain[(0, 128, 3)]["target"])


def test_predict_batch_leaves_out_boxes_wholly_in_the_letterbox_border():
    from detkit.yolo.data import ClassMap
    from detkit.yolo.engine import predict_batch

    # a 64x32 image letterboxed to 64: r = 1, 16 px of border above and below; 2x2 grid, anchor 8 px
    raw = torch.full((1, 1, 2, 2, 6), -30.0)
    raw[0, 0, 0, 0, :5] = torch.tensor([0.0, math.log(0.125 / 0.875), 0.0, 0.0, 30.0])  # y 0..8: border
    raw[0, 0, 1, 1, :5] = torch.tensor([0.0, 0.0, 0.0, 0.0, 30.0])  # y 44..52: 28..32 in the image

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return raw

    batch = {
        "images": torch.zeros(1, 3, 64, 64, dtype=torch.uint8),
        "image_ids": torch.tensor([7]),
        "transforms": torch.tensor([[1.0, 0.0, 16.0]], dtype=torch.float64),
        "orig_sizes": torch.tensor([[64.0, 32.0]]),
    }
    rows = predict_batch(Fixed(), batch, [(0.25, 0.25)], ClassMap([3], ["a"]), torch.device("cpu"), conf=0.5)
    assert [r["bbox"] for r in rows] == [[44.0, 28.0, 8.0, 4.0]]
