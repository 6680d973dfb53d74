"""`detkit classify train`: the recipe, the run folder and exact resume.

Recipe (defaults): ResNet-18 with the 64x64 stem, SGD (momentum 0.9, Nesterov) under a one-cycle schedule
peaking at 0.2 x batch/256, weight decay 5e-4 on conv/linear weights, label smoothing 0.1, random crop
(pad 1/8) + flip + cutout (1/4), weight EMA, 40 epochs; bf16 autocast and channels_last on CUDA.

Run folder: run.json, config.json, split.json, metrics.csv, last.pt, best.pt, curves.png, summary.json.
``last.pt`` holds model, optimiser, scheduler position, EMA, epoch and RNG, so ``--resume`` continues the
very same run; data order and augmentation are seeded per epoch, so nothing else needs restoring.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress

from detkit.classify import data as D
from detkit.classify.augment import AugmentConfig, DeviceLoader, channel_stats
from detkit.classify.engine import Step, accuracy_stats, predict, train_one_epoch
from detkit.classify.models import build_model, load_weights
from detkit.classify.runfiles import (
    RESUME_KEYS,
    load_checkpoint,
    plot_curves,
    read_metrics,
    write_metrics,
    write_train_summary,
)
from detkit.console import info, progress, warn
from detkit.errors import DetkitError, InputError
from detkit.io import atomic_path, check_out_folder, write_json
from detkit.runs import record_resume, record_run
from detkit.training import ModelEMA, dist_init, resolve_device, rng_state, set_rng_state

# options that may differ on --resume without changing the run's results
RUNTIME_FIELDS = ("device", "compile", "workers", "cache_dir", "stop_after")


@dataclass
class TrainConfig:
    """Every option of a training run (None = derived from the others in :meth:`resolved`)."""

    data: str
    out: str
    model: str = "resnet18"
    stem: str = "64"
    width: float = 1.0
    weights: str | None = None
    epochs: int = 40
    batch: int = 256
    lr: float | None = None  # one-cycle peak; default 0.2 * batch / 256
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    pct_start: float = 0.25
    split: float = 0.7
    val: str = "split"  # "split": stratified split of all labelled images; "official": train/ vs val/
    img_size: int = 64
    pad: int | None = None  # crop padding; default img_size // 8
    cutout: int | None = None  # default img_size // 4; 0 = off
    flip: bool = True
    ema_decay: float = 0.999  # 0 = no EMA
    device: str = "auto"
    compile: bool = False
    seed: int = 0
    workers: int = 8
    cache_dir: str | None = None  # default: OUT/../.detkit-cache
    stop_after: int | None = None  # train this many epochs now, continue later with --resume

    def validate(self) -> None:
        """Check the options before any data is read (a typo must not wait for a 100k-image decode)."""
        from detkit.classify.models import ARCHS, STEMS

        checks = [
            (self.model in ARCHS, f"--model must be one of {', '.join(ARCHS)}, got {self.model!r}"),
            (self.stem in STEMS, f"--stem must be one of {', '.join(STEMS)}, got {self.stem!r}"),
            (self.val in ("split", "official"), f"--val must be split or official, got {self.val!r}"),
            (0.0 < self.split < 1.0, f"--split must be between 0 and 1, got {self.split}"),
            (self.width > 0, f"--width must be positive, got {self.width}"),
            (self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}"),
            (self.batch >= 1, f"--batch must be at least 1, got {self.batch}"),
            (self.lr is None or self.lr > 0, f"--lr must be positive, got {self.lr}"),
            (self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}"),
            (0 <= self.label_smoothing < 1, f"--label-smoothing must be in [0, 1), got {self.label_smoothing}"),
            (0 <= self.ema_decay < 1, f"--ema-decay must be in [0, 1), got {self.ema_decay}"),
            (8 <= self.img_size <= 1024, f"--img-size must be 8..1024, got {self.img_size}"),
            (self.cutout is None or 0 <= self.cutout <= self.img_size, f"--cutout must be 0..img-size, got {self.cutout}"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise DetkitError(message)

    def resolved(self) -> TrainConfig:
        return replace(
            self,
            data=str(Path(self.data).resolve()) if self.data else self.data,  # eval/resume from any folder
            lr=self.lr if self.lr is not None else 0.2 * self.batch / 256,
            pad=self.pad if self.pad is not None else self.img_size // 8,
            cutout=self.cutout if self.cutout is not None else self.img_size // 4,
            cache_dir=self.cache_dir or str(Path(self.out).resolve().parent / ".detkit-cache"),
        )


@dataclass
class Prepared:
    cat: D.Catalog
    train_idx: np.ndarray
    val_idx: np.ndarray
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor


def _barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


def prepare_data(
    cfg: TrainConfig, device: torch.device, run: Path, reuse_split: bool, rank: int = 0, world: int = 1
) -> Prepared:
    """Catalog, split (made and saved, or read back from run/split.json) and decoded tensors on ``device``."""
    cat = D.scan_dataset(cfg.data)
    split_file = run / "split.json"
    if reuse_split and split_file.exists():
        train_idx, val_idx = D.load_split(split_file, cat)
    else:
        train_idx, val_idx = D.make_split(cat, cfg.val, cfg.split, cfg.seed)
        if len(train_idx) < cfg.batch:  # checked before the decode, which may take minutes
            raise DetkitError(f"--batch {cfg.batch} is larger than the training set ({len(train_idx)} images)")
        if rank == 0:
            D.save_split(
                split_file, cat, train_idx, val_idx, mode=cfg.val, train_fraction=cfg.split, seed=cfg.seed
            )
    if rank > 0:
        _barrier(world)  # rank 0 decodes; the others then find its cache
    cache, reused = D.decode_cache(cat, cfg.img_size, cfg.cache_dir, cfg.workers)
    if rank == 0:
        _barrier(world)
    if reused and rank == 0:
        info(f"reusing decoded images from {cfg.cache_dir}")

    def take(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(cache[np.sort(idx)]))
        return x.to(device), torch.from_numpy(cat.labels[np.sort(idx)]).to(device)

    tx, ty = take(train_idx)
    vx, vy = take(val_idx)
    return Prepared(cat, np.sort(train_idx), np.sort(val_idx), tx, ty, vx, vy)


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig, total_steps: int):
    """SGD with Nesterov momentum (no weight decay on BN and biases) and the one-cycle schedule."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
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


