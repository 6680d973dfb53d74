"""One training epoch, evaluation, the weight EMA and RNG state: the loop pieces ``train.py`` composes."""

from __future__ import annotations

import contextlib
import copy
import math
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class EMA:
    """Exponential moving average of the weights and BN buffers.

    The decay ramps up as ``min(decay, (1 + t) / (10 + t))`` so short runs are not dominated by the init.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema, cur = [], []
        for e, m in zip(self.module.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                ema.append(e)
                cur.append(m.detach())
            else:
                e.copy_(m)
        torch._foreach_lerp_(ema, cur, 1.0 - d)

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates, self.decay = state["updates"], state["decay"]


@dataclass
class Step:
    """What the training loop needs besides the model: optimiser, schedule, loss, precision."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    label_smoothing: float = 0.1
    amp: bool = False  # bf16 autocast (CUDA)
    channels_last: bool = False
    ema: EMA | None = None
    check_every: int = 50  # steps between finiteness checks (each one is a device sync)
    raw_model: nn.Module | None = field(default=None)  # the un-wrapped model the EMA follows


def _autocast(device: torch.device, amp: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()


def _layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def train_one_epoch(model: nn.Module, loader, step: Step, device: torch.device, bar=None, task=None) -> dict:
    """Train one epoch; stop early at a non-finite loss.

    Returns: dict with loss, top1 (on augmented batches), images, seconds, finite (False if it diverged).
    """
    model.train()
    sums = torch.zeros(2, device=device, dtype=torch.float64)  # loss sum, correct count
    seen, finite, totals = 0, True, [0.0, 0.0, 1]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        x = _layout(x, step.channels_last)
        with _autocast(device, step.amp):
            logits = model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=step.label_smoothing)
        step.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        step.optimizer.step()
        step.scheduler.step()
        if step.ema is not None:
            step.ema.update(step.raw_model if step.raw_model is not None else model)
        sums[0] += loss.detach().double() * len(y)
        sums[1] += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        if (i + 1) % step.check_every == 0 or i + 1 == len(loader):
            total, n = sums.clone(), seen
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.all_reduce(total)  # every rank must agree on stopping
                n *= torch.distributed.get_world_size()
            totals = [*total.tolist(), n]
            if not math.isfinite(totals[0]):
                finite = False
                break
            if bar is not None:
                bar.update(
                    task,
                    completed=i + 1,
                    info=f"loss {totals[0] / n:.3f} lr {step.scheduler.get_last_lr()[0]:.3g}",
                )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    dt = time.perf_counter() - t0
    # loss and top-1 over every rank's batches; images is this rank's count
    return {
        "loss": totals[0] / totals[2],
        "top1": totals[1] / totals[2],
        "images": seen,
        "seconds": dt,
        "finite": finite,
    }


@torch.no_grad()
def predict(model: nn.Module, loader, device: torch.device, amp: bool = False, channels_last: bool = False):
    """Logits of every batch of ``loader`` (in order), as float32 on the CPU, and the targets."""
    model.eval()
    outs, ys = [], []
    for x, y in loader:
        with _autocast(device, amp):
            outs.append(model(_layout(x, channels_last)).float())
        ys.append(y)
    return torch.cat(outs).cpu(), torch.cat(ys).cpu()


def accuracy_stats(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> dict:
    """Loss, top-1, top-5 (top-k with k = min(5, classes)), predictions and the confusion matrix."""
    c = logits.shape[1]
    k = min(5, c)
    pred = logits.argmax(1)
    top5 = (logits.topk(k, dim=1).indices == targets[:, None]).any(1)
    confusion = torch.bincount(targets * c + pred, minlength=c * c).reshape(c, c)
    n = max(1, len(targets))
    return {
        "loss": F.cross_entropy(logits, targets, label_smoothing=label_smoothing).item()
        if len(targets)
        else 0.0,
        "top1": (pred == targets).sum().item() / n,
        "top5": top5.sum().item() / n,
        "pred": pred,
        "confusion": confusion.numpy(),
    }


def rng_state() -> dict:
    """Every global RNG's state (the data order and augmentation use their own per-epoch generators)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    # plain lists, so checkpoints load with torch.load(weights_only=True)
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [name, keys.tolist(), pos, has_gauss, gauss],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
