"""What a YOLO layout's files hold — image sizes, label rows and their problems — read at scale.

:func:`scan` reads, for the images of a :class:`~detkit.datasets.formats.layouts.YoloLayout` and the label
file each one has, everything :func:`~detkit.datasets.formats.yolo.read_yolo_layout` reports and keeps:

    image sizes   from the header bytes (:func:`~detkit.datasets.formats.readers.jpeg_size`: one ``pread``
                  of 64 KB and one of the last 256 bytes for the end marker); PIL
                  (:func:`~detkit.datasets.images.probe_image`) for any other format or header shape
    label rows    the bytes of every file, ``TEXT_FILES`` files at a time packed into a few arrays (no
                  ``bytes`` per file kept), then parsed (:mod:`detkit.datasets.formats.yolo_rows`); the
                  per-line reader for the files that leave that path, with each problem it names

Files are opened, read and stat'ed one after the other: on files in the page cache each call takes a few
microseconds and a pool of threads only passes Python's lock back and forth (bench/yolo_load.py's
train2017 folder: one thread 1.6x faster than four for a first read and twice as fast for a cached one,
with a third of the CPU time). Where calls wait on the device (a network or cold file system),
``$DETKIT_IO_THREADS`` (at most ``THREADS``) sets a pool's size. Each file's size, modification and change
times and inode come from the descriptor it was read through (what
:mod:`~detkit.datasets.formats.yolo_cache` checks a remembered read against).
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detkit.datasets.formats.readers import decode_text, jpeg_size, read_bytes
from detkit.datasets.formats.yolo_cache import Listing, key_of, listing, stat_key
from detkit.datasets.formats.yolo_rows import mapped, parse_texts, texts_of
from detkit.datasets.images import probe_image
from detkit.errors import InputError

THREADS = 32
HEAD = 1 << 16
TEXT_FILES = 2048  # label files read before their bytes are put in a few arrays
IMAGE_FILES = 512  # images whose sizes are read before they are written in place
_TAIL = 256  # as probe_image reads it


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def io_threads() -> int:
    """Threads for the calls on files: ``$DETKIT_IO_THREADS`` (1..``THREADS``), else 1 (module docstring)."""
    value = os.environ.get("DETKIT_IO_THREADS", "")
    return min(int(value), THREADS) if value.isdigit() and int(value) > 0 else 1


def pmap(
    fn: Callable, items: list, chunk: int = 512, per_chunk: Callable | None = None, threads: int | None = None
) -> list:
    """``[fn(x) for x in items]`` (in order) on up to ``threads`` threads, at most the CPUs (default:
    :func:`io_threads`, calls on files), one thread for fewer than two chunks. ``per_chunk`` turns each
    chunk's results into one object (an array) as soon as it is done: the list returned then holds
    those, not a Python object per item."""
    top = io_threads() if threads is None else min(threads, _cpus())
    workers = max(1, min(top, -(-len(items) // chunk)))
    parts = [items[i : i + chunk] for i in range(0, len(items), chunk)]

    def run(part: list):
        got = [fn(x) for x in part]
        return per_chunk(got) if per_chunk is not None else got

    if workers == 1:
        done = map(run, parts)
        return list(done) if per_chunk is not None else [x for got in done for x in got]
    with ThreadPoolExecutor(workers) as ex:
        if per_chunk is not None:
            return list(ex.map(run, parts))
        out = []
        for got in ex.map(run, parts):
            out += got
        return out


# ---- listing --------------------------------------------------------------------------------------------
def list_txt(folder: Path) -> tuple[dict[str, str], Listing]:
    """The :class:`~detkit.datasets.formats.yolo_cache.Listing` of ``sorted(folder.rglob('*.txt'))`` as
    str (remembered while the folders are unchanged), and those of them that are files (``Path.is_file``),
    each mapped to itself (a lookup then gives the one string object the listing made)."""
    found = listing(folder, "txt", _is_txt, os.DirEntry.is_file)
    return {p: p for p, f in zip(found.paths, found.flags) if f}, found


def _is_txt(e: os.DirEntry) -> bool:
    return e.name.endswith(".txt")


# ---- per file -------------------------------------------------------------------------------------------
_OPEN = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)  # a FIFO put in a file's place never blocks the scan


def image_size(path: str) -> tuple[tuple[int, int] | InputError, tuple[int, int, int, int]]:
    """(width, height) of an image from its header bytes (PIL when they are not a plain JPEG), or the
    problem :func:`~detkit.datasets.images.probe_image` names; and the file's :func:`stat_key` (of the file
    read, from the open descriptor)."""
    from PIL import Image

    st = None
    try:
        fd = os.open(path, _OPEN)
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and st.st_size > 0:
                head = os.pread(fd, HEAD, 0)
                tail = head[-_TAIL:] if st.st_size <= HEAD else os.pread(fd, _TAIL, st.st_size - _TAIL)
                wh = jpeg_size(head, Image.MAX_IMAGE_PIXELS)
                if wh is not None and b"\xff\xd9" in tail:
                    return wh, key_of(st)
        finally:
            os.close(fd)
    except OSError:
        pass
    key = key_of(st) if st is not None else stat_key(path)
    try:
        return probe_image(Path(path)), key
    except InputError as err:
        return err, key


def _read(path: str) -> tuple[bytes | InputError, tuple[int, int, int, int]]:
    """The bytes of a label file (a regular file: the walk found it so), or the reader's one-line problem
    when it cannot be read; and the file's :func:`stat_key` (of the file read)."""
    try:
        fd = os.open(path, _OPEN)
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode):
                data = os.read(fd, st.st_size + 1)  # a short read is the end of a regular file
                while len(data) > st.st_size and (more := os.read(fd, 1 << 20)):  # it grew meanwhile
                    data += more
                return data, key_of(st)
        finally:
            os.close(fd)
    except OSError:
        pass
    key = stat_key(path)
    try:
        return read_bytes(Path(path)), key
    except InputError as err:
        return err, key


