"""`detkit classify train`: the recipe, and what is the classifier's own in the train/resume skeleton.

Recipe (defaults): ResNet-18 with the 64x64 stem, SGD (momentum 0.9, Nesterov) under a one-cycle schedule
peaking at 0.2 x batch/256, weight decay 5e-4 on conv/linear weights, label smoothing 0.1, random crop
(pad 1/8) + flip + cutout (1/4), weight EMA, 40 epochs; bf16 autocast and channels_last on CUDA.

Run folder: run.json, config.json, split.json, metrics.csv, last.pt, best.pt, curves.png, summary.json.
``last.pt`` holds model, optimiser, scheduler position, EMA, epoch (and a part epoch's loss sums), RNG,
the metric rows and the best epoch, so ``--resume`` continues the very same run and every other file can
be rebuilt from it (the one-commit epoch end of :mod:`detkit.train.harness`); data order and augmentation are
seeded per epoch.

The shape is torchvision's references: :func:`setup` (its data from :mod:`detkit.classify.setup`),
:func:`_train_epoch` (over :func:`detkit.classify.engine.train_one_epoch`), :func:`_end_epoch` (validation,
the metrics row), :func:`epoch_state` (what each epoch commits); :data:`TRAINER` hands them to the
train/resume skeleton of :mod:`detkit.train.loop` (run folder, resume, epoch loop, NaN stop, DDP)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import Progress

from detkit.classify import data as D
from detkit.classify.augment import AugmentConfig, DeviceLoader, channel_stats
from detkit.classify.checkpoint import RESUME_KEYS, checkpoints, load_checkpoint, read_metrics
from detkit.classify.config import TrainConfig
from detkit.classify.engine import Step, accuracy_stats, predict, train_one_epoch
from detkit.classify.models import build_model, load_weights
from detkit.classify.setup import Prepared, prepare_data
from detkit.console import info, progress
from detkit.datasets.paths import check_outside, data_folders
from detkit.errors import OptionError
from detkit.io import write_json
from detkit.train import loop as L
from detkit.train.common import (
    ModelEMA,
    dist_init,
    param_groups,
    resolve_device,
    rng_state,
    set_rng_state,
)
from detkit.train.runs import record_resume, record_run

RUN_FILES = (
    "run.json",
    "config.json",
    "split.json",
    "metrics.csv",
    "last.pt",
    "best.pt",
    "curves.png",
    "summary.json",
)
__all__ = ["TrainConfig", "build_optimizer", "prepare_data", "resume", "train"]


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig, total_steps: int):
    """SGD with Nesterov momentum (no weight decay on BN and biases) and the one-cycle schedule."""
    opt = torch.optim.SGD(
        param_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=True,
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=cfg.lr,
        total_steps=total_steps,
        pct_start=_warmup_share(cfg.pct_start, total_steps),
        div_factor=25.0,
        final_div_factor=1e4,
        cycle_momentum=False,  # momentum stays cfg.momentum, as the config and run.json say
    )
    return opt, sched


def _warmup_share(pct_start: float, total_steps: int) -> float:
    """``pct_start`` nudged off the one value torch's OneCycleLR divides by zero at.

    Its warm-up phase ends at step ``pct_start * total_steps - 1``; when that is exactly step 0 (e.g. 4
    steps at 0.25), the phase has zero length. Two warm-up steps are then used instead.
    """
    if total_steps > 2 and abs(pct_start * total_steps - 1.0) < 1e-9:
        return 2.0 / total_steps
    return pct_start


@dataclass
class Run:
    """What :func:`setup` builds: data, loaders, model, optimiser and the state the loop starts from."""

    cfg: TrainConfig
    path: Path
    device: torch.device
    rank: int
    world: int
    data: Prepared
    train_loader: DeviceLoader
    val_loader: DeviceLoader
    model: torch.nn.Module
    net: torch.nn.Module  # DDP / compiled wrapper of model
    ema: ModelEMA | None
    step: Step
    meta: dict[str, Any]  # the checkpoint keys that never change during the run
    state: dict[str, Any] = field(default_factory=dict)  # epoch, epoch_step, epoch_sums, history, best_*

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def scheduler(self) -> torch.optim.lr_scheduler.LRScheduler:
        return self.step.scheduler  # its last_epoch: the optimizer steps so far (what --max-steps counts)


def setup(cfg: TrainConfig, path: Path, ckpt: dict[str, Any] | None = None) -> Run:
    """Data (split, decoded tensors), loaders, model, EMA, optimiser and schedule; restored from ``ckpt``."""
    rank, world, local = dist_init(cfg.device)
    device = resolve_device(cfg.device, local)
    if cfg.batch % world:
        raise OptionError("batch", f"{cfg.batch} must be divisible by the number of processes ({world})")
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed shapes (drop_last): autotune once
    data = prepare_data(cfg, device, path, reuse_split=ckpt is not None, rank=rank, world=world)
    mean, std = (
        (torch.tensor(ckpt["mean"]), torch.tensor(ckpt["std"])) if ckpt else channel_stats(data.train_x)
    )
    aug = AugmentConfig(pad=cfg.pad, flip=cfg.flip, cutout=cfg.cutout)
    train_loader = DeviceLoader(data.train_x, data.train_y, cfg.batch, mean, std, aug, cfg.seed, rank, world)
    # evaluation needs no activations kept: larger batches on a GPU, modest ones on a CPU
    val_loader = DeviceLoader(data.val_x, data.val_y, max(cfg.batch, 1024 if cuda else 256), mean, std)
    model = build_model(cfg.model, len(data.cat.classes), cfg.stem, cfg.width)
    if cfg.weights and ckpt is None:
        loaded, skipped = load_weights(model, cfg.weights)
        if rank == 0:
            info(f"loaded {len(loaded)} tensors from {cfg.weights}; kept random init for {len(skipped)}")
    model.to(device, memory_format=torch.channels_last if cuda else torch.contiguous_format)
    ema = ModelEMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    opt, sched = build_optimizer(model, cfg, cfg.epochs * len(train_loader))
    step = Step(opt, sched, cfg.label_smoothing, amp=cuda, channels_last=cuda, ema=ema, raw_model=model)
    cat = data.cat
    split = {
        "mode": cfg.val,
        "train_fraction": cfg.split if cfg.val == "split" else None,
        "train_images": len(data.train_idx),
        "val_images": len(data.val_idx),
        "limit": cfg.limit,
    }
    meta = {
        "config": asdict(cfg),
        "classes": cat.classes,
        "names": cat.names,
        "layout": cat.layout,
        "mean": mean.tolist(),
        "std": std.tolist(),
        "split": split,
    }
    r = Run(cfg, path, device, rank, world, data, train_loader, val_loader, model, model, ema, step, meta)
    r.state = {"epoch": 0, "epoch_step": 0, "history": [], "best_top1": -1.0, "best_epoch": 0, "best": {}}
    r.state["epoch_sums"] = None  # loss, top-1 sums of a part epoch (--max-steps stop; detkit.train.loop)
    if ckpt is not None:
        _restore(r, ckpt)
    if world > 1:
        r.net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local] if cuda else None)
    if cfg.compile:
        r.net = torch.compile(r.net)
    return r


def _restore(r: Run, ckpt: dict[str, Any]) -> None:
    """Weights, optimiser, schedule, EMA, RNG and the loop's position from a checkpoint."""
    r.model.load_state_dict(ckpt["model"])
    r.step.optimizer.load_state_dict(ckpt["optimizer"])
    r.step.scheduler.load_state_dict(ckpt["scheduler"])
    if r.ema is not None:
        r.ema.load_state_dict(ckpt["ema"])
    set_rng_state(ckpt["rng"])
    r.state = {
        "epoch": ckpt["epoch"],
        "epoch_step": ckpt.get("epoch_step", 0),
        "epoch_sums": ckpt.get("epoch_sums"),
        "history": list(ckpt["history"]),  # a part epoch's row is replaced when the epoch goes on
        "best_top1": ckpt["best_top1"],
        "best_epoch": ckpt["best_epoch"],
        "best": ckpt["best"],
    }


