from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
import torch

from detkit.classify.checkpoint import METRIC_FIELDS

from .conftest import TINY


def test_short_run_learns_the_synthetic_set(trained_run):
    with open(trained_run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == METRIC_FIELDS and [int(r["epoch"]) for r in rows] == list(range(1, 9))
    best = max(float(r["val_top1"]) for r in rows)
    assert best >= 0.90
    assert float(rows[-1]["lr"]) < float(max(r["lr"] for r in rows))  # one-cycle anneals
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["kind"] == "classify.train" and summary["status"] == "done"
    assert summary["metrics"]["best_val_top1"] == pytest.approx(best, abs=1e-6)
    assert summary["curves"] == "metrics.csv" and (trained_run / summary["plots"]["curves"]).is_file()
    assert summary["split"]["train_images"] == 210 and summary["split"]["val_images"] == 90
    split = json.loads((trained_run / "split.json").read_text())
    assert len(split["train"]) == 210 and not set(split["train"]) & set(split["val"])
    run = json.loads((trained_run / "run.json").read_text())
    assert (
        run["seed"] == 0
        and run["config"]["lr"] == 0.1
        and run["config"]["cutout"] == 8
        and run["config"]["pad"] == 4
    )
    best_ckpt = torch.load(trained_run / "best.pt", weights_only=True)
    assert best_ckpt["val_top1"] == pytest.approx(best, abs=1e-6) and "optimizer" not in best_ckpt


@pytest.mark.slow
def test_resume_continues_exactly(tiny_set, tmp_path, cli):
    common = ["--data", tiny_set, "--epochs", "2", "--cache-dir", tmp_path / "cache", *TINY]
    assert cli("classify", "train", "--out", tmp_path / "straight", *common)[0] == 0
    assert cli("classify", "train", "--out", tmp_path / "split", "--stop-after", "1", *common)[0] == 0
    assert json.loads((tmp_path / "split" / "summary.json").read_text())["status"] == "stopped"
    # resume names only the run folder: everything else comes from its last.pt
    code, _, err = cli("classify", "train", "--resume", tmp_path / "split", "--device", "cpu")
    assert code == 0, err
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(a["ema"]["module"][k], b["ema"]["module"][k]) for k in a["ema"]["module"])
    assert a["ema"]["updates"] == b["ema"]["updates"]
    assert a["scheduler"] == b["scheduler"]
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[i]["momentum_buffer"], sb[i]["momentum_buffer"]) for i in sa)
    ra = (tmp_path / "straight" / "metrics.csv").read_text().splitlines()
    rb = (tmp_path / "split" / "metrics.csv").read_text().splitlines()
    strip = lambda lines: [",".join(line.split(",")[:7]) for line in lines]  # drop the timing columns
    assert strip(ra) == strip(rb)
    assert (tmp_path / "split" / "split.json").read_text() == (
        tmp_path / "straight" / "split.json"
    ).read_text()


@pytest.mark.slow
def test_nan_stops_cleanly(tiny_set, tmp_path, cli):
    code, _, err = cli(
        "classify",
        "train",
        "--data",
        tiny_set,
        "--out",
        tmp_path / "run",
        "--epochs",
        "1",
        "--lr",
        "1e12",
        "--cache-dir",
        tmp_path / "cache",
        *TINY,
    )
    assert code == 1 and "non-finite training loss in epoch 1" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "last.pt").exists()
    assert (tmp_path / "run" / "run.json").exists()


def test_usage_errors(tiny_set, tmp_path, cli):
    code, _, err = cli("classify", "train", "--data", tiny_set, "--out", tmp_path / "r", "--val", "nope")
    assert code == 2 and err.strip() == "detkit: error: --val must be split or official, got 'nope'"
    code, _, err = cli("classify", "train", "--resume", tmp_path / "none")
    assert (
        code == 2 and err.strip() == f"detkit: error: {tmp_path / 'none' / 'last.pt'}: checkpoint not found"
    )


def test_torchrun_ddp_two_processes(tiny_set, tmp_path):
    # DDP on CPU (gloo): 2 ranks split each global batch; only rank 0 writes and prints
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DETKIT_NO_PROGRESS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "-m",
        "detkit",
        "classify",
        "train",
        "--data",
        str(tiny_set),
        "--out",
        str(tmp_path / "run"),
        "--epochs",
        "1",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--json",
        *TINY,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)  # exactly one JSON document, from rank 0
    assert doc["status"] == "done" and doc["epochs_done"] == 1
    assert (tmp_path / "run" / "last.pt").is_file() and (tmp_path / "run" / "summary.json").is_file()
    assert proc.stderr.count("epoch 1/1:") == 1


