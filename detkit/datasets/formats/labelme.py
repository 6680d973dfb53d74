"""LabelMe JSON (a folder of per-image files) -> :class:`~detkit.datasets.model.Dataset`.

Each ``<name>.json`` describes the image ``imagePath`` (relative to the json's folder)::

    {"version": "5.2.1", "shapes": [
        {"label": "car", "shape_type": "rectangle", "points": [[10, 20], [110, 70]]},
        {"label": "car", "shape_type": "polygon", "points": [[1, 2], [30, 4], [15, 40]]}],
     "imagePath": "a.jpg", "imageData": null, "imageHeight": 480, "imageWidth": 640}

    rectangle (pixels)   x = min(x1, x2),  y = min(y1, y2),  w = |x2 - x1|,  h = |y2 - y1|
    polygon              its bounding box (a note, ``shape.polygon``)

Other shapes (circle, line, linestrip, point, mask) are skipped and counted (``shape.unsupported``).
Image file names are relative to the folder given (``sub/a.jpg`` for ``sub/a.json``), where the images
are looked for; top folders that all name splits (``train/``, ``val/``) are the ``split`` column.
Categories are the labels in sorted order (ids 1..C). A file that is not LabelMe JSON, or
a bad shape, is skipped and listed in ``Dataset.skipped`` (``strict``: raised; ``on_error``: reported).
"""

from __future__ import annotations

import posixpath
from pathlib import Path

import numpy as np

from detkit.datasets.formats.layouts import normalize_split
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

SHAPES = ("rectangle", "polygon")


def labelme_files(path: Path) -> tuple[list[Path], Path]:
    """The .json files and the folder image names are relative to (a single file: its folder)."""
    if path.is_file():
        return [path], path.parent
    return sorted(path.rglob("*.json")), path


def _image(f: Path, doc: dict, root: Path) -> tuple[str, float, float]:
    """(file name relative to ``root``, width, height) of one LabelMe file."""
    rel = doc.get("imagePath")
    if not isinstance(rel, str) or not rel.strip():
        raise problem(f, "imagePath", "missing image path", "record.missing_field")
    folder = f.parent.relative_to(root).as_posix()
    name = posixpath.normpath(posixpath.join(folder, rel.strip().replace("\\", "/")))
    if doc.get("imageWidth") is None and (root / name).is_file():
        w, h = (float(v) for v in image_size(root / name))
    else:
        w = number(f, "imageWidth", doc.get("imageWidth"), "imageWidth")
        h = number(f, "imageHeight", doc.get("imageHeight"), "imageHeight")
    if w <= 0 or h <= 0:
        raise problem(f, "imageWidth", f"image size {w:g}x{h:g} must be positive", "image.bad_size")
    return name, w, h


def _shape(f: Path, shape: object, where: str) -> tuple[str, tuple[float, float, float, float]]:
    if not isinstance(shape, dict):
        raise problem(f, where, "shape is not an object", "record.wrong_type")
    label = shape.get("label")
    if not isinstance(label, str) or not label.strip():
        raise problem(f, where, "missing label", "record.missing_field")
    pts = shape.get("points")
    kind = shape.get("shape_type") or "polygon"
    need = 2 if kind == "rectangle" else 3
    if (
        not isinstance(pts, list)
        or len(pts) < need
        or not all(isinstance(p, list) and len(p) == 2 for p in pts)
    ):
        raise problem(f, where, f"a {kind} needs {need} or more [x, y] points", "record.wrong_type")
    return label.strip(), points_box([(number(f, where, x, "x"), number(f, where, y, "y")) for x, y in pts])


def load_labelme(
    path: str | Path,
    on_error: OnError | None = None,
    strict: bool = False,
    split: str | None = None,
    image_root: str | None = None,
) -> Dataset:
    """Load a folder of LabelMe JSON files (or one file); see the module docstring.

    Args:
        path: the folder (searched recursively) or one .json.
        on_error: when given (``validate``), problems are reported to it and the rest is loaded.
        strict: raise the first problem instead of skipping it.
        split: keep only the images under this split folder (``train/``, ``val/``...).
        image_root: the images' folder (default: the folder given, where LabelMe keeps them).
    """
    path = Path(path)
    files, root = labelme_files(path)
    if not files:
        raise InputError(path, None, "no LabelMe .json files found")
    report = Reporter(on_error, strict)
    img_rows, ann_rows, names, records = [], [], [], []
    for f in files:
        try:
            doc = read_json(f)
            if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
                raise problem(f, "shapes", "not a LabelMe file (no 'shapes' list)", "record.unparsable")
            name, w, h = _image(f, doc, root)
        except InputError as err:
            report(err)
            continue
        img_id = len(img_rows) + 1
        img_rows.append((img_id, name, w, h))
        polygons, other = 0, {}
        for k, shape in enumerate(doc["shapes"]):
            where = f"shapes[{k}]"
            kind = shape.get("shape_type") or "polygon" if isinstance(shape, dict) else None
            if kind not in SHAPES and kind is not None:
                other[str(kind)] = other.get(str(kind), 0) + 1
                continue
            try:
                label, box = _shape(f, shape, where)
            except InputError as err:
                report(err)
                continue
            polygons += kind == "polygon"
            ann_rows.append((img_id, *box))
            names.append(label)
            records.append(f"{f.relative_to(root).as_posix()} {where}")  # train/a.json: unique
        shape_notes(report, f, polygons, other)
    if not img_rows and on_error is None:
        raise report.first or InputError(path, None, "no usable LabelMe .json files")
    ds = named_boxes_dataset(
        img_rows,
        ann_rows,
        names,
        records,
        source=str(path),
        format="labelme",
        image_root=image_root or str(root),
        skipped=report.items,
    )
    return _split_folders(ds, path, split)


def _split_folders(ds: Dataset, path: Path, split: str | None) -> Dataset:
    """Top folders that all name splits (``train/``, ``val/``: what ``coco convert --to labelme`` writes
    for a source with splits) become the ``split`` column; other folders are no splits."""
    tops = [str(n).split("/")[0] if "/" in str(n) else None for n in ds.file_name]
    named = [normalize_split(t) if t else None for t in tops]
    if ds.num_images and None not in named and len(set(named)) >= 2:
        ds.split = np.array(named, dtype=object)
    if split is None:
        return ds
    if ds.split is None:
        raise InputError(path, None, f"no split '{split}': this LabelMe folder has no split folders")
    if split not in set(named):
        raise InputError(path, None, f"no split '{split}' (this folder has {', '.join(sorted(set(named)))})")
    return ds.select_split(split)
