"""`detkit classify lr-find`: learning-rate range test (Smith 2015) for picking the one-cycle peak.

The LR grows exponentially from ``start_lr`` to ``end_lr`` over ``steps`` SGD steps while the (bias-
corrected, exponentially smoothed) loss is recorded; the test stops once the loss exceeds ``diverge``
times its best. The model's starting weights and buffers are restored afterwards.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detkit.classify.augment import AugmentConfig, DeviceLoader, channel_stats
from detkit.classify.config import LrFindConfig, TrainConfig
from detkit.classify.models import build_model, load_weights
from detkit.classify.setup import prepare_data
from detkit.console import info, progress, warn
from detkit.errors import DetkitError, OptionError
from detkit.io import atomic_path, atomic_write, check_out_folder
from detkit.train.common import resolve_device
from detkit.train.runs import record_run, write_summary


def lr_range_test(
    model: nn.Module,
    loader: DeviceLoader,
    device: torch.device,
    start_lr: float = 1e-5,
    end_lr: float = 10.0,
    steps: int = 100,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    label_smoothing: float = 0.1,
    beta: float = 0.9,
    diverge: float = 4.0,
) -> dict:
    """Run the range test on ``model`` and restore its starting state.

    Args:
        model: the model (trained in place during the test, then restored).
        loader: training batches; cycled through epochs as needed.
        device: where model and loader live.
        start_lr, end_lr, steps: the exponential LR ramp.
        momentum, weight_decay, label_smoothing: as in training.
        beta: smoothing of the recorded loss.
        diverge: stop once the smoothed loss exceeds this multiple of its minimum.
    Returns: dict with lrs, losses (raw), smoothed, suggested_lr (the minimum's LR / 10), min_loss_lr and
        steepest_lr (where the smoothed loss falls fastest).
    """
    if not 0 < start_lr < end_lr or steps < 3:
        raise OptionError(
            "start_lr",
            f"must satisfy 0 < start_lr < end_lr with steps >= 3, got {start_lr:g}, {end_lr:g}, {steps}",
        )
    start_state = copy.deepcopy(model.state_dict())
    opt = torch.optim.SGD(
        model.parameters(), lr=start_lr, momentum=momentum, nesterov=True, weight_decay=weight_decay
    )
    gamma = (end_lr / start_lr) ** (1.0 / (steps - 1))
    lrs, losses, smoothed = [], [], []
    avg, best = 0.0, math.inf
    model.train()
    cuda = device.type == "cuda"
    layout = torch.channels_last if cuda else torch.contiguous_format
    try:
        with progress() as bar:
            task = bar.add_task("lr range test", total=steps, info="")
            for x, y in itertools.islice(_forever(loader), steps):
                lr = start_lr * gamma ** len(lrs)
                for g in opt.param_groups:
                    g["lr"] = lr
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                    out = model(x.contiguous(memory_format=layout))
                    loss = F.cross_entropy(out.float(), y, label_smoothing=label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                lrs.append(lr)
                losses.append(loss.item())
                avg = beta * avg + (1 - beta) * losses[-1]
                smoothed.append(avg / (1 - beta ** len(lrs)))  # bias-corrected
                bar.update(task, completed=len(lrs), info=f"lr {lr:.3g} loss {smoothed[-1]:.3f}")
                if not math.isfinite(smoothed[-1]) or smoothed[-1] > diverge * best:
                    break
                best = min(best, smoothed[-1])
    finally:
        model.load_state_dict(start_state)
    return {"lrs": lrs, "losses": losses, "smoothed": smoothed, **suggest(lrs, smoothed)}


def _forever(loader: DeviceLoader):
    """Training batches, epoch after epoch."""
    epoch = 0
    while True:
        loader.set_epoch(epoch)
        yield from loader
        epoch += 1


# the CLI's words for suggest's notes (detkit.console.warn)
NOTE_FLAGS = {"start_lr": "--start-lr", "end_lr": "--end-lr", "more steps": "more --steps"}


def suggest(lrs: list[float], smoothed: list[float]) -> dict:
    """The minimum's LR / 10 (the usual one-cycle peak choice) and the LR of steepest descent."""
    s = np.asarray(smoothed, float)
    ok = np.isfinite(s)
    if ok.sum() < 3:
        raise DetkitError("lr-find: the loss was not finite long enough to suggest a learning rate")
    lr = np.asarray(lrs, float)[ok]
    s = s[ok]
    i = int(np.argmin(s))
    slope = np.gradient(s, np.log(lr))
    j = int(np.argmin(slope[: max(i, 1) + 1]))
    note = None
    if i == 0:  # the loss only rose: the range started too high to say anything below it
        note = "the loss never fell; try a lower start_lr"
    elif i == len(s) - 1:
        note = "the loss still fell at the last step; try a higher end_lr or more steps"
    suggested = max(float(lr[i] / 10), float(lr[0]))  # never below the range actually tested
    return {"min_loss_lr": float(lr[i]), "suggested_lr": suggested, "steepest_lr": float(lr[j]), "note": note}


def _plot(path: Path, res: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(res["lrs"], res["losses"], alpha=0.3, label="loss")
    ax.plot(res["lrs"], res["smoothed"], label="smoothed")
    ax.axvline(res["suggested_lr"], color="C2", ls="--", label=f"suggested peak {res['suggested_lr']:.3g}")
    ax.axvline(res["steepest_lr"], color="C3", ls=":", label=f"steepest {res['steepest_lr']:.3g}")
    finite = [v for v in res["smoothed"] if math.isfinite(v)]
    ax.set_ylim(min(finite) * 0.9, min(max(finite), 3 * finite[0]) * 1.05)
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss", title="learning-rate range test")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def lr_find(cfg: TrainConfig, start_lr: float = 1e-5, end_lr: float = 10.0, steps: int = 100) -> dict:
    """Range test with the training recipe's data, model and augmentation; writes OUT/{lr_find.png,
    lr_find.csv, split.json, run.json, summary.json (kind ``classify.lr_find``)}."""
    LrFindConfig(start_lr, end_lr, steps).validate()
    cfg.validate()
    cfg = cfg.resolved()
    out = check_out_folder(cfg.out)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    data = prepare_data(cfg, device, out, reuse_split=False)
    mean, std = channel_stats(data.train_x)
    loader = DeviceLoader(
        data.train_x,
        data.train_y,
        cfg.batch,
        mean,
        std,
        AugmentConfig(cfg.pad, cfg.flip, cfg.cutout),
        cfg.seed,
    )
    model = build_model(cfg.model, len(data.cat.classes), cfg.stem, cfg.width)
    if cfg.weights:
        load_weights(model, cfg.weights)
    model.to(device, memory_format=torch.channels_last if device.type == "cuda" else torch.contiguous_format)
    res = lr_range_test(
        model, loader, device, start_lr, end_lr, steps, cfg.momentum, cfg.weight_decay, cfg.label_smoothing
    )
    record_run(out, {**asdict(cfg), "start_lr": start_lr, "end_lr": end_lr, "steps": steps}, cfg.seed)
    with atomic_write(out / "lr_find.csv") as f:
        f.write("step,lr,loss,smoothed\n")
        for i, (lr, lo, sm) in enumerate(zip(res["lrs"], res["losses"], res["smoothed"])):
            f.write(f"{i},{lr:.6g},{lo:.6g},{sm:.6g}\n")
    _plot(out / "lr_find.png", res)
    keys = ("suggested_lr", "min_loss_lr", "steepest_lr")
    write_summary(
        out,
        "classify.lr_find",
        f"LR range test: {cfg.model} on {Path(cfg.data).name}",
        metrics={**{k: res[k] for k in keys}, "steps": len(res["lrs"]), "batch": cfg.batch},
        plots={"lr_find": "lr_find.png"},
        curves="lr_find.csv",
    )
    info(
        f"suggested one-cycle peak LR {res['suggested_lr']:.3g} at batch {cfg.batch} "
        f"(loss minimum at {res['min_loss_lr']:.3g}, steepest descent at {res['steepest_lr']:.3g})"
    )
    if res["note"]:
        warn(f"lr-find: {res['note']}", flags=NOTE_FLAGS)
    return {
        "out": str(out),
        "batch": cfg.batch,
        "steps": len(res["lrs"]),
        **{k: res[k] for k in keys},
        "note": res["note"],
    }
