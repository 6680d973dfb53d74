from __future__ import annotations

import torch

from detkit.classify.engine import accuracy_stats
from detkit.train.common import ModelEMA


def test_ema_warmup_and_buffers():
    m = torch.nn.BatchNorm1d(2)
    ema = ModelEMA(m, decay=0.5)
    with torch.no_grad():
        m.weight.fill_(3.0)  # ema starts at 1.0
        m.running_mean.fill_(2.0)
    m.num_batches_tracked.fill_(7)
    ema.update(m)  # t=1: decay min(0.5, 2/11) = 2/11 -> 1 * 2/11 + 3 * 9/11
    assert torch.allclose(ema.module.weight, torch.full((2,), 29 / 11))
    assert torch.allclose(ema.module.running_mean, torch.full((2,), 18 / 11))
    assert ema.module.num_batches_tracked.item() == 7
    ema.update(m)  # t=2: decay min(0.5, 3/12) = 0.25
    assert torch.allclose(ema.module.weight, torch.full((2,), 29 / 11 * 0.25 + 3 * 0.75))
    state = ema.state_dict()
    other = ModelEMA(torch.nn.BatchNorm1d(2), decay=0.9)
    other.load_state_dict(state)
    assert other.updates == 2 and other.decay == 0.5 and torch.equal(other.module.weight, ema.module.weight)


def test_accuracy_stats_by_hand():
    logits = torch.tensor([[9.0, 1, 2, 3, 4, 5], [0, 9, 1, 2, 3, 4], [5, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5]])
    targets = torch.tensor([0, 2, 5, 5])
    s = accuracy_stats(logits, targets)
    assert s["pred"].tolist() == [0, 1, 0, 5]
    assert s["top1"] == 0.5
    assert s["top5"] == 0.75  # sample 3's class 5 is ranked last of 6
    c = s["confusion"]
    assert c.sum() == 4 and c[0, 0] == 1 and c[2, 1] == 1 and c[5, 0] == 1 and c[5, 5] == 1
    assert abs(s["loss"] - torch.nn.functional.cross_entropy(logits, targets).item()) < 1e-6