_FIELDS = {f.name for f in fields(TrainConfig)}


def _check_run_folder(run: Path, resume: bool) -> None:
    check_out_folder(run, "a run folder")
    if not resume and (run / "last.pt").exists():
        raise InputError(
            run, None, f"already holds a run (last.pt); continue it with --resume {run} or pick another --out"
        )


def _resumed_config(cfg: TrainConfig, ckpt: dict, given: Iterable[str]) -> TrainConfig:
    """The run's saved options, with the runtime ones (and a moved --data) taken from ``cfg``.

    An option given again with another value (say ``--epochs``, which fixes the one-cycle length) is an
    error rather than silently ignored: the run it would describe is not the one being continued.
    """
    saved = TrainConfig(**{f.name: ckpt["config"].get(f.name, getattr(cfg, f.name)) for f in fields(cfg)})
    clash = [
        f"--{name.replace('_', '-')} {getattr(cfg, name)} (the run has {getattr(saved, name)})"
        for name in given
        if name in _FIELDS and name not in (*RUNTIME_FIELDS, "data", "out")
        and getattr(cfg, name) != getattr(saved, name)
    ]
    if clash:
        raise DetkitError(
            f"{cfg.out}: a resumed run keeps its own options; leave out {', '.join(clash)} or start a new run"
        )
    keep = {k: getattr(cfg, k) for k in RUNTIME_FIELDS if k != "cache_dir" or cfg.cache_dir}
    return replace(saved, out=cfg.out, data=cfg.data or saved.data, **keep)


