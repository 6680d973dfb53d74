"""YOLO label files parsed without a Python object per row: the bytes of many files at once, in numpy.

The files come packed whole into :class:`Text` s of up to ``BATCH_BYTES`` (:func:`texts_of`), each a
batch, in an anonymous memory map of its own that goes back to the system as soon as the batch is parsed
(the bytes parsed are gone as the rows fill up: not both held in full); a larger file is cut into
batches at line ends (two batches at a time on two threads). A file takes this fast path only when every
row is what nearly every label file holds, and any other file is left, its bytes kept, to the per-line
reader (:func:`detkit.datasets.formats.yolo._yolo_rows`), which names each problem:

    bytes       separators only space, tab, ``\n`` and ``\r`` before ``\n``; in a field only ``0-9 . + -``
                (so lines are what ``str.splitlines`` gives and fields what ``str.split`` gives; no BOM,
                no other text)
    fields      0 or 5 per line (no polygon row, no wrong field count), each of at most 15 bytes
    class       1..6 decimal digits, below ``top`` (the class count, else 100,000)
    coordinate  ``[+-]digits[.digits]`` (a point anywhere, at least one digit): its value is
                ``m / 10**k`` for the integer ``m`` of its digits and ``k`` digits after the point, both
                exact doubles, so the one correctly rounded division equals ``float(token)``; within
                ``-tol..1+tol``
    rows        no two rows of a file with the same class and box

Each piece of a batch ends with one ``\\n`` (added where it has none). A batch whose every line has the
shape of its first, ``class x x x x`` with single spaces and four fields of the same ``L <= 8`` bytes with
the point at the same place (ultralytics writes ``0.dddddd``), is read from the line ends alone
(:func:`_parse_uniform`): each field is one 64-bit word, checked and turned into its integer with a few
word operations. Any other batch (:func:`_parse_general`): the tokens are found from the separator mask (a
token starts where a byte above 32 follows one that is not; where every line is 5 fields between single
spaces, from the separators' positions alone, :func:`_row_tokens`) and read two words each
(:func:`_numbers_words`), or, where a token of 8 bytes or more has no point among its first 8, their bytes
copied into a (W, tokens) array and read a byte column at a time (:func:`_numbers`): ``m = 10 m + digit``
for every token at once, ``W`` contiguous vector steps for tokens of up to ``W`` bytes. All give the same
values and send the same files to the per-line reader. Memory is a few bytes per byte of the batch and
some 60 per token while a batch is parsed (arrays each thread reuses, :class:`_Scratch`), and 48 bytes per
row kept (class, box, file, line), in maps of their own too.
"""

from __future__ import annotations

import mmap
import threading
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

BATCH_BYTES = 1 << 20
MAX_TOKEN = 15  # bytes: at most 15 digits, so every sum below 10**15 < 2**53 is an exact double
_WS = np.array([32, 9, 10, 13], dtype=np.uint8)  # the separators a fast-path file may hold
_POW10 = 10.0 ** np.arange(MAX_TOKEN + 1)


@dataclass
class LabelRows:
    """The rows of the files that took the fast path, in file then line order.

    Attributes:
        file: (N,) int32 index of each row's file in the list given.
        line: (N,) int32 1-based line number.
        cls: (N,) int64 class index.
        box: (N, 4) float64 cx, cy, w, h as written (normalised).
        slow: (F,) bool: the files left to the per-line reader (their rows are not here).
    """

    file: np.ndarray
    line: np.ndarray
    cls: np.ndarray
    box: np.ndarray
    slow: np.ndarray


def _batches(blobs, limit: int):
    """Batches of (file index, first line number, start, end) pieces of about ``limit`` bytes (a file
    larger than that cut at line ends), each an (n, 4) array, with the most rows it can hold: its lines."""
    batch, size, lines = [], 0, 0
    for k, b in enumerate(blobs):
        start, line = 0, 1
        while True:
            end = len(b) if start + limit >= len(b) else (b.find(b"\n", start + limit) + 1 or len(b))
            n = b.count(b"\n", start, end)
            batch.append((k, line, start, end))
            size += end - start + 1
            lines += n + (1 if end > start and b[end - 1] != 10 else 0)
            if size >= limit:
                yield np.array(batch, dtype=np.int64), lines
                batch, size, lines = [], 0, 0
            line, start = line + n, end
            if start >= len(b):
                break
    if batch:
        yield np.array(batch, dtype=np.int64), lines