def _load(path: Path) -> dict[str, Any]:
    """RUN/last.pt as committed, its metric rows and best epoch filled in (from metrics.csv) for one
    written before they were carried inside it."""
    ckpt = load_checkpoint(path / "last.pt", need=RESUME_KEYS)
    if "history" not in ckpt:
        ckpt["history"] = read_metrics(path / "metrics.csv", ckpt["epoch"])
    if not ckpt.get("best"):
        ckpt["best"] = {"epoch": ckpt["best_epoch"] or None, "value": ckpt["best_top1"]}
    return ckpt


def epoch_state(r: Run, val_top1: float | None = None) -> dict[str, Any]:
    """The checkpoint an epoch commits: everything :func:`setup` needs to continue bit for bit."""
    s = r.state
    return {
        **r.meta,
        **s,
        "val_top1": val_top1,
        "model": r.model.state_dict(),
        "ema": r.ema.state_dict() if r.ema else None,
        "optimizer": r.step.optimizer.state_dict(),
        "scheduler": r.step.scheduler.state_dict(),
        "rng": rng_state(),
    }


def _progress(r: Run, end: int):
    """A bar per epoch (kept), on rank 0 only."""
    return progress(transient=False) if r.main else Progress(disable=True)


def _train_epoch(r: Run, e: L.Epoch) -> L.EpochOut:
    """Train (the rest of) one epoch; its sums: every rank's summed loss, correct predictions, images."""
    cfg, world = r.cfg, r.world
    r.train_loader.set_epoch(e.index)
    n = len(r.train_loader)
    task = e.bar.add_task(f"epoch {e.index + 1}/{cfg.epochs}", total=n, info="")

    def on_step(done: int, loss: float, lr: float) -> None:
        e.log(lambda: f"epoch {e.index + 1}/{cfg.epochs} step {done}/{n}: loss {loss:.4f} lr {lr:.3g}")

    t = train_one_epoch(
        r.net,
        r.train_loader,
        r.step,
        r.device,
        e.bar,
        task,
        skip=e.skip,
        max_steps=e.max_steps,
        on_step=on_step,
    )
    e.bar.remove_task(task)  # the epoch's line replaces its bar
    if not t["finite"]:
        return L.EpochOut(t["batches"], n, {}, t, nonfinite="the loss is not finite")
    m = t["images"] * world
    sums = {"loss": t["loss"] * m, "correct": round(t["top1"] * m), "images": m}
    return L.EpochOut(t["batches"], n, sums, t)


