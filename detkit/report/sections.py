"""Turn summary.json documents into renderer-neutral report sections.

Everything is generic: ``metrics`` become metric cards, ``tables`` tables, ``plots`` figures, ``galleries``
image grids, ``curves`` training-curve figures, and any kind-specific key is shown by its shape (scalar -> a
detail line, list of row dicts -> a table, dict of scalars -> a two-column table). So a key a command adds
tomorrow appears in the report without a change here. Per kind we only choose a heading and a one-line
description (:data:`KINDS`)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detkit.report.collect import Incomplete, Summary
from detkit.report.curves import plot_curves
from detkit.report.images import SHEET_AFTER, fit, sheet

# Heading and a one-line description per kind; unknown kinds use the summary's own title.
KINDS: dict[str, tuple[str, str]] = {
    "coco.inspect": (
        "Dataset summary",
        "What the annotation file holds: images, boxes, categories and sizes.",
    ),
    "coco.validate": ("Validation findings", "Problems found in the annotation file, by severity and rule."),
    "coco.classes": ("Class distribution", "Boxes and images per category."),
    "coco.split": (
        "Data split",
        "Train/val/test parts, stratified over each image's classes, and each class's share.",
    ),
    "coco.filter": ("Filtered data set", "The boxes and images kept by the filter, and what it dropped."),
    "coco.sample": ("Sampled data set", "A seeded sample of the images (stratified by class when asked)."),
    "coco.merge": ("Merged data sets", "The inputs, their shared and renumbered images and boxes."),
    "coco.convert": (
        "Converted data set",
        "The data written in another format: images, boxes and any splits.",
    ),
    "anchors.kmeans": (
        "Anchor boxes",
        "IoU k-means on normalised box sizes: anchors per k and mean IoU vs k.",
    ),
    "yolo.train": ("Detector training", "YOLOv2-style detector: per-epoch loss parts and validation mAP."),
    "yolo.eval": ("Detector evaluation", "COCO-style mAP of the trained detector, per class."),
    "coco.eval": (
        "Predictions scored",
        "COCO mAP of a detector's predictions (pycocotools-exact), per class and size, TIDE errors, curves.",
    ),
    "classify.train": ("Classifier training", "Per-epoch loss and accuracy of the classifier."),
    "classify.eval": (
        "Classifier evaluation",
        "Accuracy, confusion matrix, misclassified images and Grad-CAM.",
    ),
    "yolo.predict": ("Detector predictions", "Boxes drawn on the images `detkit yolo predict` was given."),
    "yolo.gallery": (
        "Predictions beside ground truth",
        "Held-out images: the detector's boxes (left) and the annotated boxes (right).",
    ),
    "demo": ("Demo run", "Every step `detkit demo` ran, with exit codes and times."),
}

GENERIC_KEYS = {
    "schema_version",
    "kind",
    "title",
    "created",
    "command",
    "versions",
    "metrics",
    "tables",
    "plots",
    "galleries",
    "curves",
}
MAX_TABLE_ROWS = 500  # longer tables are cut (the full data stays in summary.json)
MAX_GALLERY = 64
FOLD_ROWS = 25  # longer tables start folded (<details>)
MAX_RAW = 20000  # characters of a nested key's JSON shown (folded)


@dataclass
class Figure:
    """An image: a file on disk (``path``) or bytes rendered for the report (``data``)."""

    name: str
    path: Path | None = None
    data: bytes | None = None
    suffix: str = ".png"

    def read(self) -> bytes | None:
        """The bytes to embed: rendered data as is, a file scaled to the page (see
        :mod:`detkit.report.images`); None when the file cannot be read."""
        if self.data is not None:
            return self.data
        try:
            raw = self.path.read_bytes() if self.path else None
        except OSError:
            return None

        return None if raw is None else fit(raw, self.suffix)


@dataclass
class Table:
    name: str
    columns: list[str]
    rows: list[list[str]]
    total_rows: int


@dataclass
class Section:
    anchor: str
    kind: str
    heading: str
    title: str
    blurb: str
    folder: str
    created: str
    command: str
    versions: dict[str, str]
    metrics: list[tuple[str, str]] = field(default_factory=list)
    details: list[tuple[str, str]] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    curves: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    galleries: list[tuple[str, list[Figure]]] = field(default_factory=list)
    raw: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    nav: str = ""  # the navigation entry: heading and run folder, so two runs of a kind stay apart


def fmt(value: Any) -> str:
    """A cell or metric value as short text: floats to 4 significant digits, None as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == int(value) and abs(value) < 1e15:
            return str(int(value)) if abs(value) >= 1e4 else f"{value:g}"
        return f"{value:.1f}" if abs(value) >= 1e4 else f"{value:.4g}"
    if isinstance(value, (list, dict)):
        text = json.dumps(value, separators=(", ", ": "))
        return text if len(text) <= 120 else text[:117] + "..."
    return str(value)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def label(key: str) -> str:
    """``mean_iou`` -> ``mean iou`` (keys keep their case; only separators change)."""
    return str(key).replace("_", " ")


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def make_table(name: str, rows: Any) -> Table | None:
    """A table from a list of row dicts (columns: union of keys in first-seen order), else None."""
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        return None
    columns: list[str] = []
    for r in rows:
        columns += [str(k) for k in r if str(k) not in columns]
    body = [[fmt(r.get(c)) for c in columns] for r in rows[:MAX_TABLE_ROWS]]
    return Table(name=name, columns=columns, rows=body, total_rows=len(rows))


