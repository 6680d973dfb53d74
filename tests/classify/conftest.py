"""Fixtures of the classify tests: one synthetic Tiny-ImageNet-layout set and one tiny trained run."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

# a thin ResNet-18 at 32 px keeps CPU runs to seconds; the digits test uses the full default model
TINY = ("--width", "0.25", "--img-size", "32", "--batch", "32", "--device", "cpu")


@contextlib.contextmanager
def one_torch_thread():
    """One intra-op thread: on 2 shared CI cores, OpenMP threads waiting for each other cost far more than
    the second core gives (measured: 10-50x slower steps under load)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory) -> Path:
    """5 classes x 60 images in Tiny ImageNet's layout (50 train + 10 val per class, some grayscale)."""
    from detkit.data.synth_classify import write_classify_set

    return write_classify_set(tmp_path_factory.mktemp("tiny") / "tiny", classes=5, per_class=60, seed=0)


@pytest.fixture(scope="session")
def trained_run(tiny_set, tmp_path_factory) -> Path:
    """A short training run on ``tiny_set`` (shared by the train and eval tests)."""
    from detkit.cli import run

    out = tmp_path_factory.mktemp("runs") / "run"
    with one_torch_thread():
        code = run(
            [
                "classify",
                "train",
                "--data",
                str(tiny_set),
                "--out",
                str(out),
                "--epochs",
                "8",
                "--lr",
                "0.1",
                *TINY,
            ]
        )
    assert code == 0
    return out