def _end_epoch(r: Run, e: L.Epoch, out: L.EpochOut, sums: dict[str, float], last: bool) -> dict[str, Any]:
    """Validate (every rank), the metrics row, the best epoch and the epoch's line (rank 0)."""
    s, t, epoch, world = r.state, out.stats, e.index, r.world
    cuda = r.device.type == "cuda"
    logits, targets = predict(r.ema.module if r.ema else r.model, r.val_loader, r.device, cuda, cuda)
    v = accuracy_stats(logits, targets)
    row = {
        "epoch": epoch + 1,
        "lr": r.step.scheduler.get_last_lr()[0],
        "train_loss": sums["loss"] / max(sums["images"], 1),
        "train_top1": sums["correct"] / max(sums["images"], 1),
        "val_loss": v["loss"],
        "val_top1": v["top1"],
        "val_top5": v["top5"],
        "images_per_s": t["images"] * world / max(t["seconds"], 1e-9),
        "epoch_s": t["seconds"],
    }
    if v["top1"] > s["best_top1"]:
        s["best_top1"], s["best_epoch"] = v["top1"], epoch + 1
        s["best"] = {"epoch": epoch + 1, "epoch_step": s["epoch_step"], "value": v["top1"]}
    if r.main:
        part = "" if not s["epoch_step"] else f" (stopped at step {s['epoch_step']} of {out.per_epoch})"
        # top-5 is always 100% with 5 classes or fewer: said only where it means something
        top5 = f" top-5 {100 * row['val_top5']:.2f}%" if len(r.data.cat.classes) > 5 else ""
        info(
            f"epoch {epoch + 1}/{r.cfg.epochs}: train loss {row['train_loss']:.4f}, val top-1 "
            f"{100 * row['val_top1']:.2f}%{top5}, {row['images_per_s']:.0f} img/s{part}"
        )
    return row


