"""Shared fixtures: the real files in ../shared/data (skipped when absent) and CLI runners."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

os.environ.setdefault("DETKIT_NO_PROGRESS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# YOLO scans are cached in a temp folder (removed at exit), not in the user's ~/.cache/detkit
if "DETKIT_CACHE_DIR" not in os.environ:
    os.environ["DETKIT_CACHE_DIR"] = tempfile.mkdtemp(prefix="detkit-cache-")
    atexit.register(shutil.rmtree, os.environ["DETKIT_CACHE_DIR"], ignore_errors=True)
# One torch thread in every trainer the tests start: the thread policy would otherwise pick 1 or 2 from the
# machine's load, and the figures the tests assert are bit-identical only for one thread count.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# No example database, and hypothesis's other caches in a temp folder: a test run must leave no
# .hypothesis/ folder in the work tree.
settings.register_profile("detkit", database=None)
settings.load_profile("detkit")
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="detkit-hypothesis-"))

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (pyproject's addopts), hand out the modules that train first.

    ``--dist loadfile`` sends whole modules, in collection order (``--no-loadscope-reorder``), to whichever
    worker is free; a module with a ``slow`` test (one that trains) queued last would leave the other worker
    idle while it runs, so those go first and the many short modules even out the end. The order within a
    module is kept. A run without xdist keeps pytest's order.
    """
    if hasattr(config, "workerinput"):  # an xdist worker: the controller schedules in this order
        training = {item.path for item in items if item.get_closest_marker("slow")}
        items.sort(key=lambda item: item.path not in training)


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with a reason when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent (the real data folder ../shared/data is not beside this checkout)")
    return p


@pytest.fixture
def cli(capsys):
    """Run ``detkit ARGS...`` in-process; returns (exit_code, stdout, stderr)."""
    from detkit.cli import run

    def _run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = run([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return _run


@pytest.fixture
def cli_json(cli):
    """Run ``detkit ARGS... --json`` and parse stdout, which must be exactly one JSON document."""

    def _run(*args: str, expect: int = 0) -> dict:
        code, out, err = cli(*args, "--json")
        assert code == expect, f"exit {code}, stderr: {err}"
        return json.loads(out)

    return _run


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory) -> Path:
    """A small synthetic COCO shapes set (16 images, 96 px), generated once per test session."""
    from detkit.data.synth import write_detection_set

    out = tmp_path_factory.mktemp("shapes")
    write_detection_set(out, images=16, size=96, seed=0)
    return out
