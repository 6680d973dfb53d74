"""Shared readers and error plumbing for the annotation loaders.

Every loader reads files through :func:`read_bytes` / :func:`read_text` (one-line errors for unreadable
or non-UTF-8 files) and reports a bad record through :func:`skip_or_raise`: loaders raise it (exit 2),
``detkit coco validate`` passes ``on_error`` to collect it as a finding and skip the record.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Callable, Iterator
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np

from detkit.datasets.model import Dataset, image_columns
from detkit.errors import InputError

NEWLINE = b"\n"
_NAME = attrgetter("name")
OnError = Callable[[str, InputError], None]


def problem(path: Path, where: str | None, what: str, code: str) -> InputError:
    """An InputError tagged with the validate finding code it becomes when reported instead of raised."""
    return InputError(path, where, what, code=code)


def skip_or_raise(on_error: OnError | None, err: InputError) -> None:
    """Raise ``err`` — or, when validating (``on_error`` given), report it so the record is skipped."""
    if on_error is None:
        raise err
    on_error(err.code or "record.unparsable", err)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header only (PIL opens lazily, no decode)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except Image.DecompressionBombError as exc:  # a header claiming e.g. 60000x60000 pixels
        raise InputError(
            path, None, f"image header claims too many pixels to decode ({exc.args[0].split(' exceeds')[0]})"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(path, None, f"cannot read image header ({exc.__class__.__name__})") from None


def check_image_sizes(path: Path, width: np.ndarray, height: np.ndarray, where) -> None:
    """Raise for the first image whose size is not positive and finite (``where(i)`` names the record)."""
    bad = np.flatnonzero(~(np.isfinite(width) & np.isfinite(height) & (width > 0) & (height > 0)))
    if bad.size:
        i = int(bad[0])
        raise InputError(path, where(i), f"image size {width[i]}x{height[i]} must be positive and finite")


# pipes the user opened for this process (``cmd < x``, ``<(cmd)``): read; a named FIFO on disk is not
_OPEN_PIPES = ("/dev/stdin", "/dev/fd/", "/proc/self/fd/")
PIPE_MAX_BYTES = 1 << 31  # a pipe has no size to check first: this much is read at most


def check_file(path: Path, max_bytes: int | None = None, what: str = "") -> int:
    """The size of the regular file ``path`` (-1 for a pipe this process was given, 0 for /dev/null),
    checked before anything is opened: a folder, a named pipe (FIFO: opening it waits for a writer), a
    device (``/dev/zero`` never ends), a socket, or a file over ``max_bytes`` is an InputError.

    Args:
        max_bytes: the most a file of this kind may hold (None: no limit).
        what: the kind of file, for the size message (``a data yaml``).
    """
    try:
        st = path.stat()
    except OSError as exc:
        raise InputError(path, None, f"cannot read ({exc.strerror or exc})") from None
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        raise InputError(path, None, "is a folder, expected a file")
    if stat.S_ISREG(mode):
        if max_bytes is not None and st.st_size > max_bytes:
            raise InputError(
                path,
                None,
                f"{st.st_size:,} bytes: too large for {what or 'this file'} (at most {max_bytes:,})",
            )
        return st.st_size
    if stat.S_ISFIFO(mode) and str(path).startswith(_OPEN_PIPES):
        return -1
    if stat.S_ISCHR(mode) and os.path.realpath(path) == os.devnull:
        return 0
    kind = (
        "a named pipe (FIFO)"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "not a regular file"
    )
    raise InputError(path, None, f"is {kind}, expected a regular file")


def read_bytes(path: Path, max_bytes: int | None = None, what: str = "") -> bytes:
    """The file's bytes, after :func:`check_file` (folders, FIFOs, devices and files over ``max_bytes`` are
    an InputError); an unreadable file is an InputError."""
    size = check_file(path, max_bytes, what)
    try:
        if size >= 0:
            return path.read_bytes()
        limit = PIPE_MAX_BYTES if max_bytes is None else max_bytes
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except IsADirectoryError:
        raise InputError(path, None, "is a folder, expected a file") from None
    except OSError as exc:
        raise InputError(path, None, f"cannot read ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise InputError(
            path, None, f"more than {limit:,} bytes from a pipe: too large for {what or 'an input'}"
        )
    return data


def read_text(path: Path, max_bytes: int | None = None, what: str = "") -> str:
    """The file as UTF-8 text (a BOM is dropped); other encodings are an InputError naming the line."""
    return decode_text(path, read_bytes(path, max_bytes, what))


def decode_text(path: Path, data: bytes) -> str:
    """``data`` (the bytes of ``path``) as UTF-8 text, a BOM dropped; else an InputError naming the line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            path, f"line {line}", f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def named_boxes_dataset(img_rows, ann_rows, names, records, classes=(), **kwargs):
    """A :class:`~detkit.datasets.model.Dataset` from per-image rows and named boxes (VOC and the
    annotation-tool readers): categories are the names in sorted order with ids 1..C.

    Args:
        img_rows: (id, file_name, width, height) per image.
        ann_rows: (image_id, x, y, w, h) per box, pixels from the top-left corner.
        names: the class name of each box.
        records: where each box came from (``a.xml <object> #2``), for messages.
        classes: names the source declares, in its order (kept even without boxes); the other names
            follow in sorted order.
        **kwargs: the other :class:`Dataset` fields (source, format, image_root, skipped...).
    """

    cats = list(dict.fromkeys(classes))
    cats += sorted(set(names) - set(cats))
    cat_of = {n: i + 1 for i, n in enumerate(cats)}
    n = len(ann_rows)
    arr = np.array(ann_rows, dtype=np.float64).reshape(n, 5)
    bbox = arr[:, 1:5].copy()
    return Dataset(
        **image_columns(img_rows),
        ann_id=np.arange(1, n + 1, dtype=np.int64),
        ann_image_id=arr[:, 0].astype(np.int64),
        category_id=np.array([cat_of[nm] for nm in names], dtype=np.int64),
        bbox=bbox,
        area=bbox[:, 2] * bbox[:, 3],
        iscrowd=np.zeros(n, dtype=np.int64),
        cat_id=np.arange(1, len(cats) + 1, dtype=np.int64),
        cat_name=np.array(cats, dtype=object),
        ann_record=np.array(records, dtype=object),
        **kwargs,
    )


