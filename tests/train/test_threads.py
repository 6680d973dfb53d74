"""The CPU thread policy: busy threads never exceed the usable cores; workers are single-threaded."""

from __future__ import annotations

import os

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from detkit.errors import DetkitError
from detkit.train import threads as T

_REAL_BUSY_CORES = T.busy_cores


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(
        T, "busy_cores", lambda window=0.2: 0.0
    )  # an idle machine unless a test says otherwise


def _cores(monkeypatch, n: int) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)), raising=False)


@pytest.mark.parametrize(
    ("cores", "workers", "expected"),
    [(1, 0, 1), (2, 0, 2), (2, 1, 1), (2, 4, 1), (8, 0, 8), (8, 2, 6), (16, 8, 8)],
)
def test_policy_leaves_a_core_per_worker(monkeypatch, restore_threads, cores, workers, expected):
    _cores(monkeypatch, cores)
    choice = T.apply_thread_policy(None, workers)
    assert choice["threads"] == expected
    assert torch.get_num_threads() == expected
    assert choice["cores"] == cores and choice["workers"] == workers and choice["source"] == "policy"
    assert choice["threads"] + workers <= max(cores, 1 + workers)  # never oversubscribed by us


@pytest.mark.parametrize(
    ("cores", "busy", "workers", "expected"), [(2, 1.0, 0, 1), (2, 0.4, 0, 2), (8, 2.6, 1, 4), (2, 3.0, 0, 1)]
)
def test_policy_leaves_the_cores_other_programs_use(
    monkeypatch, restore_threads, cores, busy, workers, expected
):
    _cores(monkeypatch, cores)
    monkeypatch.setattr(T, "busy_cores", lambda window=0.2: busy)
    choice = T.apply_thread_policy(None, workers)
    assert (choice["threads"], choice["busy_cores"]) == (expected, busy)
    assert T.apply_thread_policy(2, workers)["busy_cores"] is None  # not measured when the count is given


def test_busy_cores_from_proc_stat_deltas(monkeypatch):
    samples = iter([{0: (100, 200), 1: (50, 200)}, {0: (150, 300), 1: (50, 300), 2: (0, 10)}])
    monkeypatch.setattr(T, "_cpu_times", lambda cpus: next(samples))
    monkeypatch.setattr(T.time, "sleep", lambda s: None)
    # cpu0: 50 of 100 jiffies idle; cpu1: none of 100 idle; cpu2 appeared late and is left out
    assert _REAL_BUSY_CORES() == pytest.approx(1.5)


def test_busy_cores_on_this_machine_is_a_core_count():
    assert 0.0 <= _REAL_BUSY_CORES(window=0.05) <= T.usable_cores() + 1e-9


def test_given_threads_win(monkeypatch, restore_threads):
    _cores(monkeypatch, 2)
    choice = T.apply_thread_policy(3, 1)
    assert choice["threads"] == 3 and torch.get_num_threads() == 3 and choice["source"] == "given"


def test_omp_num_threads_is_respected_unless_threads_are_given(monkeypatch, restore_threads):
    _cores(monkeypatch, 8)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    choice = T.apply_thread_policy(None, 2)
    assert (choice["threads"], choice["source"]) == (3, "OMP_NUM_THREADS") and torch.get_num_threads() == 3
    assert T.apply_thread_policy(5, 2)["threads"] == 5
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    assert T.apply_thread_policy(None, 2) == {**choice, "threads": 6, "source": "policy", "busy_cores": 0.0}


def test_choice_is_json_ready_and_records_interop(monkeypatch, restore_threads):
    import json

    _cores(monkeypatch, 4)
    choice = T.apply_thread_policy(None, 1)
    assert json.loads(json.dumps(choice)) == choice
    assert choice["interop_threads"] == torch.get_num_interop_threads() >= 1


def test_bad_counts_name_the_value():
    with pytest.raises(DetkitError, match="thread count must be at least 1, got 0"):
        T.choose_threads(0, 0, 4)
    with pytest.raises(DetkitError, match="worker count must be at least 0, got -1"):
        T.choose_threads(None, -1, 4)


def test_usable_cores_follows_the_affinity_mask(monkeypatch):
    _cores(monkeypatch, 3)
    assert T.usable_cores() == 3

    def no_affinity(pid):
        raise OSError

    monkeypatch.setattr(os, "sched_getaffinity", no_affinity, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 5)
    assert T.usable_cores() == 5


class _ThreadsInWorker(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int):
        return torch.tensor([torch.get_num_threads(), int(os.environ.get("OMP_NUM_THREADS", "0"))])


_SEEN: list[int] = []


def _record(worker_id: int) -> None:
    _SEEN.append(worker_id)
    assert torch.get_num_threads() == 1  # the policy's init ran first


def test_worker_init_makes_workers_single_threaded(restore_threads):
    torch.set_num_threads(2)
    loader = DataLoader(_ThreadsInWorker(), batch_size=1, num_workers=1, worker_init_fn=T.worker_init_fn)
    for batch in loader:
        assert batch.tolist() == [[1, 1]]


def test_chained_init_runs_both_in_order(restore_threads):
    torch.set_num_threads(2)
    init = T.chain_worker_init(_record)
    import pickle

    pickle.dumps(init)  # spawned workers need a picklable init
    init(0)
    assert _SEEN == [0] and torch.get_num_threads() == 1
