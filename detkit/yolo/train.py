"""``detkit yolo train``: what is the detector's own in the train/resume skeleton of
:mod:`detkit.train.loop` (the run folder, resume, the epoch loop and its commit, the NaN stop, DDP).

    RUN/run.json       resolved config, command line, seed, versions, annotation checksums
    RUN/config.json    the TrainConfig (what --resume reads back)
    RUN/metrics.csv    one row per epoch: loss parts, lr, mAP, mAP50, images/s
    RUN/last.pt        every epoch (the commit, see detkit.train.harness); RUN/best.pt when the mAP improves
    RUN/curves.png     loss parts and mAP per epoch (at the end of each call)
    RUN/summary.json   kind "yolo.train" for ``detkit report``

Recipes (``--loss``): ``modern``, the default (Darknet-19 x0.25 = ``--model n``, a stride-16 head, CIoU and
BCE objectness with several positives per box, mosaic, AdamW 3e-3), and the papers' ``darknet`` and
``course`` (stride-32 head, squared errors, SGD 1e-3, full width), exactly as before; options left unset
take their recipe's value (:meth:`detkit.yolo.config.TrainConfig.resolved`) and config.json holds them.

Resuming with more (or fewer) epochs recomputes the cosine schedule over the new total: the learning rate
moves from where the old schedule had it to where the new one has it at this step (no second warm-up),
and the start-up line says both values.

What a checkpoint holds is in :mod:`detkit.yolo.checkpoint`, the anchors in :mod:`detkit.yolo.priors`.
Launched by ``torchrun`` (RANK/WORLD_SIZE set) it trains with DistributedDataParallel; rank 0 evaluates
and writes.

The shape is torchvision's references/detection: :func:`detkit.yolo.setup.setup` builds data, model and
optimizer, :func:`_train_epoch` runs :func:`detkit.yolo.engine.train_one_epoch`, :func:`_end_epoch` the
metrics row and evaluation, :func:`detkit.yolo.setup.epoch_state` is what each epoch commits through
:class:`detkit.train.harness.Checkpoints`; :data:`TRAINER` hands them to the skeleton."""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

from detkit.console import info, progress, warn
from detkit.datasets.paths import check_outside, data_folders
from detkit.io import write_json
from detkit.train import harness as H
from detkit.train import loop as L
from detkit.train.runs import record_resume, record_run
from detkit.yolo.checkpoint import RUN_FILES, checkpoints, summary_fields
from detkit.yolo.config import TrainConfig
from detkit.yolo.engine import LOSS_PARTS, NonFiniteLoss, evaluate, train_one_epoch, unwrap
from detkit.yolo.setup import Run, epoch_state, setup


def _evaluate(r: Run, row: dict[str, Any], epoch: int, report_bad) -> None:
    """mAP of the EMA (or plain) weights; updates ``row`` and the best epoch."""
    cfg, d = r.cfg, r.data
    eval_model = r.ema.module if r.ema is not None else unwrap(r.model)
    metrics, _ = evaluate(
        eval_model,
        r.val_loader,
        d["val_ds"],
        d["anchors"],
        d["class_map"],
        r.device,
        conf=cfg.conf,
        iou=cfg.iou,
        amp=cfg.amp,
        on_bad=report_bad,
    )
    row.update(mAP=metrics["mAP"], mAP50=metrics["mAP50"], eval_images_per_s=metrics["images_per_s"])
    info(f"epoch {epoch + 1}: loss {row['loss']:.4f}  mAP {metrics['mAP']:.4f}  mAP50 {metrics['mAP50']:.4f}")
    if metrics["mAP"] > r.state["best"]["mAP"]:
        r.state["best"] = {
            "mAP": metrics["mAP"],
            "mAP50": metrics["mAP50"],
            "epoch": epoch + 1,
            "epoch_step": r.state["epoch_step"],
        }
        r.state["best_eval"] = metrics