def points_box(points) -> tuple[float, float, float, float]:
    """The bounding box (x, y, w, h) of a polygon's (x, y) points."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def read_json(path: Path) -> Any:
    """The decoded JSON document of ``path``; malformed JSON is an InputError naming the line."""
    import msgspec

    data = read_bytes(path)
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        m = re.search(r"\(byte (\d+)\)", str(exc))
        where = f"line {data[: int(m.group(1))].count(NEWLINE) + 1}" if m else None
        raise problem(
            path, where, f"malformed JSON ({str(exc).split(' (byte')[0]})", "record.unparsable"
        ) from None


def number(path: Path, where: str, value: Any, name: str) -> float:
    """``value`` as a finite float; a missing, non-numeric or non-finite value is an InputError."""
    if value is None:
        raise problem(path, where, f"missing {name}", "record.missing_field")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise problem(path, where, f"{name} is not a number: {str(value)[:30]!r}", "record.wrong_type")
    try:
        v = float(value)
    except ValueError:
        raise problem(path, where, f"{name} is not a number: {value[:30]!r}", "record.wrong_type") from None
    if not math.isfinite(v):
        raise problem(path, where, f"{name} is {value}", "value.non_finite")
    return v


def shape_notes(report, path: Path, polygons: int, other: dict[str, int], what: str = "polygon") -> None:
    """The per-file notes of the annotation-tool readers: polygons read as their boxes (kept), and the
    shapes that are no box (points, lines, masks...) skipped, counted by kind."""
    if polygons:
        report(
            problem(path, None, f"{polygons} {what}(s) read as their bounding boxes", "shape.polygon"),
            kept=True,
        )
    if other:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(other.items()))
        report(
            problem(
                path, None, f"skipped shapes that are not boxes or polygons ({kinds})", "shape.unsupported"
            )
        )


# ---- folders --------------------------------------------------------------------------------------------
def suffix(name: str) -> str:
    """pathlib's ``suffix`` of a file name."""
    i = name.rfind(".")
    return name[i:] if 0 < i < len(name) - 1 else ""


def walk(
    folder: Path,
    keep: Callable[[os.DirEntry], bool],
    entered: list[tuple[str, os.stat_result | None]] | None = None,
) -> list[str]:
    """Paths (as str) of the entries below ``folder`` that ``keep`` accepts, in ``sorted(Path)`` order, as
    ``folder.rglob('*')`` finds them: symlinked folders are listed, not entered; a folder that cannot be
    read (or vanished) is skipped. Depth first with each folder's names sorted: that is the order of the
    paths' parts (``a``, ``a/b``, ``a-c``). One ``scandir`` per folder and, per entry, ``keep`` and the
    entry's type (from the listing, no ``stat`` where the file system gives it).

    Args:
        entered: when given, gets (path, ``os.stat`` taken just before it was listed, None when it could
            not be) of every folder listed, ``folder`` first.
    """
    out: list[str] = []
    stack = [_sorted_entries(str(folder), entered)]  # per open folder: its entries still to visit
    while stack:
        for e in stack[-1]:
            try:
                kept, sub = keep(e), e.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if kept:
                out.append(e.path)
            if sub:
                stack.append(_sorted_entries(e.path, entered))  # its entries come before the next sibling
                break
        else:
            stack.pop()
    return out


