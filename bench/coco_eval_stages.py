"""Where `detkit coco eval --json` spends its wall time, stage by stage, on bench/coco_eval.py's case.

    OMP_NUM_THREADS=1 python bench/coco_eval_stages.py [--cache bench_out/coco_eval] [--repeats 2]

Runs the real command line (``detkit.cli.run``) in a fresh process per repeat, with the stage functions
wrapped to print when each starts and ends (seconds since the interpreter started) and the CPU time of the
thread that ran it. hotcoco's work runs on its own threads, so its calls show little CPU of their own. The
case must exist: run bench/coco_eval.py once first."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import os, sys, threading, time
t_boot = time.time() - (time.clock_gettime(time.CLOCK_MONOTONIC) - float(sys.argv[3]))
sys.path.insert(0, sys.argv[4])
import detkit.datasets.load as L, detkit.evaluation.predictions as P, detkit.evaluation.result as R
import detkit.evaluation.engine as E, detkit.evaluation.analysis as A, detkit.evaluation.confusion as C
rows = []
def wrap(mod, name):
    f = getattr(mod, name)
    def timed(*a, **k):
        t, c = time.time(), time.thread_time()
        try:
            return f(*a, **k)
        finally:
            rows.append((threading.current_thread().name[:14], name, t - t_boot, time.time() - t_boot,
                         time.thread_time() - c))
    setattr(mod, name, timed)
for mod, name in [(L, "load_dataset"), (P, "load_predictions"), (R, "check_predictions"),
                  (R, "_cocoeval_beside"), (E, "_hotcoco_eval"), (R, "coco_matches"), (A, "f1_curves"),
                  (C, "confusion_matrix"), (R, "_evaluate_checked")]:
    wrap(mod, name)
from detkit.cli import run
t_cli = time.time() - t_boot
with open(os.devnull, "w") as null:
    sys.stdout, out = null, sys.stdout
    code = run(["coco", "eval", sys.argv[1], sys.argv[2], "--json"])
    sys.stdout = out
print(f"  {'start-up + imports':34} {'':14} {0:6.3f} -> {t_cli:6.3f}")
for thread, name, a, b, cpu in sorted(rows, key=lambda r: r[2]):
    times = f"{a:6.3f} -> {b:6.3f}   {b - a:6.3f} s wall  {cpu:6.3f} s CPU (its thread)"
    print(f"  {name:34} {thread:14} {times}")
print(f"  {'run() returned (exit code ' + str(code) + ')':34} {'':14} {time.time() - t_boot:6.3f}")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=ROOT / "bench_out" / "coco_eval")
    ap.add_argument("--case", default="5000_30000_500000", help="the case folder under --cache")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    folder = args.cache / args.case
    gt, dt = folder / "gt.json", folder / "dt.json"
    if not dt.exists():
        raise SystemExit(f"{dt} is missing: run bench/coco_eval.py first")
    for k in range(args.repeats):
        print(
            f"run {k + 1} (times in s since the command started; load average "
            f"{Path('/proc/loadavg').read_text().split()[:3]})"
        )
        # the child learns when it was launched (monotonic clock) to count the interpreter's start-up
        import time

        launched = time.clock_gettime(time.CLOCK_MONOTONIC)
        subprocess.run([sys.executable, "-c", CHILD, str(gt), str(dt), repr(launched), str(ROOT)], check=True)


if __name__ == "__main__":
    main()
