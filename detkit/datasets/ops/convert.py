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

import contextlib
import dataclasses
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from detkit.console import progress
from detkit.datasets.formats.coco import DETKIT_KEY
from detkit.datasets.formats.layouts import roboflow_coco_files
from detkit.datasets.formats.write import link_image, write_labelme, write_tool_file
from detkit.datasets.model import COCO80_IDS, COCO80_NAMES, Dataset, json_number
from detkit.datasets.paths import (
    check_outside,
    input_folders,
    inside,
    name_problem,
    safe_relative,
    source_path,
    yolo_relative,
)
from detkit.errors import DetkitError
from detkit.io import atomic_write, remove_leftovers, staged_folder, write_json

TARGETS = ("coco", "yolo", "voc", "cvat", "labelstudio", "labelme")
FILE_TARGETS = {"coco": ".json", "cvat": ".xml", "labelstudio": ".json"}  # one file per set of images
ANNOTATION_SUFFIXES = (".json", ".xml", ".yaml", ".yml", ".txt")
OUTPUT_RULE = (
    "coco, cvat and labelstudio write one file per set of images: an OUT ending in .json (coco, labelstudio) "
    "or .xml (cvat) is that file; any other OUT is a new folder holding annotations.json / annotations.xml, "
    "or <split>.json / <split>.xml per split. yolo, voc and labelme always write a new folder OUT. "
    "An OUT that contradicts this (a .xml for coco, a .json for yolo, one file for several splits) "
    "is refused."
)
CATEGORY_IDS = ("index", "coco80")
CLASS_INDEXED = ("yolo", "text")  # formats whose boxes carry a class index, not a COCO category id


def _link_image(src_root: Path | None, file_name: str, dst: Path, folder: Path) -> bool:
    """Link ``src_root/file_name`` at ``dst`` (:func:`~detkit.datasets.formats.write.link_image`, the one
    rule); False when the source image is absent."""

    if src_root is None:
        return False
    return link_image(source_path(src_root, file_name), dst, folder) == "linked"


def _check_inside(folder: Path, path: Path) -> None:
    """Refuse a write whose real path (symlinks followed) would leave the output folder."""
    if not inside(folder, path.parent):
        raise DetkitError(f"{path}: refusing to write outside the output folder {folder}")


def safe_names(ds: Dataset) -> tuple[list[str], list[tuple[str, str]]]:
    """The name each image is written under (``file_name`` made safe), and the (name, safe name) pairs
    of the names that were absolute, climbed out or named no file."""
    names, renamed = [], []
    for f, i in zip(ds.file_name.tolist(), ds.image_id.tolist()):
        f = str(f)
        safe = safe_relative(f) or f"image_{int(i)}"
        if name_problem(f) is not None:
            renamed.append((f, safe))
        names.append(safe)
    return names, renamed


def _renamed(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "renamed": len(pairs),
        "renamed_examples": [{"file_name": a, "written_as": b} for a, b in pairs[:5]],
    }


def _stems(ds: Dataset, names: list[str]) -> list[Path]:
    """Label/XML path (without suffix) of each image; two images mapping to one file is an error."""
    stems = [Path(n).with_suffix("") if Path(n).suffix else Path(n) for n in names]
    seen: dict[Path, str] = {}
    for s, f in zip(stems, ds.file_name):
        if s in seen:
            raise DetkitError(f"{ds.source}: images '{seen[s]}' and '{f}' would share the label file {s}.*")
        seen[s] = str(f)
    return stems


def _write(folder: Path, path: Path, data: str | bytes) -> None:
    """Plain write: files inside a staged folder need no per-file atomicity (nor 100k fsyncs)."""
    _check_inside(folder, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)


