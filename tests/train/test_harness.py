"""The training harness: options declared once, run-folder lock, leftovers, refusal, the one-commit epoch
end and its repair, progress lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
import torch
import typer

from detkit.errors import DetkitError
from detkit.train import harness as H
from detkit.train import options as O


@dataclass
class Cfg:
    out: str = O.opt(help="Run folder.")
    epochs: int = O.opt(3, "Epochs.", check=O.at_least(1), resume=True)
    lr: float = O.opt(0.1, "Peak LR.", check=O.finite(above=0))
    mode: str = O.opt("a", "a or b.", check=(lambda v: v in ("a", "b"), "must be a or b"))
    limit: int | None = O.opt(None, "Images.", check=O.at_least(1))
    max_steps: int | None = O.opt(None, "Steps now.", per_call=True)
    amp: bool = O.opt(True, "bf16.", flag="--amp/--no-amp")


def test_checks_come_from_the_fields():
    O.check_config(Cfg(out="o"))  # defaults pass; None skips the check of a None-default field
    for kwargs, message in [
        ({"epochs": 0}, "--epochs must be at least 1, got 0"),
        ({"lr": float("nan")}, "--lr must be > 0, got nan"),
        ({"mode": "c"}, "--mode must be a or b, got 'c'"),
        ({"limit": 0}, "--limit must be at least 1, got 0"),
        ({"lr": "fast"}, "--lr must be > 0, got 'fast'"),  # the Python API's wrong type: same one line
    ]:
        with pytest.raises(DetkitError) as e:
            O.check_config(Cfg(out="o", **kwargs))
        assert e.value.cli_message() == message  # the CLI's line names the flag
        assert str(e.value) == message.removeprefix("--")  # the Python API's names the field (one word here)


def test_resume_rule_is_declared_on_the_fields(tmp_path):
    saved = {"out": "x", "epochs": 3, "lr": 0.1, "mode": "b", "limit": None, "max_steps": 2, "amp": False}
    assert O.resume_fields(Cfg) == ("epochs", "max_steps")
    cfg = O.resumed_config(Cfg, saved, {"epochs": 5, "lr": 0.1}, tmp_path)
    assert (cfg.epochs, cfg.lr, cfg.mode, cfg.amp) == (5, 0.1, "b", False)
    assert cfg.max_steps is None  # a limit of the interrupted call, not of the run
    with pytest.raises(DetkitError) as e:
        O.resumed_config(Cfg, saved, {"lr": 0.2, "amp": True}, tmp_path)
    assert str(e.value) == (  # the Python API's words: the fields, as keyword arguments
        f"{tmp_path}: a resumed run keeps its own options; leave out lr=0.2 (the run has 0.1), amp=True "
        "(the run has False) (only epochs, max_steps may change) or start a new run"
    )
    assert e.value.cli_message() == (  # the CLI's: the flags
        f"{tmp_path}: a resumed run keeps its own options; leave out --lr 0.2 (the run has 0.1), --amp True "
        "(the run has False) (only --epochs, --max-steps may change) or start a new run"
    )


def test_the_command_is_built_from_the_config(capsys):
    from typer.testing import CliRunner

    app = typer.Typer()
    seen = {}

    def cmd(ctx, values):
        """Do it."""
        seen.update(values, given=sorted(O.given_options(ctx)))

    O.config_command(app, "go", [Cfg], extra=[("json", bool, False)])(cmd)
    app.command("other")(lambda: None)
    runner = CliRunner()
    res = runner.invoke(app, ["go", "--out", "r", "--epochs", "4", "--no-amp"])
    assert res.exit_code == 0, res.output
    assert seen == {
        "out": "r",
        "epochs": 4,
        "lr": 0.1,
        "mode": "a",
        "limit": None,
        "max_steps": None,
        "amp": False,
        "json": False,
        "given": ["amp", "epochs", "out"],
    }
    help_text = runner.invoke(app, ["go", "--help"]).output
    assert all(s in help_text for s in ("--epochs", "Peak LR.", "--no-amp", "--max-steps"))


def test_a_folder_holding_a_run_is_refused_and_exist_ok_says_what_it_deletes(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("last.pt", "metrics.csv", "notes.txt"):
        (run / name).write_text("x")
    files = ("last.pt", "best.pt", "metrics.csv", "summary.json")
    with pytest.raises(DetkitError) as e, H.RunFolder(run, files):
        pass
    assert str(e.value) == (  # the Python API's words: train(cfg, exist_ok=True), cfg.out
        f"{run}: already holds a run (last.pt); resume it, start over with exist_ok=True, or pick another "
        "out folder"
    )
    assert e.value.cli_message() == (
        f"{run}: already holds a run (last.pt); continue it with --resume {run}, start over with --exist-ok, "
        "or pick another --out"
    )
    with H.RunFolder(run, files, exist_ok=True):
        assert (run / H.LOCK_NAME).read_text() == f"{os.getpid()}\n"
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]  # only the trainer's own files go
    err = capsys.readouterr().err.replace("\n", "")  # rich wraps long lines when stderr is not a terminal
    assert f"warning: {run}: exist_ok=True: deleted the previous run's last.pt, metrics.csv" in err


def test_nothing_to_do_says_how_to_go_on_in_each_callers_words(tmp_path, capsys):
    from detkit.console import cli_wording

    H.say_nothing_to_do(tmp_path, 5, 5)
    with cli_wording():
        H.say_nothing_to_do(tmp_path, 5, 5)
    assert capsys.readouterr().err.replace(f"{tmp_path}:", "RUN:").splitlines() == [
        "RUN: already trained 5 of 5 epochs; nothing to do (epochs=N with N > 5 goes on)",
        "RUN: already trained 5 of 5 epochs; nothing to do (--epochs N with N > 5 goes on)",
    ]


def test_second_owner_is_refused_with_the_holders_pid(tmp_path):
    run = tmp_path / "run"
    with H.RunFolder(run, ()):
        code = f"from detkit.train import harness as H\nwith H.RunFolder({str(run)!r}, ()):\n    pass"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        assert proc.returncode != 0
        assert f"{run}: in use by another detkit trainer (pid {os.getpid()})" in proc.stderr
    assert not (run / H.LOCK_NAME).exists()  # released on exit


def test_a_killed_owners_lock_is_taken_over_and_its_temp_files_removed(tmp_path, capsys):
    run = tmp_path / "run"
    code = (
        f"import os, time\nfrom detkit.train import harness as H\nf = H.RunFolder({str(run)!r}, "
        "())\nf.__enter__()\n"
        f"open({str(run / '.last.abcd1234.pt')!r}, 'w').close()\nprint(os.getpid(), "
        "flush=True)\ntime.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pid = int(proc.stdout.readline())
    proc.kill()
    proc.wait()
    (run / ".metrics.csv.x1y2z3w4.tmp").write_text("half")
    (run / ".keep").write_text("not a temp name")
    with H.RunFolder(run, ()):
        pass
    err = capsys.readouterr().err
    assert f"taking over the lock of pid {pid}, which ended without releasing it" in err
    assert "removed 2 temp file(s) of an interrupted run" in err
    assert sorted(p.name for p in run.iterdir()) == [".keep"]


def _state(epoch, best_epoch, history):
    return {
        "epoch": epoch,
        "epoch_step": 0,
        "model": {"w": torch.full((2,), float(epoch))},
        "history": history,
        "best": {"epoch": best_epoch},
    }


def test_commit_then_repair_after_a_kill_between_the_commit_and_the_side_files(tmp_path):
    summaries = []

    def summary(state, status):
        summaries.append((state["epoch"], status))
        (tmp_path / "summary.json").write_text(json.dumps({"status": status}))

    ck = H.Checkpoints(tmp_path, ("epoch", "loss"), best_state=lambda s: s, summary=summary)
    rows = [{"epoch": 1, "loss": 0.5}]
    ck.commit(_state(1, 1, rows))
    assert (tmp_path / "metrics.csv").read_text() == "epoch,loss\n1,0.5\n"
    assert torch.load(tmp_path / "best.pt", weights_only=True)["epoch"] == 1
    # epoch 2 improves; a kill right after the rename of last.pt leaves best.pt, metrics and summary behind
    rows2 = [*rows, {"epoch": 2, "loss": 0.25}]
    H.save_checkpoint(tmp_path / "last.pt", _state(2, 2, rows2))
    (tmp_path / "summary.json").unlink()
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ck.repair(state, finished=True) == ["best.pt", "metrics.csv", "summary.json"]
    assert torch.load(tmp_path / "best.pt", weights_only=True)["epoch"] == 2
    assert (tmp_path / "metrics.csv").read_text().splitlines()[-1] == "2,0.25"
    assert summaries[-1] == (2, "done")
    assert ck.repair(state, finished=True) == []  # whole again: nothing to do


def test_checkpoint_loading_refuses_foreign_files_by_name(tmp_path):
    plain = tmp_path / "w.pt"
    torch.save({"a": torch.zeros(1)}, plain)
    with pytest.raises(DetkitError, match=r"not a detkit yolo checkpoint \(no model_config\)$"):
        H.load_checkpoint(plain, "yolo", ("model_config",))
    with pytest.raises(DetkitError, match=r"\(missing epoch, model\); hint$"):
        H.load_checkpoint(plain, "classify", ("epoch", "model"), hint="; hint")
    (tmp_path / "t.pt").write_text("text")
    with pytest.raises(DetkitError, match="not a PyTorch checkpoint"):
        H.load_checkpoint(tmp_path / "t.pt", "yolo", ())


def test_progress_log_prints_every_n_seconds_only_off_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(H, "progress_enabled", lambda: False)
    log = H.ProgressLog(every=0.05)
    log(lambda: "first")  # too soon after the start
    time.sleep(0.06)
    log(lambda: "second")
    log(lambda: "third")  # too soon after "second"
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].endswith("] second") and lines[0].startswith("[0:00:00")
    monkeypatch.setattr(H, "progress_enabled", lambda: True)
    quiet = H.ProgressLog(every=0)
    quiet(lambda: "on a terminal the bar shows it")
    assert capsys.readouterr().err == ""
