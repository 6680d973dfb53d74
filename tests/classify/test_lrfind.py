from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from detkit.classify.augment import AugmentConfig, DeviceLoader
from detkit.classify.lrfind import NOTE_FLAGS, lr_range_test, suggest
from detkit.classify.models import build_model
from detkit.errors import DetkitError, cli_text

from .conftest import TINY


def test_suggest_by_hand():
    lrs = (10.0 ** np.linspace(-4, 0, 9)).tolist()
    smoothed = [5, 4.5, 4, 3, 2, 1.5, 1.4, 3, 9]
    s = suggest(lrs, smoothed)
    assert s["min_loss_lr"] == pytest.approx(1e-1)
    assert s["suggested_lr"] == pytest.approx(1e-2)
    assert s["steepest_lr"] == pytest.approx(10**-2.5)  # central difference (2 - 4) is the largest drop
    assert s["note"] is None


def test_suggest_never_goes_below_the_tested_range():
    lrs = [1e-5, 1e-4, 1e-3, 1e-2]
    s = suggest(lrs, [1.0, 1.5, 2.5, 9.0])  # the loss only rose
    assert s["min_loss_lr"] == 1e-5 and s["suggested_lr"] == 1e-5
    assert s["note"] == "the loss never fell; try a lower start_lr"  # the option's name; the CLI's flag:
    assert cli_text(s["note"], NOTE_FLAGS) == "the loss never fell; try a lower --start-lr"
    s = suggest(lrs, [4.0, 3.0, 2.0, 1.0])  # still falling at the end
    assert s["suggested_lr"] == pytest.approx(1e-3)
    assert s["note"] == "the loss still fell at the last step; try a higher end_lr or more steps"
    assert cli_text(s["note"], NOTE_FLAGS) == (
        "the loss still fell at the last step; try a higher --end-lr or more --steps"
    )


def test_suggest_rejects_a_loss_that_was_never_finite():
    with pytest.raises(DetkitError):
        suggest([1e-3, 1e-2, 1e-1], [1.0, float("nan"), float("nan")])


@pytest.mark.slow
def test_range_test_restores_the_starting_weights():
    torch.manual_seed(0)
    model = build_model("resnet18", 3, width=0.125)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randint(0, 255, (24, 16, 16, 3), dtype=torch.uint8)
    y = torch.arange(24) % 3
    loader = DeviceLoader(x, y, 8, torch.full((3,), 0.5), torch.full((3,), 0.25), AugmentConfig(2, True, 4))
    res = lr_range_test(model, loader, torch.device("cpu"), start_lr=1e-4, end_lr=1e2, steps=12)
    assert 3 <= len(res["lrs"]) <= 12 and res["lrs"][0] == pytest.approx(1e-4)
    if len(res["lrs"]) == 12:
        assert res["lrs"][-1] == pytest.approx(1e2)
    assert res["suggested_lr"] == pytest.approx(max(res["min_loss_lr"] / 10, res["lrs"][0]))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow
def test_lr_find_cli(tiny_set, tmp_path, cli_json):
    out = tmp_path / "lr"
    doc = cli_json(
        "classify",
        "lr-find",
        "--data",
        tiny_set,
        "--out",
        out,
        "--steps",
        "8",
        "--end-lr",
        "1",
        "--cache-dir",
        tmp_path / "cache",
        *TINY,
    )
    assert doc["steps"] <= 8 and 0 < doc["suggested_lr"] < 1
    assert (out / "lr_find.png").stat().st_size > 0
    lines = (out / "lr_find.csv").read_text().splitlines()
    assert lines[0] == "step,lr,loss,smoothed" and len(lines) == doc["steps"] + 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "classify.lr_find" and summary["plots"] == {"lr_find": "lr_find.png"}
    assert summary["metrics"]["suggested_lr"] == doc["suggested_lr"]
