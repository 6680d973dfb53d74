"""Shared readers and error plumbing for the annotation loaders.

Every loader reads files through :func:`read_bytes` / :func:`read_text` (one-line errors for unreadable
or non-UTF-8 files) and reports a bad record through :func:`skip_or_raise`: loaders raise it (exit 2),
``detkit coco validate`` passes ``on_error`` to collect it as a finding and skip the record.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from detkit.errors import InputError

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
