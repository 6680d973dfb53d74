"""CPU thread policy: never more busy threads than usable cores.

A training step on the CPU runs torch's intra-op pool (``T`` OpenMP threads) while ``W`` data-loader
processes decode the next batches. OpenMP threads spin while they wait for each other, so when
``T + W`` exceeds the cores ``C`` the spinning threads steal time from the ones doing work and a step
becomes several times slower (bench/cpu_threads.py, docs/benchmarks.md). The policy:

    C = len(os.sched_getaffinity(0))        # the cores this process may run on (cgroups, taskset)
    B = round(busy time of those cores over 0.2 s, from /proc/stat)   # other programs' load right now
    T = threads if given, else $OMP_NUM_THREADS if set, else max(1, C - B - W)
    workers: one thread each (torch, OpenMP) -- they are the data parallelism
    inter-op threads = 1 (a sequential training step has no independent ops to overlap)

B matters on small machines: on 2 cores beside one busy program (a browser tab, another training),
two spinning OpenMP threads make a step slower than one thread (bench/cpu_threads.py).

The thread count changes the order of floating-point reductions, so results are bit-identical only
for the same seed *and* the same ``T``; the choice is returned for ``run.json``.
"""

from __future__ import annotations

import functools
import os
import time

from detkit.errors import DetkitError

__all__ = [
    "apply_thread_policy",
    "busy_cores",
    "chain_worker_init",
    "choose_threads",
    "thread_choice",
    "usable_cores",
    "worker_init_fn",
]


def usable_cores() -> int:
    """Cores this process may run on (affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _cpu_times(cpus: set[int]) -> dict[int, tuple[int, int]]:
    """(idle + iowait, total) jiffies of each CPU in ``cpus`` from /proc/stat."""
    times = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                v = [int(x) for x in fields[:8]]
                times[int(name[3:])] = (v[3] + v[4], sum(v))
    return times


def busy_cores(window: float = 0.2) -> float:
    """How many of this process's cores other programs kept busy over ``window`` seconds (0.0 where
    /proc/stat is not readable). Measured before training starts, so it is the rest of the machine."""
    try:
        cpus = os.sched_getaffinity(0)
        before = _cpu_times(cpus)
        time.sleep(window)
        after = _cpu_times(cpus)
    except (AttributeError, OSError, ValueError, IndexError):
        return 0.0
    busy = 0.0
    for cpu, (idle0, total0) in before.items():
        idle1, total1 = after.get(cpu, (idle0, total0))
        if total1 > total0:
            busy += 1.0 - (idle1 - idle0) / (total1 - total0)
    return busy


def choose_threads(threads: int | None, workers: int, cores: int) -> int:
    """Intra-op threads for ``workers`` busy loader processes on ``cores`` cores (``threads`` wins).

    Example::

        choose_threads(None, 0, 8) == 8; choose_threads(None, 2, 8) == 6; choose_threads(None, 4, 2) == 1
    """
    if threads is not None:
        if threads < 1:
            raise DetkitError(f"thread count must be at least 1, got {threads}")
        return threads
    if workers < 0:
        raise DetkitError(f"worker count must be at least 0, got {workers}")
    return max(1, cores - workers)


def thread_choice(threads: int | None, workers: int) -> dict:
    """The policy's choice without setting anything (torch is not imported: onnxruntime uses it too).

    Returns:
        ``{"threads", "workers", "cores", "busy_cores", "source"}``: see :func:`apply_thread_policy`.
    """
    cores = usable_cores()
    source, busy = "given", None
    if threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "").strip()
        threads, source = (
            (int(env), "OMP_NUM_THREADS") if env.isdigit() and int(env) > 0 else (None, "policy")
        )
    if threads is None:
        busy = busy_cores()
    free = max(1, cores - round(busy or 0.0))
    return {
        "threads": choose_threads(threads, workers, free),
        "workers": workers,
        "cores": cores,
        "busy_cores": None if busy is None else round(busy, 2),
        "source": source,
    }


def apply_thread_policy(threads: int | None, workers: int) -> dict:
    """Set torch's intra-op (and, where still allowed, inter-op) threads for a run with ``workers``
    data-loader processes; return the choice for ``run.json``.

    Args:
        threads: intra-op threads to use (None: the policy's choice from the usable cores that other
            programs leave free).
        workers: data-loader processes that decode while the model computes (0 = in the main process).

    Returns:
        ``{"threads", "interop_threads", "workers", "cores", "busy_cores", "source"}``; ``source`` is
        ``"given"``,
        ``"OMP_NUM_THREADS"`` (the environment variable, when set) or ``"policy"``; ``interop_threads``
        is what torch runs with (it can be set once per process).
    """
    import torch  # lazy: onnxruntime's users of this module run without torch

    choice = thread_choice(threads, workers)
    torch.set_num_threads(choice["threads"])
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # allowed once per process, before any inter-op work has started
        pass
    return {
        "threads": choice["threads"],
        "interop_threads": torch.get_num_interop_threads(),
        **{k: choice[k] for k in ("workers", "cores", "busy_cores", "source")},
    }


def worker_init_fn(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=...)``: make a loader worker single-threaded (torch and OpenMP).

    OpenCV's pool must be limited in the parent before the fork (``cv2.setNumThreads(1)``): setting it
    inside a forked worker deadlocks on the pool inherited from the parent.
    """
    import torch  # lazy: onnxruntime's users of this module run without torch

    os.environ["OMP_NUM_THREADS"] = "1"  # for anything the worker starts
    torch.set_num_threads(1)


def _chained(fn, worker_id: int) -> None:
    worker_init_fn(worker_id)
    fn(worker_id)


def chain_worker_init(fn):
    """``worker_init_fn`` followed by ``fn`` (e.g. a seeding hook); picklable for spawned workers."""
    return functools.partial(_chained, fn)