def _progress(r: Run, end: int):
    """What one call keeps: a transient bar over its batches (its position in ``done``) and the
    undecodable images already reported."""

    @contextlib.contextmanager
    def bar():
        with progress(transient=True) as p:
            total = (end - r.state["epoch"]) * len(r.loader) - r.state["epoch_step"]
            reported: set[str] = set()

            def report_bad(paths: list[str]) -> None:  # once per image, not per epoch and in evaluation
                for path in paths:
                    if path not in reported:
                        reported.add(path)
                        warn(f"{path}: cannot decode the image; skipped")

            task = p.add_task("train", total=total, info="")
            yield {"bar": p, "task": task, "done": 0, "report_bad": report_bad}

    return bar()


def _train_epoch(r: Run, e: L.Epoch) -> L.EpochOut:
    """Train (the rest of) one epoch; the loss sums are its parts' means times the steps."""
    cfg, s, per_epoch, b = r.cfg, r.state, len(r.loader), e.bar
    r.loader.batch_sampler.set_epoch(e.index, skip=e.skip)

    def on_step(step: int, parts: dict[str, float], base: int = b["done"]) -> None:
        text = " ".join(f"{k} {v:.3f}" for k, v in parts.items())
        b["bar"].update(
            b["task"], completed=base + step, description=f"epoch {e.index + 1}/{cfg.epochs}", info=text
        )
        e.log(lambda: f"epoch {e.index + 1}/{cfg.epochs} step {e.skip + step}/{per_epoch}: {text}")

    try:
        stats = train_one_epoch(
            r.net,
            r.criterion,
            r.optimizer,
            r.scheduler,
            r.loader,
            r.device,
            seen_images=s["seen_images"],
            ema=r.ema,
            amp=cfg.amp,
            grad_clip=cfg.grad_clip,
            channels_last=r.device.type == "cuda",
            max_steps=e.max_steps,
            world_size=r.world,
            on_bad=b["report_bad"],
            on_step=on_step,
            log_every=1 if r.device.type == "cpu" else 10,
        )
    except NonFiniteLoss as err:
        return L.EpochOut(0, per_epoch, {}, {}, nonfinite=str(err))
    b["done"] += stats["batches"]
    b["bar"].update(b["task"], completed=b["done"])
    s["seen_images"] = stats["seen_images"]
    sums = {k: stats[k] * stats["steps"] for k in ("loss", *LOSS_PARTS)}
    return L.EpochOut(e.skip + stats["batches"], per_epoch, {**sums, "steps": stats["steps"]}, stats)


def _end_epoch(r: Run, e: L.Epoch, out: L.EpochOut, sums: dict[str, float], last: bool) -> dict[str, Any]:
    """The epoch's row (means over every step of the epoch, over all calls); evaluated every
    --eval-every epochs and at the call's last (rank 0)."""
    stats = out.stats
    row = {
        "epoch": e.index + 1,
        **{k: sums[k] / max(sums["steps"], 1) for k in ("loss", *LOSS_PARTS)},
        **{k: stats[k] for k in ("lr", "images_per_s")},
        "seen_images": r.state["seen_images"],
    }
    if r.main and ((e.index + 1) % r.cfg.eval_every == 0 or last):
        _evaluate(r, row, e.index, e.bar["report_bad"])
    return row


def _schedule_change(r: Run, old_epochs: int) -> str | None:
    """The line saying how a resume with another number of epochs moves the learning rate (None: same)."""
    if old_epochs == r.cfg.epochs:
        return None
    sch = r.scheduler
    before = r.optimizer.param_groups[0]["lr"]
    after = sch.base_lrs[0] * sch.lr_lambdas[0](sch.last_epoch + 1)
    return (
        f"epochs {old_epochs} -> {r.cfg.epochs}: the cosine schedule is recomputed over {r.cfg.epochs} "
        f"epochs, so the learning rate moves from {before:.3g} to {after:.3g} (the new schedule's value at "
        "this step; no new warm-up) and decays from there"
    )


