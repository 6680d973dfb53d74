"""A YOLO dataset read once, then remembered until a file it read or a folder it listed changes.

Two things are kept, in :func:`cache_dir` and never beside the dataset, which detkit does not write into
(ultralytics writes its ``labels.cache`` there):

    listings  :func:`listing`: what :func:`~detkit.datasets.formats.readers.walk` found below a folder,
              with the stat of each folder it entered, taken before that folder was listed. An entry
              added, removed or renamed changes its folder's times, so while each folder's stat is the
              same, so is the listing.
    reads     :func:`recall` / :func:`remembering`: arrays and a JSON document (a reader's result) under a
              key the reader makes of what it was given, with the stat of every file it read or looked
              for and every folder it listed (:class:`Inputs`). While a stat of each gives the same,
              so does the read.

A stat here is (size, modification time, change time, inode): a file rewritten in place changes its
times (and most often its size), one replaced by another its inode too; (-1, -1, -1, -1) is a path that
could not be stat'ed. The check of a read stats each input once, through its folder (``dir_fd``: no
lookup of the folder's own path per file), the later half in a forked child where that is safe
(:func:`~detkit.io.both`) while this process stats the first half and then makes the result: COCO
train2017's 235k images and label files in about half a second on two cores. A file or folder whose
modification or change time is less than ``RACY_NS`` before it was read is not remembered: a second
change within the same tick of the file system's clock would leave its times as they were (git's
"racily clean" entries).

The folder is ``$DETKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/detkit``, else ``~/.cache/detkit``, then
``yolo/``. ``DETKIT_CACHE=off`` turns the cache off; a cache folder that cannot be written is skipped
silently; the folder keeps the ``KEEP`` most recent reads and listings. A key holds ``VERSION`` and the
size and modification time of every module of :mod:`detkit.datasets`, so a changed reader never meets a
result of the old one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import mmap
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np

from detkit.datasets.formats.readers import walk
from detkit.io import atomic_path, both

VERSION = 1
KEEP = 16
RACY_NS = 2 * 10**9  # FAT's modification times are 2 s apart; other file systems' far less
NO_STAT = (-1, -1, -1, -1)
T = TypeVar("T")
_O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
_DIR_FD = os.stat in os.supports_dir_fd


def cache_dir() -> Path | None:
    """The folder reads and listings are kept in (module docstring); None when the cache is off."""
    if os.environ.get("DETKIT_CACHE", "").lower() in ("off", "0", "no", "false"):
        return None
    base = os.environ.get("DETKIT_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (
            os.path.join(xdg, "detkit") if xdg else os.path.join(os.path.expanduser("~"), ".cache", "detkit")
        )
    return Path(base) / "yolo"


def key_of(st: os.stat_result | None) -> tuple[int, int, int, int]:
    """(size, mtime, ctime, inode) of a stat; :data:`NO_STAT` for none. A rewrite in the same clock tick as
    the last one still changes the inode (a file replaced) or, written in place, most often the size or the
    change time."""
    return NO_STAT if st is None else (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def stat_key(path: str) -> tuple[int, int, int, int]:
    """:func:`key_of` the stat of ``path`` (following a link); :data:`NO_STAT` when there is none."""
    try:
        return key_of(os.stat(path))
    except OSError:
        return NO_STAT


# ---- strings in arrays ------------------------------------------------------------------------------------
def packed(strings: Iterable[str], chunk: int = 1 << 14) -> Iterator[bytes]:
    """Strings as utf-8 (surrogates kept) with a NUL between them (no path holds one), ``chunk`` strings
    at a time: never a second copy of them all."""
    it, sep = iter(strings), b""
    while batch := list(itertools.islice(it, chunk)):
        yield sep + "\0".join(batch).encode("utf-8", "surrogateescape")
        sep = b"\0"


def unpack(a: np.ndarray, n: int) -> list[str]:
    """The ``n`` strings :func:`packed` wrote."""
    return a.tobytes().decode("utf-8", "surrogateescape").split("\0") if n else []


# ---- the inputs of a read ---------------------------------------------------------------------------------
@dataclass
class Inputs:
    """What a read depended on: groups of (paths, (n, 4) int64 stats): files read or looked for, and
    folders listed, each with its stat when it was read (:data:`NO_STAT` for one that was not there)."""

    groups: list[tuple[list[str], np.ndarray]]

    def racy(self, started_ns: int) -> bool:
        """Whether any input changed less than ``RACY_NS`` before ``started_ns`` (or after it)."""
        return any(len(st) and int(st[:, 1:3].max()) > started_ns - RACY_NS for _, st in self.groups)

    def parts(self, folders: list[str]) -> Iterator[tuple[str, np.ndarray | Iterator[bytes]]]:
        """The arrays a cache file keeps of them (``inputs.``: each path's name, packed; the runs of
        consecutive paths in one folder, (k, 3) int64 folder index, first, end; the stats), each made as
        :meth:`_Writer.add` takes it; ``folders`` gets the folders."""
        runs: list[list[int]] = []
        index: dict[str, int] = {}
        paths = (p for group, _ in self.groups for p in group)

        def names() -> Iterator[str]:
            last = None
            for i, p in enumerate(paths):
                d, name = os.path.split(p)
                if d != last:
                    k = index.setdefault(d, len(folders))
                    if k == len(folders):
                        folders.append(d)
                    runs.append([k, i, i])
                    last = d
                runs[-1][2] = i + 1
                yield name

        yield "inputs.names", packed(names())
        yield "inputs.runs", np.array(runs, np.int64).reshape(-1, 3)
        stats = (np.ascontiguousarray(st, np.int64) for _, st in self.groups)  # (no copy of an int64 one)
        yield "inputs.stats", (memoryview(st).cast("B") for st in stats if len(st))


def _same(
    folders: list[str], names: list[str], runs: np.ndarray, stats: np.ndarray, lo: int, hi: int
) -> bool:
    """Whether paths ``lo..hi`` (``names``: theirs) have ``stats``, a stat each through its folder's
    descriptor (``runs``: (k, 3) folder index, first, end); False at the first that differs."""
    for k, first, end in runs.tolist():
        first, end = max(first, lo), min(end, hi)
        if first >= end:
            continue
        folder = folders[k] or os.curdir
        try:
            fd = os.open(folder, _O_DIR) if _DIR_FD else -1
        except OSError:  # the folder is gone: so must its files be
            if (stats[first:end] != -1).any():
                return False
            continue
        try:
            for name, size, mtime, ctime, ino in zip(
                names[first - lo : end - lo], *stats[first:end].T.tolist()
            ):
                try:
                    st = os.stat(name, dir_fd=fd) if fd >= 0 else os.stat(os.path.join(folder, name))
                except OSError:
                    if size != -1:  # (NO_STAT: it was not there before either)
                        return False
                    continue
                if (
                    st.st_size != size
                    or st.st_mtime_ns != mtime
                    or st.st_ctime_ns != ctime
                    or st.st_ino != ino
                ):
                    return False
        finally:
            if fd >= 0:
                os.close(fd)
    return True


def unchanged(
    folders: list[str],
    names: np.ndarray,
    runs: np.ndarray,
    stats: np.ndarray,
    then: Callable[[], object] = lambda: None,
    share: float = 0.5,
) -> bool:
    """Whether a stat of each path (``names``: their names, :func:`packed`; ``runs``: (k, 3) folder
    index, first, end) gives ``stats`` again. This process stats the first ``share`` of them, then calls
    ``then`` (when they are unchanged), while a forked child stats the rest; each decodes only its names.
    """
    n = len(stats)
    ends = np.flatnonzero(names == 0)  # the NUL after each name but the last
    if len(ends) != max(n - 1, 0):
        return False
    bounds = np.concatenate(([0], ends + 1, [len(names) + 1]))  # name i: bytes bounds[i] .. bounds[i + 1] - 1

    def part(lo: int, hi: int) -> bool:
        if lo >= hi:
            return True
        mine = unpack(names[bounds[lo] : bounds[hi] - 1], hi - lo)
        return _same(folders, mine, runs, stats, lo, hi)

    mid = int(n * share)
    return both(lambda: part(0, mid) and then() is None, lambda: part(mid, n))


# ---- the cache files -------------------------------------------------------------------------------------
@functools.cache
def _code() -> str:
    """This reader's version: VERSION, and the size and modification time of each module it is made of."""
    here = Path(__file__).resolve().parents[1]
    files = sorted(here.rglob("*.py"))
    return f"{VERSION} " + " ".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)


