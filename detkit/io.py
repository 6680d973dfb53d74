"""Atomic file output, checksums and JSON helpers shared by every command.

Every file detkit writes goes through :func:`atomic_write` (a temp file in the same folder, then
``os.replace``), so an interrupted run never leaves a half-written checkpoint, report or json.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
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
    except OSError as exc:  # one without a file name (a full disk) names the output
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        named = _named(exc, path)
        if named is exc:
            raise
        raise named from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _named(exc: OSError, path: Path) -> OSError:
    """``exc`` — an OSError without a file name (a ``write`` that hit a full disk: ``No space left on
    device``) — as one naming ``path``; anything else as it is."""
    if exc.filename is None and exc.errno is not None:
        return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))
    return exc


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
    except OSError as exc:  # one without a file name (a full disk) names the output
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        named = _named(exc, path)
        if named is exc:
            raise
        raise named from None
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
    if out.is_symlink():  # its target would be replaced by a folder, or (a link to a folder) not at all
        raise InputError(out, None, f"is a symbolic link (to {os.readlink(out)}); name a new folder instead")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    tmp = tmp.resolve()
    try:
        yield tmp
        try:
            if out.exists():
                out.rmdir()
            os.replace(tmp, out)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise
            raise InputError(
                out,
                None,
                "was filled by another process while this one wrote it (two commands writing one output?): "
                "its files are kept, this run's are discarded",
            ) from None
    except OSError as exc:  # one without a file name (a full disk) names the output
        shutil.rmtree(tmp, ignore_errors=True)
        named = _named(exc, out)
        if named is exc:
            raise
        raise named from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---- checkpoints ----------------------------------------------------------------------------------------
_GLOBAL = re.compile(r"(?:GLOBAL|global)[: ]+([\w.]+)")


def torch_load(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU — tensors and plain containers only, never code
    from the file — with every failure one line: a missing file, a file that is not a torch archive, or
    one that holds other Python objects (torch's several-line ``Weights only load failed`` text becomes
    ``holds a Python object (posix.system) ...``).

    Args:
        what: the kind of file, for messages (``checkpoint``, ``weights file``).
    """
    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(path, None, f"{what} not found") from None
    except IsADirectoryError:
        raise InputError(path, None, f"is a folder, expected a {what} file") from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure: an unusable input
        text = str(exc)
        m = _GLOBAL.search(text)
        if m:
            why = f"it holds a Python object ({m.group(1)}) that is not a tensor"
            raise InputError(
                path, None, f"not a usable {what}: {why} (detkit loads weights, never code)"
            ) from None
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if "Weights only load failed" in text:  # torch's advice, then its reason on a line of its own
            lines = [ln for ln in lines if "weights_only" not in ln and "torch.load" not in ln] or lines[:1]
        why = f"{type(exc).__name__}{': ' + lines[0][:200] if lines else ''}"
        raise InputError(path, None, f"not a PyTorch {what} ({why})") from None


# ---- a second process ----------------------------------------------------------------------------------
def can_fork() -> bool:
    """Whether a forked child may work beside this process: Linux (macOS' system libraries are not safe
    to use after a fork), a single Python thread (a fork copies only the calling thread, and any lock
    another thread holds stays held in the child), and more than one CPU to run on. Native threads that
    libraries keep (OpenBLAS's idle pool) do not count: a child must call none of those libraries."""
    return sys.platform == "linux" and threading.active_count() == 1 and len(os.sched_getaffinity(0)) > 1


def both(first: Callable[[], bool], second: Callable[[], bool]) -> bool:
    """``first() and second()``, ``second`` in a forked child while ``first`` runs here, where
    :func:`can_fork` (the child's answer is its exit status; it leaves with ``os._exit``: no atexit
    handlers, no flushing of buffers it shares with this process). A child that fails answers False;
    where no child can be had, both run here. ``second`` must call no library that keeps threads."""
    pid = -1
    if can_fork():
        try:
            with warnings.catch_warnings():  # Python >= 3.12 warns of any native thread (see can_fork)
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError:  # EAGAIN, ENOMEM: no second process
            pid = -1
    if pid == 0:  # the child
        code = 1
        try:
            code = 0 if second() else 1
        finally:
            os._exit(code)
    try:
        ok = first()
    finally:
        if pid > 0:
            _, status = os.waitpid(pid, 0)
    if pid < 0:
        return ok and second()
    return ok and os.waitstatus_to_exitcode(status) == 0
