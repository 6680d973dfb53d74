"""Start-up of the CLI in two trees, runs interleaved: CPU (user + sys, from ``os.wait4``) and wall medians.

    git archive d8031a6 detkit | (mkdir -p /tmp/base && tar -x -C /tmp/base)
    python bench/startup.py --before /tmp/base --after . -n 11

Each command runs as ``python -m detkit ARGS`` with ``PYTHONPATH`` at the tree; the last two rows import the
sub-commands in-process (what ``detkit --help`` imports, and the ``coco`` group) and time only that.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

FIXTURE = (
    Path(__file__).resolve().parents[2] / "shared/data/coco-fixture/coco/annotations/instances_val2017.json"
)
COMMANDS = [
    ["--help"],
    ["coco", "inspect", "--help"],
    ["coco", "classes", str(FIXTURE), "--json"],
    ["yolo", "--help"],
    ["classify", "--help"],
    ["anchors", "--help"],
]
REGISTER = """
import sys, time
t = time.process_time()
import detkit.cli as c
c._register(None if sys.argv[1] == 'all' else {sys.argv[1]})
print(time.process_time() - t)
"""


def run(root: Path, argv: list[str]) -> tuple[float, float]:
    """(CPU s, wall s) of one ``python -m detkit argv`` with ``PYTHONPATH=root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    t = time.perf_counter()
    p = subprocess.Popen(
        [sys.executable, "-m", "detkit", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=root,  # `python -m` puts the working folder first on sys.path: it must be the tree itself
    )
    _, status, ru = os.wait4(p.pid, 0)
    if status != 0:
        raise SystemExit(f"{root}: detkit {' '.join(argv)} failed ({status})")
    return ru.ru_utime + ru.ru_stime, time.perf_counter() - t


def register(root: Path, group: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", REGISTER, group], capture_output=True, text=True, env=env, check=True, cwd=root
    )
    return float(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True, help="tree holding the baseline detkit/")
    ap.add_argument("--after", type=Path, required=True, help="tree holding the changed detkit/")
    ap.add_argument("-n", type=int, default=11, help="runs of each command in each tree")
    args = ap.parse_args()
    trees = (args.before.resolve(), args.after.resolve())
    print(f"load average {os.getloadavg()[0]:.2f}; {args.n} runs each; medians (before -> after)")
    cmds = [c for c in COMMANDS if FIXTURE.exists() or str(FIXTURE) not in c]
    for argv in cmds:
        got = {t: [run(t, argv) for _ in range(1)] for t in trees}
        for _ in range(args.n - 1):
            for t in trees:
                got[t].append(run(t, argv))
        cpu = [statistics.median(c for c, _ in got[t]) for t in trees]
        wall = [statistics.median(w for _, w in got[t]) for t in trees]
        print(
            f"detkit {' '.join(argv)[:44]:44s} CPU {cpu[0]:.3f} -> {cpu[1]:.3f} s "
            f"({cpu[1] / cpu[0] - 1:+.0%})  wall {wall[0]:.3f} -> {wall[1]:.3f} s"
        )
    for group in ("all", "coco"):
        got = {t: [] for t in trees}
        for _ in range(args.n):
            for t in trees:
                got[t].append(register(t, group))
        med = [statistics.median(got[t]) for t in trees]
        print(
            f"import sub-commands: {group:35s} CPU {med[0]:.3f} -> {med[1]:.3f} s "
            f"({med[1] / med[0] - 1:+.0%})"
        )
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