def key(*parts: str | list[str]) -> str:
    """A cache key: a hash of the reader's version and ``parts`` (a list: its strings, :func:`packed`)."""
    h = hashlib.sha256(_code().encode())
    for p in parts:
        h.update(b"\1")
        for piece in packed(p) if isinstance(p, list) else (p.encode("utf-8", "surrogateescape"),):
            h.update(piece)
    return h.hexdigest()[:40]


def _file(kind: str, name: str) -> Path | None:
    home = cache_dir()
    return home / f"{kind}-{name}" if home is not None else None


_MAGIC = b"detkit cache 1\n"
_ALIGN = 64


class _Writer:
    """A cache file being written, one array at a time: ``_MAGIC``, each array's bytes (at a multiple of
    ``_ALIGN``), then a JSON header (each array's offset, dtype and shape, and a document) and its length
    in 8 bytes; a temp file beside ``path`` (:func:`~detkit.io.atomic_path`) until :meth:`close` puts it
    in place. An OSError (a cache folder that cannot be written, a full disk) drops it: no cache, no error.
    """

    def __init__(self, path: Path):
        self.path, self.index = path, {}
        self._stack = contextlib.ExitStack()
        try:
            self._f: BinaryIO | None = self._stack.enter_context(
                open(self._stack.enter_context(atomic_path(path)), "wb")
            )
            self._f.write(_MAGIC)
        except OSError:
            self.drop()

    @property
    def alive(self) -> bool:
        return self._f is not None

    def add(self, name: str, a: np.ndarray | Iterable[bytes]) -> None:
        """Write an array, or one given as pieces of bytes (a piece at a time; read back as uint8)."""
        if self._f is None:
            return
        f = self._f
        try:
            f.write(b"\0" * (-f.tell() % _ALIGN))
            at = f.tell()
            if isinstance(a, np.ndarray):
                a = np.ascontiguousarray(a)
                self.index[name] = [at, a.dtype.str, list(a.shape)]
                f.write(memoryview(a.reshape(-1)).cast("B"))
            else:
                self.index[name] = [at, "|u1", [sum(f.write(piece) for piece in a)]]
        except OSError:
            self.drop()

    def close(self, doc: dict) -> None:
        """Write the header and put the file in place (the ``KEEP`` most recent of its kind stay)."""
        if self._f is None:
            return
        try:
            head = json.dumps({"arrays": self.index, "doc": doc}).encode()
            self._f.write(head + len(head).to_bytes(8, "little"))
            self._f = None
            self._stack.close()
            kind = self.path.name.split("-", 1)[0]
            old = sorted(self.path.parent.glob(f"{kind}-*"), key=lambda p: p.stat().st_mtime, reverse=True)
            for p in old[KEEP:]:
                p.unlink(missing_ok=True)
        except OSError:
            self.drop()

    def drop(self) -> None:
        """Leave nothing (the temp file removed)."""
        self._f = None
        self._stack.__exit__(_Dropped, _Dropped(), None)


