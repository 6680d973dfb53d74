"""Real data: scikit-learn's bundled handwritten digits (1,797 8x8 images, no download) as an ImageFolder."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("digits") / "digits"
    d = load_digits()
    for i, (img, target) in enumerate(zip(d.images, d.target)):
        (root / str(target)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.uint8(np.round(img * 255 / 16)), "L").save(root / str(target) / f"{i:04d}.png")
    return root


@pytest.mark.slow
def test_default_resnet18_learns_digits(digits_folder, tmp_path, cli_json):
    # the default model and recipe (ResNet-18, 64x64 stem, SGD + one-cycle, label smoothing, crop/flip/cutout,
    # EMA); only the length, batch, width and input size are cut down for a CPU: half the channels, 8x8
    # digits upsampled to 12 px
    doc = cli_json(
        "classify",
        "train",
        "--data",
        digits_folder,
        "--out",
        tmp_path / "run",
        "--epochs",
        "7",
        "--batch",
        "32",
        "--width",
        "0.5",
        "--img-size",
        "12",
        "--device",
        "cpu",
    )
    assert doc["status"] == "done" and doc["epochs_done"] == 7
    assert doc["best_val_top1"] >= 0.95
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert len(split["train"]) == 1258 and len(split["val"]) == 539  # 70/30, stratified per digit
    config = json.loads((tmp_path / "run" / "run.json").read_text())["config"]
    assert (config["model"], config["stem"], config["width"], config["ema_decay"]) == (
        "resnet18",
        "64",
        0.5,
        0.999,
    )
