"""The train/resume skeleton both trainers run: the run folder, resume, the epoch loop and its commit,
the --max-steps stop inside an epoch, the NaN stop and the DDP teardown. Plain functions over a
:class:`Trainer`, the few trainer-specific pieces (nanoGPT / torchvision references' shape):

    train(t, cfg)          check the options, own a new run folder (:class:`detkit.train.harness.RunFolder`),
                           run
    resume(t, RUN, given)  own the folder, read RUN/last.pt, the run's options with ``given`` (None: not
                           given), rebuild the side files a kill left stale; "already trained N of M
                           epochs; nothing to do" (exit 0) when its epochs are done, else run from it
    run(t, cfg, RUN, ckpt) thread policy, t.setup (restored from ckpt), t.record (rank 0), the epochs,
                           finish (final status and curves, rank 0), barrier, teardown of the process group

The epochs of one call are ``[s.epoch, end)`` with ``end = epochs``, or ``s.epoch + stop_after`` when
``--stop-after`` is given. Each epoch:

    steps_left = max_steps - optimizer steps so far       (--max-steps counts the whole run's steps;
                                                            <= 0: stop before the epoch)
    skip = s.epoch_step on the call's first epoch, else 0  (batches a --max-steps stop already trained)
    out = t.train_epoch(...)                               (a non-finite loss: Diverged, exit 1)
    sums = out.sums + the sums the part epoch carried      (so its row averages every step, not this call's)
    position = (epoch + 1, 0) when whole, else (epoch, batches done); epoch_sums kept only for a part epoch
    row = t.end_epoch(...)                                 (evaluation, best epoch, the epoch's line)
    history += row (it replaces the row of a part epoch); commit (rank 0,
    :meth:`detkit.train.harness.Checkpoints.commit`); barrier

and the call's last epoch (``epoch + 1 == end`` and whole, or --max-steps reached) ends the loop. The
status is "done" when every epoch is trained, else "stopped" (--max-steps, --stop-after).

Under torchrun every rank runs the loop; rank 0 owns the folder and writes. Every rank leaves an epoch
after its commit (a barrier); at the end rank 0 writes the final files before the barrier that precedes
``destroy_process_group``, also after a NaN stop (every rank sees the same non-finite all-reduced
gradient or loss); any other error tears the group down without waiting for the others.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from detkit.train import harness as H
from detkit.train import options as O
from detkit.train.common import barrier, is_main_process


class Run(Protocol):
    """What the skeleton reads of a trainer's run (each trainer's ``setup`` builds one)."""

    cfg: Any  # epochs, max_steps, log_every (and stop_after when the trainer has it)
    path: Path
    state: dict[str, Any]  # epoch, epoch_step, epoch_sums, history, and the trainer's own keys
    world: int

    @property
    def main(self) -> bool: ...

    @property
    def scheduler(self) -> torch.optim.lr_scheduler.LRScheduler: ...  # last_epoch: optimizer steps so far


@dataclass
class Epoch:
    """One epoch of one call, as the skeleton hands it to the trainer."""

    index: int  # 0-based
    skip: int  # batches already trained in an earlier call (drawn, not trained)
    max_steps: int | None  # optimizer steps this call may still take
    bar: Any  # what the trainer's ``progress`` yielded
    log: H.ProgressLog


@dataclass
class EpochOut:
    """What a trainer's ``train_epoch`` returns.

    ``sums`` are additive over the epoch (loss times steps or images, counts): this call's; the skeleton
    adds those a part epoch carried in its checkpoint. ``nonfinite`` says what turned NaN/inf (the step
    was not applied)."""

    batches: int  # batches of the epoch done, over every call (skipped ones included)
    per_epoch: int  # batches in a whole epoch
    sums: dict[str, float]
    stats: dict[str, Any]
    nonfinite: str | None = None


@dataclass(frozen=True)
class Trainer:
    """The trainer-specific pieces of the skeleton.

    Args:
        files: what a run of this trainer writes in its folder (what ``--exist-ok`` deletes).
        config: the config dataclass (``validate``, ``resolved``; fields declared with
            :func:`detkit.train.options.opt`).
        config_key: where a checkpoint keeps the options (what ``--resume`` reads back).
        load: ``RUN -> RUN/last.pt``, checked and in the current layout (what resume and a NaN stop read).
        checkpoints: ``RUN -> Checkpoints`` (the commit and the side files).
        setup: ``(cfg, RUN, ckpt or None) -> Run``: data, model, optimizer, restored from ``ckpt``.
        record: ``(run, thread policy, ckpt or None, end) -> None``: run.json, config.json, start-up lines
            (rank 0).
        progress: ``(run, end) -> context manager`` whose value every epoch gets as ``bar``.
        train_epoch: ``(run, Epoch) -> EpochOut``: train (part of) one epoch.
        end_epoch: ``(run, Epoch, EpochOut, sums, last) -> row``: the metrics row (the position in
            ``run.state`` is already the epoch's end), evaluation, the best epoch, the epoch's line.
        state: ``run -> checkpoint`` (everything setup needs to continue bit for bit).
        result: ``(RUN, checkpoint, status) -> dict``: what train and resume return.
        loader_workers: ``cfg -> data-loading workers`` (the thread policy leaves them cores).
        end_line: ``(RUN, checkpoint, status) -> None``: the last line of a call (rank 0), if any.
    """

    files: tuple[str, ...]
    config: type
    config_key: str
    load: Callable[[Path], dict[str, Any]]
    checkpoints: Callable[[Path], H.Checkpoints]
    setup: Callable[[Any, Path, dict[str, Any] | None], Any]
    record: Callable[[Any, dict[str, Any] | None, dict[str, Any] | None, int], None]
    progress: Callable[[Any, int], contextlib.AbstractContextManager]
    train_epoch: Callable[[Any, Epoch], EpochOut]
    end_epoch: Callable[[Any, Epoch, EpochOut, dict[str, float], bool], dict[str, Any]]
    state: Callable[[Any], dict[str, Any]]
    result: Callable[[Path, dict[str, Any], str], dict[str, Any]]
    loader_workers: Callable[[Any], int] = lambda cfg: 0
    end_line: Callable[[Path, dict[str, Any], str], None] | None = None


def train(t: Trainer, cfg: Any, exist_ok: bool = False) -> dict[str, Any]:
    """A new run in ``cfg.out``: options checked, the folder owned (``exist_ok``: start over in one that
    holds a run), then :func:`run`. The trainer has refused an ``out`` inside its data
    (:func:`detkit.datasets.paths.check_outside`): the skeleton does not know where a trainer reads."""
    cfg.validate()
    cfg = cfg.resolved()  # the defaults that depend on other options, written into config.json
    with H.RunFolder(cfg.out, t.files, exist_ok=exist_ok, main=is_main_process()):
        return run(t, cfg, Path(cfg.out), None)


def resume(t: Trainer, run_dir: str | Path, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """Continue the run in ``run_dir`` (a folder or its last.pt) exactly.

    Args:
        t: the trainer.
        run_dir: the run folder.
        given: options typed again (a None value counts as not given); only those of
            :func:`detkit.train.options.resume_fields` may change.
    """
    path = H.run_folder(run_dir)
    main = is_main_process()
    with H.RunFolder(path, t.files, resume=True, main=main):
        ckpt = t.load(path)
        typed = {k: v for k, v in (given or {}).items() if v is not None}
        cfg = O.resumed_config(t.config, {**ckpt[t.config_key], "out": str(path)}, typed, path)
        cfg.validate()
        cfg = cfg.resolved()  # a run saved before a default existed: its None options mean the default
        finished = ckpt["epoch"] >= cfg.epochs
        if main:  # a kill after the commit: the side files follow last.pt as it was committed
            t.checkpoints(path).repair(ckpt, finished)
        if finished:
            H.say_nothing_to_do(path, ckpt["epoch"], cfg.epochs)
            return t.result(path, ckpt, "done")
        return run(t, cfg, path, ckpt)


def run(t: Trainer, cfg: Any, path: Path, ckpt: dict[str, Any] | None) -> dict[str, Any]:
    """Set up (from ``ckpt`` when resuming), train, finish; returns ``t.result``.

    Raises:
        Diverged: a non-finite loss (exit 1); its ``result`` is the last committed checkpoint's.
    """
    threads = H.apply_threads(cfg, t.loader_workers(cfg))
    r = t.setup(cfg, path, ckpt)
    stop_after = getattr(cfg, "stop_after", None)
    end = cfg.epochs if stop_after is None else min(cfg.epochs, r.state["epoch"] + stop_after)
    ckpts = t.checkpoints(path)
    if r.main:
        t.record(r, threads, ckpt, end)
    try:
        status = epochs(t, r, ckpts, end)
    except H.Diverged as e:
        committed = t.load(path) if r.main and (path / "last.pt").exists() else None
        if committed is not None:
            ckpts.finish(committed, "diverged")
        e.result = t.result(path, committed if committed is not None else t.state(r), "diverged")
        _end_group(r.world, wait=True)  # every rank stopped at the same step
        raise
    except BaseException:
        _end_group(r.world, wait=False)  # one rank's error: the others may never reach a barrier
        raise
    state = t.state(r)
    if r.main:
        ckpts.finish(state, status)
        if t.end_line is not None:
            t.end_line(path, state, status)
    _end_group(r.world, wait=True)
    return t.result(path, state, status)


def epochs(t: Trainer, r: Run, ckpts: H.Checkpoints, end: int) -> str:
    """The epochs ``[r.state["epoch"], end)``, each (or a --max-steps stop inside one) ending in one commit.

    Returns: "done" (every epoch trained) or "stopped". Raises Diverged at a non-finite loss."""
    cfg, s = r.cfg, r.state
    log = H.ProgressLog(cfg.log_every)
    with t.progress(r, end) as bar:
        for epoch in range(s["epoch"], end):
            steps_left = None if cfg.max_steps is None else cfg.max_steps - r.scheduler.last_epoch
            if steps_left is not None and steps_left <= 0:
                break
            skip = s["epoch_step"] if epoch == s["epoch"] else 0
            carried = (s.get("epoch_sums") or {}) if skip else {}
            e = Epoch(epoch, skip, steps_left, bar, log)
            out = t.train_epoch(r, e)
            if out.nonfinite is not None:
                raise H.diverged(r.path, epoch + 1, out.nonfinite)
            sums = {k: v + carried.get(k, 0) for k, v in out.sums.items()}
            complete = out.batches >= out.per_epoch
            # a --max-steps stop inside an epoch: --resume skips the batches already trained
            s["epoch"], s["epoch_step"] = (epoch + 1, 0) if complete else (epoch, out.batches)
            s["epoch_sums"] = None if complete else sums
            last = (epoch + 1 == end and complete) or (
                cfg.max_steps is not None and r.scheduler.last_epoch >= cfg.max_steps
            )
            row = t.end_epoch(r, e, out, sums, last)
            if s["history"] and s["history"][-1]["epoch"] == row["epoch"]:
                s["history"][-1] = row  # the row of a part epoch, now trained further
            else:
                s["history"].append(row)
            if r.main:
                ckpts.commit(t.state(r))
            barrier(r.world)  # every rank leaves the epoch after its commit
            if last:
                break
    return "done" if s["epoch"] >= cfg.epochs else "stopped"


def _end_group(world: int, wait: bool) -> None:
    """Tear the process group down under torchrun; ``wait``: after every rank got here (rank 0 may still
    be evaluating or writing)."""
    if world > 1:
        if wait:
            torch.distributed.barrier()
        torch.distributed.destroy_process_group()
