"""Provenance of a run folder: resolved config, command line, seed, versions and input checksums.

Every command that writes results calls :func:`record_run` once, which writes ``RUN_DIR/run.json``,
and :func:`write_summary`, which writes ``RUN_DIR/summary.json`` for ``detkit report``.

summary.json contract (read by detkit.report; the report never recomputes):
    {"schema_version": 1, "kind": "<area>.<command>", "title": str, "created": iso-time,
     "command": str, "versions": {...}, ... kind-specific keys ...,
     "plots": {"name": "relative/path.png", ...}, "tables": {"name": [ {row}, ... ]}}
Paths inside a summary are relative to the folder that holds it.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import platform
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from detkit import __version__
from detkit.io import SCHEMA_VERSION, sha256_file, write_json

# the libraries that shape results: import name -> distribution names to ask importlib.metadata
_LIBRARIES = {
    "numpy": ("numpy",),
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "pycocotools": ("pycocotools",),
    "sklearn": ("scikit-learn",),
    "cv2": ("opencv-python-headless", "opencv-python"),
    "msgspec": ("msgspec",),
    "pandas": ("pandas",),
    "matplotlib": ("matplotlib",),
}


def versions() -> dict[str, str]:
    """Versions of Python, detkit and the installed libraries that shape results (read from package
    metadata, so a library the command imports later is listed too), plus CUDA and the GPU when in use."""
    v = {"python": platform.python_version(), "detkit": __version__, "platform": platform.platform()}
    for name, dists in _LIBRARIES.items():
        for dist in dists:
            try:
                v[name] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        v["cuda"] = str(torch.version.cuda)
        v["gpu"] = torch.cuda.get_device_name(0)
    return v


def command_line() -> str:
    """The command line as typed (program name shortened to ``detkit``)."""
    argv = list(sys.argv)
    if argv and (argv[0].endswith("detkit") or argv[0].endswith("__main__.py") or argv[0] == "-m"):
        argv[0] = "detkit"
    return shlex.join(argv)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def record_run(
    run_dir: str | Path,
    config: dict[str, Any],
    seed: int | None = None,
    inputs: Iterable[str | Path] = (),
) -> dict[str, Any]:
    """Write ``run_dir/run.json`` with the resolved config, command line, seed, versions and checksums.

    Args:
        run_dir: the run/output folder (created).
        config: the fully resolved options of the command.
        seed: the seed used for every random choice.
        inputs: input files or folders to checksum (sha256).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "schema_version": SCHEMA_VERSION,
        "created": now(),
        "command": command_line(),
        "seed": seed,
        "config": config,
        "versions": versions(),
        "inputs": {str(p): sha256_file(p) for p in inputs if Path(p).exists()},
    }
    write_json(run_dir / "run.json", record)
    return record


def record_resume(run_dir: str | Path, config: dict[str, Any]) -> None:
    """Append this invocation (time, command line, the options it ran with, versions) to the
    ``resumed`` list of ``run_dir/run.json``, so every command that touched the run is on record."""
    path = Path(run_dir) / "run.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = {"schema_version": SCHEMA_VERSION}
    record.setdefault("resumed", []).append(
        {"created": now(), "command": command_line(), "config": config, "versions": versions()}
    )
    write_json(path, record)


def write_summary(
    out_dir: str | Path, kind: str, title: str, *, file: str = "summary.json", **fields: Any
) -> Path:
    """Write ``out_dir/summary.json`` (see the module docstring for the contract); ``file`` names it
    otherwise (``<name>.summary.json`` beside a data set written as one file, which ``detkit report``
    also finds)."""
    doc = {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "title": title,
        "created": now(),
        "command": command_line(),
        "versions": versions(),
        **fields,
    }
    return write_json(Path(out_dir) / file, doc)
