"""Shared readers and error plumbing for the annotation loaders.

Every loader reads files through :func:`read_bytes` / :func:`read_text` (one-line errors for unreadable
or non-UTF-8 files) and reports a bad record through :func:`skip_or_raise`: loaders raise it (exit 2),
``detkit coco validate`` passes ``on_error`` to collect it as a finding and skip the record.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from detkit.errors import InputError

NEWLINE = b"\n"
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


def read_bytes(path: Path) -> bytes:
    """The file's bytes; a folder or an unreadable file is an InputError."""
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise InputError(path, None, "is a folder, expected a file") from None
    except OSError as exc:
        raise InputError(path, None, f"cannot read ({exc.strerror or exc})") from None


def read_text(path: Path) -> str:
    """The file as UTF-8 text (a BOM is dropped); other encodings are an InputError naming the line."""
    data = read_bytes(path)
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
    from detkit.datasets.model import Dataset, image_columns

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