@pytest.mark.slow
def test_official_val_and_local_weights(trained_run, tiny_set, tmp_path, cli):
    code, _, err = cli(
        "classify",
        "train",
        "--data",
        tiny_set,
        "--out",
        tmp_path / "r",
        "--val",
        "official",
        "--weights",
        trained_run / "best.pt",
        "--epochs",
        "1",
        *TINY,
    )
    assert code == 0, err
    n_tensors = len(torch.load(trained_run / "best.pt", weights_only=True)["model"])
    said = f"loaded {n_tensors} tensors from {trained_run / 'best.pt'}; kept random init for 0"
    assert "".join(said.split()) in "".join(err.split())  # rich wraps long lines
    assert "epoch 1/1:" in err and "top-1" in err and "top-5" not in err  # 5 classes: top-5 is always 100%
    split = json.loads((tmp_path / "r" / "split.json").read_text())
    assert split["mode"] == "official" and len(split["train"]) == 250 and len(split["val"]) == 50
    assert all(f.startswith("train/") for f in split["train"]) and all(
        f.startswith("val/") for f in split["val"]
    )


@pytest.mark.slow
def test_limit_and_max_steps_resume_exactly(tiny_set, tmp_path, cli):
    common = [
        "--data",
        tiny_set,
        "--epochs",
        "2",
        "--limit",
        "64",
        "--workers",
        "2",
        *TINY,
    ]  # 2 steps an epoch
    code, _, err = cli("classify", "train", "--out", tmp_path / "straight", *common)
    assert code == 0, err
    assert "split: seeded stratified 70%/30%" in err and "--val official validates on the val/ folder" in err
    split = json.loads((tmp_path / "straight" / "split.json").read_text())
    assert (len(split["train"]), len(split["val"]), split["limit"]) == (64, 64, 64)
    code, _, err = cli("classify", "train", "--out", tmp_path / "part", *common, "--max-steps", "3")
    assert code == 0, err
    ckpt = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    assert (ckpt["epoch"], ckpt["epoch_step"], ckpt["scheduler"]["last_epoch"]) == (1, 1, 3)
    assert json.loads((tmp_path / "part" / "summary.json").read_text())["status"] == "stopped"
    code, _, err = cli("classify", "train", "--resume", tmp_path / "part", "--log-every", "0")
    assert code == 0, err
    assert "epoch 2/2 step 2/2: loss" in err  # the progress line off a terminal
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    assert (b["epoch"], b["epoch_step"]) == (2, 0)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(a["ema"]["module"][k], b["ema"]["module"][k]) for k in a["ema"]["module"])
    ra, rb = ((tmp_path / r / "metrics.csv").read_text().splitlines() for r in ("straight", "part"))
    # epoch 1 whole; epoch 2 too: its train loss and top-1 average the step before the stop (carried in
    # last.pt) and the one after it, as the uninterrupted run's do
    assert ra[0] == rb[0] and ra[0].split(",")[2:4] == ["train_loss", "train_top1"]
    cells = lambda line: [float(c) for c in line.split(",")[:7]]  # up to val_top5; timing columns after
    for a_row, b_row in zip(ra[1:], rb[1:], strict=True):
        assert cells(b_row) == pytest.approx(cells(a_row), rel=1e-6), (a_row, b_row)  # 6-digit cells
    assert [c.split(",")[3] for c in ra[1:]] == [c.split(",")[3] for c in rb[1:]]  # top-1: counts, exact


def test_a_finished_run_missing_its_side_files_is_rebuilt_on_resume(trained_run, tmp_path, cli):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    before = (run / "metrics.csv").read_text()
    for name in ("summary.json", "metrics.csv", "curves.png"):
        (run / name).unlink()
    (run / ".last.abcdefgh.pt").write_bytes(b"torn")  # a temp file of a killed save
    code, _, err = cli("classify", "train", "--resume", run, "--device", "cpu")
    assert code == 0, err
    assert "removed 1 temp file(s)" in err and "rebuilt metrics.csv, curves.png, summary.json" in err
    assert (run / "metrics.csv").read_text() == before and (run / "curves.png").stat().st_size > 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "done" and summary["plots"] == {"curves": "curves.png"}
    assert summary["split"]["train_images"] == 210 and not (run / ".last.abcdefgh.pt").exists()