def _split_words(cfg: TrainConfig, r: Run) -> str:
    """How the split was formed, for the start-up line."""
    limit = f", cut to {cfg.limit} images a side by limit" if cfg.limit else ""
    if cfg.val == "official":
        return f"split: the official train/ vs val/ folders{limit}"
    return (
        f"split: seeded stratified {cfg.split:.0%}/{1 - cfg.split:.0%} of every labelled image (train/ and "
        f"val/ pooled){limit}; val='official' validates on the val/ folder instead"
    )


# the CLI's words for _split_words' (detkit.console.info)
SPLIT_FLAGS = {"a side by limit": "a side by --limit", **D.VAL_OFFICIAL}


def _record(r: Run, end: int, threads: dict[str, Any] | None, resumed: bool) -> None:
    """run.json (a new run) or its ``resumed`` list, config.json, and the start-up lines."""
    cfg, data = r.cfg, r.data
    config = {**asdict(cfg), "thread_policy": threads}
    if resumed:
        record_resume(r.path, config)
    else:
        write_json(r.path / "config.json", asdict(cfg))
        inputs = [Path(cfg.data) / n for n in ("wnids.txt", "words.txt", "val/val_annotations.txt")]
        record_run(
            r.path, {**config, "data_fingerprint": D.fingerprint(data.cat, cfg.img_size)}, cfg.seed, inputs
        )
    info(
        f"training {cfg.model} ({cfg.stem} stem) on {len(data.train_x)} images, validating on "
        f"{len(data.val_x)}, {len(data.cat.classes)} classes, {r.device}, epochs "
        f"{r.state['epoch'] + 1}-{end} "
        f"of {cfg.epochs}"
    )
    if not resumed:
        info(_split_words(cfg, r), flags=SPLIT_FLAGS)


def _result(path: Path, state: dict[str, Any], status: str) -> dict[str, Any]:
    best = state["best_top1"]
    return {
        "run": str(path),
        "status": status,
        "epochs_done": state["epoch"],
        "best_val_top1": best if best >= 0 else None,
        "best_epoch": state["best_epoch"],
        "last": state["history"][-1] if state["history"] else None,
    }


TRAINER = L.Trainer(
    files=RUN_FILES,
    config=TrainConfig,
    config_key="config",
    load=_load,
    checkpoints=checkpoints,
    setup=setup,
    record=lambda r, threads, ckpt, end: _record(r, end, threads, ckpt is not None),
    progress=_progress,
    train_epoch=_train_epoch,
    end_epoch=_end_epoch,
    state=lambda r: epoch_state(r, r.state["history"][-1]["val_top1"] if r.state["history"] else None),
    result=_result,
)


def train(cfg: TrainConfig, exist_ok: bool = False) -> dict[str, Any]:
    """Train a new run in ``cfg.out``.

    Args:
        cfg: the options.
        exist_ok: start over in a folder holding a run (its files are deleted, and named).
    Returns: dict with run, status ("done", or "stopped" by --stop-after/--max-steps), epochs_done,
        best_val_top1, best_epoch and the last metrics row. A non-finite loss raises
        :class:`detkit.train.harness.Diverged` (exit 1), whose ``result`` has status "diverged".
    """
    cfg.validate()
    check_outside(cfg.out, data_folders(cfg.data, getattr(cfg, "val_data", None)), "run folder")
    return L.train(TRAINER, cfg, exist_ok)


def resume(run: str | Path, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """Continue the run in ``run`` (a folder or its last.pt) exactly; ``given`` are options typed again
    (only those of :func:`detkit.train.options.resume_fields` may change; --data may name the moved data)."""
    return L.resume(TRAINER, run, given)
