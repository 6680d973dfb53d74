"""``detkit coco convert`` of a source with splits: one output per split, never mixed.

A source whose images carry two or more split names (a data yaml, a YOLO or Roboflow export, VOC
``ImageSets/Main``) is written one output per split:

    coco   OUT/<split>.json              each recording its own image folder
    yolo   OUT/<split>/{images,labels,classes.txt} + OUT/data.yaml (train: train/images, ...)
    voc    OUT/<split>/{Annotations,JPEGImages}
    cvat   OUT/<split>.xml               labelstudio   OUT/<split>.json
    labelme  OUT/<split>/ (a .json beside each image link)

Each split's file names lose the folders all of them share (``images/train/a.jpg`` -> ``a.jpg``, its
image folder moving down to match), as a split folder of COCO, YOLO or a Roboflow export holds them. A
Roboflow COCO export's split is its own ``_annotations.coco.json``, written as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from detkit.datasets.formats.write import (
    FILE_TARGETS,
    new_folder,
    output_file,
    write_data_yaml,
    write_labelme,
    write_tool_file,
    write_voc,
    write_yolo,
)
from detkit.datasets.model import Dataset
from detkit.datasets.ops.convert import check_options, roboflow_json, with_category_ids, write_coco
from detkit.datasets.paths import check_outside, input_folders, name_problem
from detkit.io import remove_leftovers


def shared_folder(names: list[str]) -> str:
    """The leading folders every name shares (``images/train`` for ``images/train/a.jpg``...), as posix;
    ``""`` when none, or when a name is unsafe (absolute, ``..``: those keep their whole name)."""
    if not names or any(name_problem(n) is not None for n in names):
        return ""
    parts = [Path(n).parts[:-1] for n in names]
    k = 0
    while all(len(q) > k and q[k] == parts[0][k] for q in parts):
        k += 1
    return Path(*parts[0][:k]).as_posix() if k else ""


def _split_part(ds: Dataset, name: str, image_root: str | Path | None) -> tuple[Dataset, Path | None]:
    """Split ``name`` of ``ds`` with its shared folders cut from the file names, and its image folder."""
    sub = ds.select_split(name)
    root = Path(image_root) if image_root else (Path(ds.image_root) if ds.image_root else None)
    cut = shared_folder([str(f) for f in sub.file_name])
    if cut:
        cut_names = [Path(str(f)).relative_to(cut).as_posix() for f in sub.file_name]
        sub.file_name = np.array(cut_names, dtype=object)
        root = root / cut if root is not None else None
    sub.split, sub.image_root = None, str(root) if root is not None else None
    return sub, root


def _write_split(ds: Dataset, name: str, tmp: Path, to: str, image_root, category_ids) -> dict[str, Any]:
    """One split's output inside the staging folder ``tmp`` (layouts in the module docstring)."""
    rf = roboflow_json(ds, name) if to == "coco" else None
    if rf is not None:  # the split's own json, as it is; its names are relative to its folder
        sub = ds.select_split(name)
        root = Path(image_root) / rf.parent.name if image_root else rf.parent
        return write_coco(sub, tmp / f"{name}.json", source_json=rf, image_root=root)
    sub, root = _split_part(ds, name, image_root)
    if to == "coco":
        return write_coco(with_category_ids(sub, category_ids), tmp / f"{name}.json", image_root=root)
    if to == "yolo":
        return write_yolo(sub, tmp / name, root, category_ids)

    if to in FILE_TARGETS:
        return write_tool_file(sub, tmp / f"{name}{FILE_TARGETS[to]}", to)
    if to == "labelme":
        return write_labelme(sub, tmp / name, root)
    return write_voc(sub, tmp / name, root)


SUMMED = ("images", "boxes", "labels_written", "skipped_boxes", "images_linked", "crowd_as_boxes", "renamed")


def convert_splits(
    ds: Dataset,
    out: str | Path,
    to: str,
    image_root: str | Path | None = None,
    category_ids: str | None = None,
) -> dict[str, Any]:
    """Write each split of ``ds`` apart into the new folder ``out`` (layouts in the module docstring).

    Args as for :func:`convert`. Returns :func:`convert`'s counts summed over the splits, and ``splits``:
    each split's own result (its ``out`` the file or folder written).
    """

    check_options(to, category_ids)
    out, names = Path(out), ds.split_names()
    output_file(out, to, splits=len(names))  # the one rule: several splits are a folder
    check_outside(
        out, input_folders(ds, ds.source if ds.source and Path(ds.source).exists() else None, image_root)
    )
    removed = remove_leftovers(out)
    results: dict[str, dict[str, Any]] = {}
    with new_folder(out) as tmp:
        for name in names:
            results[name] = _write_split(ds, name, tmp, to, image_root, category_ids)
        if to == "yolo":
            classes = (tmp / names[0] / "classes.txt").read_text(encoding="utf-8").splitlines()
            write_data_yaml(tmp / "data.yaml", classes, {n: f"{n}/images" for n in names})
    for name, r in results.items():  # where each is now that the staging folder is ``out``
        r["out"] = str(out / (f"{name}{FILE_TARGETS[to]}" if to in FILE_TARGETS else name))
        r.pop("removed_leftovers", None)
    total = {k: sum(r.get(k, 0) for r in results.values()) for k in SUMMED}
    examples = [e for r in results.values() for e in r.get("renamed_examples", [])][:5]
    roots = [r.get("image_root") for r in results.values()]
    return {
        "format": to,
        "out": str(out),
        **total,
        "renamed_examples": examples,
        "removed_leftovers": removed,
        **({"image_root": roots[0] if all(roots) else None} if to == "coco" else {}),
        "splits": results,
    }