@dataclass
class Text:
    """Whole label files in one array, as a batch is parsed: each file's bytes, a ``\\n`` after those that
    do not end with one, and MAX_TOKEN spaces after the last. The array is an anonymous memory map of its
    own (:func:`texts_of`): once the Text is dropped its pages go back to the system, whatever else the
    allocator holds.

    Attributes:
        data: (B,) uint8.
        file: (m,) int32 index of each file.
        start: (m,) int64 its first byte in ``data``.
        size: (m,) int64 its bytes (without a ``\\n`` added).
        lines: the ``\\n`` in ``data``: the most rows it holds.
    """

    data: np.ndarray
    file: np.ndarray
    start: np.ndarray
    size: np.ndarray
    lines: int


def texts_of(blobs: list[bytes], limit: int = BATCH_BYTES, base: int = 0) -> list[Text | tuple[int, bytes]]:
    """The label files ``blobs`` (file ``base + j`` for ``blobs[j]``) as the units :func:`parse_texts`
    reads: consecutive files of up to ``limit`` bytes together, in :class:`Text` s of at most ``limit``
    bytes and a ``\\n`` per file; a larger file as (file, its bytes), cut at line ends when parsed. An empty
    file holds no row: it is in none."""
    units: list[Text | tuple[int, bytes]] = []
    group: list[int] = []
    size = 0
    for j, b in enumerate(blobs):
        if not b:
            continue
        if group and (len(b) > limit or size + len(b) + 1 > limit):
            units.append(_text(blobs, group, base))
            group, size = [], 0
        if len(b) > limit:
            units.append((base + j, b))
        else:
            group.append(j)
            size += len(b) + 1
    if group:
        units.append(_text(blobs, group, base))
    return units


def _text(blobs: list[bytes], group: list[int], base: int) -> Text:
    """The :class:`Text` of the non-empty files ``blobs[j]``, j in ``group``."""
    parts: list[bytes] = []
    start, size = np.empty(len(group), np.int64), np.empty(len(group), np.int64)
    at = 0
    for i, j in enumerate(group):
        b = blobs[j]
        parts.append(b)
        start[i], size[i] = at, len(b)
        at += len(b)
        if b[-1] != 10:
            parts.append(b"\n")
            at += 1
    parts.append(b" " * MAX_TOKEN)
    joined = b"".join(parts)
    data = mmap.mmap(-1, len(joined), flags=mmap.MAP_PRIVATE)
    data.write(joined)
    file = np.array(group, dtype=np.int32)
    file += base
    return Text(np.frombuffer(data, dtype=np.uint8), file, start, size, joined.count(b"\n"))


def parse_labels(blobs: list[bytes], top: int, tol: float, batch_bytes: int = BATCH_BYTES) -> LabelRows:
    """Parse the label files ``blobs`` (their bytes) on the fast path (module docstring):
    :func:`parse_texts` of their :func:`texts_of`.

    Args:
        top: class indices must be below it.
        tol: coordinates may lie this far outside 0..1.
        batch_bytes: bytes parsed at once (two batches at a time where there are two CPUs).
    """
    return parse_texts(texts_of(blobs, batch_bytes), len(blobs), top, tol, batch_bytes)[0]


def parse_texts(
    units: list, n_files: int, top: int, tol: float, batch_bytes: int = BATCH_BYTES
) -> tuple[LabelRows, dict[int, bytes]]:
    """Parse the label files of ``units`` (:func:`texts_of`, in file order) on the fast path (module
    docstring); and the bytes of each file left to the per-line reader.

    A :class:`Text` is one batch: parsed, its rows checked for duplicates, the bytes of its files that
    left copied out, and it is dropped from ``units`` (its map returned) while the others are parsed; a
    larger file is cut into batches and checked once they all are. Each batch writes its rows straight
    into arrays sized for one row per line (no copy to join them unless some lines gave no row).
    ``units`` is emptied.

    Args:
        n_files: the number of files (the largest index + 1 at least).
        top: class indices must be below it.
        tol: coordinates may lie this far outside 0..1.
        batch_bytes: bytes parsed at once in a larger file (two batches at a time where there are two
            CPUs).
    """
    slow = np.zeros(n_files, dtype=bool)
    jobs: list[tuple[int, np.ndarray | None, int]] = []  # (unit, pieces of a larger file, most rows)
    for i, u in enumerate(units):
        if isinstance(u, Text):
            jobs.append((i, None, u.lines))
        else:
            for pieces, lines in _batches([u[1]], batch_bytes):
                pieces[:, 0] = u[0]
                jobs.append((i, pieces, lines))
    at = np.cumsum([0] + [lines for *_, lines in jobs])  # each batch's first row
    total = int(at[-1])
    out = LabelRows(
        mapped(total, np.int32),
        mapped(total, np.int32),
        mapped(total, np.int64),
        mapped(4 * total, np.float64).reshape(total, 4),
        slow,
    )
    kept: dict[int, bytes] = {}
    # two batches at a time where there are two CPUs: numpy lets go of Python's lock in its loops
    from detkit.datasets.formats.yolo_scan import (
        pmap,  # lazy: cycle: yolo_scan imports parse_texts from here
    )

    mix = mapped(total, np.uint64)  # each row's _mix, written for the rows of larger files only
    got = pmap(
        lambda j, out=out, mix=mix: _parse_job(units, jobs[j], top, tol, out, mix, int(at[j]), kept),
        range(len(jobs)),
        1,
        threads=2,
    )
    _SCRATCH.__dict__.clear()  # (where this thread parsed batches itself)
    larger = [u for u in units if u is not None]  # (the Texts are gone)
    units.clear()
    if sum(got) < total:  # lines without a row (blank, or in files that left): the rows, packed
        take = np.concatenate([np.arange(a, a + n) for a, n in zip(at[:-1].tolist(), got)])
        out = LabelRows(out.file[take], out.line[take], out.cls[take], out.box[take], slow)
        mix = mix[take] if larger else mix
    for k, b in larger:  # its rows, one run (rows are in file order)
        r = slice(*np.searchsorted(out.file, [k, k + 1]).tolist())
        _mark_duplicates(_rows(out, r), mix[r])
        if slow[k]:
            kept[k] = b
    del mix
    keep = ~slow[out.file]
    if keep.all():  # (no copy)
        return out, kept
    return LabelRows(out.file[keep], out.line[keep], out.cls[keep], out.box[keep], slow), kept


