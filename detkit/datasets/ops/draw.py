"""Ground-truth boxes drawn on the images: ``detkit coco draw``.

Each class has one fixed colour (its position in category-id order, in a 20-colour palette), each box
its class name on a filled tag. Output: one JPEG per image at full resolution and a contact sheet, a
grid PNG of thumbnails with the boxes drawn at thumbnail scale (so thin boxes stay visible and the
edge pixels are the class colour exactly). With ``findings`` the images behind validate's box findings
come first — boxes past an edge, degenerate (w or h <= 0) and exact duplicates, found with
:mod:`detkit.datasets.checks.validate`'s own checks — and those boxes carry the finding in their tag. An image
file that cannot be found or read is drawn as a grey canvas of its declared size, and counted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detkit.datasets.checks.validate import duplicates, out_of_bounds
from detkit.datasets.formats.write import check_out, image_source
from detkit.datasets.model import Dataset
from detkit.datasets.ops.select import resolve_classes
from detkit.datasets.paths import input_folders
from detkit.errors import DetkitError
from detkit.io import atomic_path, staged_folder
from detkit.train.runs import record_run, write_summary

# ultralytics' detection palette: well separated, readable under white or black text
PALETTE = (
    "FF3838",
    "FF9D97",
    "FF701F",
    "FFB21D",
    "CFD231",
    "48F90A",
    "92CC17",
    "3DDB86",
    "1A9334",
    "00D4BB",
    "2C99A8",
    "00C2FF",
    "344593",
    "6473FF",
    "0018EC",
    "8438FF",
    "520085",
    "CB38FF",
    "FF95C8",
    "FF37C7",
)
TILE = 320  # contact-sheet cell, px
CAPTION = 16  # px of file name above each tile
MISSING_RGB = (128, 128, 128)
SHEET_RGB = (224, 224, 224)  # around and between the tiles, so white images keep their edges


def palette_rgb(k: int) -> tuple[int, int, int]:
    """The colour of class k (the k-th category in id order): palette entry k mod 20, RGB. Every picture
    detkit draws (``coco draw``, ``yolo predict``, galleries) colours a class with it."""
    h = PALETTE[k % len(PALETTE)]
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def class_colours(ds: Dataset) -> dict[int, tuple[int, int, int]]:
    """Category id -> RGB: the k-th category in id order takes palette colour k mod 20."""
    order = np.argsort(ds.cat_id, kind="stable")
    return {int(ds.cat_id[k]): palette_rgb(i) for i, k in enumerate(order)}


def draw_detection(img: np.ndarray, xywh: list[float], label: str, k: int) -> None:
    """One box with a filled label tag on a BGR (OpenCV) image, in place, in class k's colour
    (:func:`palette_rgb`); the tag sits above the box, or inside it when the box touches the top."""
    import cv2

    colour = palette_rgb(k)[::-1]  # BGR
    x, y, w, h = (round(v) for v in xywh)
    thick = max(1, round(max(img.shape[:2]) / 400))
    cv2.rectangle(img, (x, y), (x + w, y + h), colour, thick, cv2.LINE_AA)
    scale = max(0.35, max(img.shape[:2]) / 1200)
    (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    ty = y - 2 if y - th - base - 2 >= 0 else y + th + base + 2
    cv2.rectangle(img, (x, ty - th - base), (x + tw + 2, ty + 1), colour, -1)
    text = _text_rgb(palette_rgb(k))[::-1]
    cv2.putText(img, label, (x + 1, ty - base + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, text, 1, cv2.LINE_AA)


def box_findings(ds: Dataset) -> dict[int, list[str]]:
    """Annotation row -> the validate codes it triggers (out of bounds, degenerate, duplicate)."""

    idx = ds.image_index()
    past, outside = out_of_bounds(ds, idx)
    w, h = ds.bbox[:, 2], ds.bbox[:, 3]
    finite = np.isfinite(ds.bbox).all(axis=1)
    with np.errstate(invalid="ignore"):
        degenerate = finite & ((w <= 0) | (h <= 0))
    key = np.column_stack([ds.ann_image_id.astype(np.float64), ds.category_id.astype(np.float64), ds.bbox])
    dup = np.flatnonzero(finite)[duplicates(key[finite])]
    found: dict[int, list[str]] = {}
    codes = {
        "bbox.outside_image": np.flatnonzero(outside),
        "bbox.out_of_bounds": np.flatnonzero(past & ~outside),
        "bbox.non_positive_size": np.flatnonzero(degenerate),
        "annotation.duplicate_box": dup,
    }
    for code, rows in codes.items():
        for r in rows.tolist():
            found.setdefault(r, []).append(code)
    return found


def pick_images(
    ds: Dataset,
    n: int,
    seed: int = 0,
    names: list[str] | None = None,
    class_rows: np.ndarray | None = None,
    flagged: dict[int, list[str]] | None = None,
) -> np.ndarray:
    """Image rows to draw: the ``names`` given (file name, base name or stem), else images behind the
    ``flagged`` boxes first (most findings first), then a seeded sample (of images with the classes)."""
    if names:
        wanted = {str(x).strip() for x in names if str(x).strip()}
        rows = [
            i for i, f in enumerate(ds.file_name) if {str(f), Path(str(f)).name, Path(str(f)).stem} & wanted
        ]
        return np.asarray(rows, dtype=np.int64)
    idx = ds.image_index()
    first: list[int] = []
    if flagged:
        per_image = np.bincount(idx[[r for r in flagged if idx[r] >= 0]], minlength=ds.num_images)
        first = [int(i) for i in np.argsort(-per_image, kind="stable") if per_image[i] > 0][:n]
    pool = np.arange(ds.num_images)
    if class_rows is not None:
        pool = np.unique(idx[(idx >= 0) & np.isin(ds.category_index(), class_rows)])
    pool = np.setdiff1d(pool, first)
    k = max(0, min(n - len(first), pool.size))
    rest = (
        np.sort(np.random.default_rng(seed).choice(pool, size=k, replace=False))
        if k
        else np.zeros(0, np.int64)
    )
    return np.concatenate([np.asarray(first, dtype=np.int64), rest.astype(np.int64)])


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _text_rgb(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return (0, 0, 0) if 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 150 else (255, 255, 255)


def draw_boxes(
    im,
    boxes: np.ndarray,
    tags: list[str],
    colours: list[tuple[int, int, int]],
    scale: float = 1.0,
    offset: tuple[int, int] = (0, 0),
    width: int = 2,
    font_size: int = 12,
) -> None:
    """Draw x, y, w, h pixel ``boxes`` (scaled, then shifted) with their tags onto the PIL image ``im``."""
    from PIL import ImageDraw

    d, font = ImageDraw.Draw(im), _font(font_size)
    for (x, y, w, h), tag, rgb in zip(boxes.tolist(), tags, colours):
        if not all(map(math.isfinite, (x, y, w, h))):
            continue
        x0, y0 = offset[0] + x * scale, offset[1] + y * scale
        x1, y1 = x0 + max(w, 0) * scale, y0 + max(h, 0) * scale
        if w <= 0 or h <= 0:  # degenerate: a cross where it sits
            r = 3 * width
            d.line([(x0 - r, y0 - r), (x0 + r, y0 + r)], fill=rgb, width=width)
            d.line([(x0 - r, y0 + r), (x0 + r, y0 - r)], fill=rgb, width=width)
        else:
            d.rectangle([round(x0), round(y0), round(x1) - 1, round(y1) - 1], outline=rgb, width=width)
        left, top, right, bottom = d.textbbox((0, 0), tag, font=font)
        tw, th = right - left + 4, bottom - top + 4
        tx = max(0, min(x0, im.width - tw))  # the tag stays on the image even when the box does not
        ty = y0 - th if y0 - th >= 0 else min(max(y0, 0) + width, im.height - th)
        d.rectangle([tx, ty, tx + tw, ty + th], fill=rgb)
        d.text((tx + 2 - left, ty + 2 - top), tag, fill=_text_rgb(rgb), font=font)


def _open(path: Path | None, size: tuple[int, int]):
    """The image as RGB, or a grey canvas of the declared size (and False) when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    if path is not None:
        try:
            with Image.open(path) as im:
                return im.convert("RGB"), True
        except (OSError, UnidentifiedImageError, ValueError):
            pass
    return Image.new("RGB", (max(1, int(size[0])), max(1, int(size[1]))), MISSING_RGB), False


