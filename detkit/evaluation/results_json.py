"""A COCO results json (``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}, ...]``) read into
columns, on two processes where that is safe.

Decoding a val2017-sized file and turning it into columns takes most of an evaluation's time (figures in
docs/benchmarks.md), all of it holding Python's lock: no thread can share it. So on Linux, with no other
Python thread running, the file is cut between two records near its middle (:func:`_middle`); a forked child
reads and decodes the second part while this process reads and decodes the first, and the child writes its
columns into a shared mapping. Everywhere else — and for files too small to be worth a fork — one process
decodes it all. Either way each part is decoded a chunk of records at a time (:func:`record_chunks`), so that
only one chunk's Python objects live at once, and both ways give the same columns, in file order.

A part or chunk that does not decode (a cut inside a string, a bad record) makes the reader decode the whole
file once more in this process, so an error names its record (``$[41].score``) as a one-piece decode does; a
fork that fails leaves the work to this process too."""

from __future__ import annotations

import gc
import mmap
import os
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain
from operator import attrgetter
from pathlib import Path

import msgspec
import numpy as np

from detkit.datasets.formats.coco import Int64, decode_bytes
from detkit.datasets.formats.readers import check_file, read_bytes
from detkit.errors import InputError
from detkit.io import can_fork

Columns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # image_id, category_id (N,) int64;
# bbox (N, 4) float64; score (N,) float64

FORK_MIN_BYTES = 4 << 20  # below this a fork with its mapping gains less than it costs


class _Det(msgspec.Struct, gc=False):
    image_id: Int64  # an id outside int64 (2**70) is an error naming its record, not an OverflowError
    category_id: Int64
    bbox: tuple[float, float, float, float]
    score: float


_DETS = msgspec.json.Decoder(list[_Det])
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, ValueError)


def read_results(path: Path, chunk: int = 1 << 18, fork: bool | None = None) -> Columns:
    """The columns of a COCO results json (other keys of a record are ignored).

    Args:
        path: the file.
        chunk: bytes of records per decode: only one chunk's Python objects live at once.
        fork: read and decode the later half of the file in a forked child; None: when :func:`can_fork`
            and the file is at least ``FORK_MIN_BYTES``.

    Raises:
        InputError: the file cannot be read, is not a regular file or a pipe given to this process, or is
            not a list of such records (naming the first bad one).
    """
    size = check_file(path)  # a FIFO, /dev/zero or a folder is refused before anything is opened
    data = read_bytes(path) if size < 0 else None  # a pipe can be read only once
    try:
        if fork is None:
            fork = size >= FORK_MIN_BYTES and can_fork()
        if fork and data is None:
            cols = _read_forked(path, chunk)
        else:
            data = read_bytes(path) if data is None else data
            cols = _decode_pieces(record_chunks(data, chunk))
    except OSError as e:  # the file is missing, or went away or became unreadable while being read
        raise InputError(path, None, f"cannot read ({e.strerror or e})") from None
    except _DECODE_ERRORS:  # the whole file: its error, or its rows
        cols = det_columns(decode_bytes(path, read_bytes(path) if data is None else data, _DETS))
    return cols[0], cols[1], cols[2].reshape(-1, 4), cols[3]


def record_chunks(data: bytes, size: int, head: bool = True, tail: bool = True) -> list[bytes]:
    """``data`` (a JSON list) as JSON lists of consecutive records, cut at the first ``{`` after every
    ``size`` bytes (its comma dropped). A cut that is not between two records (inside a string or a nested
    value) leaves a chunk with an unclosed string, object or array, which does not decode, and the caller
    decodes the whole file instead; so when every chunk decodes, their rows are the file's rows. Each chunk
    is one copy of its bytes (slices of a memoryview): the file is never copied whole.

    Args:
        head, tail: ``data`` opens with the list's ``[`` / closes with its ``]``. Without: it starts with a
            record / ends with the comma after one (the halves of a file cut between two records).

    Raises:
        ValueError: ``data`` is not ``[...]`` (or a part of one, as ``head`` and ``tail`` say) or a cut has
            no comma before it.
    """
    lo, hi = _first_last(data)
    opens, closes = (b"[" if head else b"{"), (b"]" if tail else b",")
    if hi <= lo or data[lo : lo + 1] != opens or data[hi : hi + 1] != closes:
        raise ValueError("not a JSON list")
    view, out, start = memoryview(data), [], lo + 1 if head else lo
    while True:
        cut = data.find(b"{", start + size, hi) if start + size < hi else -1
        end = cut if cut >= 0 else hi
        while end > start and data[end - 1] in b" \t\r\n":
            end -= 1
        if cut >= 0:
            if data[end - 1 : end] != b",":
                raise ValueError("a cut inside a record")
            end -= 1
        out.append(b"".join((b"[", view[start:end], b"]")))
        if cut < 0:
            return out
        start = cut


def _first_last(data: bytes) -> tuple[int, int]:
    """Offsets of the first and the last byte that is not JSON white space (-1 for the last when none).
    (``len(data.rstrip())`` would copy a file that ends with a newline whole.)"""
    lo = len(data) - len(data.lstrip()) if data[:1].isspace() else 0
    hi = len(data) - 1
    while hi >= lo and data[hi] in b" \t\r\n":
        hi -= 1
    return lo, hi


