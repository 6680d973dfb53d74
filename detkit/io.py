"""Atomic file output, checksums and JSON helpers shared by every command.

Every file detkit writes goes through :func:`atomic_write` (a temp file in the same folder, then
``os.replace``), so an interrupted run never leaves a half-written checkpoint, report or json.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from detkit.errors import InputError

SCHEMA_VERSION = 1


def check_out_folder(path: str | os.PathLike, what: str = "an output folder") -> Path:
    """``path`` as a Path, or a one-line InputError when it exists and is not a folder (a file named as
    --out would otherwise fail deep inside the first write)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(
            path,
            None,
            f"exists and is not a folder; give {what}",
            flags={f"give {what}": f"give {what} to --out"},
        )
    return path


def _umask_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give (mkstemp makes 0600 files)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[Any]:
    """Open a temp file beside ``path``; on success rename it over ``path``, on error remove it.

    Args:
        path: destination file; its parent folders are created.
        mode: ``"w"`` (text, utf-8) or ``"wb"``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if "b" not in mode:
            kwargs.setdefault("encoding", "utf-8")
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path`` for writers that want a file name (torch.save, savefig)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _jsonable(obj: Any) -> Any:
    """Turn numpy scalars/arrays, paths and non-finite floats into plain JSON values."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if np is not None:
        if isinstance(obj, np.ndarray):
            return _jsonable(obj.tolist())
        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.floating):
            return _jsonable(float(obj))
        if isinstance(obj, np.bool_):
            return bool(obj)
    return obj


def to_json(obj: Any, indent: int | None = 2) -> str:
    """Serialise ``obj`` (dicts, lists, numpy values, paths) as strict JSON; NaN/inf become null."""
    return json.dumps(_jsonable(obj), indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON atomically and return the path."""
    with atomic_write(path) as f:
        f.write(to_json(obj, indent=indent))
        f.write("\n")
    return Path(path)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file (or of every file below a folder, in sorted order)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode())
        with open(p, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    return h.hexdigest()


# ---- staged output folders -----------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_leftovers(out: Path) -> list[str]:
    """Remove the temp folders (``.OUT.tmp-PID``) that killed runs left beside ``out``; a folder whose
    process still runs is left alone. Returns what was removed."""
    removed = []
    for tmp in out.parent.glob(f".{glob.escape(out.name)}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or tmp.is_symlink() or not tmp.is_dir():
            continue
        if int(pid) == os.getpid() or not _pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(str(tmp))
    return removed


@contextlib.contextmanager
def staged_folder(out: str | os.PathLike) -> Iterator[Path]:
    """A temp folder ``.OUT.tmp-PID`` beside ``out`` (resolved) that becomes ``out`` on success and is
    removed on any failure: the folder counterpart of :func:`atomic_write`. ``out`` must be absent or an
    empty folder (callers check it, with their own message). Temp folders that killed runs left beside
    ``out`` are removed first (:func:`remove_leftovers`)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    tmp = tmp.resolve()
    try:
        yield tmp
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