@dataclass
class Drawn:
    """One drawn image: where it is in the output and on the contact sheet."""

    row: int
    file_name: str
    jpeg: str
    boxes: int
    findings: list[str]
    found: bool
    tile: tuple[int, int, float]  # x, y of the image's top-left on the sheet, and its scale

    def as_dict(self) -> dict[str, Any]:
        return {
            "file_name": self.file_name,
            "jpeg": self.jpeg,
            "boxes": self.boxes,
            "findings": self.findings,
            "found": self.found,
            "tile": list(self.tile),
        }


def draw_images(
    ds: Dataset,
    rows: np.ndarray,
    out: Path,
    class_rows: np.ndarray | None = None,
    flagged: dict[int, list[str]] | None = None,
    cols: int | None = None,
    overlay: dict[int, tuple[np.ndarray, list[str], list[tuple[int, int, int]]]] | None = None,
) -> list[Drawn]:
    """Write ``out/images/NNN_<name>.jpg`` per image and ``out/contact_sheet.png``; return what was drawn.

    Args:
        ds: the dataset (``ds.image_root`` is where the image files are).
        rows: image rows, in the order to draw them.
        out: a folder (created).
        class_rows: only boxes of these category rows are drawn (None: all).
        flagged: annotation row -> finding codes, shown in the box tag.
        cols: contact-sheet columns (default: a near-square grid).
        overlay: image row -> (boxes, tags, colours) drawn instead of its annotations (``coco eval
            --draw``: ground truth and detections coloured by outcome).
    """
    from PIL import Image

    flagged = flagged or {}
    colour = class_colours(ds)
    names = ds.category_names()
    idx, cat = ds.image_index(), ds.category_index()
    order = np.argsort(idx, kind="stable")
    starts = np.searchsorted(idx[order], np.arange(ds.num_images + 1))
    root = Path(ds.image_root) if ds.image_root else None
    cols = cols or max(1, math.ceil(math.sqrt(len(rows))))
    n_rows = max(1, math.ceil(len(rows) / cols))
    sheet = Image.new("RGB", (cols * TILE, n_rows * (TILE + CAPTION)), SHEET_RGB)
    (out / "images").mkdir(parents=True, exist_ok=True)
    drawn = []
    for k, i in enumerate(rows.tolist()):
        a = order[starts[i] : starts[i + 1]]
        if class_rows is not None:
            a = a[np.isin(cat[a], class_rows)]
        fname = str(ds.file_name[i])
        im, found = _open(image_source(root, fname), (ds.width[i], ds.height[i]))
        tags = [
            names.get(int(ds.category_id[r]), f"id {int(ds.category_id[r])}")
            + "".join(f" !{c.split('.')[-1]}" for c in flagged.get(int(r), []))
            for r in a.tolist()
        ]
        rgbs = [colour.get(int(ds.category_id[r]), (255, 0, 0)) for r in a.tolist()]
        boxes = ds.bbox[a]
        if overlay is not None and i in overlay:
            boxes, tags, rgbs = overlay[i]
        big = im.copy()
        lw = max(2, round(min(big.size) / 250))
        draw_boxes(big, boxes, tags, rgbs, width=lw, font_size=max(12, round(min(big.size) / 40)))
        jpeg = f"images/{k:03d}_{re.sub(r'[^A-Za-z0-9._-]+', '_', Path(fname).stem)[:80] or 'image'}.jpg"
        big.save(out / jpeg, quality=92)
        scale = min((TILE - 2) / im.width, (TILE - 2) / im.height)
        thumb = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BILINEAR)
        tile = Image.new("RGB", (TILE - 2, TILE - 2), SHEET_RGB)  # boxes past an edge stay in their cell
        ox, oy = (TILE - 2 - thumb.width) // 2, (TILE - 2 - thumb.height) // 2
        tile.paste(thumb, (ox, oy))
        draw_boxes(tile, boxes, tags, rgbs, scale=scale, offset=(ox, oy), width=2, font_size=10)
        cx, cy = (k % cols) * TILE, (k // cols) * (TILE + CAPTION)
        sheet.paste(tile, (cx + 1, cy + CAPTION + 1))
        _caption(sheet, cx, cy, fname if found else f"{fname} (not found)")
        ox, oy = cx + 1 + ox, cy + CAPTION + 1 + oy
        codes = sorted({c for r in a.tolist() for c in flagged.get(int(r), [])})
        drawn.append(Drawn(i, fname, jpeg, len(boxes), codes, found, (ox, oy, scale)))

    with atomic_path(out / "contact_sheet.png") as tmp:
        sheet.save(tmp, format="PNG")
    return drawn


def _caption(sheet, x: int, y: int, text: str) -> None:
    from PIL import ImageDraw

    d, font = ImageDraw.Draw(sheet), _font(11)
    while text and d.textlength(text, font=font) > TILE - 6:
        text = "..." + text[4:]
    d.text((x + 3, y + 2), text, fill=(0, 0, 0), font=font)


def draw_run(
    src,
    out: Path,
    n: int = 16,
    names: list[str] | None = None,
    classes: list[str] | None = None,
    findings: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Pick, draw and write a run folder ``out`` (new or empty) that ``detkit report`` shows.

    Args:
        src: the loaded :class:`~detkit.datasets.ops.source.Source`.
        out: the output folder: contact_sheet.png, images/*.jpg, summary.json, run.json.
        n: images to draw (when ``names`` is not given).
        names: draw these images (file name, base name or stem).
        classes: draw only these classes (names or ids), on images that have them.
        findings: the images behind validate's box findings first.
        seed: seeds the sample.
    """

    ds = src.ds
    check_out(out, [src.path, *input_folders(ds, src.path)], single_json=False)
    class_rows = resolve_classes(ds, classes) if classes else None
    flagged = box_findings(ds) if findings else {}
    rows = pick_images(ds, n, seed, names, class_rows, flagged)
    if rows.size == 0:
        what = "none of the images named (names) is" if names else "no image with those classes is"
        raise DetkitError(
            f"{src.path}: nothing to draw: {what} in the dataset",
            flags={"named (names)": "named in --images"},
        )
    with staged_folder(out) as tmp:
        drawn = draw_images(ds, rows, tmp, class_rows, flagged)
        table = [d.as_dict() for d in drawn]
        counts = {
            "drawn": len(drawn),
            "boxes": sum(d.boxes for d in drawn),
            "missing_images": sum(not d.found for d in drawn),
            "with_findings": sum(bool(d.findings) for d in drawn),
        }
        config = {
            "path": str(src.path),
            "format": ds.format,
            "n": n,
            "images": names,
            "classes": classes,
            "findings": findings,
            "seed": seed,
            "image_root": ds.image_root,
        }
        record_run(tmp, config=config, seed=seed, inputs=[src.path])
        write_summary(
            tmp,
            "coco.draw",
            f"Boxes drawn on {src.path.name}",
            metrics=counts,
            plots={"contact_sheet": "contact_sheet.png"},
            galleries={"images": [d.jpeg for d in drawn]},
            tables={"images": [{k: v for k, v in r.items() if k != "tile"} for r in table]},
        )
    return {
        **counts,
        "contact_sheet": str(out / "contact_sheet.png"),
        "images": table,
        "findings_by_code": _by_code(flagged) if findings else None,
    }


def _by_code(flagged: dict[int, list[str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for codes in flagged.values():
        for c in codes:
            counts[c] = counts.get(c, 0) + 1
    return counts
