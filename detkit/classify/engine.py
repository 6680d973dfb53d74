"""One training epoch and evaluation: the loop pieces ``train.py`` composes (EMA and RNG state:
detkit.train.common)."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from detkit.train.common import ModelEMA


@dataclass
class Step:
    """What the training loop needs besides the model: optimiser, schedule, loss, precision."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    label_smoothing: float = 0.1
    amp: bool = False  # bf16 autocast (CUDA)
    channels_last: bool = False
    ema: ModelEMA | None = None
    check_every: int = 50  # steps between finiteness checks (each one is a device sync)
    raw_model: nn.Module | None = field(default=None)  # the un-wrapped model the EMA follows


def _autocast(device: torch.device, amp: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()


def _layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def train_one_epoch(
    model: nn.Module,
    loader,
    step: Step,
    device: torch.device,
    bar=None,
    task=None,
    *,
    skip: int = 0,
    max_steps: int | None = None,
    on_step=None,
) -> dict:
    """Train one epoch; stop early at a non-finite loss.

    Args:
        skip: batches of this epoch already trained (a resumed --max-steps stop): drawn, not trained, so
            the augmentation generator is where it was.
        max_steps: stop after this many steps.
        on_step: called with (batches of the epoch done, mean loss, lr) at each finiteness check.
    Returns: dict with loss, top1 (on augmented batches), images, seconds, steps, batches (skipped
        included), finite (False if it diverged).
    """
    model.train()
    sums = torch.zeros(2, device=device, dtype=torch.float64)  # loss sum, correct count
    seen, finite, totals, steps = 0, True, [0.0, 0.0, 1], 0
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        if i < skip:
            continue
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
        steps += 1
        stop = max_steps is not None and steps >= max_steps
        if (i + 1) % step.check_every == 0 or i + 1 == len(loader) or stop:
            total, n = sums.clone(), seen
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.all_reduce(total)  # every rank must agree on stopping
                n *= torch.distributed.get_world_size()
            totals = [*total.tolist(), n]
            if not math.isfinite(totals[0]):
                finite = False
                break
            lr = step.scheduler.get_last_lr()[0]
            if bar is not None:
                bar.update(task, completed=i + 1, info=f"loss {totals[0] / n:.3f} lr {lr:.3g}")
            if on_step is not None:
                on_step(i + 1, totals[0] / n, lr)
        if stop:
            break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    dt = time.perf_counter() - t0
    # loss and top-1 over every rank's batches; images is this rank's count
    return {
        "loss": totals[0] / totals[2],
        "top1": totals[1] / totals[2],
        "images": seen,
        "seconds": dt,
        "steps": steps,
        "batches": skip + steps,
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