def _extra(section: Section, key: str, value: Any) -> None:
    """Show a kind-specific key (or a table that is not a list of rows) by its shape."""
    if _is_scalar(value):
        section.details.append((label(key), fmt(value)))
    elif isinstance(value, (list, dict)) and not value:
        section.details.append((label(key), "none"))
    elif (t := make_table(label(key), value)) is not None:
        section.tables.append(t)
    elif isinstance(value, dict) and all(_is_scalar(v) for v in value.values()):
        rows = [[str(k), fmt(v)] for k, v in value.items()]
        section.tables.append(Table(label(key), ["name", "value"], rows[:MAX_TABLE_ROWS], len(rows)))
    elif isinstance(value, dict) and all(
        isinstance(v, dict) and all(map(_is_scalar, v.values())) for v in value.values()
    ):
        rows = [{"name": k, **v} for k, v in value.items()]  # type: ignore[dict-item]
        section.tables.append(make_table(label(key), rows))
    elif isinstance(value, list) and all(_is_scalar(v) for v in value):
        section.details.append(
            (label(key), ", ".join(fmt(v) for v in value[:50]) + (" ..." if len(value) > 50 else ""))
        )
    else:  # nested structures: kept whole, folded, for the reader who wants every number
        text = json.dumps(value, indent=1)
        section.raw.append((label(key), text if len(text) <= MAX_RAW else text[:MAX_RAW] + "\n..."))


def _image(folder: Path, name: str, rel: Any, notes: list[str]) -> Figure | None:
    if not isinstance(rel, str) or not rel:
        notes.append(f"{name}: not a path ({fmt(rel)})")
        return None
    path = folder / rel
    if not path.is_file():
        notes.append(f"{name}: image {rel} is missing")
        return None
    return Figure(name=name, path=path, suffix=path.suffix.lower() or ".png")


def _one_sheet(figures: list[Figure], notes: list[str]) -> list[Figure]:
    """More than :data:`detkit.report.images.SHEET_AFTER` plots: the first whole, the others on one sheet."""

    if len(figures) <= SHEET_AFTER:
        return figures
    rest = [(f.name, raw) for f in figures[1:] if (raw := f.read()) is not None]
    data = sheet(rest)
    if data is None:
        return figures
    if len(rest) < len(figures) - 1:
        notes.append(f"{len(figures) - 1 - len(rest)} plot(s) could not be read for the sheet")
    return [figures[0], Figure(name=f"{len(rest)} more plots: " + ", ".join(n for n, _ in rest), data=data)]


_TOP5 = re.compile(r"top.?5", re.IGNORECASE)


def _hide_top5(doc: dict[str, Any]) -> bool:
    """Top-5 accuracy says nothing with 5 classes or fewer (it is always 100%)."""
    n = doc.get("num_classes")
    return isinstance(n, int) and not isinstance(n, bool) and n <= 5


def _drop_top5(t: Table) -> Table:
    keep = [i for i, c in enumerate(t.columns) if not _TOP5.search(c)]
    return Table(t.name, [t.columns[i] for i in keep], [[r[i] for i in keep] for r in t.rows], t.total_rows)


