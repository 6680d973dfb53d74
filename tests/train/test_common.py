"""detkit.train.common: the pieces both training loops share."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from detkit.errors import DetkitError
from detkit.train.common import ModelEMA, resolve_device, rng_state, set_rng_state


def test_rng_state_round_trip_restores_every_generator():
    state = rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(DetkitError, match="^device must be auto, cpu or cuda, got 'tpu'$") as err:
        resolve_device("tpu")
    assert err.value.cli_message() == "--device must be auto, cpu or cuda, got 'tpu'"
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(DetkitError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_ema_ramps_then_follows_decay():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = ModelEMA(model, decay=0.5)
    model.weight.data.fill_(1.0)
    ema.update(model)  # n = 1: d = min(0.5, 2 / 11) = 2/11 -> 0 * 2/11 + 1 * 9/11
    assert ema.module.weight.item() == pytest.approx(9 / 11)
    ema.update(model)  # n = 2: d = min(0.5, 3 / 12) = 0.25
    assert ema.module.weight.item() == pytest.approx(0.25 * 9 / 11 + 0.75)
    restored = ModelEMA(torch.nn.Linear(1, 1, bias=False))
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == 2 and restored.module.weight.item() == ema.module.weight.item()


def test_peak_lookup_prefers_the_specific_name(monkeypatch):
    from detkit.train.common import peak_bf16_tflops

    assert peak_bf16_tflops(torch.device("cpu")) is None
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 PCIe")
    assert peak_bf16_tflops(torch.device("cuda")) == 756.0
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert peak_bf16_tflops(torch.device("cuda")) == 989.0