def train(cfg: TrainConfig, resume: bool = False, given: Iterable[str] = ()) -> dict:
    """Train (or with ``resume`` continue the run in ``cfg.out``) and return a result summary.

    Args:
        cfg: the options; on resume the run's saved options win except RUNTIME_FIELDS.
        resume: continue from ``cfg.out/last.pt``.
        given: names of the options the user set explicitly (on resume they must match the run's).
    Returns: dict with run, status ("done", "stopped" by --stop-after, or "diverged"), epochs_done,
        best_val_top1, best_epoch and the last metrics row.
    """
    run = Path(cfg.out)
    _check_run_folder(run, resume)
    ckpt = None
    if resume:
        ckpt = load_checkpoint(run / "last.pt", need=RESUME_KEYS)
        cfg = _resumed_config(cfg, ckpt, given)
    cfg.validate()
    cfg = cfg.resolved()
    if ckpt is not None and ckpt["epoch"] >= cfg.epochs:
        info(f"{run}: the run has finished its {cfg.epochs} epochs already; nothing to do")
        rows = read_metrics(run / "metrics.csv", ckpt["epoch"])
        best = ckpt["best_top1"]
        return {
            "run": str(run),
            "status": "done",
            "epochs_done": ckpt["epoch"],
            "best_val_top1": best if best >= 0 else None,
            "best_epoch": ckpt["best_epoch"],
            "last": rows[-1] if rows else None,
        }
    rank, world, local = dist_init(cfg.device)
    device = resolve_device(cfg.device, local)
    if cfg.batch % world:
        raise DetkitError(f"--batch {cfg.batch} must be divisible by the number of processes ({world})")
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed shapes (drop_last): autotune once

    main = rank == 0
    say = info if main else (lambda _msg: None)  # one voice under torchrun
    data = prepare_data(cfg, device, run, reuse_split=resume, rank=rank, world=world)
    cat = data.cat
    if ckpt is not None:
        mean, std = torch.tensor(ckpt["mean"]), torch.tensor(ckpt["std"])
    else:
        mean, std = channel_stats(data.train_x)
    aug = AugmentConfig(pad=cfg.pad, flip=cfg.flip, cutout=cfg.cutout)
    train_loader = DeviceLoader(data.train_x, data.train_y, cfg.batch, mean, std, aug, cfg.seed, rank, world)
    # evaluation needs no activations kept: larger batches on a GPU, modest ones on a CPU
    val_loader = DeviceLoader(data.val_x, data.val_y, max(cfg.batch, 1024 if cuda else 256), mean, std)

    model = build_model(cfg.model, len(cat.classes), cfg.stem, cfg.width)
    if cfg.weights and ckpt is None:
        loaded, skipped = load_weights(model, cfg.weights)
        say(f"loaded {len(loaded)} tensors from {cfg.weights}; kept random init for {len(skipped)}")
    model.to(device, memory_format=torch.channels_last if cuda else torch.contiguous_format)
    ema = ModelEMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    opt, sched = build_optimizer(model, cfg, cfg.epochs * len(train_loader))
    start, best, best_epoch = 0, -1.0, 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        if ema is not None:
            ema.load_state_dict(ckpt["ema"])
        start, best, best_epoch = ckpt["epoch"], ckpt["best_top1"], ckpt["best_epoch"]
        set_rng_state(ckpt["rng"])
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local] if cuda else None)
    if cfg.compile:
        net = torch.compile(net)
    step = Step(opt, sched, cfg.label_smoothing, amp=cuda, channels_last=cuda, ema=ema, raw_model=model)

    if main and ckpt is None:
        config = asdict(cfg)
        write_json(run / "config.json", config)
        inputs = [Path(cfg.data) / n for n in ("wnids.txt", "words.txt", "val/val_annotations.txt")]
        record_run(run, {**config, "data_fingerprint": D.fingerprint(cat, cfg.img_size)}, cfg.seed, inputs)
    elif main:
        record_resume(run, asdict(cfg))
    rows = read_metrics(run / "metrics.csv", start)
    end = cfg.epochs if cfg.stop_after is None else min(cfg.epochs, start + cfg.stop_after)
    status = "done" if end == cfg.epochs else "stopped"
    meta = {
        "config": asdict(cfg),
        "classes": cat.classes,
        "names": cat.names,
        "layout": cat.layout,
        "mean": mean.tolist(),
        "std": std.tolist(),
    }
    say(
        f"training {cfg.model} ({cfg.stem} stem) on {len(data.train_x)} images, validating on "
        f"{len(data.val_x)}, {len(cat.classes)} classes, {device}, epochs {start + 1}-{end} of {cfg.epochs}"
    )
    with progress(transient=False) if main else Progress(disable=True) as bar:
        for epoch in range(start, end):
            train_loader.set_epoch(epoch)
            task = bar.add_task(f"epoch {epoch + 1}/{cfg.epochs}", total=len(train_loader), info="")
            t = train_one_epoch(net, train_loader, step, device, bar, task)
            bar.remove_task(task)  # the epoch's line below replaces its bar
            if not t["finite"]:
                kept = f"last.pt keeps epoch {epoch}" if epoch else "no checkpoint was written"
                warn(f"non-finite training loss in epoch {epoch + 1}: stopped; {kept}")
                status = "diverged"
                break
            logits, targets = predict(ema.module if ema else model, val_loader, device, cuda, cuda)
            v = accuracy_stats(logits, targets)
            rows.append(
                {
                    "epoch": epoch + 1,
                    "lr": sched.get_last_lr()[0],
                    "train_loss": t["loss"],
                    "train_top1": t["top1"],
                    "val_loss": v["loss"],
                    "val_top1": v["top1"],
                    "val_top5": v["top5"],
                    "images_per_s": t["images"] * world / t["seconds"],
                    "epoch_s": t["seconds"],
                }
            )
            improved = v["top1"] > best
            if improved:
                best, best_epoch = v["top1"], epoch + 1
            if main:
                state = {
                    **meta,
                    "epoch": epoch + 1,
                    "best_top1": best,
                    "best_epoch": best_epoch,
                    "val_top1": v["top1"],
                }
                if improved:  # best.pt: only the evaluated weights (the EMA's when on)
                    with atomic_path(run / "best.pt") as tmp:
                        torch.save(
                            {**state, "model": (ema.module if ema else model).state_dict(), "ema": None}, tmp
                        )
                full = {
                    **state,
                    "model": model.state_dict(),
                    "ema": ema.state_dict() if ema else None,
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "rng": rng_state(),
                }
                with atomic_path(run / "last.pt") as tmp:
                    torch.save(full, tmp)
                write_metrics(run / "metrics.csv", rows)
            say(
                f"epoch {epoch + 1}/{cfg.epochs}: train loss {t['loss']:.4f}, "
                f"val top-1 {100 * v['top1']:.2f}% "
                f"top-5 {100 * v['top5']:.2f}%, {rows[-1]['images_per_s']:.0f} img/s"
            )
            _barrier(world)
    result = {
        "run": str(run),
        "status": status,
        "epochs_done": rows[-1]["epoch"] if rows else start,
        "best_val_top1": best if best >= 0 else None,
        "best_epoch": best_epoch,
        "last": rows[-1] if rows else None,
    }
    if main and rows:
        plot_curves(run / "curves.png", rows)
        write_train_summary(run, cfg, data, rows, result)
    if world > 1:
        torch.distributed.destroy_process_group()
    return result
