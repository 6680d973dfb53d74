"""CPU thread policy: `yolo train`, `classify train`, `yolo predict` and `classify eval` with the default
thread count against every fixed count 1..cores, on an idle machine and beside one competing busy process
that the benchmark starts.

Each row is one (command, condition): the wall time of the whole command (start-up included, as a user
waits for it) with the default (``--threads`` not given, ``OMP_NUM_THREADS`` unset: detkit's policy, see
detkit/train/threads.py: the usable cores less the ones other programs keep busy, less the data workers) and
with ``--threads N`` for N = 1..cores; the baseline is the best fixed N measured in
the same run. Target: default / best <= 1.15 in every row. Variants are interleaved and repeated
(``--repeats``, minimum kept), so a burst of load from elsewhere hits all of them alike.

    python bench/cpu_threads.py                  # ~6-9 minutes on 2 cores
    python bench/cpu_threads.py --only 'yolo predict,classify eval'   # the inference rows
    python bench/cpu_threads.py --repeats 3 --json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detkit.train.threads import usable_cores

TARGET = 1.15
DETKIT = [sys.executable, "-m", "detkit"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return {**env, "DETKIT_NO_PROGRESS": "1", "PYTHONPATH": str(ROOT)}


def _detkit(args: list[str]) -> float:
    """Seconds one ``detkit ...`` takes (it must succeed)."""
    t = time.perf_counter()
    r = subprocess.run([*DETKIT, *args], check=False, env=_env(), cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"detkit {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return time.perf_counter() - t


def _commands(work: Path) -> dict[str, list[str]]:
    """The two trainings, a few epochs of a tiny set each (the command's other defaults kept), and the two
    inference commands on models trained once beforehand with one thread: ``yolo predict`` on the 48 images
    and ``classify eval`` on all 300."""
    shapes, tiny = work / "shapes", work / "tiny"
    det, cls = work / "prep" / "yolo" / "best.pt", work / "prep" / "cls" / "best.pt"
    if not shapes.exists():
        _detkit(["data", "synth", str(shapes), "--images", "48", "--size", "160", "--seed", "0"])
        _detkit(["data", "synth", str(tiny), "--task", "classify", "--classes", "5", "--per-class", "60"])
        _detkit(
            [
                "yolo",
                "train",
                "--data",
                str(shapes / "instances.json"),
                "--out",
                str(det.parent),
                "--epochs",
                "1",
            ]
            + ["--batch", "8", "--img-size", "160", "--width", "0.125", "--device", "cpu", "--threads", "1"]
        )
        _detkit(
            ["classify", "train", "--data", str(tiny), "--out", str(cls.parent), "--epochs", "1"]
            + ["--width", "0.25", "--img-size", "32", "--batch", "32", "--device", "cpu", "--threads", "1"]
            + ["--cache-dir", str(work / "cache")]
        )
    inference = {
        "yolo predict": ["yolo", "predict", str(det), str(shapes / "images"), "--device", "cpu", "--no-draw"],
        "classify eval": [
            "classify",
            "eval",
            str(cls),
            "--subset",
            "all",
            "--gallery",
            "0",
            "--device",
            "cpu",
        ],
    }
    return inference | {
        "yolo train": [
            "yolo",
            "train",
            "--data",
            str(shapes / "instances.json"),
            "--epochs",
            "2",
            "--batch",
            "8",
            "--img-size",
            "160",
            "--width",
            "0.125",
            "--eval-every",
            "2",
            "--device",
            "cpu",
        ],
        "classify train": [
            "classify",
            "train",
            "--data",
            str(tiny),
            "--epochs",
            "2",
            "--batch",
            "32",
            "--img-size",
            "32",
            "--width",
            "0.25",
            "--device",
            "cpu",
            "--cache-dir",
            str(work / "cache"),
        ],
    }


def _chosen(run: Path) -> int | None:
    try:
        policy = json.loads((run / "run.json").read_text())["config"].get("thread_policy") or {}
    except (OSError, KeyError, json.JSONDecodeError):
        return None
    return policy.get("threads")


def _row(name: str, argv: list[str], work: Path, variants: list[int | None], repeats: int, tag: str) -> dict:
    times: dict[str, list[float]] = {str(v): [] for v in variants}
    chosen = None
    for rep in range(repeats):
        for v in variants if rep % 2 == 0 else variants[::-1]:  # alternate the order: no variant always first
            run = work / "runs" / f"{name.replace(' ', '_')}_{tag}_{v}_{rep}"
            extra = [] if v is None else ["--threads", str(v)]
            times[str(v)].append(_detkit([*argv, "--out", str(run), *extra]))
            if v is None:
                chosen = _chosen(run)
    best = {k: min(ts) for k, ts in times.items()}
    fixed = {k: s for k, s in best.items() if k != "None"}
    best_n = min(fixed, key=fixed.get)
    ratio = best["None"] / fixed[best_n]
    return {
        "command": name,
        "default_s": round(best["None"], 2),
        "default_threads": chosen,
        "fixed_s": {k: round(s, 2) for k, s in fixed.items()},
        "best_threads": int(best_n),
        "ratio": round(ratio, 3),
        "ok": ratio <= TARGET,
    }


def _busy() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=2, help="runs per variant (minimum kept)")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--only", help="comma-separated commands to time, e.g. 'yolo predict,classify eval'")
    args = ap.parse_args()
    cores = usable_cores()
    variants: list[int | None] = [None, *range(1, cores + 1)]
    rows, load = [], {"start": Path("/proc/loadavg").read_text().split()[:3]}
    with tempfile.TemporaryDirectory(prefix="detkit-threads-") as tmp:
        work = Path(tmp)
        commands = _commands(work)
        if args.only:
            commands = {k: v for k, v in commands.items() if k in {c.strip() for c in args.only.split(",")}}
        for condition in ("idle", "1 busy process"):
            hog = _busy() if condition != "idle" else None
            try:
                for name, argv in commands.items():
                    row = _row(name, argv, work, variants, args.repeats, condition.replace(" ", "_"))
                    rows.append({"condition": condition, **row})
                    print(
                        f"  {name:<15} {condition:<15} default {row['default_s']:6.2f} s "
                        f"({row['default_threads']} threads), best fixed "
                        f"{min(row['fixed_s'].values()):6.2f} s "
                        f"({row['best_threads']} threads), ratio {row['ratio']:.2f}",
                        file=sys.stderr,
                    )
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
    load["end"] = Path("/proc/loadavg").read_text().split()[:3]
    doc = {"cores": cores, "target": TARGET, "repeats": args.repeats, "loadavg": load, "rows": rows}
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        head = f"{'command':<15} {'condition':<15} {'default s':>9} {'(threads)':>9} "
        head += " ".join(f"{f'{n} thr s':>8}" for n in range(1, cores + 1)) + f" {'ratio':>6}  ok"
        print(
            f"cores {cores}, load average at start {' '.join(load['start'])}, at end {' '.join(load['end'])}"
        )
        print(head)
        for r in rows:
            fixed = " ".join(f"{r['fixed_s'][str(n)]:>8.2f}" for n in range(1, cores + 1))
            print(
                f"{r['command']:<15} {r['condition']:<15} {r['default_s']:>9.2f} {r['default_threads']!s:>9} "
                f"{fixed} {r['ratio']:>6.2f}  {'yes' if r['ok'] else 'NO'}"
            )
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