@contextlib.contextmanager
def new_folder(out: Path):
    """:func:`detkit.io.staged_folder` for a new or empty ``out``."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DetkitError(f"{out}: exists and is not an empty folder; choose a new output folder")
    with staged_folder(out) as tmp:
        yield tmp


def _rows_by_image(ds: Dataset) -> tuple[np.ndarray, list[np.ndarray]]:
    idx = ds.image_index()
    order = np.argsort(idx, kind="stable")
    bounds = np.searchsorted(idx[order], np.arange(ds.num_images + 1))
    return idx, [order[bounds[i] : bounds[i + 1]] for i in range(ds.num_images)]


# the CLI names the flag (detkit.errors.cli_text)
CATEGORY_IDS_FLAGS = {
    "category_ids='index'": "--category-ids index",
    "category_ids='coco80'": "--category-ids coco80",
}


def class_indexes(ds: Dataset, category_ids: str | None = None) -> np.ndarray:
    """The YOLO class index of each category (``ds.cat_id`` order) under the category-id rule.

    Class-indexed sources keep their classes (the k-th category in id order); for COCO and VOC sources
    ``index`` uses the id itself, ``coco80`` its position among COCO's 80 official ids, and no rule the rank
    in id order."""
    rank = np.empty(ds.num_categories, dtype=np.int64)
    rank[np.argsort(ds.cat_id, kind="stable")] = np.arange(ds.num_categories)
    if category_ids is None or ds.format in CLASS_INDEXED:
        return rank
    if category_ids == "index":
        bad = [int(c) for c in ds.cat_id if not 0 <= c < 100_000]
        if bad:
            raise DetkitError(
                f"{ds.source}: category id {bad[0]} cannot be a YOLO class index (category_ids='index')",
                flags=CATEGORY_IDS_FLAGS,
            )
        return ds.cat_id.astype(np.int64)
    pos = {c: k for k, c in enumerate(COCO80_IDS)}
    bad = [int(c) for c in ds.cat_id if int(c) not in pos]
    if bad:
        raise DetkitError(
            f"{ds.source}: category id {bad[0]} is not one of COCO's 80 official ids (category_ids='coco80')",
            flags=CATEGORY_IDS_FLAGS,
        )
    return np.array([pos[int(c)] for c in ds.cat_id], dtype=np.int64)


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


def write_yolo(
    ds: Dataset, out: str | Path, image_root: str | Path | None = None, category_ids: str | None = None
) -> dict[str, Any]:
    """Write ``out/labels/*.txt`` (``k cx cy w h``, normalised), ``out/classes.txt`` and ``out/images`` links.

    Names lose their ``images`` / ``labels`` folders (:func:`~detkit.datasets.paths.yolo_relative`), so that
    ultralytics finds each image's labels. Class k follows ``category_ids`` (see :func:`class_indexes`).
    Returns counts of what was written."""
    out = Path(out)
    root = Path(image_root) if image_root else (Path(ds.image_root) if ds.image_root else None)
    ks = class_indexes(ds, category_ids)
    cls_of = {int(c): int(k) for c, k in zip(ds.cat_id, ks)}
    n_cls = int(ks.max(initial=-1)) + 1
    if category_ids == "coco80" and ds.format not in CLASS_INDEXED:
        n_cls = len(COCO80_IDS)
    class_names = [f"class{k}" if category_ids != "coco80" else COCO80_NAMES[k] for k in range(n_cls)]
    for c, k in zip(ds.cat_name, ks):
        class_names[int(k)] = str(c)
    names, renamed = safe_names(ds)
    names = [yolo_relative(n) for n in names]  # OUT/images/val/x.jpg, whose labels ultralytics finds
    stems = _stems(ds, names)
    idx, rows_of = _rows_by_image(ds)
    skipped = int((idx < 0).sum()) + int(sum(1 for c in ds.category_id[idx >= 0] if int(c) not in cls_of))
    linked = 0
    removed = remove_leftovers(out)
    with new_folder(out) as tmp, progress() as bar:
        task = bar.add_task("writing YOLO labels", total=len(stems), info="")
        _write(tmp, tmp / "classes.txt", "".join(f"{n}\n" for n in class_names))
        for i, stem in enumerate(stems):
            bar.advance(task)
            W, H = float(ds.width[i]), float(ds.height[i])
            lines = []
            for r in rows_of[i]:
                c = cls_of.get(int(ds.category_id[r]))
                if c is None:
                    continue
                x, y, w, h = (float(v) for v in ds.bbox[r])
                lines.append(f"{c} {(x + w / 2) / W:.7f} {(y + h / 2) / H:.7f} {w / W:.7f} {h / H:.7f}\n")
            _write(tmp, tmp / "labels" / f"{stem}.txt", "".join(lines))
            linked += _link_image(root, str(ds.file_name[i]), tmp / "images" / names[i], tmp)
    return {
        "format": "yolo",
        "out": str(out),
        "images": ds.num_images,
        "labels_written": ds.num_images,
        "boxes": ds.num_annotations - skipped,
        "skipped_boxes": skipped,
        "classes": n_cls,
        "images_linked": linked,
        "crowd_as_boxes": int((ds.iscrowd == 1).sum()),
        **_renamed(renamed),
        "removed_leftovers": removed,
    }


def _voc_xml(ds: Dataset, i: int, name: str, rows: np.ndarray, names: dict[int, str]) -> bytes:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = _xml_text(name)
    size = ET.SubElement(root, "size")
    for tag, v in (("width", ds.width[i]), ("height", ds.height[i]), ("depth", 3)):
        ET.SubElement(size, tag).text = str(json_number(v))
    ET.SubElement(root, "segmented").text = "0"
    for r in rows:
        name = names.get(int(ds.category_id[r]))
        if name is None:
            continue
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = _xml_text(name)
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        bb = ET.SubElement(obj, "bndbox")
        x, y, w, h = (float(v) for v in ds.bbox[r])
        for tag, v in (("xmin", x), ("ymin", y), ("xmax", x + w), ("ymax", y + h)):
            ET.SubElement(bb, tag).text = str(json_number(round(v, 4)))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _xml_text(s: str) -> str:
    """``s`` without the characters XML 1.0 cannot hold (control characters, lone surrogates)."""
    s = s.encode("utf-8", "replace").decode("utf-8")
    return "".join(ch for ch in s if ch in "\t\n\r" or ord(ch) >= 0x20)


def write_voc(ds: Dataset, out: str | Path, image_root: str | Path | None = None) -> dict[str, Any]:
    """Write ``out/Annotations/*.xml`` (xmin = x, xmax = x + w, ...) and ``out/JPEGImages`` links."""
    out = Path(out)
    root = Path(image_root) if image_root else (Path(ds.image_root) if ds.image_root else None)
    cat_names = ds.category_names()
    names, renamed = safe_names(ds)
    stems = _stems(ds, names)
    idx, rows_of = _rows_by_image(ds)
    skipped = int((idx < 0).sum()) + int(sum(1 for c in ds.category_id[idx >= 0] if int(c) not in cat_names))
    linked = 0
    removed = remove_leftovers(out)
    with new_folder(out) as tmp, progress() as bar:
        task = bar.add_task("writing VOC XML", total=len(stems), info="")
        for i, stem in enumerate(stems):
            bar.advance(task)
            _write(tmp, tmp / "Annotations" / f"{stem}.xml", _voc_xml(ds, i, names[i], rows_of[i], cat_names))
            linked += _link_image(root, str(ds.file_name[i]), tmp / "JPEGImages" / names[i], tmp)
    return {
        "format": "voc",
        "out": str(out),
        "images": ds.num_images,
        "boxes": ds.num_annotations - skipped,
        "skipped_boxes": skipped,
        "classes": ds.num_categories,
        "images_linked": linked,
        "crowd_as_boxes": int((ds.iscrowd == 1).sum()),
        **_renamed(renamed),
        "removed_leftovers": removed,
    }


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


def output_file(out: Path, to: str, splits: int = 1) -> Path | None:
    """The one rule for what OUT is (:data:`OUTPUT_RULE`): the file to write, or None when OUT is a folder.

    An OUT that contradicts the rule is a DetkitError naming what the format writes.
    """
    suffix, want = out.suffix.lower(), FILE_TARGETS.get(to)
    if want is not None and suffix == want:
        if splits > 1:
            raise DetkitError(
                f"{out}: {splits} splits are written one {to} file each, into a folder "
                f"({out.with_suffix('')}/<split>{want}); name a folder"
            )
        return out
    if suffix in ANNOTATION_SUFFIXES:
        writes = f"a {want} file or a folder" if want else "a folder"
        raise DetkitError(f"{out}: ends in {suffix}, but {to} writes {writes}; name {writes}")
    return None


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
