"""``detkit yolo train``: the epoch loop, evaluation, the run folder, resume, the NaN stop, DDP.

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
optimizer, :func:`train_epochs` runs :func:`detkit.yolo.engine.train_one_epoch` and evaluation,
:func:`detkit.yolo.setup.epoch_state` is what each epoch commits through
:class:`detkit.train.harness.Checkpoints`."""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

from detkit.console import info, progress, warn
from detkit.datasets.paths import check_outside, data_folders
from detkit.io import write_json
from detkit.train import harness as H
from detkit.train import options as O
from detkit.train.common import is_main_process
from detkit.train.runs import record_resume, record_run
from detkit.yolo.checkpoint import (
    RUN_FILES,
    checkpoints,
    load_checkpoint,
    summary_fields,
)
from detkit.yolo.config import TrainConfig
from detkit.yolo.engine import LOSS_PARTS, NonFiniteLoss, evaluate, train_one_epoch, unwrap
from detkit.yolo.setup import (
    Run,
    epoch_state,
    setup,
)


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


def _epoch_sums(stats: dict[str, Any], carried: dict[str, float] | None) -> dict[str, float]:
    """The loss sums and steps of the epoch so far: this call's (``stats`` holds means) plus those a
    --max-steps stop inside the epoch carried in its checkpoint, so the resumed row averages every step."""
    c = carried or {}
    sums = {k: stats[k] * stats["steps"] + c.get(k, 0.0) for k in ("loss", *LOSS_PARTS)}
    return {**sums, "steps": stats["steps"] + c.get("steps", 0)}


def train_epochs(r: Run, ckpts: H.Checkpoints) -> str:
    """The epoch loop; each epoch (or a --max-steps stop inside one) ends in one commit.

    Returns: "done", or "stopped" (by --max-steps). Raises :class:`detkit.train.harness.Diverged` on NaN.
    """
    cfg, s, per_epoch = r.cfg, r.state, len(r.loader)
    log = H.ProgressLog(cfg.log_every)
    reported: set[str] = set()

    def report_bad(paths: list[str]) -> None:  # once per image, not per epoch and again in evaluation
        for p in paths:
            if p not in reported:
                reported.add(p)
                warn(f"{p}: cannot decode the image; skipped")

    with progress(transient=True) as bar:
        task = bar.add_task("train", total=(cfg.epochs - s["epoch"]) * per_epoch - s["epoch_step"], info="")
        bar_done = 0  # batches of this call so far (the bar's position)
        for epoch in range(s["epoch"], cfg.epochs):
            skip = s["epoch_step"] if epoch == s["epoch"] else 0
            carried = s.get("epoch_sums") if skip else None
            r.loader.batch_sampler.set_epoch(epoch, skip=skip)
            steps_left = None if cfg.max_steps is None else cfg.max_steps - r.scheduler.last_epoch
            if steps_left is not None and steps_left <= 0:
                break

            def on_step(
                step: int, parts: dict[str, float], epoch: int = epoch, base: int = bar_done, skip: int = skip
            ) -> None:
                text = " ".join(f"{k} {v:.3f}" for k, v in parts.items())
                bar.update(
                    task, completed=base + step, description=f"epoch {epoch + 1}/{cfg.epochs}", info=text
                )
                log(lambda: f"epoch {epoch + 1}/{cfg.epochs} step {skip + step}/{per_epoch}: {text}")

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
                    max_steps=steps_left,
                    world_size=r.world,
                    on_bad=report_bad,
                    on_step=on_step,
                    log_every=1 if r.device.type == "cpu" else 10,
                )
            except NonFiniteLoss as e:
                raise H.diverged(r.path, epoch + 1, str(e)) from None
            bar_done += stats["batches"]
            bar.update(task, completed=bar_done)
            done = skip + stats["batches"]  # batches of this epoch trained, over all invocations
            complete = done >= per_epoch
            s["seen_images"] = stats["seen_images"]
            sums = _epoch_sums(stats, carried)
            s["epoch_sums"] = None if complete else sums
            row = {
                "epoch": epoch + 1,
                **{k: sums[k] / max(sums["steps"], 1) for k in ("loss", *LOSS_PARTS)},
                **{k: stats[k] for k in ("lr", "images_per_s")},
                "seen_images": s["seen_images"],
            }
            last = (epoch + 1 == cfg.epochs and complete) or (
                cfg.max_steps is not None and r.scheduler.last_epoch >= cfg.max_steps
            )
            # a --max-steps stop inside an epoch: --resume skips the batches already trained
            s["epoch"], s["epoch_step"] = (epoch + 1, 0) if complete else (epoch, done)
            if r.main and ((epoch + 1) % cfg.eval_every == 0 or last):
                _evaluate(r, row, epoch, report_bad)
            s["history"].append(row)
            if r.main:
                ckpts.commit(epoch_state(r))
            if last:
                break
    return "done" if s["epoch"] >= cfg.epochs else "stopped"


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


