"""Kill -9 at random moments, then ``--resume``: does every run end whole and equal to one never killed?

For each trainer (``detkit yolo train`` and ``detkit classify train``, tiny synthetic sets from
``detkit data synth``) the baseline is one uninterrupted run, measured in the same invocation. Each trial
starts the same command in a fresh folder and sends SIGKILL at a random moment: half the trials anywhere
in the baseline's wall time, half within its training part, timed from the end of the trial's own
start-up (steps, evaluations, commits), optionally kills the first resume too, then runs
``--resume`` until it exits 0 (a kill before the first commit leaves no last.pt: the command is started
again in its folder). A trial counts as *incomplete* when the finished folder lacks a file, has a stale
``best.pt``, metrics rows other than the epochs, a summary whose status is not ``done``, or a leftover
temp or lock file; its final weights (model and EMA) and metric rows are compared with the baseline's.

    python bench/kill_resume.py                  # 20 trials per trainer
    python bench/kill_resume.py --trials 5 --trainers yolo
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

EPOCHS = 3
DETKIT = [sys.executable, "-m", "detkit"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "DETKIT_NO_PROGRESS": "1", "PYTHONHASHSEED": "0"}
TEMP = re.compile(r"^\.[^/]+\.[A-Za-z0-9_]{8}(\.tmp|\.pt|\.png|\.csv|\.json)$")


def commands(data: Path) -> dict[str, list[str]]:
    """The training command of each trainer (without --out)."""
    yolo = [
        "yolo",
        "train",
        "--data",
        str(data / "det" / "instances.json"),
        "--epochs",
        str(EPOCHS),
        "--batch",
        "4",
        "--img-size",
        "64",
        "--width",
        "0.125",
        "--workers",
        "0",
        "--optimizer",
        "adamw",
        "--lr",
        "0.005",
        "--device",
        "cpu",
    ]
    classify = [
        "classify",
        "train",
        "--data",
        str(data / "cls"),
        "--epochs",
        str(EPOCHS),
        "--batch",
        "32",
        "--img-size",
        "32",
        "--width",
        "0.25",
        "--device",
        "cpu",
        "--cache-dir",
        str(data / "cache"),
    ]
    return {"yolo": yolo, "classify": classify}


def make_data(root: Path) -> None:
    for args in (
        ["det", "--task", "detect", "--images", "16", "--size", "96"],
        ["cls", "--task", "classify", "--classes", "4", "--per-class", "40", "--size", "32"],
    ):
        subprocess.run(
            [*DETKIT, "data", "synth", str(root / args[0]), *args[1:], "--seed", "0"],
            env=ENV,
            check=True,
            capture_output=True,
        )


def run(cmd: list[str], kill_after: float | None = None, start: Path | None = None) -> int | None:
    """Run ``detkit cmd``; SIGKILL it ``kill_after`` seconds after it starts, or after ``start`` appears
    (its run.json: the end of start-up, whatever the machine's load). Returns the exit code (None: killed).
    """
    proc = subprocess.Popen(
        [*DETKIT, *cmd], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    while start is not None and proc.poll() is None and not start.exists():
        time.sleep(0.005)
    try:
        _, err = proc.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        return None
    if proc.returncode != 0:
        print(err[-600:], file=sys.stderr)
    return proc.returncode


def finish(cmd: list[str], out: Path, kill_resume: float | None) -> int:
    """Resume (or restart) until the run is whole; returns how many calls it took."""
    calls = 0
    while not ((out / "last.pt").exists() and not problems(out)):  # a kill after the end needs no call
        calls += 1
        if (out / "last.pt").exists():
            full = [*cmd[:2], "--resume", str(out)]
        else:  # killed before the first commit: start the same command again in its folder
            full = [*cmd, "--out", str(out)]
        code = run(full, kill_after=kill_resume if calls == 1 else None)
        if code not in (None, 0, 2) or calls > 5:  # 2: "already trained" (the detector's answer)
            raise SystemExit(f"{out}: call {calls} ended with exit {code}: {problems(out)}")
    return calls


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        r = list(csv.reader(f))
    keep = [i for i, c in enumerate(r[0]) if not c.endswith("_per_s") and c != "epoch_s"]
    return [[row[i] for i in keep] for row in r]


def problems(out: Path) -> list[str]:
    """Why the finished folder is not whole ([] when it is)."""
    bad = [
        f"missing {n}"
        for n in ("last.pt", "best.pt", "metrics.csv", "summary.json", "run.json")
        if not (out / n).is_file()
    ]
    if bad:
        return bad
    last = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    best = torch.load(out / "best.pt", map_location="cpu", weights_only=True)
    summary = json.loads((out / "summary.json").read_text())
    best_epoch = summary["metrics"].get("best_epoch")
    if summary.get("status") != "done":
        bad.append(f"summary status {summary.get('status')}")
    if best.get("epoch") != best_epoch:
        bad.append(f"best.pt is epoch {best.get('epoch')}, summary names {best_epoch}")
    epochs = [int(r[0]) for r in rows(out / "metrics.csv")[1:]]
    if epochs != list(range(1, EPOCHS + 1)) or last["epoch"] != EPOCHS:
        bad.append(f"metrics epochs {epochs}, last.pt epoch {last['epoch']}")
    bad += [f"leftover {p.name}" for p in out.iterdir() if TEMP.match(p.name) or p.name == ".detkit.lock"]
    return bad


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def epoch_of(out: Path) -> int:
    return torch.load(out / "last.pt", map_location="cpu", weights_only=True)["epoch"]


def same_weights(a: Path, b: Path) -> bool:
    x = torch.load(a / "last.pt", map_location="cpu", weights_only=True)
    y = torch.load(b / "last.pt", map_location="cpu", weights_only=True)
    ema = lambda c: c["ema"]["module"] if c.get("ema") else {}
    return all(torch.equal(x["model"][k], y["model"][k]) for k in x["model"]) and all(
        torch.equal(ema(x)[k], ema(y)[k]) for k in ema(x)
    )


def bench(name: str, cmd: list[str], root: Path, trials: int, rng: random.Random) -> dict:
    base = root / f"{name}-baseline"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*DETKIT, *cmd, "--out", str(base)], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    while proc.poll() is None and not (base / "run.json").exists():
        time.sleep(0.01)
    t_train = time.perf_counter() - t0  # start-up (imports, data) ends when run.json is written
    while proc.poll() is None and json.loads(_read(base / "summary.json") or "{}").get("status") != "done":
        time.sleep(0.01)
    t_done = time.perf_counter() - t0  # the last epoch committed and the summary final; then exit
    assert proc.wait() == 0, f"{name}: the baseline run failed"
    wall = time.perf_counter() - t0
    incomplete = differ = no_ckpt = torn = mid = 0
    calls = []
    for i in range(trials):
        out = root / f"{name}-{i:02d}"
        # half the kills anywhere in the run, half in its training part (steps, evaluations, commits)
        in_training = i % 2 == 1
        t_kill = rng.uniform(0, t_done - t_train) if in_training else rng.uniform(0.05 * wall, wall)
        start = out / "run.json" if in_training else None
        killed = run([*cmd, "--out", str(out)], kill_after=t_kill, start=start) is None
        no_ckpt += killed and not (out / "last.pt").exists()
        mid += killed and (out / "last.pt").exists() and epoch_of(out) < EPOCHS  # between commits, or in one
        torn += any(TEMP.match(p.name) for p in out.iterdir()) if out.exists() else 0
        second = rng.uniform(0.1, 0.9) * wall if i % 4 >= 2 else None  # half the trials: kill the resume too
        calls.append(finish(cmd, out, second))
        why = problems(out)
        same = not why and same_weights(base, out) and rows(base / "metrics.csv") == rows(out / "metrics.csv")
        incomplete += bool(why)
        differ += not same
        print(
            f"{name} trial {i:2d}: kill at {t_kill:5.2f}s {'into training' if in_training else 'from start'}"
            f"{'' if killed else ' (ended first)'}, "
            f"{calls[-1]} call(s) to finish: {'; '.join(why) or 'whole'}, {'same' if same else 'DIFFERENT'} "
            f"weights and rows as the baseline",
            flush=True,
        )
    return {
        "trainer": name,
        "trials": trials,
        "baseline_s": round(wall, 2),
        "incomplete": incomplete,
        "different_from_baseline": differ,
        "killed_before_first_commit": no_ckpt,
        "killed_after_a_commit_before_the_end": mid,
        "kills_leaving_temp_files": torn,
        "startup_s": round(t_train, 2),
        "training_s": round(t_done - t_train, 2),
        "mean_calls_to_finish": round(sum(calls) / len(calls), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--trainers", nargs="+", default=["yolo", "classify"], choices=["yolo", "classify"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="detkit-kill-") as tmp:
        root = Path(tmp)
        make_data(root)
        results = [bench(n, commands(root)[n], root, args.trials, rng) for n in args.trainers]
    print(f"load average: {Path('/proc/loadavg').read_text().split()[:3]}")
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