def det_columns(rows: list[_Det]) -> Columns:
    """Decoded records as columns (bbox still flat: (4N,))."""
    n = len(rows)
    return (
        np.fromiter(map(attrgetter("image_id"), rows), np.int64, n),
        np.fromiter(map(attrgetter("category_id"), rows), np.int64, n),
        np.fromiter(chain.from_iterable(map(attrgetter("bbox"), rows)), np.float64, 4 * n),
        np.fromiter(map(attrgetter("score"), rows), np.float64, n),
    )


def _decode_pieces(pieces: list[bytes]) -> Columns:
    with _gc_paused():
        parts = [det_columns(_DETS.decode(p)) for p in pieces]
    return tuple(np.concatenate(c) for c in zip(*parts))  # type: ignore[return-value]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: decoding makes a tuple per record (its bbox), so many collections
    that can find nothing, since decoded records hold no cycles."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# ---- two processes ---------------------------------------------------------------------------------------
_HEADER = struct.Struct("<bq")  # ok flag, number of records the child wrote
_MIN_RECORD = 50  # bytes: a record is at least 57 (its four keys 36); b bytes hold at most b // 50 + 1


def _read_forked(path: Path, chunk: int) -> Columns:
    """The file cut between two records near its middle (:func:`_middle`); this process reads and decodes
    the first part while a forked child reads and decodes the rest.

    The child writes its columns into a shared anonymous mapping sized for the most records its bytes can hold
    (pages it does not touch cost nothing), then the header (ok, n) to a pipe, and leaves with ``os._exit``
    (no atexit handlers, no flushing of buffers it shares with this process). A child that fails — a chunk
    that does not decode, anything else — sends ok = 0 or nothing, and this raises ValueError so that the
    caller decodes the whole file here."""
    with open(path, "rb") as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        mid = _middle(fd, size)
        pid, r, shared, cap = _spawn(fd, mid, size, chunk)
        try:
            with os.fdopen(r, "rb") as pipe:
                mine = _decode_pieces(record_chunks(os.pread(fd, mid, 0), chunk, tail=False))
                head = pipe.read(_HEADER.size)
            ok, n = _HEADER.unpack(head) if len(head) == _HEADER.size else (0, 0)
            if not ok:
                raise ValueError("the child's part did not decode")
            theirs = _views(shared, cap, n)
            out = tuple(np.concatenate(c) for c in zip(mine, theirs))
            del theirs  # views of ``shared``, which cannot close while they live
            return out  # type: ignore[return-value]
        finally:
            os.waitpid(pid, 0)
            shared.close()


def _spawn(fd: int, mid: int, size: int, chunk: int) -> tuple[int, int, mmap.mmap, int]:
    """Fork the child that decodes ``[mid, size)`` of the file. Returns (its pid, the read end of its pipe,
    the shared mapping, the mapping's capacity in records). ValueError when the mapping, the pipe or the
    process cannot be had (ENOMEM under strict overcommit, EAGAIN, EMFILE): this process then decodes it all.
    """
    cap = (size - mid) // _MIN_RECORD + 1
    shared, pipe = None, ()
    try:
        shared = mmap.mmap(-1, cap * 7 * 8)  # MAP_SHARED | MAP_ANONYMOUS: the child's writes are seen here
        pipe = os.pipe()
        with warnings.catch_warnings():  # Python >= 3.12 warns of any native thread (see can_fork)
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except OSError:
        if shared is not None:
            shared.close()
        for end in pipe:
            os.close(end)
        raise ValueError("cannot start a second process") from None
    r, w = pipe
    if pid == 0:  # the child
        os.close(r)
        _child(fd, mid, size, chunk, shared, cap, w)
    os.close(w)
    return pid, r, shared, cap


def _middle(fd: int, size: int, window: int = 1 << 20) -> int:
    """Offset of the first ``{`` in the second half of the file that only white space and a comma come
    before: where a record starts, unless that ``{`` is inside a string or a nested value (the halves then
    fail to decode, and the whole file is decoded in one piece). ValueError when the window has none."""
    at = size // 2
    data = os.pread(fd, window, at)
    j = data.find(b"{", 1)
    while j > 0:
        k = j - 1
        while k > 0 and data[k] in b" \t\r\n":
            k -= 1
        if data[k : k + 1] == b",":
            return at + j
        j = data.find(b"{", j + 1)
    raise ValueError("no record starts near the middle")


def _views(shared: mmap.mmap, cap: int, n: int) -> Columns:
    """The four columns of ``n`` records in ``shared`` (column k at byte ``k * cap * 8``; bbox 4 wide)."""
    offsets = (0, cap, 2 * cap, 6 * cap)
    dtypes = (np.int64, np.int64, np.float64, np.float64)
    counts = (n, n, 4 * n, n)
    cols = (np.frombuffer(shared, t, k, o * 8) for t, k, o in zip(dtypes, counts, offsets))
    return tuple(cols)  # type: ignore[return-value]


def _child(fd: int, mid: int, size: int, chunk: int, shared: mmap.mmap, cap: int, w: int) -> None:
    code = 1
    try:
        with os.fdopen(w, "wb") as pipe:
            try:
                cols = _decode_pieces(record_chunks(os.pread(fd, size - mid, mid), chunk, head=False))
                if len(cols[0]) > cap:
                    raise ValueError("more records than bytes allow")
                for dst, src in zip(_views(shared, cap, len(cols[0])), cols):
                    dst[:] = src
            except BaseException:  # noqa: BLE001 (any failure: the parent then decodes the whole file)
                pipe.write(_HEADER.pack(0, 0))
            else:
                pipe.write(_HEADER.pack(1, len(cols[0])))
        code = 0
    finally:
        os._exit(code)
