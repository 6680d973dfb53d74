"""detkit.yolo.engine: COCOeval guards, EMA, the NaN stop; detkit.yolo.train: the LR schedule."""

from __future__ import annotations

import math

import pytest
import torch

from detkit.datasets.model import make_dataset
from detkit.train.common import ModelEMA
from detkit.yolo.engine import LOSS_PARTS, NonFiniteLoss, coco_eval, train_one_epoch
from detkit.yolo.setup import lr_factor


@pytest.fixture
def gt():
    # no "info" in the source: pycocotools' loadRes needs gt.dataset["info"]; to_coco_dict (and coco_eval
    # behind it) supply one
    return make_dataset(
        [(1, "a.jpg", 100, 100), (2, "b.jpg", 100, 100)],
        [(1, 1, 3, 10, 10, 30, 30), (2, 1, 7, 50, 50, 40, 20), (3, 2, 3, 5, 5, 60, 60)],
        [(3, "circle"), (7, "rectangle"), (11, "triangle")],
    )


def _row(image_id, cat, bbox, score=0.9):
    return {"image_id": image_id, "category_id": cat, "bbox": bbox, "score": score}


def test_perfect_predictions_score_one(gt):
    res = [_row(1, 3, [10, 10, 30, 30]), _row(1, 7, [50, 50, 40, 20]), _row(2, 3, [5, 5, 60, 60])]
    m = coco_eval(gt, res)
    assert m["mAP"] == pytest.approx(1.0) and m["mAP50"] == pytest.approx(1.0)
    rows = {r["category_id"]: r for r in m["per_class"]}
    assert rows[3]["AP"] == pytest.approx(1.0) and rows[3]["gt"] == 2
    assert rows[11]["AP"] is None and rows[11]["gt"] == 0  # no ground truth: no AP, not 0


def test_one_class_missed_halves_the_map(gt):
    # circles perfect; the rectangle predicted as a circle far away -> rectangle AP 0
    res = [_row(1, 3, [10, 10, 30, 30]), _row(2, 3, [5, 5, 60, 60]), _row(1, 7, [0, 80, 10, 10])]
    m = coco_eval(gt, res)
    assert m["mAP"] == pytest.approx(0.5) and m["mAP50"] == pytest.approx(0.5)
    rows = {r["category_id"]: r for r in m["per_class"]}
    assert rows[3]["AP50"] == pytest.approx(1.0) and rows[7]["AP50"] == 0.0


def test_empty_predictions_give_zero_not_index_error(gt):
    m = coco_eval(gt, [])
    assert (m["mAP"], m["mAP50"], m["detections"]) == (0.0, 0.0, 0)
    assert [r["AP"] for r in m["per_class"]] == [0.0, 0.0, None]


def test_unknown_category_id_is_an_error_not_ignored(gt):
    with pytest.raises(ValueError, match=r"\[2\]"):
        coco_eval(gt, [_row(1, 2, [10, 10, 30, 30])])  # class index 2 passed as an id by mistake


def test_pycocotools_prints_nothing(gt, capsys):
    coco_eval(gt, [_row(1, 3, [10, 10, 30, 30])])
    assert capsys.readouterr().out == ""


def test_restricting_to_some_images(gt):
    m = coco_eval(gt, [_row(2, 3, [5, 5, 60, 60])], image_ids=[2])
    assert m["mAP"] == pytest.approx(1.0)
    assert {r["category_id"]: r["gt"] for r in m["per_class"]} == {3: 1, 7: 0, 11: 0}


def test_ema_ramps_its_decay():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = ModelEMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # decay min(0.9, 2/11): 0 * 2/11 + 1 * 9/11
    assert ema.module.weight.item() == pytest.approx(9 / 11)
    for _ in range(100):
        ema.update(model)
    assert ema.module.weight.item() == pytest.approx(1.0, abs=1e-4)


def test_lr_schedule():
    assert lr_factor(0, 4, 20, 0.05) == 0.25 and lr_factor(3, 4, 20, 0.05) == 1.0
    assert lr_factor(4, 4, 20, 0.05) == 1.0
    assert lr_factor(12, 4, 20, 0.05) == pytest.approx(0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(20, 4, 20, 0.05) == pytest.approx(0.05)


@pytest.mark.slow
def test_nan_loss_stops_before_the_update():
    model = torch.nn.Conv2d(3, 1, 1)
    before = model.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)

    def criterion(raw, gt, seen):
        return raw.sum() * float("nan"), {}

    batch = {
        "images": torch.zeros(1, 3, 32, 32, dtype=torch.uint8),
        "targets": [torch.zeros(0, 5)],
        "bad": [],
    }
    with pytest.raises(NonFiniteLoss, match="nan"):
        train_one_epoch(model, criterion, opt, sched, [batch], torch.device("cpu"))
    assert torch.equal(model.weight, before)


@pytest.mark.slow
def test_finite_loss_with_a_nan_gradient_stops_before_the_update():
    model = torch.nn.Conv2d(3, 1, 1)
    before = model.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def criterion(raw, gt, seen):  # sqrt'(0) is inf and 0 * inf is nan: the value is finite, the gradient not
        loss = (raw * 0).sqrt().sum()
        return loss, {k: loss.detach() for k in LOSS_PARTS}

    batch = {
        "images": torch.zeros(1, 3, 32, 32, dtype=torch.uint8),
        "targets": [torch.zeros(0, 5)],
        "bad": [],
    }
    with pytest.raises(NonFiniteLoss, match="gradient norm is nan at step 1"):
        train_one_epoch(model, criterion, opt, None, [batch], torch.device("cpu"), grad_clip=0)
    assert torch.equal(model.weight, before)


@pytest.mark.slow
def test_epoch_means_of_the_loss_parts_and_batch_count():
    model = torch.nn.Conv2d(3, 1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    values = iter([1.0, 3.0])

    def criterion(raw, gt, seen):
        v = next(values)
        loss = raw.sum() * 0 + v
        return loss, {k: torch.tensor(v * (i + 1)) for i, k in enumerate(LOSS_PARTS)}

    ok = {
        "images": torch.zeros(2, 3, 32, 32, dtype=torch.uint8),
        "targets": [torch.zeros(0, 5)] * 2,
        "bad": [],
    }
    empty = {"images": torch.zeros(0, 3, 32, 32, dtype=torch.uint8), "targets": [], "bad": ["x.jpg"]}
    seen_bad = []
    out = train_one_epoch(
        model,
        criterion,
        opt,
        None,
        [ok, empty, ok],
        torch.device("cpu"),
        seen_images=5,
        on_bad=seen_bad.extend,
    )
    assert (out["steps"], out["batches"], out["images"], out["seen_images"]) == (2, 3, 4, 9)
    assert out["loss"] == 2.0 and [out[k] for k in LOSS_PARTS] == [2.0, 4.0, 6.0, 8.0, 10.0]
    assert seen_bad == ["x.jpg"]