# ---- the scan -------------------------------------------------------------------------------------------
@dataclass
class Scan:
    """What the files hold (see the module docstring).

    Attributes:
        width, height: (I,) float64 per image; NaN where ``image_problem`` has the reason.
        image_problem: {image index: (code, what)} for images that could not be read.
        label: (I,) int64 index into ``label_files`` of each image's label file, -1 when it has none.
        label_files: the label files (str) the images have.
        file_problem: {file index: (code, where, what)}: a file that could not be read or decoded.
        notes: {file index: [(code, where, what, kept), ...]}: what the per-line reader reported.
        offset: (F + 1,) int64: the rows of file k are ``offset[k]:offset[k + 1]``.
        cls, line: (N,) int64 / int32; box (N, 4) float64 cx cy w h.
        stats: (I + F, 4) int64: each image's then each label file's size, modification and change times
            and inode when it was read (-1 where it could not be), what the cache is checked against.
    """

    width: np.ndarray
    height: np.ndarray
    image_problem: dict[int, tuple[str, str]]
    label: np.ndarray
    label_files: list[str]
    file_problem: dict[int, tuple[str, str | None, str]]
    notes: dict[int, list[tuple[str, str | None, str, bool]]]
    offset: np.ndarray
    cls: np.ndarray
    line: np.ndarray
    box: np.ndarray
    stats: np.ndarray


def _split(got: list) -> tuple[list, np.ndarray, list[int]]:
    """A chunk of (result or InputError, stat) pairs -> (results, (n, 4) stats, the indices of the
    InputErrors): an array per chunk instead of a tuple per file."""
    values = [v for v, _ in got]
    bad = [j for j, v in enumerate(values) if isinstance(v, InputError)]
    return values, np.array([st for _, st in got], dtype=np.int64).reshape(-1, 4), bad


def _texts_at(paths: list[str], i: int, stats: np.ndarray) -> tuple[list, list[tuple[int, InputError]]]:
    """The label files ``paths[i : i + TEXT_FILES]`` read: the
    :func:`~detkit.datasets.formats.yolo_rows.texts_of` units of their bytes (put in a few arrays as soon
    as they are read, not a ``bytes`` each kept), their :func:`stat_key` written into ``stats`` from row
    ``i``, and (index, problem) of those that could not be read."""
    values, st, bad = _split([_read(p) for p in paths[i : i + TEXT_FILES]])
    stats[i : i + len(values)] = st
    problems = [(i + j, values[j]) for j in bad]
    for j in bad:
        values[j] = b""
    return texts_of(values, base=i), problems