def _mapping(doc: dict[str, Any], key: str) -> dict[str, Any]:
    """``doc[key]`` when it is a dict, else {} (a malformed key must not sink the report)."""
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def build_section(summary: Summary, index: int, base: Path | None = None) -> Section:
    """One report section from one summary.

    Args:
        summary: the parsed summary.json and where it lives.
        index: position in the report (makes anchors unique).
        base: folder the section's folder is shown relative to (the report's folder), if possible.
    """
    doc, folder = summary.doc, summary.folder
    heading, blurb = KINDS.get(summary.kind, (str(doc.get("title") or summary.kind), ""))
    try:
        shown = str(folder.resolve().relative_to(base.resolve())) if base else str(folder)
    except ValueError:
        shown = str(folder)
    versions = _mapping(doc, "versions")
    s = Section(
        anchor=f"s{index}-{slug(summary.kind)}",
        kind=summary.kind,
        heading=heading,
        title=str(doc.get("title") or ""),
        blurb=blurb,
        folder=shown,
        created=str(doc.get("created") or ""),
        command=str(doc.get("command") or ""),
        versions={str(k): fmt(v) for k, v in versions.items()},
        nav=f"{heading} · {shown}",
    )
    s.metrics = [(label(k), fmt(v)) for k, v in _mapping(doc, "metrics").items()]
    hide_top5 = _hide_top5(doc)
    if hide_top5:
        s.metrics = [(k, v) for k, v in s.metrics if not _TOP5.search(k)]
        s.details.append(
            ("top-5", f"not shown: with {doc['num_classes']} classes every image is in the top 5")
        )
    for name, rel in _mapping(doc, "plots").items():
        if (f := _image(folder, label(name), rel, s.notes)) is not None:
            s.figures.append(f)
    s.figures = _one_sheet(s.figures, s.notes)
    if isinstance(doc.get("curves"), str):
        csv_path = folder / doc["curves"]
        if csv_path.is_file():
            try:
                skip = _TOP5 if hide_top5 else None
                s.curves = [Figure(name=t, data=png) for t, png in plot_curves(csv_path, skip=skip)]
            except (OSError, ValueError) as exc:  # a malformed CSV must not sink the whole report
                s.notes.append(f"curves: {doc['curves']} could not be plotted ({exc})")
        else:
            s.notes.append(f"curves: {doc['curves']} is missing")
    for name, rows in _mapping(doc, "tables").items():
        t = make_table(label(name), rows)
        if t is None:
            _extra(s, name, rows)
        else:
            s.tables.append(t)
    for name, rels in _mapping(doc, "galleries").items():
        images = [
            f
            for rel in (rels[:MAX_GALLERY] if isinstance(rels, list) else [])
            if (f := _image(folder, Path(str(rel)).stem, rel, s.notes)) is not None
        ]
        if images:
            s.galleries.append((label(name), images))
    for key, value in doc.items():
        if key == "worst_images" and isinstance(value, dict):
            _worst_images(s, folder, value)
        elif key not in GENERIC_KEYS:
            _extra(s, key, value)
    if hide_top5:
        s.tables = [_drop_top5(t) for t in s.tables]
    return s


def _worst_images(s: Section, folder: Path, value: dict[str, Any]) -> None:
    """``coco eval --per-image``'s worst images: their table, and the drawn images as a gallery."""
    what = f"conf >= {fmt(value.get('conf'))}, IoU >= {fmt(value.get('iou'))}"
    if (t := make_table(f"worst images ({what})", value.get("rows"))) is not None:
        s.tables.append(t)
    rels = value.get("images")
    images = [
        f
        for rel in (rels[:MAX_GALLERY] if isinstance(rels, list) else [])
        if (f := _image(folder, Path(str(rel)).stem, rel, s.notes)) is not None
    ]
    if images:
        s.galleries.append(
            (
                "worst images (ground truth blue, true positive green, false positive orange, miss yellow)",
                images,
            )
        )


def build_sections(summaries: list[Summary], base: Path | None = None) -> list[Section]:
    """Sections for all summaries, in the order given (see :func:`detkit.report.collect.find_summaries`)."""
    return [build_section(s, i, base) for i, s in enumerate(summaries, 1)]


def incomplete_section(runs: list[Incomplete], index: int, base: Path | None = None) -> Section:
    """One section listing the run folders that have no summary.json, each with the reason."""

    def shown(folder: Path) -> str:
        try:
            return str(folder.resolve().relative_to(base.resolve())) if base else str(folder)
        except ValueError:
            return str(folder)

    rows = [[shown(r.folder), r.command, r.reason] for r in runs]
    heading = "Incomplete runs"
    return Section(
        anchor=f"s{index}-incomplete",
        kind="incomplete",
        heading=heading,
        title="",
        blurb="Run folders without a summary.json: the command stopped before its end, or is still running.",
        folder="",
        created="",
        command="",
        versions={},
        nav=f"{heading} ({len(runs)})",
        tables=[Table("runs", ["folder", "command", "reason"], rows, len(rows))],
    )
