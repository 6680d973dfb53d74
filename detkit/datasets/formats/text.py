"""The course's text format -> :class:`~detkit.datasets.model.Dataset`: one box per line,
``id: 0, height: 330, width: 1093, bbox:[69, 464, 312, 175],``.

A malformed line raises :class:`~detkit.errors.InputError` naming the file, the line and what is wrong — or,
with ``on_error`` (``detkit coco validate``), is reported to it and skipped. Suspicious but loadable content
(degenerate or out-of-image boxes) is loaded as is, for ``validate``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from detkit.datasets.formats.readers import OnError, problem, read_text, skip_or_raise
from detkit.datasets.model import COCO80_IDS, COCO80_NAMES, Dataset
from detkit.errors import InputError

_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|NaN|inf|-inf)"
_TEXT_LINE = re.compile(
    rf"^\s*id\s*:\s*{_NUM}\s*,\s*height\s*:\s*{_NUM}\s*,\s*width\s*:\s*{_NUM}\s*,\s*"
    rf"bbox\s*:\s*\[\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*\]\s*,?\s*$"
)
TEXT_EXAMPLE = "id: 0, height: 330, width: 1093, bbox:[69, 464, 312, 175],"


def load_text(path: str | Path, on_error: OnError | None = None) -> Dataset:
    """Load the course's ``id: C, height: H, width: W, bbox:[x, y, w, h],`` file.

    Each line is one box on its own image (image id = line number); ``id`` indexes COCO's 80 class
    names, mapped to COCO's official category ids so a conversion matches real COCO files.

    Args:
        path: the text file.
        on_error: when given (``validate``), bad lines are reported to it and skipped instead of raised.
    """
    path = Path(path)
    text = read_text(path)
    rows: list[tuple[float, ...]] = []
    lines: list[int] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _TEXT_LINE.match(line)
        if m is None:
            shown = line.strip()
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            skip_or_raise(
                on_error,
                problem(
                    path, f"line {lineno}", f"expected '{TEXT_EXAMPLE}', got '{shown}'", "record.unparsable"
                ),
            )
            continue
        vals = tuple(float(v) for v in m.groups())
        cls = vals[0]
        if not cls.is_integer() or not 0 <= cls < len(COCO80_NAMES):
            skip_or_raise(
                on_error,
                problem(
                    path,
                    f"line {lineno}",
                    f"class id {m.group(1)} is not an integer in 0..79",
                    "record.wrong_type",
                ),
            )
            continue
        if not (np.isfinite(vals[1]) and np.isfinite(vals[2]) and vals[1] > 0 and vals[2] > 0):
            code = "image.bad_size" if np.isfinite(vals[1]) and np.isfinite(vals[2]) else "value.non_finite"
            skip_or_raise(
                on_error,
                problem(
                    path, f"line {lineno}", f"image size {m.group(3)}x{m.group(2)} must be positive", code
                ),
            )
            continue
        rows.append(vals)
        lines.append(lineno)
    if not rows and (on_error is None or not text.strip()):
        raise InputError(path, None, "no annotation lines found" if text.strip() else "file is empty")
    arr = np.array(rows, dtype=np.float64).reshape(len(rows), 7)
    n = len(arr)
    ids = np.arange(1, n + 1, dtype=np.int64)
    coco_ids = np.asarray(COCO80_IDS, dtype=np.int64)
    bbox = arr[:, 3:7].copy()
    return Dataset(
        image_id=ids.copy(),
        file_name=np.array([f"line{ln:06d}" for ln in lines], dtype=object),
        width=arr[:, 2].copy(),
        height=arr[:, 1].copy(),
        ann_id=ids.copy(),
        ann_image_id=ids.copy(),
        category_id=coco_ids[arr[:, 0].astype(np.int64)],
        bbox=bbox,
        area=bbox[:, 2] * bbox[:, 3],
        iscrowd=np.zeros(n, dtype=np.int64),
        cat_id=coco_ids.copy(),
        cat_name=np.array(COCO80_NAMES, dtype=object),
        source=str(path),
        format="text",
        ann_record=np.array([f"line {ln}" for ln in lines], dtype=object),
    )