def _sizes_at(paths: list[str], i: int, size: np.ndarray, stats: np.ndarray) -> list[tuple[int, InputError]]:
    """:func:`image_size` of the images ``paths[i : i + IMAGE_FILES]`` written into ``size`` ((n, 2) width
    and height, NaN where an image could not be read) and their :func:`stat_key` into ``stats``, from row
    ``i``; (index, problem) of those that could not be read."""
    values, st, bad = _split([image_size(p) for p in paths[i : i + IMAGE_FILES]])
    stats[i : i + len(values)] = st
    problems = [(i + j, values[j]) for j in bad]
    for j in bad:
        values[j] = (math.nan, math.nan)
    size[i : i + len(values)] = values
    return problems


def _image_sizes(images: list[str], stats: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """(I,) width and height of each image (:func:`image_size`; NaN where it could not be read), its
    :func:`stat_key` written into ``stats``, and {image: (code, what)} for those that could not be read."""
    size = np.empty((len(images), 2))
    got = pmap(lambda i: _sizes_at(images, i, size, stats), range(0, len(images), IMAGE_FILES), chunk=1)
    problem = {i: (err.code or "image.corrupt", err.what) for part in got for i, err in part}
    return size[:, 0].copy(), size[:, 1].copy(), problem


def scan(
    images: list[str],
    label: np.ndarray,
    label_files: list[str],
    nc: int | None,
    top: int,
    tol: float,
    rows_of,
) -> Scan:
    """The :class:`Scan` of ``images`` with their label files (``label``: index per image, -1 for none).

    Args:
        nc: the class count (None when unknown), for the per-line reader's messages.
        top: class indices must be below it.
        tol: coordinates may lie this far outside 0..1.
        rows_of: the per-line reader: ``rows_of(path, text, report) -> [(c, cx, cy, w, h, line)]``.
    """
    # each chunk of files writes its results in place: no array per chunk joined afterwards
    n = len(images)
    stats = mapped(4 * (n + len(label_files)), np.int64).reshape(-1, 4)  # (a map: module docstring)
    width, height, image_problem = _image_sizes(images, stats)
    units: list = []  # the label files' bytes, a few arrays (module docstring)
    file_problem: dict[int, tuple[str, str | None, str]] = {}
    for part, problems in pmap(
        lambda i: _texts_at(label_files, i, stats[n:]), range(0, len(label_files), TEXT_FILES), chunk=1
    ):
        units += part
        for k, err in problems:
            file_problem[k] = (err.code or "record.unparsable", err.where, err.what)
    fast, slow_bytes = parse_texts(units, len(label_files), top, tol)
    counts = np.bincount(fast.file, minlength=len(label_files)).astype(np.int64)
    slow_rows: dict[int, list] = {}
    notes: dict[int, list] = {}
    for k in np.flatnonzero(fast.slow).tolist():
        if k in file_problem:
            continue
        path = Path(label_files[k])
        try:
            text = decode_text(path, slow_bytes[k])
        except InputError as err:
            file_problem[k] = (err.code or "record.unparsable", err.where, err.what)
            continue
        got: list = []

        def note(err: InputError, kept: bool = False, got=got) -> None:
            got.append((err.code or "record.unparsable", err.where, err.what, kept))

        slow_rows[k] = rows_of(path, text, note)
        notes[k] = got
        counts[k] = len(slow_rows[k])
    del slow_bytes
    offset = np.concatenate(([0], np.cumsum(counts)))
    n = int(offset[-1])
    if not any(slow_rows.values()):  # every row came by the fast path, in file order: its arrays as they are
        cls, line, box = fast.cls, fast.line, fast.box
    else:
        cls = np.empty(n, np.int64)
        line = np.empty(n, np.int32)
        box = np.empty((n, 4), np.float64)
        at = offset[fast.file] + (np.arange(len(fast.file)) - np.searchsorted(fast.file, fast.file))
        cls[at], line[at], box[at] = fast.cls, fast.line, fast.box
        del fast
        for k, rows in slow_rows.items():
            if rows:
                a = np.array(rows, dtype=np.float64).reshape(-1, 6)
                s, e = offset[k], offset[k + 1]
                cls[s:e], box[s:e], line[s:e] = a[:, 0].astype(np.int64), a[:, 1:5], a[:, 5].astype(np.int32)
    return Scan(
        width,
        height,
        image_problem,
        label,
        label_files,
        file_problem,
        notes,
        offset,
        cls,
        line,
        box,
        stats,
    )