def _sorted_entries(path: str, entered: list | None = None) -> Iterator[os.DirEntry]:
    if entered is not None:
        try:
            entered.append((path, os.stat(path)))
        except OSError:
            entered.append((path, None))
    try:
        with os.scandir(path) as it:
            return iter(sorted(it, key=_NAME))
    except OSError:
        return iter(())


# ---- YAML, bounded ---------------------------------------------------------------------------------------
YAML_MAX_BYTES = 4 << 20  # a data.yaml is a few hundred bytes; a class list of 100,000 names ~2 MB
YAML_MAX_NODES = 1_000_000  # values after alias expansion: 9 levels of 9 aliases are 9**9 = 387M


def load_yaml(path: Path, max_bytes: int = YAML_MAX_BYTES, max_nodes: int = YAML_MAX_NODES) -> Any:
    """The YAML document in ``path``, read with PyYAML's safe loader (no tags that run code) and bounded:
    a file over ``max_bytes`` (or a folder, FIFO, device: :func:`read_bytes`) is refused before it is read,
    and a document whose values, aliases expanded, number more than ``max_nodes`` (an alias bomb, which
    ``str()`` or a walk would expand for hours; a self-referencing alias) is refused after it is parsed —
    aliases are shared objects until something walks them, so the count below stops at the budget.
    An unparsable document is an InputError naming the line.
    """
    import yaml

    text = read_text(path, max_bytes, "a YAML file")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        doc = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        raise InputError(
            path, where, f"not valid YAML ({getattr(exc, 'problem', None) or exc.__class__.__name__})"
        ) from None
    except RecursionError:
        raise InputError(path, None, "not valid YAML (nested too deeply)") from None
    if _yaml_nodes(doc, max_nodes) > max_nodes:
        raise InputError(
            path, None, f"more than {max_nodes:,} values once its aliases are expanded (an alias bomb?)"
        )
    return doc


def _yaml_nodes(doc: Any, budget: int) -> int:
    """The number of values in ``doc`` with every shared (aliased) value counted each time it is reached,
    counting stopped just past ``budget``: an explicit stack, so neither depth nor cycles can hang it."""
    n, stack = 0, [doc]
    while stack and n <= budget:
        v = stack.pop()
        n += 1
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple, set)):
            stack.extend(v)
    return n


# ---- JPEG size from the header bytes ---------------------------------------------------------------------
_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))
_PLAIN = frozenset((0xC4, 0xCC, 0xDD, 0xFE, *range(0xE0, 0xF0)))  # DHT, DAC, DRI, COM, APP0..15


def jpeg_size(head: bytes, max_pixels: int) -> tuple[int, int] | None:
    """(width, height) of a JPEG from its first bytes, or None whenever the header is anything but the
    common shape — the caller then asks PIL, so a size given here is PIL's ``Image.open(...).size``.

    Walked as PIL walks it, up to the start of scan (SOS): SOI, then segments ``FF m len payload`` with
    ``m`` a frame header (SOF, 8-bit, 1 / 3 / 4 components, PIL's condition), DQT (each table whole, PIL's
    check), DHT, DAC, DRI, COM or APPn. None for: fill bytes or other markers, a segment past ``head``, a
    short JFIF / Adobe / ICC segment (where PIL's handlers fail), Photoshop or MPF segments (PIL parses
    more of them), no frame header, a zero side or more than ``max_pixels`` pixels (PIL's bomb check).
    """
    if head[:3] != b"\xff\xd8\xff":
        return None
    pos, n, size = 2, len(head), None
    while True:
        if pos + 4 > n or head[pos] != 0xFF:
            return None
        m = head[pos + 1]
        if m == 0xDA:
            break
        seg = (head[pos + 2] << 8) | head[pos + 3]
        if seg < 2 or pos + 2 + seg > n:
            return None
        s = head[pos + 4 : pos + 2 + seg]
        if m in _SOF:
            if len(s) < 6 or s[0] != 8 or s[5] not in (1, 3, 4):
                return None
            size = ((s[3] << 8) | s[4], (s[1] << 8) | s[2])
        elif m == 0xDB:
            while s:
                q = 1 + (1 if s[0] // 16 == 0 else 2) * 64
                if len(s) < q:
                    return None
                s = s[q:]
        elif m not in _PLAIN:
            return None
        elif (
            (m == 0xE0 and s.startswith(b"JFIF") and len(s) < 12)
            or (m == 0xEE and s.startswith(b"Adobe") and len(s) < 12)
            or (m == 0xE2 and (s.startswith(b"MPF\0") or (s.startswith(b"ICC_PROFILE\0") and len(s) < 14)))
            or (m == 0xED and s.startswith(b"Photoshop 3.0\0"))
        ):
            return None
        pos += 2 + seg
    if size is None or size[0] == 0 or size[1] == 0 or size[0] * size[1] > max_pixels:
        return None
    return size