class _Dropped(Exception):
    """Unwinds a :class:`_Writer`'s temp file."""


def _read(path: Path | None) -> tuple[dict[str, np.ndarray], dict] | None:
    """The arrays (views of a private, copy-on-write mapping of the file: nothing is read before it is
    used, and they can be written) and the document of a file :class:`_Writer` made; None when there is
    none, or it is torn or foreign."""
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        n = int.from_bytes(m[-8:], "little")
        if m[: len(_MAGIC)] != _MAGIC or not 0 < n < len(m):
            return None
        head = json.loads(m[-8 - n : -8])
        arrays = {
            k: np.ndarray(shape, np.dtype(dtype), buffer=m, offset=at)
            for k, (at, dtype, shape) in head["arrays"].items()
        }
        return arrays, head["doc"]
    except (OSError, ValueError, TypeError, KeyError):  # absent, empty, torn or foreign
        return None


# ---- listings ---------------------------------------------------------------------------------------------
@dataclass
class Listing:
    """What :func:`listing` found.

    Attributes:
        paths: the entries ``keep`` accepted (str), in ``walk``'s order.
        flags: ``flag`` of each (empty when no ``flag`` was given).
        folders: the folders listed (their stats are the listing's inputs).
        stats: (len(folders), 4) int64 their stats before they were listed.
    """

    paths: list[str]
    flags: list[bool]
    folders: list[str]
    stats: np.ndarray


