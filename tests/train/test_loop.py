"""The train/resume skeleton (detkit.train.loop) on a stand-in trainer whose step k has loss k: the
--max-steps stop inside an epoch and its exact resume, --stop-after, "nothing to do", the NaN stop, the
run folder a resume names. The real trainers' runs are in tests/yolo and tests/classify."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from detkit.errors import DetkitError
from detkit.train import harness as H
from detkit.train import loop as L
from detkit.train import options as O
from detkit.train.harness import run_folder
from detkit.train.runs import write_summary

PER_EPOCH = 4  # batches in an epoch


@dataclass
class Cfg:
    data: str = O.opt("", "Unused.")
    out: str = O.opt("", "Run folder.")
    epochs: int = O.opt(3, "Epochs.", check=O.at_least(1), resume=True)
    max_steps: int | None = O.opt(None, "Steps of the run to stop at.", per_call=True)
    stop_after: int | None = O.opt(None, "Epochs this call.", per_call=True)
    nan_at: int | None = O.opt(None, "The step whose loss is NaN.", resume=True)
    threads: int | None = O.opt(1, "Threads.", resume=True)
    log_every: float = O.opt(30.0, "Seconds.", resume=True)

    def validate(self) -> None:
        O.check_config(self)

    def resolved(self) -> Cfg:
        return replace(self)


@dataclass
class Sched:
    last_epoch: int = 0  # optimizer steps so far


@dataclass
class Run:
    cfg: Cfg
    path: Path
    state: dict[str, Any] = field(default_factory=dict)
    scheduler: Sched = field(default_factory=Sched)
    world: int = 1
    main: bool = True


def _setup(cfg: Cfg, path: Path, ckpt: dict[str, Any] | None) -> Run:
    r = Run(cfg, path)
    r.state = {"epoch": 0, "epoch_step": 0, "epoch_sums": None, "history": [], "best": {}}
    if ckpt is not None:
        r.scheduler.last_epoch = ckpt["steps"]
        r.state = {k: ckpt[k] for k in ("epoch", "epoch_step", "epoch_sums", "best")}
        r.state["history"] = list(ckpt["history"])  # a part epoch's row too: the skeleton replaces it
    return r


def _train_epoch(r: Run, e: L.Epoch) -> L.EpochOut:
    """Step k (counted over the run from 1) has loss k."""
    steps, loss = 0, 0.0
    for _ in range(e.skip, PER_EPOCH):
        if e.max_steps is not None and steps >= e.max_steps:
            break
        k = r.scheduler.last_epoch + 1
        if k == r.cfg.nan_at:
            return L.EpochOut(e.skip + steps, PER_EPOCH, {}, {}, nonfinite="loss is nan")
        r.scheduler.last_epoch, loss, steps = k, loss + k, steps + 1
    return L.EpochOut(e.skip + steps, PER_EPOCH, {"loss": loss, "steps": steps}, {})


def _end_epoch(r: Run, e: L.Epoch, out: L.EpochOut, sums: dict[str, float], last: bool) -> dict[str, Any]:
    row = {"epoch": e.index + 1, "loss": sums["loss"] / sums["steps"], "last": last}
    r.state["best"] = {"epoch": e.index + 1, "epoch_step": r.state["epoch_step"]}  # every epoch is "best"
    return row


def _state(r: Run) -> dict[str, Any]:
    return {**r.state, "steps": r.scheduler.last_epoch, "config": asdict(r.cfg)}


def _checkpoints(path: Path) -> H.Checkpoints:
    return H.Checkpoints(
        path,
        ("epoch", "loss"),
        best_state=lambda s: s,
        summary=lambda s, status: write_summary(path, "fake.train", "fake", status=status),
    )


def _result(path: Path, state: dict[str, Any], status: str) -> dict[str, Any]:
    return {"status": status, "epoch": state["epoch"], "rows": [r["loss"] for r in state["history"]]}


T = L.Trainer(
    files=("last.pt", "best.pt", "metrics.csv", "summary.json", "run.json"),
    config=Cfg,
    config_key="config",
    load=lambda path: H.load_checkpoint(path / "last.pt", "fake", ("epoch", "steps", "config")),
    checkpoints=_checkpoints,
    setup=_setup,
    record=lambda r, threads, ckpt, end: None,
    progress=lambda r, end: contextlib.nullcontext(),
    train_epoch=_train_epoch,
    end_epoch=_end_epoch,
    state=_state,
    result=_result,
)


def _ckpt(run: Path) -> dict[str, Any]:
    return H.load_checkpoint(run / "last.pt", "fake", ("epoch",))


def test_a_max_steps_stop_inside_an_epoch_resumes_to_the_straight_runs_rows(tmp_path, capsys):
    straight = L.train(T, Cfg(out=str(tmp_path / "a")))
    # epochs of steps 1-4, 5-8, 9-12: mean losses 2.5, 6.5, 10.5
    assert straight == {"status": "done", "epoch": 3, "rows": [2.5, 6.5, 10.5]}

    part = tmp_path / "b"
    stopped = L.train(T, Cfg(out=str(part), max_steps=6))  # 2 batches into epoch 2
    assert stopped == {"status": "stopped", "epoch": 1, "rows": [2.5, 5.5]}  # the part row: (5 + 6) / 2
    c = _ckpt(part)
    assert (c["epoch"], c["epoch_step"], c["epoch_sums"], c["steps"]) == (1, 2, {"loss": 11.0, "steps": 2}, 6)
    assert [r["last"] for r in c["history"]] == [False, True]

    assert L.resume(T, part, {"max_steps": 6}) == stopped  # the run is at step 6 already: nothing trained
    capsys.readouterr()
    resumed = L.resume(T, part / "last.pt", {"threads": None})  # RUN/last.pt names RUN; None: not given
    assert resumed == straight  # epoch 2's row averages steps 5-8, the carried half included
    assert "rebuilt" not in capsys.readouterr().err  # the side files followed last.pt: nothing stale
    c = _ckpt(part)
    assert (c["epoch"], c["epoch_step"], c["epoch_sums"], c["config"]["threads"]) == (3, 0, None, 1)
    assert (part / "metrics.csv").read_text() == "epoch,loss\n1,2.5\n2,6.5\n3,10.5\n"
    assert json.loads((part / "summary.json").read_text())["status"] == "done"


def test_nothing_to_do_stop_after_and_more_epochs(tmp_path, capsys):
    run = tmp_path / "r"
    assert L.train(T, Cfg(out=str(run), stop_after=1)) == {"status": "stopped", "epoch": 1, "rows": [2.5]}
    assert L.resume(T, run, {"stop_after": 1})["rows"] == [2.5, 6.5]
    assert L.resume(T, run)["status"] == "done"
    before = (run / "last.pt").read_bytes()
    capsys.readouterr()
    assert L.resume(T, run) == {"status": "done", "epoch": 3, "rows": [2.5, 6.5, 10.5]}
    said = capsys.readouterr().err
    assert "already trained 3 of 3 epochs; nothing to do (epochs=N with N > 3 goes on)" in said
    assert (run / "last.pt").read_bytes() == before
    assert L.resume(T, run, {"epochs": 4})["rows"] == [2.5, 6.5, 10.5, 14.5]


def test_a_nan_stop_keeps_the_last_commit_and_says_diverged(tmp_path, capsys):
    run = tmp_path / "nan"
    with pytest.raises(H.Diverged) as e:
        L.train(T, Cfg(out=str(run), nan_at=7))
    assert e.value.exit_code == 1
    kept = f"last good checkpoint kept: {run}/last.pt"
    assert str(e.value) == f"training stopped in epoch 2: loss is nan; {kept}"
    assert e.value.result == {"status": "diverged", "epoch": 1, "rows": [2.5]}  # the committed epoch
    assert json.loads((run / "summary.json").read_text())["status"] == "diverged"
    assert _ckpt(run)["epoch"] == 1

    first = tmp_path / "nan1"  # before any commit: the run's start, and no summary
    with pytest.raises(H.Diverged) as e:
        L.train(T, Cfg(out=str(first), nan_at=2))
    assert "no checkpoint was written yet" in str(e.value)
    assert e.value.result == {"status": "diverged", "epoch": 0, "rows": []}
    assert not (first / "summary.json").exists()


def test_resume_names_a_run_folder_or_its_last_pt_only(tmp_path):
    run = tmp_path / "r"
    L.train(T, Cfg(out=str(run), epochs=1))
    assert run_folder(run / "last.pt") == run and run_folder(run) == run
    with pytest.raises(DetkitError, match="best.pt: exists and is not a folder"):
        L.resume(T, run / "best.pt")
    with pytest.raises(DetkitError, match="last.pt: checkpoint not found"):
        L.resume(T, tmp_path / "none" / "last.pt")
