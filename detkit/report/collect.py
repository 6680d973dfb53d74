"""Find the ``summary.json`` files that detkit commands wrote, and order them for a report.

A report reads only what the commands wrote (see :mod:`detkit.train.runs` for the summary.json contract);
it never recomputes. Sections follow the order a reader meets the work: the data set, its anchors,
then training and evaluation of each model; kinds this module does not know come after, by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detkit.console import warn
from detkit.errors import DetkitError
from detkit.train.harness import LOCK_NAME

# The order sections appear in a report; unknown kinds follow, sorted by kind.
KIND_ORDER = (
    "coco.inspect",
    "coco.validate",
    "coco.classes",
    "coco.split",
    "coco.filter",
    "coco.sample",
    "coco.merge",
    "coco.convert",
    "anchors.kmeans",
    "yolo.train",
    "yolo.eval",
    "yolo.predict",
    "yolo.gallery",
    "classify.train",
    "classify.eval",
    "demo",
)

# Folders never searched (tooling, not runs).
_SKIP_DIRS = {".git", "__pycache__", ".venv", "node_modules"}


@dataclass
class Summary:
    """One summary.json: its folder (paths inside it are relative to this) and its parsed document."""

    path: Path
    doc: dict[str, Any]

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind") or "unknown")


def kind_rank(kind: str) -> int:
    """Position of ``kind`` in :data:`KIND_ORDER` (unknown kinds sort after every known one)."""
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


def _walk(root: Path) -> list[Path]:
    """Every summary.json (and ``<name>.summary.json``, written beside a data set saved as one .json
    file) at or below ``root`` (a folder, or such a file itself)."""
    if root.is_file():
        return [root]
    found = []
    for p in sorted([*root.rglob("summary.json"), *root.rglob("*.summary.json")]):
        if not any(part in _SKIP_DIRS for part in p.relative_to(root).parts[:-1]):
            found.append(p)
    return found


def load_summary(path: Path) -> Summary | None:
    """Parse one summary.json; warn and return None when it is unreadable or not a detkit summary."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        warn(f"{path}: skipped, not readable JSON ({exc})")
        return None
    if not isinstance(doc, dict) or "kind" not in doc:
        warn(f"{path}: skipped, no 'kind' key (not a detkit summary.json)")
        return None
    return Summary(path=path, doc=doc)


def find_summaries(dirs: list[str | Path]) -> list[Summary]:
    """All detkit summaries under ``dirs``, ordered by kind (see :data:`KIND_ORDER`), then path.

    Args:
        dirs: run/output folders (searched recursively) or summary.json files.

    Raises:
        DetkitError: a folder does not exist, or no summary.json was found at all.
    """
    seen: dict[Path, Summary] = {}
    for d in dirs:
        root = Path(d)
        if not root.exists():
            raise DetkitError(f"{root}: no such file or folder")
        for p in _walk(root):
            key = p.resolve()
            if key not in seen and (s := load_summary(p)) is not None:
                seen[key] = s
    if not seen:
        where = ", ".join(str(d) for d in dirs)
        raise DetkitError(
            f"{where}: no summary.json found (a command writes one into the output folder it is given)",
            flags={
                "a command writes one into the output folder it is given": "run a detkit command with "
                "--out/--plots first"
            },
        )
    return sorted(seen.values(), key=lambda s: (kind_rank(s.kind), s.kind, str(s.path)))


@dataclass
class Incomplete:
    """A run folder (it holds run.json) without a summary.json, and why, as far as its files tell."""

    folder: Path
    command: str
    reason: str


def _reason(folder: Path, run: dict[str, Any]) -> str:

    why = "no summary.json: the command stopped before its end"
    if (folder / LOCK_NAME).exists():
        why = "no summary.json and the run folder is locked: still running, or killed"
    config = run.get("config") if isinstance(run.get("config"), dict) else {}
    csv_path = folder / "metrics.csv"
    if csv_path.is_file():
        try:
            epochs = max(0, len(csv_path.read_text(encoding="utf-8").strip().splitlines()) - 1)
        except (OSError, UnicodeDecodeError):
            epochs = None
        if epochs is not None:
            of = f" of {config['epochs']}" if isinstance(config.get("epochs"), int) else ""
            why += f"; metrics.csv has {epochs} epoch(s){of}"
    if (folder / "last.pt").is_file():
        why += f"; last.pt is kept (resuming {folder} continues the run)"
    return why


def find_incomplete(dirs: list[str | Path]) -> list[Incomplete]:
    """Run folders under ``dirs`` (a ``run.json``) that hold no ``summary.json``, with the reason."""
    found: dict[Path, Incomplete] = {}
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            continue
        for p in sorted(root.rglob("run.json")):
            folder = p.parent
            if any(part in _SKIP_DIRS for part in p.relative_to(root).parts[:-1]):
                continue
            if (folder / "summary.json").exists() or folder.resolve() in found:
                continue
            try:
                run = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                run = {}
            run = run if isinstance(run, dict) else {}
            found[folder.resolve()] = Incomplete(folder, str(run.get("command") or ""), _reason(folder, run))
    return list(found.values())
