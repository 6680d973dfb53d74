"""YoloLoss on a worked example computed by hand, the ignore rule, empty images, fp32, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from detkit.yolo.loss import LossConfig, YoloLoss
from detkit.yolo.model import YoloConfig, YOLOv2

# --- the worked example: one image, 2x2 grid, two anchors, two classes, two boxes -----------------
ANCHORS = [(1.0, 1.0), (2.0, 2.0)]  # grid cells
# box 1: class 0, centre (.25, .25), size (.4, .4) = (.8, .8) cells
#        wh-IoU with (1,1) = .64 / 1 = .64, with (2,2) = .64 / 4 = .16 -> anchor 0, cell (j, i) = (0, 0)
#        targets tx = ty = .5, tw = th = log(.8 / 1)
# box 2: class 1, centre (.75, .6), size (.9, .8) = (1.8, 1.6) cells
#        wh-IoU with (1,1) = 1 / 2.88 = .347, with (2,2) = 2.88 / 4 = .72 -> anchor 1, cell (1, 1)
#        targets tx = .5, ty = .2, tw = log(1.8 / 2), th = log(1.6 / 2)
GT = [torch.tensor([[0.0, 0.25, 0.25, 0.4, 0.4], [1.0, 0.75, 0.6, 0.9, 0.8]])]
P1 = {"tx": 1.0, "ty": -0.5, "tw": -0.1, "th": 0.2, "to": 0.5, "logits": (1.0, -1.0)}  # anchor 0, cell (0, 0)
P2 = {"tx": -1.0, "ty": 0.3, "tw": 0.0, "th": -0.2, "to": -0.3, "logits": (0.2, 0.4)}  # anchor 1, cell (1, 1)
BACKGROUND_TO = -2.0  # t_o of the six other predictions; their t_x..t_h are 0
# one background prediction (anchor 0, cell (1, 1)) is placed exactly on box 2: IoU 1 > 0.6, ignored
IGNORED = {"tx": 0.0, "ty": math.log(0.2 / 0.8), "tw": math.log(1.8), "th": math.log(1.6), "to": 1.5}


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def iou_cxcywh(a, b) -> float:
    ax0, ax1, ay0, ay1 = a[0] - a[2] / 2, a[0] + a[2] / 2, a[1] - a[3] / 2, a[1] + a[3] / 2
    bx0, bx1, by0, by1 = b[0] - b[2] / 2, b[0] + b[2] / 2, b[1] - b[3] / 2, b[1] + b[3] / 2
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def worked_raw() -> torch.Tensor:
    raw = torch.zeros(1, 2, 2, 2, 7)  # (B, A, S_h, S_w, 5 + C)
    raw[..., 4] = BACKGROUND_TO
    for p, (a, j, i) in ((P1, (0, 0, 0)), (P2, (1, 1, 1))):
        raw[0, a, j, i] = torch.tensor([p["tx"], p["ty"], p["tw"], p["th"], p["to"], *p["logits"]])
    q = IGNORED
    raw[0, 0, 1, 1, :5] = torch.tensor([q["tx"], q["ty"], q["tw"], q["th"], q["to"]])
    return raw


def ce(logits, k) -> float:
    return -logits[k] + math.log(sum(math.exp(v) for v in logits))


# hand-computed parts shared by the presets
PRED1 = ((sig(1.0) + 0) / 2, (sig(-0.5) + 0) / 2, 1.0 * math.exp(-0.1) / 2, 1.0 * math.exp(0.2) / 2)
PRED2 = ((sig(-1.0) + 1) / 2, (sig(0.3) + 1) / 2, 2.0 * math.exp(0.0) / 2, 2.0 * math.exp(-0.2) / 2)
BOX1, BOX2 = (0.25, 0.25, 0.4, 0.4), (0.75, 0.6, 0.9, 0.8)
XY_ERR1 = (sig(1.0) - 0.5) ** 2 + (sig(-0.5) - 0.5) ** 2
XY_ERR2 = (sig(-1.0) - 0.5) ** 2 + (sig(0.3) - 0.2) ** 2
CLS = ce((1.0, -1.0), 0) + ce((0.2, 0.4), 1)
NOOBJ_SUM = 5 * sig(BACKGROUND_TO) ** 2  # 8 predictions - 2 responsible - 1 ignored


def test_background_predictions_are_below_the_ignore_threshold():
    # precondition of the worked example: the five counted background boxes overlap no box by > 0.6
    for a, (pw, ph) in enumerate(ANCHORS):
        for j in range(2):
            for i in range(2):
                if (a, j, i) in ((0, 0, 0), (1, 1, 1), (0, 1, 1)):
                    continue
                box = ((i + 0.5) / 2, (j + 0.5) / 2, pw / 2, ph / 2)
                assert max(iou_cxcywh(box, BOX1), iou_cxcywh(box, BOX2)) <= 0.6


def test_darknet_preset_parts_by_hand():
    loss = YoloLoss(LossConfig.preset("darknet", warmup_images=0), ANCHORS, 2)
    total, parts = loss(worked_raw(), GT)
    wh_err1 = (-0.1 - math.log(0.8)) ** 2 + (0.2 - math.log(0.8)) ** 2
    wh_err2 = (0.0 - math.log(0.9)) ** 2 + (-0.2 - math.log(0.8)) ** 2
    coord = (2 - 0.4 * 0.4) * (XY_ERR1 + wh_err1) + (2 - 0.9 * 0.8) * (XY_ERR2 + wh_err2)
    obj = 5 * ((iou_cxcywh(PRED1, BOX1) - sig(0.5)) ** 2 + (iou_cxcywh(PRED2, BOX2) - sig(-0.3)) ** 2)
    assert parts["coord"].item() == pytest.approx(coord, rel=1e-5)
    assert parts["obj"].item() == pytest.approx(obj, rel=1e-5)
    assert parts["noobj"].item() == pytest.approx(1.0 * NOOBJ_SUM, rel=1e-5)
    assert parts["cls"].item() == pytest.approx(CLS, rel=1e-5)
    assert total.item() == pytest.approx(coord + obj + NOOBJ_SUM + CLS, rel=1e-5)


def test_course_preset_parts_by_hand():
    loss = YoloLoss(LossConfig.preset("course"), ANCHORS, 2)
    _, parts = loss(worked_raw(), GT)
    sq = math.sqrt
    wh_err1 = (sq(PRED1[2]) - sq(0.4)) ** 2 + (sq(PRED1[3]) - sq(0.4)) ** 2
    wh_err2 = (sq(PRED2[2]) - sq(0.9)) ** 2 + (sq(PRED2[3]) - sq(0.8)) ** 2
    assert parts["coord"].item() == pytest.approx(5 * (XY_ERR1 + wh_err1 + XY_ERR2 + wh_err2), rel=1e-5)
    assert parts["obj"].item() == pytest.approx((1 - sig(0.5)) ** 2 + (1 - sig(-0.3)) ** 2, rel=1e-5)
    assert parts["noobj"].item() == pytest.approx(0.5 * NOOBJ_SUM, rel=1e-5)
    assert parts["cls"].item() == pytest.approx(CLS, rel=1e-5)


def test_overrides_scale_each_part():
    base = YoloLoss(LossConfig.preset("darknet", warmup_images=0), ANCHORS, 2)(worked_raw(), GT)[1]
    cfg = LossConfig.preset(
        "darknet",
        warmup_images=0,
        lambda_coord=2.0,
        lambda_obj=1.0,
        lambda_noobj=3.0,
        lambda_cls=0.5,
        rescore=None,
    )  # None = keep the preset's value
    assert cfg.rescore is True
    parts = YoloLoss(cfg, ANCHORS, 2)(worked_raw(), GT)[1]
    for k, f in (("coord", 2.0), ("obj", 1 / 5), ("noobj", 3.0), ("cls", 0.5)):
        assert parts[k].item() == pytest.approx(f * base[k].item(), rel=1e-5)
    with pytest.raises(ValueError):
        LossConfig.preset("yolov9")


def test_prior_warmup_is_its_own_part_for_non_responsible_predictions():
    cfg = LossConfig.preset("darknet")
    assert (cfg.warmup_images, cfg.warmup_weight) == (12800, 0.01)
    loss = YoloLoss(cfg, ANCHORS, 2)
    late_total, late = loss(worked_raw(), GT, seen_images=12800)
    early_total, early = loss(worked_raw(), GT, seen_images=0)
    q = IGNORED  # the only non-responsible prediction away from its prior
    prior = (sig(q["ty"]) - 0.5) ** 2 + q["tw"] ** 2 + q["th"] ** 2
    assert early["prior"].item() == pytest.approx(0.01 * prior, rel=1e-4) and late["prior"].item() == 0.0
    assert early["coord"].item() == late["coord"].item()  # the coordinate part is the same either way
    assert (early_total - late_total).item() == pytest.approx(0.01 * prior, rel=1e-4)


def test_ignore_rule_threshold():
    # moving the ignore threshold above 1 counts the prediction that sits on box 2
    _, strict = YoloLoss(LossConfig.preset("darknet", warmup_images=0, ignore_thresh=1.01), ANCHORS, 2)(
        worked_raw(), GT
    )
    assert strict["noobj"].item() == pytest.approx(NOOBJ_SUM + sig(IGNORED["to"]) ** 2, rel=1e-5)


def test_sum_over_anchors_divided_by_batch_size():
    loss = YoloLoss(LossConfig.preset("darknet"), ANCHORS, 2)
    one = loss(worked_raw(), GT)[1]
    two = loss(worked_raw().repeat(2, 1, 1, 1, 1), GT * 2)[1]
    for k in one:
        assert two[k].item() == pytest.approx(one[k].item(), rel=1e-6)


@pytest.mark.parametrize("preset", ["darknet", "course"])
def test_image_without_boxes_gives_zero_coord_and_cls(preset):
    raw = torch.randn(2, 2, 3, 3, 7)
    loss = YoloLoss(LossConfig.preset(preset), ANCHORS, 2)
    _, parts = loss(raw, [torch.zeros(0, 5), torch.zeros(0, 5)], seen_images=0)  # warm-up on (darknet)
    assert parts["coord"].item() == 0.0 and parts["cls"].item() == 0.0 and parts["obj"].item() == 0.0
    assert (parts["prior"].item() > 0) == (preset == "darknet")
    lam = 1.0 if preset == "darknet" else 0.5
    assert parts["noobj"].item() == pytest.approx(
        lam * (raw[..., 4].sigmoid() ** 2).sum().item() / 2, rel=1e-5
    )


def test_fp32_under_autocast_and_finite_with_wild_outputs():
    raw = torch.zeros(1, 2, 2, 2, 7)
    raw[..., 2:4] = 200.0  # exp would overflow without the clamp
    raw = raw.bfloat16().requires_grad_()
    for preset in ("darknet", "course"):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            total, parts = YoloLoss(LossConfig.preset(preset), ANCHORS, 2)(raw, GT)
        assert total.dtype == torch.float32 and all(v.dtype == torch.float32 for v in parts.values())
        (g,) = torch.autograd.grad(total, raw)
        assert torch.isfinite(total) and torch.isfinite(g.float()).all()


@pytest.mark.parametrize("preset", ["darknet", "course"])
@pytest.mark.slow
def test_gradients_flow_and_a_few_steps_reduce_the_loss(preset):
    torch.manual_seed(0)
    anchors = [(1.0, 1.0), (2.5, 2.0)]
    model = YOLOv2(YoloConfig(num_classes=3, anchors=anchors, width=0.125))
    loss_fn = YoloLoss(LossConfig.preset(preset), anchors, 3)
    x = torch.rand(1, 3, 96, 96)
    gt = [torch.tensor([[0.0, 0.3, 0.4, 0.3, 0.4], [2.0, 0.7, 0.7, 0.4, 0.2]])]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = []
    for step in range(30):
        total, parts = loss_fn(model(x), gt, seen_images=step)
        opt.zero_grad()
        total.backward()
        if step == 0:
            assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
            assert model.head.weight.grad.abs().sum() > 0
        opt.step()
        history.append({"total": total.item(), **{k: v.item() for k, v in parts.items()}})
    first, last = history[0], history[-1]
    assert last["coord"] < 0.1 * first["coord"] and last["cls"] < 0.1 * first["cls"]
    # objectness is slower: sigmoid(t_o) starts at 0.01 (and with rescore its target, the IoU, rises)
    assert last["total"] < 0.7 * first["total"]


def test_raw_that_does_not_fit_anchors_and_classes_is_refused():
    loss = YoloLoss(LossConfig.preset("darknet"), ANCHORS, 2)
    with pytest.raises(ValueError, match="2 anchors"):
        loss(torch.zeros(1, 3, 2, 2, 7), GT)