def _rows(rows: LabelRows, r: slice) -> LabelRows:
    """Rows ``r`` of ``rows`` (views; ``slow`` the same array)."""
    return LabelRows(rows.file[r], rows.line[r], rows.cls[r], rows.box[r], rows.slow)


def _parse_job(
    units: list, job: tuple, top: int, tol: float, out: LabelRows, mix: np.ndarray, at: int, kept: dict
) -> int:
    """Parse one batch of :func:`parse_texts` into ``out`` from row ``at``; returns the number of rows.
    A :class:`Text` is then checked for duplicate rows, the bytes of its files that left put in ``kept``,
    and dropped from ``units``; a piece of a larger file has its rows' :func:`_mix` written into ``mix``
    (checked once all its pieces are parsed)."""
    i, pieces, _ = job
    if pieces is not None:
        n = _parse_batch({int(pieces[0, 0]): units[i][1]}, pieces, top, tol, out, at)
        r = slice(at, at + n)
        _mix(out.file[r], out.cls[r], out.box[r], out=mix[r])
        return n
    t = units[i]
    end = len(t.data) - MAX_TOKEN
    n = _parse_array(t.data, end, t.file, np.ones(len(t.file), np.int64), t.start, top, tol, out, at)
    r = slice(at, at + n)
    mix = _mix(out.file[r], out.cls[r], out.box[r], out=_scratch("mix", n, np.uint64))
    _mark_duplicates(_rows(out, r), mix)
    for j in np.flatnonzero(out.slow[t.file]).tolist():
        kept[int(t.file[j])] = t.data[t.start[j] : t.start[j] + t.size[j]].tobytes()
    units[i] = None
    return n


