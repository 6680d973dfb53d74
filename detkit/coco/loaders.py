"""Loaders from COCO json, the course's text format, YOLO label folders and Pascal VOC XML into
one :class:`~detkit.coco.model.Dataset`: :func:`load_dataset` (format detected from the path) and
:func:`load_labels` (only what class counts need).

Every malformed input raises :class:`~detkit.errors.InputError` naming the file, the record (line
number, JSON path or file) and what is wrong; the CLI prints it as one line and exits 2. Suspicious but
loadable content (degenerate or out-of-image boxes, dangling ids, duplicates) is loaded as is, for
``detkit coco validate`` to report. The formats live in :mod:`detkit.coco.coco_json` and
:mod:`detkit.coco.label_files`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detkit.coco.coco_json import load_coco, load_coco_labels
from detkit.coco.label_files import IMAGE_EXTS, TEXT_EXAMPLE, load_text, load_voc, load_yolo
from detkit.coco.model import Dataset, Labels
from detkit.coco.readers import image_size
from detkit.errors import InputError

__all__ = [
    "FORMATS", "IMAGE_EXTS", "TEXT_EXAMPLE", "detect_format", "image_size", "load_coco", "load_coco_labels",
    "load_dataset", "load_labels", "load_text", "load_voc", "load_yolo",
]  # fmt: skip

FORMATS = ("coco", "text", "yolo", "voc")


def load_labels(path: str | Path, format: str | None = None) -> Labels | Dataset:
    """Image ids, each box's image and category, and the categories — the fast path for class counts.

    A COCO json is decoded without boxes, areas or file names (several times faster on large files);
    other formats are loaded in full. Both results have the columns :func:`class_table` reads.
    """
    p = Path(path)
    fmt = format or detect_format(p)
    if fmt == "coco" and p.is_file():
        return load_coco_labels(p)
    return load_dataset(p, format=fmt)


def detect_format(path: str | Path) -> str:
    """Guess the format from the path: .json -> coco, .txt -> text, .xml or Annotations/ -> voc, labels/ -> yolo."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, None, "no such file or folder")
    if p.is_file():
        suffix = p.suffix.lower()
        if suffix == ".json":
            return "coco"
        if suffix == ".xml":
            return "voc"
        return "text"
    if (p / "Annotations").is_dir() or next(p.glob("*.xml"), None) is not None:
        return "voc"
    if (p / "labels").is_dir() or next(p.rglob("*.txt"), None) is not None:
        return "yolo"
    jsons = sorted(p.glob("*.json")) + sorted(p.glob("annotations/instances_*.json"))
    if len(jsons) == 1:
        return "coco"
    raise InputError(p, None, "cannot tell the annotation format of this folder; pass --format")


def load_dataset(path: str | Path, format: str | None = None, **kwargs: Any) -> Dataset:
    """Load any supported annotation source into a :class:`Dataset`.

    Args:
        path: a COCO json, a course text file, a YOLO folder or a VOC folder/xml.
        format: ``coco``, ``text``, ``yolo`` or ``voc``; detected from the path when None.
        **kwargs: passed to the loader (``image_root`` for coco, ``names`` for yolo, ``on_error`` for
            text / yolo / voc: report bad records to it and skip them instead of raising).
    """
    p = Path(path)
    fmt = format or detect_format(p)
    if fmt not in FORMATS:
        raise InputError(p, None, f"unknown format '{fmt}' (choose from {', '.join(FORMATS)})")
    if not p.exists():
        raise InputError(p, None, "no such file or folder")
    if fmt == "coco":
        if p.is_dir():
            jsons = sorted(p.glob("*.json")) or sorted(p.glob("annotations/instances_*.json"))
            if len(jsons) != 1:
                raise InputError(p, None, "expected one COCO .json in this folder; pass the file itself")
            p = jsons[0]
        return load_coco(p, **kwargs)
    if fmt == "text":
        return load_text(p, **kwargs)
    if fmt == "yolo":
        return load_yolo(p, **kwargs)
    return load_voc(p, **kwargs)


