"""``detkit coco convert``: write a :class:`Dataset` as COCO json, a YOLO folder or a Pascal VOC folder.

Lossless within what the target holds: boxes keep their pixel values (YOLO stores them normalised
with 7 decimals, under 0.01 px off for any image below 100,000 px), every image gets a label/XML file
even without boxes, and class names travel with the data (YOLO ``classes.txt``; VOC object names).
Images are not copied: when the source's image folder is known (or given), the YOLO ``images/`` and
VOC ``JPEGImages/`` folders hold symlinks to them (copies where links are not possible), so the
output loads back with ``detkit`` and trains with other tools. Folder outputs are written to a temp
folder and renamed into place, so an interrupted run leaves nothing half-written; the temp folder a
killed run left behind (``.OUT.tmp-PID``, its process gone) is removed by the next run.

Paths: label, XML and image-link paths are built from each record's ``file_name`` made safe first
(:mod:`detkit.datasets.paths`, whose rule every command shares): an absolute name (``/x``, ``C:\\x``), one
that climbs out with ``..`` or one that names no file is written under a relative name inside the output
folder (``renamed`` in the result), and every write is checked to land inside it, symlinks resolved.
Nothing is ever written beside the source images.

Splits: a source with two or more splits is written one output per split by
:mod:`detkit.datasets.ops.convert_splits`.

Category ids (one rule, both directions): a YOLO class index or the course format's class id ``k`` is COCO
category id ``k`` (``index``, the default) or COCO's official id ``COCO80_IDS[k]`` (``coco80``). From COCO or
VOC to YOLO the same rule runs backwards (``index``: class = id; ``coco80``: class = position among the 80
official ids); without a rule, class ``k`` is the k-th category in id order, which is the inverse of both for
files they wrote."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from detkit.datasets.formats.coco import DETKIT_KEY
from detkit.datasets.formats.layouts import roboflow_coco_files
from detkit.datasets.formats.write import (
    CATEGORY_IDS_FLAGS,
    CLASS_INDEXED,
    FILE_TARGETS,
    _link_image,
    class_indexes,
    new_folder,
    output_file,
    safe_names,
    write_labelme,
    write_tool_file,
    write_voc,
    write_yolo,
)
from detkit.datasets.model import COCO80_IDS, Dataset
from detkit.datasets.paths import check_outside, input_folders
from detkit.errors import DetkitError
from detkit.io import atomic_write, remove_leftovers, write_json

TARGETS = ("coco", "yolo", "voc", "cvat", "labelstudio", "labelme")
CATEGORY_IDS = ("index", "coco80")


def with_category_ids(ds: Dataset, category_ids: str | None) -> Dataset:
    """``ds`` with the COCO category ids of the rule (class-indexed sources only; others keep theirs)."""
    if ds.format not in CLASS_INDEXED:
        return ds
    k = class_indexes(ds)
    if category_ids == "coco80":
        if ds.num_categories > len(COCO80_IDS) or (k >= len(COCO80_IDS)).any():
            raise DetkitError(
                f"{ds.source}: {ds.num_categories} classes do not fit COCO's 80 ids (category_ids='coco80')",
                flags=CATEGORY_IDS_FLAGS,
            )
        new_ids = np.asarray(COCO80_IDS, dtype=np.int64)[k]
    else:
        new_ids = k
    lookup = dict(zip(ds.cat_id.tolist(), new_ids.tolist()))
    cat = np.array([lookup.get(int(c), -1 - abs(int(c))) for c in ds.category_id], dtype=np.int64)
    return dataclasses.replace(ds, cat_id=new_ids, category_id=cat)


def recorded_root(out: Path, image_root: str | Path | None) -> str | None:
    """The image folder relative to the folder of the json ``out`` (what :data:`DETKIT_KEY` records)."""
    if not image_root:
        return None
    try:
        return Path(os.path.relpath(Path(image_root).resolve(), out.parent.resolve())).as_posix()
    except (OSError, ValueError):  # another drive (Windows)
        return None


def write_coco(
    ds: Dataset, out: str | Path, source_json: str | Path | None = None, image_root: str | Path | None = None
) -> dict[str, Any]:
    """Write a COCO instances json. From a COCO source the original document is re-written as is
    (segmentations and extra fields kept); otherwise it is built from the dataset. The image folder,
    relative to ``out``, is recorded under the top-level ``"detkit"`` key that COCO readers ignore."""
    import msgspec

    out = Path(out)
    rel = recorded_root(out, image_root or ds.image_root)
    meta = {"image_root": rel} if rel else None
    if source_json is not None:
        doc = msgspec.json.decode(Path(source_json).read_bytes(), type=dict[str, msgspec.Raw])
        if meta:
            old = msgspec.json.decode(doc[DETKIT_KEY]) if DETKIT_KEY in doc else None
            doc[DETKIT_KEY] = {**old, **meta} if isinstance(old, dict) else meta
        with atomic_write(out, "wb") as f:
            f.write(msgspec.json.encode(doc))
    else:
        doc = ds.to_coco_dict()
        if meta:
            doc[DETKIT_KEY] = meta
        write_json(out, doc, indent=None)
    return {
        "format": "coco",
        "out": str(out),
        "images": ds.num_images,
        "boxes": ds.num_annotations,
        "classes": ds.num_categories,
        "image_root": rel,
    }


def roboflow_json(ds: Dataset, split: str) -> Path | None:
    """The ``_annotations.coco.json`` of split ``split`` when ``ds`` was read from a Roboflow COCO export."""
    src = Path(ds.source) if ds.source else None
    if ds.format != "coco" or src is None or not src.is_dir():
        return None
    return roboflow_coco_files(src).get(split)


def _coco_source(ds: Dataset) -> tuple[Path | None, str | None]:
    """The COCO json whose document ``ds`` is, and the image folder its names are relative to (or None)."""
    if ds.format != "coco" or not ds.source:
        return None, None
    if Path(ds.source).is_file():
        return Path(ds.source), None
    names = ds.split_names() or [""]  # "": an export with its json at the top, no split folders
    f = roboflow_json(ds, names[0]) if len(names) == 1 else None
    return (f, str(f.parent)) if f is not None else (None, None)


def check_options(to: str, category_ids: str | None) -> None:
    """DetkitError naming the choices when ``to`` or ``category_ids`` is not one of them."""
    if to not in TARGETS:
        raise DetkitError(f"unknown target format '{to}' (choose from {', '.join(TARGETS)})")
    if category_ids is not None and category_ids not in CATEGORY_IDS:
        raise DetkitError(
            f"unknown category-id rule '{category_ids}' (choose from {', '.join(CATEGORY_IDS)})"
        )


def convert(
    ds: Dataset,
    out: str | Path,
    to: str,
    image_root: str | Path | None = None,
    category_ids: str | None = None,
) -> dict[str, Any]:
    """Write ``ds`` in format ``to`` (one of :data:`TARGETS`) at ``out`` and return what was written.

    Args:
        ds: the loaded dataset.
        out: a file or a new (or empty) folder, by the one rule of :data:`OUTPUT_RULE`.
        to: the target format.
        image_root: where the images are, when ``ds.image_root`` is unknown or wrong.
        category_ids: ``index`` or ``coco80``: how YOLO / course-format class indexes and COCO category
            ids map onto each other (module docstring); None: ``index`` to COCO, id order to YOLO.
    """
    check_options(to, category_ids)
    out = Path(out)
    if Path(ds.source).exists() and out.resolve() == Path(ds.source).resolve():
        raise DetkitError(f"{out}: output would overwrite the input")
    file = output_file(out, to)
    if file is None:  # a folder: never inside one the input is read from
        check_outside(
            out, input_folders(ds, ds.source if ds.source and Path(ds.source).exists() else None, image_root)
        )
    if to in FILE_TARGETS and file is None:  # a new folder holding annotations.json / annotations.xml
        name = f"annotations{FILE_TARGETS[to]}"
        removed = remove_leftovers(out)
        with new_folder(out) as tmp:
            result = write_file(ds, tmp / name, to, image_root, category_ids)
            if to != "coco":  # CVAT and Label Studio exports keep their images in images/ beside the file
                root = Path(image_root) if image_root else (Path(ds.image_root) if ds.image_root else None)
                safe, _ = safe_names(ds)
                result["images_linked"] = sum(
                    _link_image(root, str(f), tmp / "images" / n, tmp) for f, n in zip(ds.file_name, safe)
                )
        return {**result, "out": str(out / name), "removed_leftovers": removed}
    if to in FILE_TARGETS:
        return write_file(ds, out, to, image_root, category_ids)
    if to == "yolo":
        return write_yolo(ds, out, image_root, category_ids)
    if to == "labelme":
        return write_labelme(ds, out, image_root)
    return write_voc(ds, out, image_root)


def write_file(
    ds: Dataset, out: Path, to: str, image_root: str | Path | None = None, category_ids: str | None = None
) -> dict[str, Any]:
    """Write ``ds`` as the one file ``out`` of a file format (coco, cvat, labelstudio)."""
    if to == "coco":
        src, root = _coco_source(ds)
        if root is not None:  # one split of a Roboflow export: its json, names relative to its folder
            root = str(Path(image_root) / Path(root).name) if image_root else root
            image_root = root
        return write_coco(with_category_ids(ds, category_ids), out, source_json=src, image_root=image_root)

    return write_tool_file(ds, out, to)