def _mix(file: np.ndarray, cls: np.ndarray, box: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """A 64-bit mix of each row's (file, class, box bits); ``+ 0.0`` makes ``-0.0`` and ``0.0`` one value,
    as Python's ``==`` does. ``out``: where to write it (a batch's rows: the thread's scratch arrays are
    used for the steps), else a new array."""
    n = len(file)
    if out is None:
        h, f, t = np.empty(n, np.uint64), np.empty(n), np.empty(n, np.uint64)
    else:
        h, f, t = out, _scratch("mix.f", n, np.float64), _scratch("mix.t", n, np.uint64)
    np.copyto(h, file, casting="unsafe")
    h *= np.uint64(0x9E3779B97F4A7C15)
    h ^= cls.astype(np.int64, copy=False).view(np.uint64)
    for k in range(4):
        np.add(box[:, k], 0.0, out=f)
        h ^= f.view(np.uint64)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        np.right_shift(h, np.uint64(31), out=t)
        h ^= t
    return h


class _Scratch(threading.local):
    """Arrays each thread reuses from batch to batch (``out=`` buffers), by name: a batch's temporaries of
    a megabyte then come from memory already mapped, where new arrays each batch had the allocator map and
    unmap them (a page fault per 4 KB, each time)."""

    def get(self, name: str, n: int, dtype) -> np.ndarray:
        arr = self.__dict__.get(name)
        if arr is None or len(arr) < n:
            arr = self.__dict__[name] = mapped(n + n // 4, dtype)  # (batches differ a little in rows)
        return arr[:n]


_SCRATCH = _Scratch()


def mapped(n: int, dtype) -> np.ndarray:
    """An array of ``n`` items (zeros) in an anonymous memory map of its own: its pages go back to the
    system when it is dropped, whatever else the allocator holds. The map is private, as the heap is: a
    forked child's writes stay in the child."""
    dtype = np.dtype(dtype)
    return np.frombuffer(mmap.mmap(-1, max(n * dtype.itemsize, 1), flags=mmap.MAP_PRIVATE), dtype, count=n)


def _scratch(name: str, n: int, dtype) -> np.ndarray:
    """This thread's array ``name`` of ``n`` items (contents undefined)."""
    return _SCRATCH.get(name, n, dtype)


def _mark_duplicates(rows: LabelRows, mix: np.ndarray) -> None:
    """Mark in ``rows.slow`` the files with two rows of the same class and box (the per-line reader names
    them). ``mix``: :func:`_mix` of each row, sorted here in place; when two are alike, the rows are
    sorted by it and neighbours with equal mixes compared in full."""
    mix.sort()
    if not (mix[1:] == mix[:-1]).any():  # (the common case: no two mixes alike)
        return
    file, cls, box = rows.file, rows.cls, rows.box
    h = _mix(file, cls, box)
    order = np.argsort(h, kind="stable")
    hs = h[order]
    cand = np.flatnonzero(hs[1:] == hs[:-1])
    i, j = order[cand], order[cand + 1]
    same = (file[i] == file[j]) & (cls[i] == cls[j]) & np.all(box[i] == box[j], axis=1)
    rows.slow[file[i][same]] = True


def _parse_batch(blobs, batch: np.ndarray, top: int, tol: float, out: LabelRows, at: int) -> int:
    """Parse one batch of (file, first line, start, end) pieces of ``blobs`` (indexed by file) into ``out``
    from row ``at`` (:func:`_parse_array`). Returns the number of rows written."""
    files, first_line = batch[:, 0].astype(np.int32), batch[:, 1]
    k, _, s, e = batch[0].tolist()
    if len(batch) == 1 and e - s > 0 and blobs[k][e - 1] == 10 and len(blobs[k]) - e >= MAX_TOKEN:
        # a piece of a large file that ends with \n before more bytes: read in place, no copy (the fields
        # are read from bytes before its end, some bytes past it masked off)
        a = np.frombuffer(blobs[k], dtype=np.uint8, count=e - s + MAX_TOKEN, offset=s)
        end, starts = e - s, np.zeros(1, dtype=np.int64)
    else:
        a, end, starts = _joined(blobs, batch)
    return _parse_array(a, end, files, first_line, starts, top, tol, out, at)


def _parse_array(a, end, files, first_line, starts, top: int, tol: float, out: LabelRows, at: int) -> int:
    """Parse the bytes ``a[:end]`` (pieces of files ``files`` from lines ``first_line``, at ``starts``,
    each ending with \\n; MAX_TOKEN bytes at least after ``end``) into ``out`` from row ``at``; marks in
    ``out.slow`` the files that leave the fast path. Returns the number of rows written."""
    nl_pos = np.flatnonzero(np.equal(a[:end], 10, out=_scratch("mask", end, np.bool_)))
    shape = _shape(a, nl_pos)
    if shape is not None:
        n = _parse_uniform(a, end, nl_pos, shape, files, first_line, starts, top, tol, out, at)
        if n is not None:
            return n
    return _parse_general(a, end, files, first_line, starts, nl_pos, top, tol, out, at)


def _joined(blobs: list[bytes], batch: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """The batch's pieces in one array, each ending with one \\n (added where it has none: no blank line
    between pieces) and MAX_TOKEN spaces after the last (MAX_TOKEN bytes from every field's first byte
    must exist, read and masked off); (array, bytes before those spaces, each piece's first byte)."""
    pieces = [
        blobs[k] if e - s == len(blobs[k]) else memoryview(blobs[k])[s:e] for k, _, s, e in batch.tolist()
    ]
    parts: list = []
    sizes = np.empty(len(pieces), dtype=np.int64)
    for j, p in enumerate(pieces):
        parts.append(p)
        sizes[j] = len(p)
        if len(p) and p[-1] != 10:
            parts.append(b"\n")
            sizes[j] += 1
    parts.append(b" " * MAX_TOKEN)
    return np.frombuffer(b"".join(parts), dtype=np.uint8), int(sizes.sum()), np.cumsum(sizes) - sizes


def _write(out: LabelRows, at: int, file, line, cls, box) -> int:
    """Write rows ``at``.. of ``out``; returns the number of rows."""
    rows = slice(at, at + len(cls))
    out.file[rows], out.line[rows], out.cls[rows], out.box[rows] = file, line, cls, box
    return len(cls)


def _parse_general(a, end, files, first_line, starts, nl_pos, top, tol, out: LabelRows, at) -> int:
    """:func:`_parse_array` for any batch: tokens from the separator mask, read by :func:`_numbers_words`
    (or :func:`_numbers`)."""
    slow = out.slow
    line_piece = np.searchsorted(starts, nl_pos, side="right") - 1
    got = _row_tokens(a[:end], nl_pos)
    if got is not None:  # (every line 5 fields, single spaces: no separator to check, no line to find)
        tok_start, tok_len, tok_line, per_line = got
    else:
        tok_start, tok_len, tok_line, per_line = _tokens(a[:end], files, starts, nl_pos, slow)
    # lines of another field count, and too long fields, send their pieces' files to the per-line reader
    odd = np.flatnonzero((per_line != 5) & (per_line != 0))
    long = np.flatnonzero(tok_len > MAX_TOKEN)
    if odd.size or long.size:
        slow[files[np.unique(line_piece[np.concatenate((odd, tok_line[long]))])]] = True
    # the tokens of 5-field lines in pieces still on the fast path
    keep = ((per_line == 5) & ~slow[files][line_piece])[tok_line]
    if not keep.all():
        tok_start, tok_len, tok_line = tok_start[keep], tok_len[keep], tok_line[keep]
    if not tok_start.size:
        return 0
    got = _numbers_words(a, tok_start, tok_len, out=_scratch("values", tok_start.size, np.float64))
    values, ok, plain = (x.reshape(-1, 5) for x in (got or _numbers(a, tok_start, tok_len)))
    # a row: class 1..6 digits below top, coordinates within -tol..1 + tol (one row per 5 tokens)
    cls, box = values[:, 0], values[:, 1:]
    good = ok[:, 0] & plain[:, 0] & (cls < top) & (tok_len[::5] <= 6)
    good &= (ok[:, 1:] & (box >= -tol) & (box <= 1 + tol)).all(axis=1)
    rows_line = tok_line[::5]
    piece = line_piece[rows_line]
    if not good.all():
        slow[files[np.unique(piece[~good])]] = True
    # 1-based line of each row: the piece's first line + lines before it in the piece
    piece_first_nl = np.searchsorted(nl_pos, starts)
    line = first_line[piece] + rows_line - piece_first_nl[piece]
    return _write(out, at, files[piece], line, cls, box)


def _row_tokens(a: np.ndarray, nl_pos: np.ndarray):
    """(start, length, line, tokens per line) of the tokens of a batch ``a`` whose separators are, line
    after line, four spaces and a \\n with a byte other than a separator between each two (no tab, no
    \\r, no blank line, no empty field: every line 5 fields); None for any other batch. The arrays are
    this thread's scratch (for this batch)."""
    n = len(nl_pos)
    sep = np.flatnonzero(np.less_equal(a, 32, out=_scratch("mask", len(a), np.bool_)))
    if len(sep) != 5 * n or not n:
        return None
    if not (a[sep].reshape(n, 5) == _ROW_SEPARATORS).all():
        return None
    start = _scratch("tok.start", 5 * n, np.int64)
    start[0] = 0
    np.add(sep[:-1], 1, out=start[1:])
    sep -= start  # the lengths
    if sep.min() < 1:
        return None
    line = _scratch("tok.line", 5 * n, np.int64).reshape(n, 5)
    line[:] = np.arange(n)[:, None]
    return start, sep, line.ravel(), np.full(n, 5)


_ROW_SEPARATORS = np.array([32, 32, 32, 32, 10], dtype=np.uint8)


def _tokens(a: np.ndarray, files: np.ndarray, starts: np.ndarray, nl_pos: np.ndarray, slow: np.ndarray):
    """(start, length, line, tokens per line) of every token of a batch ``a`` (its last byte a \\n), from
    its separator mask; marks in ``slow`` the files with a separator the fast path does not take."""

    def leave(pos: np.ndarray) -> None:  # the pieces holding these bytes leave the fast path
        if pos.size:
            slow[files[np.unique(np.searchsorted(starts, pos, side="right") - 1)]] = True

    # separators: space, tab, \n, and \r before \n only (a file with any other byte <= 32 goes to the
    # per-line reader)
    sep = a <= 32
    n_ws = sum(np.count_nonzero(a == c) for c in _WS)
    if np.count_nonzero(sep) != n_ws:
        leave(np.flatnonzero(sep & ~np.isin(a, _WS)))
    cr = np.flatnonzero(a == 13)
    leave(cr[a[cr + 1] != 10])
    # tokens: a start where a separator is followed by another byte, an end at the next separator
    edges = np.flatnonzero(np.diff((~sep).view(np.int8), prepend=np.int8(0)))
    del sep
    tok_start, tok_len = edges[0::2], edges[1::2] - edges[0::2]
    tok_line = np.searchsorted(nl_pos, tok_start)  # index of the line (its \n) each token is on
    return tok_start, tok_len, tok_line, np.bincount(tok_line, minlength=len(nl_pos))


def _shape(a: np.ndarray, nl_pos: np.ndarray) -> tuple[int, int] | None:
    """(L, p) when the batch's first line is ``class x x x x`` with one space between fields and four
    coordinates of the same ``L <= 8`` bytes, ``digits[.digits]`` with the point at byte ``p`` of each
    (-1: no point). None otherwise."""
    if not nl_pos.size:
        return None
    line = a[: int(nl_pos[0])].tobytes()
    fields = line.removesuffix(b"\r").split(b" ")
    if len(fields) != 5:
        return None
    size, point = len(fields[1]), fields[1].find(b".")
    if not 1 <= size <= 8 or any(len(f) != size or f.find(b".") != point for f in fields[2:]):
        return None
    return size, point


# SWAR ("SIMD within a register") constants: a byte each
_ZEROS = np.uint64(0x3030303030303030)  # "00000000"
_TEN_UP = np.uint64(0x7676767676767676)  # + 0x76: bit 7 set in each byte >= 10 (from a byte < 0x80)
_HIGH_BITS = np.uint64(0x8080808080808080)


def _digit_flags(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``t`` (``y``'s shape), per word of ``y``: 0 when every byte is below 10 (a digit's value), else not.

    ``b + 0x76`` sets bit 7 of a byte ``b < 0x80`` exactly when ``b >= 10`` (and carries out of no byte
    below 0x8a), and ``b >= 0x80`` has it already: the lowest byte not below 10 sets its bit 7."""
    np.add(y, _TEN_UP, out=t)
    t |= y
    t &= _HIGH_BITS
    return t


def _all_digits(y: np.ndarray, t: np.ndarray) -> bool:
    """Whether every byte of the words ``y`` is below 10 (:func:`_digit_flags`; ``t``: scratch)."""
    return not _digit_flags(y, t).any()


def _digits_value(y: np.ndarray) -> None:
    """In place: each word of ``y``, eight bytes 0..9 (the first byte the most significant digit,
    little-endian), becomes the integer they spell: ``10 a + b`` for each pair of neighbouring bytes, then
    ``100 a + b`` for each pair of pairs, ``10**4 a + b`` for the two fours (multiply, shift, mask)."""
    for mul, shift, mask in _STEPS:
        y *= mul
        y >>= shift
        if mask is not None:
            y &= mask


_STEPS = (
    (np.uint64(10 * 256 + 1), np.uint64(8), np.uint64(0x00FF00FF00FF00FF)),
    (np.uint64(100 * 65536 + 1), np.uint64(16), np.uint64(0x0000FFFF0000FFFF)),
    (np.uint64(10000 * 2**32 + 1), np.uint64(32), None),
)


def _parse_uniform(
    a, end, nl_pos, shape, files, first_line, starts, top, tol, out: LabelRows, at
) -> int | None:
    """The rows of a batch whose every line has the first line's :func:`_shape` (L, p):
    ``class x x x x`` with single spaces, each ``x`` L bytes with the point at byte ``p``, written as
    :func:`_parse_array` writes them (it returns the number of rows); None, and nothing written, when a
    line has another shape (the batch is then read by :func:`_parse_general`).

    Every byte of a line is checked. The four ``x`` of a line that ends at ``e`` (its ``\\n``, or the
    ``\\r`` before it) start at ``e - 4 (L + 1) + 1 + j (L + 1)``, each read as one little-endian 64-bit
    word (the bytes past the field masked off); ``word ^ "0..0.0..0"`` (``.`` at ``p``) leaves each byte
    its digit's value and 0 for the point, and one add, or and mask find any byte that is not below 10
    (:func:`_all_digits`). The class is the bytes from the line's start to the first of those spaces (1..6
    of them, digits, read the same way), and the batch holds exactly four spaces a line: every byte not
    read as a field or line end is one of those spaces.

    Values: the point byte is dropped by moving the bytes before it one place up, which leaves the eight
    bytes ``0``, the L - 1 digits, ``8 - L`` zeros: :func:`_digits_value` makes them the integer
    ``m 10**(8 - L)`` (``m``: the integer of the digits). ``m 10**(8 - L) < 10**8`` and ``10**(7 - p)``
    are exact doubles and their quotient is ``m / 10**(L - 1 - p)``, so the one correctly rounded
    division equals ``float(token)`` (module docstring). Without a point: ``m 10**(8 - L) / 10**(8 - L)``.
    """
    size, point = shape
    width = size + 1
    n = len(nl_pos)
    start, e, k = (_scratch(name, n, np.int64) for name in ("start", "e", "k"))
    start[0] = 0
    np.add(nl_pos[:-1], 1, out=start[1:])  # each line's first byte
    np.subtract(nl_pos, 1, out=e)
    np.subtract(nl_pos, a[e] == 13, out=e)  # its end (a first line holds 5 fields: nl_pos[0] > 0)
    np.subtract(e, start, out=k)
    k -= 4 * width  # class bytes
    if k.min() < 1 or k.max() > 6:  # a short or blank line, or a class of 7+ bytes
        return None
    if np.count_nonzero(np.equal(a[:end], 32, out=_scratch("mask", end, np.bool_))) != 4 * n:
        return None
    # class: the word from its first byte, shifted up so that it ends with the class's last digit
    cls = np.ndarray((len(a) - 7,), dtype="<u8", buffer=a, strides=(1,))[start]
    cls ^= _ZEROS
    np.subtract(8, k, out=k)
    k <<= 3
    cls <<= k.view(np.uint64)
    if not _all_digits(cls, _scratch("t", n, np.uint64)):
        return None
    _digits_value(cls)
    # coordinates: (n, 4) words, one gather of a row's four
    words = np.ndarray((len(a) - 3 * width - 7, 4), dtype="<u8", buffer=a, strides=(1, width))
    e -= 4 * width - 1
    x = words[e]
    pattern = b"0" * size if point < 0 else b"0" * point + b"." + b"0" * (size - point - 1)
    x ^= np.uint64(int.from_bytes(pattern.ljust(8, b"0"), "little"))
    if size < 8:
        x &= np.uint64((1 << (8 * size)) - 1)
    t = _scratch("t4", 4 * n, np.uint64).reshape(n, 4)
    if not _all_digits(x, t):
        return None
    if point > 0:  # the bytes before the point one place up, over it: (y - low) + (low << 8)
        np.bitwise_and(x, np.uint64((1 << (8 * point)) - 1), out=t)
        t *= np.uint64(255)
        x += t
    _digits_value(x)
    # write: rows at.. of out
    rows = slice(at, at + n)
    box = np.divide(x, 10.0 ** (7 - point if point >= 0 else 8 - size), out=out.box[rows])
    out.cls[rows] = cls.view(np.int64)
    if len(files) == 1:
        piece = None
        out.file[rows] = files[0]
        np.add(np.arange(n, dtype=np.int32), first_line[0], out=out.line[rows], casting="unsafe")
    else:
        piece = np.searchsorted(starts, nl_pos, side="right") - 1
        out.file[rows] = files[piece]
        out.line[rows] = first_line[piece] + np.arange(n) - np.searchsorted(nl_pos, starts)[piece]
    bad = out.cls[rows] >= top
    if box.max() > 1 + tol or box.min() < -tol:
        bad |= ((box < -tol) | (box > 1 + tol)).any(axis=1)
    if bad.any():
        out.slow[files[np.unique(piece[bad]) if piece is not None else 0]] = True
    return n


_POINTS = np.uint64(0x2E2E2E2E2E2E2E2E)  # "........"
_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_ONES = np.uint64(0x0101010101010101)
_LOW_BYTES = np.array([(1 << (8 * j)) - 1 for j in range(9)], dtype=np.uint64)  # the low j bytes
_DIVISORS = 10.0 ** (15 - np.arange(16))  # 10**(15 - p)


def _numbers_words(
    a: np.ndarray, start: np.ndarray, length: np.ndarray, out: np.ndarray | None = None
) -> tuple[np.ndarray, ...] | None:
    """:func:`_numbers` read a word at a time: the same values, ok and plain, or None when a token of 8 or
    more bytes (after its sign) has no point among its first 8 (then :func:`_numbers` reads them).

    A token's bytes after its sign are two little-endian words, bytes 0..7 and 8..15 (masked to its
    length). Its first point ``p``: the lowest byte of ``word ^ "........"`` that is zero (bit 7 of
    ``~(((y & 0x7f..) + 0x7f..) | y | 0x7f..)`` is set exactly in the zero bytes; ``(z & -z) - 1`` has
    the ``8 p + 7`` bits below the lowest, 64 without one, counted by ``np.bitwise_count``), ``p`` = its
    length without one. ``word ^ "0..."``
    with the point byte cleared must hold only bytes below 10 (:func:`_all_digits`, a word each), which
    rules out a second point or any other byte; the bytes before the point go one place up
    (:func:`_parse_uniform`), and the two words' digits, ``0``, the digits, zeros, are the integer
    ``m 10**(16 - n)`` (``n`` bytes, ``m`` the integer of their digits; ``< 10**15``, exact), so
    ``m 10**(16 - n) / 10**(15 - p) = m / 10**(n - 1 - p)`` is one correctly rounded division: ``float``'s
    value, as :func:`_numbers` gives it. ``out``: where to write the values (else a new array)."""
    n = start.size
    first = a[start]
    signed = (first == 43) | (first == 45)
    begin, size, k = (_scratch(name, n, np.int64) for name in ("nw.begin", "nw.size", "nw.k"))
    np.add(start, signed, out=begin)
    np.subtract(length, signed, out=size)
    words = np.ndarray((len(a) - 7,), dtype="<u8", buffer=a, strides=(1,))
    x = words[begin]
    head, y, z = (_scratch(name, n, np.uint64) for name in ("nw.head", "nw.y", "nw.z"))
    np.take(_LOW_BYTES, np.minimum(size, 8, out=k), out=head, mode="clip")
    # the first point among the first 8 bytes (the bytes past the token are made never to be one)
    np.bitwise_xor(x, _POINTS, out=y)
    np.invert(head, out=z)
    z &= _ONES
    y |= z
    np.bitwise_and(y, _LOW7, out=z)
    z += _LOW7
    z |= y
    z |= _LOW7
    np.invert(z, out=z)
    has_point = z != 0
    z &= np.negative(z, out=y)
    z -= np.uint64(1)
    point = _scratch("nw.point", n, np.int64)
    np.minimum(np.bitwise_count(z) >> 3, size, out=point)
    if n and point.max() > 7:
        return None
    x ^= _ZEROS
    x &= head
    np.take(_LOW_BYTES, point, out=head, mode="clip")  # the bytes before the point
    np.take(_LOW_BYTES, np.add(point, 1, out=k), out=y, mode="clip")
    y ^= head
    np.invert(y, out=y)
    x &= y  # the point byte: 0
    ok = _digits_ok(x, y)
    np.bitwise_and(x, head, out=y)  # the bytes before the point one place up, over it
    y *= np.uint64(255)
    x += y
    _digits_value(x)
    values = np.multiply(x, 1e8, out=out)  # (exact: x < 10**7)
    np.subtract(size, 8, out=k)
    np.maximum(k, 0, out=k)
    if k.any():  # bytes 8..15
        begin += 8
        x = words[begin]
        x ^= _ZEROS
        x &= np.take(_LOW_BYTES, k, out=head, mode="clip")
        ok &= _digits_ok(x, y)
        _digits_value(x)
        values += x
    values /= np.take(_DIVISORS, point, out=_scratch("nw.div", n, np.float64), mode="clip")
    values[first == 45] *= -1
    ok &= size > has_point  # a digit at least
    return values, ok, ~has_point & ~signed


def _digits_ok(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per word of ``y``: whether every byte is below 10 (:func:`_digit_flags`; ``t``: scratch)."""
    return _digit_flags(y, t) == 0


def _numbers(a: np.ndarray, start: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per token of ``length`` <= MAX_TOKEN bytes at ``start``: its value, whether it is
    ``[+-]digits[.digits]`` (one point at most, anywhere; one digit at least), and whether it is digits
    alone (what a class index may be).

    The tokens' bytes are copied once into a (W, tokens) array, column j holding every token's byte j,
    and read a column at a time, ``m = 10 m + digit`` (contiguous vector steps, no per-byte gather). ``m``
    (below 10**15) and ``10**k`` (``k`` digits after the point) are exact doubles, so ``m / 10**k`` is
    ``float(token)``: one correctly rounded division."""
    width = int(length.max())
    cols = np.ascontiguousarray(sliding_window_view(a, width)[start].T)
    n = start.size
    signed = (cols[0] == 43) | (cols[0] == 45)
    ok = np.ones(n, dtype=bool)
    m = np.zeros(n)
    frac = np.zeros(n, dtype=np.int8)  # digits after the point
    digits = np.zeros(n, dtype=np.int8)
    point = np.zeros(n, dtype=bool)  # a point seen
    for j in range(width):
        b = cols[j]
        inside = length > j
        d = b - np.uint8(48)  # uint8: wraps past 9 for every byte that is not a digit
        is_digit = (d <= 9) & inside
        is_point = (b == 46) & inside
        ok &= is_digit | (is_point & ~point) | ~inside | (signed if j == 0 else False)
        frac += is_digit & point
        point |= is_point
        digits += is_digit
        m = np.where(is_digit, m * 10 + d, m)
    values = m / _POW10[frac]
    values[cols[0] == 45] *= -1
    return values, ok & (digits > 0), ~point & ~signed