def listing(
    folder: Path,
    kind: str,
    keep: Callable[[os.DirEntry], bool],
    flag: Callable[[os.DirEntry], bool] | None = None,
) -> Listing:
    """:func:`~detkit.datasets.formats.readers.walk` of ``folder`` with ``keep`` (``kind`` names it), and
    ``flag`` of each entry kept; remembered while every folder listed has the same stat (module docstring).
    """
    where = str(folder)
    path = _file("listing", key("listing", kind, where, os.path.abspath(where)))
    got = _read(path)
    if got is not None:
        arrays, doc = got
        folders, stats = doc["folders"], arrays["stats"]
        if [stat_key(f) for f in folders] == [tuple(r) for r in stats.tolist()]:
            return Listing(unpack(arrays["paths"], doc["n"]), arrays["flags"].tolist(), folders, stats)
    started = time.time_ns()
    entered: list = []
    flags: list[bool] = []

    def keep_flag(e: os.DirEntry) -> bool:
        if not keep(e):
            return False
        flags.append(flag(e))
        return True

    paths = walk(folder, keep if flag is None else keep_flag, entered)
    folders = [p for p, _ in entered]
    stats = np.array([key_of(st) for _, st in entered], np.int64).reshape(-1, 4)
    if path is not None and not Inputs([(folders, stats)]).racy(started):
        w = _Writer(path)
        for name, a in (("paths", packed(paths)), ("flags", np.array(flags, bool)), ("stats", stats)):
            w.add(name, a)
        w.close({"n": len(paths), "folders": folders})
    return Listing(paths, flags, folders, stats)


# ---- reads ------------------------------------------------------------------------------------------------
def recall(name: str, make: Callable[[dict[str, np.ndarray], dict[str, Any]], T]) -> T | None:
    """``make(arrays, document)`` of what :func:`remembering` kept under ``name`` (a :func:`key`), when
    every input gives the stat it had (made while a forked child stats the later half of them: the child
    is the slower, its first touch of each page of this process' memory a copy); else None."""
    got = _read(_file("read", name))
    if got is None:
        return None
    arrays, doc = got
    try:
        folders, runs, names = (
            doc.pop("inputs")["folders"],
            arrays.pop("inputs.runs"),
            arrays.pop("inputs.names"),
        )
        stats = arrays.pop("inputs.stats").view(np.int64).reshape(-1, 4)
    except (KeyError, ValueError):  # foreign
        return None
    made: list[T] = []
    if unchanged(folders, names, runs, stats, lambda: made.append(make(arrays, doc))):
        return made[0]
    return None


class Remembered:
    """A read being kept (:func:`remembering`): its inputs, written as soon as they are all known
    (:meth:`inputs`), then its result (:meth:`result`)."""

    def __init__(self, path: Path, started_ns: int):
        self._w, self.started, self.folders = _Writer(path), started_ns, []
        self._doc: dict[str, Any] | None = None

    def inputs(self, inputs: Inputs) -> None:
        """The read's inputs (dropped, and the read not kept, when one changed just before or while it
        was read)."""
        if inputs.racy(self.started):
            self._w.drop()
        if self._w.alive:
            for name, a in inputs.parts(self.folders):
                self._w.add(name, a)

    def result(
        self, parts: Iterable[tuple[str, np.ndarray | Iterable[bytes]]], doc: Callable[[], dict]
    ) -> None:
        """The read's arrays (taken one at a time) and JSON document (``doc()``, once they are taken);
        nothing is made once the file is dropped."""
        if not self._w.alive:
            return
        for name, a in parts:
            self._w.add(name, a)
        self._doc = doc()

    def _close(self) -> None:
        if self._doc is None or "inputs.stats" not in self._w.index:
            self._w.drop()
        else:
            self._w.close({**self._doc, "inputs": {"folders": self.folders}})


@contextlib.contextmanager
def remembering(name: str, started_ns: int) -> Iterator[Remembered | None]:
    """A :class:`Remembered` for a read from ``started_ns`` on, kept under ``name`` (a :func:`key`) when
    the block ends, given both its inputs and its result; dropped when the block raises. None when the
    cache is off."""
    path = _file("read", name)
    if path is None:
        yield None
        return
    r = Remembered(path, started_ns)
    try:
        yield r
    except BaseException:
        r._w.drop()
        raise
    r._close()