def _record(r: Run, threads: dict[str, Any] | None, resumed: dict[str, Any] | None) -> None:
    """run.json (a new run) or its ``resumed`` list, config.json, and the start-up line."""
    cfg, d, s = r.cfg, r.data, r.state
    config = {**asdict(cfg), "thread_policy": threads}
    if resumed is not None:
        at = f", batch {s['epoch_step'] + 1} of {len(r.loader)}" if s["epoch_step"] else ""
        info(f"resuming {r.path} at epoch {s['epoch'] + 1}/{cfg.epochs}{at} ({s['seen_images']} images seen)")
        if (line := _schedule_change(r, int(resumed["args"]["epochs"]))) is not None:
            info(line)
        record_resume(r.path, config)
        return
    if d["val_ds"] is d["train_ds"]:  # said once the run is set up, not before an error about something else
        warn(
            "no val_data/val_list: mAP is measured on the training images",
            flags={"val_data/val_list": "--val-data/--val-list"},
        )
    record_run(r.path, config, seed=cfg.seed, inputs=[p for p in {cfg.data, cfg.val_data, cfg.anchors} if p])
    write_json(r.path / "config.json", asdict(cfg))
    info(
        f"training the {cfg.loss} recipe, {cfg.backbone} x{cfg.width} (stride {cfg.head_stride}) on "
        f"{d['n_train']} images ({len(d['class_map'])} classes, "
        f"anchors: {d['anchors_from']}) for {cfg.epochs} epochs on {r.device}"
    )


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _start(r: Run, threads: dict[str, Any] | None, ckpt: dict[str, Any] | None, end: int) -> None:
    """The workers warning, then :func:`_record`."""
    if r.cfg.workers > (cpus := _usable_cpus()):
        warn(f"{r.cfg.workers} data-loading workers on {cpus} usable CPUs: loading may be slowed")
    _record(r, threads, ckpt)


def _say_written(path: Path, state: dict[str, Any], status: str) -> None:
    """The last line of a call: where the run is, what it holds and its best epoch."""
    best = state["best"]
    files = [
        n for n in ("last.pt", "best.pt", "metrics.csv", "curves.png", "summary.json") if (path / n).exists()
    ]
    at = f"; best: epoch {best['epoch']}, mAP {best['mAP']:.4f}" if best.get("epoch") is not None else ""
    info(f"run folder {path} ({status}): {', '.join(files)}{at}")


TRAINER = L.Trainer(
    files=RUN_FILES,
    config=TrainConfig,
    config_key="args",
    load=lambda path: H.load_checkpoint(path / "last.pt", "yolo", ("model_config", *H.STATE_KEYS, "args")),
    checkpoints=checkpoints,
    setup=setup,
    record=_start,
    progress=_progress,
    train_epoch=_train_epoch,
    end_epoch=_end_epoch,
    state=epoch_state,
    result=lambda path, state, status: summary_fields(state, status),
    loader_workers=lambda cfg: cfg.workers,
    end_line=_say_written,
)


@contextlib.contextmanager
def _quiet_loader():
    # torch says this when the loader is built and again when it is iterated: said once, in _start
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="This DataLoader will create", category=UserWarning)
        yield


def train(cfg: TrainConfig, exist_ok: bool = False) -> dict[str, Any]:
    """Train a new run in ``cfg.out`` and return the summary fields.

    Args:
        cfg: the options (the recipe's defaults are filled in and written into config.json).
        exist_ok: start over in a folder that holds a run (its files are deleted, and named).
    Raises:
        DetkitError: unusable input or a folder holding a run (exit 2); Diverged (exit 1) at a NaN loss.
    """
    cfg.validate()
    check_outside(cfg.out, data_folders(cfg.data, getattr(cfg, "val_data", None)), "run folder")
    with _quiet_loader():
        return L.train(TRAINER, cfg, exist_ok)


def resume(run: str | Path, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """Continue the run in ``run`` (a folder or its last.pt) exactly; ``given`` are options typed again
    (only those of :func:`detkit.train.options.resume_fields` may change). A run saved before the recipes
    reads its None options as its recipe's values."""
    with _quiet_loader():
        return L.resume(TRAINER, run, given)
