"""Label Studio JSON export -> :class:`~detkit.datasets.model.Dataset`.

The export is one JSON list of tasks; each task names its image in ``data.image`` and holds its boxes in
the ``result`` of its first annotation that was not cancelled::

    [{"id": 1, "data": {"image": "/data/upload/1/a.jpg"},
      "annotations": [{"was_cancelled": false, "result": [
        {"type": "rectanglelabels", "original_width": 640, "original_height": 480,
         "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0,
                   "rectanglelabels": ["car"]}}]}]}]

Coordinates are percentages of the image size::

    box (pixels)   x = x% W / 100,  y = y% H / 100,  w = width% W / 100,  h = height% H / 100

A rotated rectangle (turned about its top-left corner) and a ``polygonlabels`` polygon are read as their
bounding boxes (a note, ``shape.polygon``); other result types (keypoints, brushes, choices...) are skipped
and counted (``shape.unsupported``). The image file name is ``data.image`` without Label Studio's upload
prefix (``/data/upload/1/a.jpg`` -> ``a.jpg``; ``/data/local-files/?d=img/a.jpg`` -> ``img/a.jpg``).
Categories are the labels in sorted order (ids 1..C). W and H come from ``original_width`` /
``original_height`` of a result, else of the task's ``meta`` (where detkit writes them, so that an image
without boxes keeps its size), else from the image header. A bad task or result is skipped and listed in
``Dataset.skipped`` (``strict``: raised; ``on_error``: reported to it).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from detkit.datasets.formats.readers import (
    OnError,
    image_size,
    named_boxes_dataset,
    number,
    points_box,
    problem,
    read_json,
    shape_notes,
)
from detkit.datasets.formats.yolo import Reporter
from detkit.datasets.model import Dataset
from detkit.errors import InputError

SHAPES = ("rectanglelabels", "polygonlabels")


def image_name(url: str) -> str:
    """The file name a task's ``data.image`` stands for (upload prefix and URL scheme dropped)."""
    u = urlparse(url)
    query = parse_qs(u.query)
    if "local-files" in u.path and query.get("d"):
        return query["d"][0]
    if u.scheme or url.startswith("/data/"):
        return unquote(Path(u.path).name)
    return url


def _task_image(f: Path, task: dict, where: str) -> str:
    data = task.get("data")
    if not isinstance(data, dict):
        hint = (
            " (Label Studio's JSON-MIN export; export as 'JSON')"
            if "data" not in task and "image" in task
            else ""
        )
        raise problem(f, where, f"missing 'data' object{hint}", "record.missing_field")
    url = data.get("image", data.get("img"))
    if url is None:
        strings = [v for v in data.values() if isinstance(v, str)]
        url = strings[0] if len(strings) == 1 else None
    if not isinstance(url, str) or not url.strip():
        raise problem(f, f"{where}.data", "no image URL ('image' key)", "record.missing_field")
    return image_name(url.strip())


def _results(f: Path, task: dict, where: str) -> tuple[list[Any], str]:
    """The result list of the task's first annotation that was not cancelled, and its JSON path."""
    key = "annotations" if "annotations" in task else "completions"  # completions: Label Studio < 1.0
    anns = task.get(key) or []
    if not isinstance(anns, list):
        raise problem(f, f"{where}.{key}", "expected a list", "record.wrong_type")
    for a, ann in enumerate(anns):
        if isinstance(ann, dict) and not ann.get("was_cancelled"):
            res = ann.get("result") or []
            if not isinstance(res, list):
                raise problem(f, f"{where}.{key}[{a}].result", "expected a list", "record.wrong_type")
            return res, f"{where}.{key}[{a}].result"
    return [], where


def _size(f: Path, where: str, results: list[Any], name: str, root: Path) -> tuple[float, float]:
    for r in results:
        if isinstance(r, dict) and r.get("original_width") is not None:
            w = number(f, where, r.get("original_width"), "original_width")
            h = number(f, where, r.get("original_height"), "original_height")
            if w <= 0 or h <= 0:
                raise problem(f, where, f"image size {w:g}x{h:g} must be positive", "image.bad_size")
            return w, h
    img = root / name
    if img.is_file():
        w, h = image_size(img)
        return float(w), float(h)
    raise problem(f, where, f"no original_width/height and no image file {img}", "image.bad_size")


