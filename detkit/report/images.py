"""Images as the report embeds them: plots downscaled to the page, and a section's many plots on one sheet.

A report is read on a screen about 1000 px wide, so an image wider than :data:`MAX_WIDTH` is scaled to it
(the file on disk stays as written). A section with more than :data:`SHEET_AFTER` plots (the anchor sweep
writes two per k) keeps its first plot whole and puts the others on one sheet, :data:`SHEET_COLUMNS` to a
row, each under its name: every plot is still there, at the size of a thumbnail that opens full width.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

MAX_WIDTH = 1000  # px: wider images are scaled to this
SHEET_AFTER = 4  # a section with more plots than this gets a sheet
SHEET_COLUMNS = 4  # the anchor sweep: two k (a scatter and an anchor plot each) to a row
CELL_WIDTH = 340  # px of one plot on a sheet
_LABEL_H = 22


def _open(data: bytes):
    from PIL import Image

    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def _png(im) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def fit(data: bytes, suffix: str, max_width: int = MAX_WIDTH) -> bytes:
    """``data`` scaled to ``max_width`` px when wider (PNG and JPEG; others, and what PIL cannot read, as
    they are); the smaller encoding of the two is kept."""
    if suffix not in (".png", ".jpg", ".jpeg"):
        return data
    try:
        im = _open(data)
    except Exception:  # noqa: BLE001 - an unreadable image is embedded as is; the browser says so
        return data
    if im.width <= max_width:
        return data
    from PIL import Image

    small = im.resize((max_width, round(im.height * max_width / im.width)), Image.LANCZOS)
    buf = io.BytesIO()
    if suffix == ".png":
        small.save(buf, format="PNG", optimize=True)
    else:
        small.convert("RGB").save(buf, format="JPEG", quality=88)
    out = buf.getvalue()
    return out if len(out) < len(data) else data


def sheet(
    items: Sequence[tuple[str, bytes]], columns: int = SHEET_COLUMNS, cell: int = CELL_WIDTH
) -> bytes | None:
    """One PNG of ``items`` (name, image bytes) in a grid, each scaled to ``cell`` px wide under its name;
    None when none can be read."""
    from PIL import Image, ImageDraw

    cells = []
    for name, data in items:
        try:
            im = _open(data).convert("RGB")
        except Exception:  # noqa: BLE001 - left off the sheet; the caller notes it
            continue
        h = round(im.height * cell / im.width)
        cells.append((name, im.resize((cell, h), Image.LANCZOS)))
    if not cells:
        return None
    rows = [cells[i : i + columns] for i in range(0, len(cells), columns)]
    heights = [max(im.height for _, im in r) + _LABEL_H for r in rows]
    canvas = Image.new("RGB", (cell * min(columns, len(cells)), sum(heights)), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for r, h in zip(rows, heights):
        for c, (name, im) in enumerate(r):
            draw.text((c * cell + 6, y + 4), name, fill=(40, 40, 40))
            canvas.paste(im, (c * cell, y + _LABEL_H))
        y += h
    return _png(canvas.quantize(colors=256, method=Image.Quantize.MEDIANCUT))