def _run(cfg: TrainConfig, path: Path, resume: dict[str, Any] | None) -> dict[str, Any]:
    """Set up, train, write the final summary and curves; returns the summary fields."""
    threads = H.apply_threads(cfg, cfg.workers)
    with warnings.catch_warnings():
        # torch says this when the loader is built and again when it is iterated: said once, below
        warnings.filterwarnings("ignore", message="This DataLoader will create", category=UserWarning)
        r = setup(cfg, path, resume)
        ckpts = checkpoints(path)
        if r.main:
            if cfg.workers > (cpus := _usable_cpus()):
                warn(f"{cfg.workers} data-loading workers on {cpus} usable CPUs: loading may be slowed")
            _record(r, threads, resume)
        try:
            status = train_epochs(r, ckpts)
        except H.Diverged as e:
            if r.main and (path / "last.pt").exists():
                ckpts.finish(load_checkpoint(path), "diverged")
            _dist_end(r.world)
            raise e from None
    state = epoch_state(r)
    if r.main:
        ckpts.finish(state, status)
        _say_written(path, state, status)
    _dist_end(r.world)
    return summary_fields(state, status)


def _say_written(path: Path, state: dict[str, Any], status: str) -> None:
    """The last line of a call: where the run is, what it holds and its best epoch."""
    best = state["best"]
    files = [
        n for n in ("last.pt", "best.pt", "metrics.csv", "curves.png", "summary.json") if (path / n).exists()
    ]
    at = f"; best: epoch {best['epoch']}, mAP {best['mAP']:.4f}" if best.get("epoch") is not None else ""
    info(f"run folder {path} ({status}): {', '.join(files)}{at}")


def _dist_end(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()  # rank 0 may still be evaluating or writing
        dist.destroy_process_group()


def train(cfg: TrainConfig, exist_ok: bool = False) -> dict[str, Any]:
    """Train a new run in ``cfg.out`` and return the summary fields.

    Args:
        cfg: the options.
        exist_ok: start over in a folder that holds a run (its files are deleted, and named).
    Raises:
        DetkitError: unusable input or a folder holding a run (exit 2); Diverged (exit 1) at a NaN loss.
    """
    cfg.validate()
    cfg = cfg.resolved()  # the recipe's defaults, written into config.json (what --resume reads)
    check_outside(cfg.out, data_folders(cfg.data, getattr(cfg, "val_data", None)), "run folder")
    main = is_main_process()
    with H.RunFolder(cfg.out, RUN_FILES, exist_ok=exist_ok, main=main):
        return _run(cfg, Path(cfg.out), None)


def resume(run: str | Path, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """Continue the run in ``run`` (a folder or its last.pt) exactly; ``given`` are options typed again
    (only those of :func:`detkit.train.options.resume_fields` may change)."""
    path = Path(run) if Path(run).is_dir() or not Path(run).suffix else Path(run).parent  # RUN or RUN/last.pt
    main = is_main_process()
    with H.RunFolder(path, RUN_FILES, resume=True, main=main):
        ckpt = H.load_checkpoint(path / "last.pt", "yolo", ("model_config", *H.STATE_KEYS, "args"))
        cfg = O.resumed_config(TrainConfig, {**ckpt["args"], "out": str(path)}, given or {}, path)
        cfg.validate()
        cfg = cfg.resolved()  # a run saved before the recipes: its None options mean its recipe's values
        if ckpt["epoch"] >= cfg.epochs:  # the classifier's rule too: rebuild what is missing, exit 0
            if main:
                checkpoints(path).repair(ckpt, finished=True)
            H.say_nothing_to_do(path, ckpt["epoch"], cfg.epochs)
            return summary_fields(ckpt, "done")
        if main:
            checkpoints(path).repair(ckpt, finished=False)
        return _run(cfg, path, ckpt)