def rectangle(value: dict, W: float, H: float, f: Path, where: str) -> tuple[tuple[float, ...], bool]:
    """The pixel box of a ``rectanglelabels`` value, and whether it was rotated (then its bounding box)."""
    x, y, w, h = (
        number(f, where, value.get(k), k) * s / 100
        for k, s in zip(("x", "y", "width", "height"), (W, H, W, H))
    )
    rot = number(f, where, value.get("rotation") or 0, "rotation")
    if not rot % 360:
        return (x, y, w, h), False
    t = math.radians(rot)  # clockwise about the top-left corner (x, y), y pointing down
    c, s = math.cos(t), math.sin(t)
    corners = [(x + u * c - v * s, y + u * s + v * c) for u, v in ((0, 0), (w, 0), (w, h), (0, h))]
    return points_box(corners), True


def load_labelstudio(
    path: str | Path,
    on_error: OnError | None = None,
    strict: bool = False,
    split: str | None = None,
    image_root: str | None = None,
) -> Dataset:
    """Load a Label Studio JSON export (see the module docstring).

    Args:
        path: the export's .json (a list of tasks).
        on_error: when given (``validate``), problems are reported to it and the rest is loaded.
        strict: raise the first problem instead of skipping it.
        split: Label Studio exports have no splits: an error when given.
        image_root: the images' folder (default: ``images/`` beside the json, else the json's folder).
    """
    f = Path(path)
    if split is not None:
        raise InputError(f, None, f"no split '{split}': a Label Studio export has no splits")
    doc = read_json(f)
    if not isinstance(doc, list):
        raise InputError(f, None, "expected a Label Studio JSON export: a list of tasks")
    root = (
        Path(image_root)
        if image_root
        else (f.parent / "images" if (f.parent / "images").is_dir() else f.parent)
    )
    report = Reporter(on_error, strict)
    img_rows, ann_rows, names, records = [], [], [], []
    polygons, other = 0, {}
    for t, task in enumerate(doc):
        where = f"$[{t}]"
        try:
            if not isinstance(task, dict):
                raise problem(
                    f, where, f"expected a task object, got {type(task).__name__}", "record.wrong_type"
                )
            name = _task_image(f, task, where)
            results, rwhere = _results(f, task, where)
            meta = task.get("meta")  # detkit's writer keeps the size there for images without boxes
            W, H = _size(f, where, [*results, *([meta] if isinstance(meta, dict) else [])], name, root)
        except InputError as err:
            report(err)
            continue
        img_id = len(img_rows) + 1
        img_rows.append((img_id, name, W, H))
        for r, res in enumerate(results):
            w = f"{rwhere}[{r}]"
            kind = res.get("type") if isinstance(res, dict) else None
            if kind not in SHAPES:
                other[str(kind)] = other.get(str(kind), 0) + 1
                continue
            try:
                value = res.get("value")
                if not isinstance(value, dict):
                    raise problem(f, w, "missing 'value' object", "record.missing_field")
                labels = value.get(kind)
                if not isinstance(labels, list) or not labels or not isinstance(labels[0], str):
                    raise problem(f, w, f"'{kind}' must be a list of label names", "record.missing_field")
                if kind == "rectanglelabels":
                    box, boxed = rectangle(value, W, H, f, w)
                else:
                    pts = value.get("points")
                    if (
                        not isinstance(pts, list)
                        or len(pts) < 3
                        or not all(isinstance(p, list) and len(p) == 2 for p in pts)
                    ):
                        raise problem(f, w, "points must be 3 or more [x, y] pairs", "record.wrong_type")
                    box = points_box(
                        [(number(f, w, x, "x") * W / 100, number(f, w, y, "y") * H / 100) for x, y in pts]
                    )
                    boxed = True
            except InputError as err:
                report(err)
                continue
            polygons += boxed
            ann_rows.append((img_id, *box))
            names.append(labels[0])
            records.append(f"{f.name} {w}")
    shape_notes(report, f, polygons, other, "polygon or rotated rectangle")
    if not img_rows and on_error is None:
        raise report.first or InputError(f, None, "no tasks in this Label Studio export")
    return named_boxes_dataset(
        img_rows,
        ann_rows,
        names,
        records,
        source=str(f),
        format="labelstudio",
        image_root=str(root),
        skipped=report.items,
    )
