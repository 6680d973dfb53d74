"""``detkit coco convert``: write a :class:`Dataset` as COCO json, a YOLO folder or a Pascal VOC folder.

Lossless within what the target holds: boxes keep their pixel values (YOLO stores them normalised
with 7 decimals, under 0.01 px off for any image below 100,000 px), every image gets a label/XML file
even without boxes, and class names travel with the data (YOLO ``classes.txt``; VOC object names).
Images are not copied: when the source's image folder is known (or given), the YOLO ``images/`` and
VOC ``JPEGImages/`` folders hold symlinks to them (copies where links are not possible), so the
output loads back with ``detkit`` and trains with other tools. Folder outputs are written to a temp
folder and renamed into place, so an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from detkit.coco.model import Dataset, _num
from detkit.console import progress
from detkit.errors import DetkitError
from detkit.io import atomic_write, write_json

TARGETS = ("coco", "yolo", "voc")


def _link_image(src_root: Path | None, file_name: str, dst: Path) -> bool:
    """Symlink (or copy) ``src_root/file_name`` to ``dst``; False when the source image is absent."""
    if src_root is None:
        return False
    src = src_root / file_name
    if not src.is_file():
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(src.resolve(), dst)
    except OSError:
        shutil.copy2(src, dst)
    return True


def _stems(ds: Dataset) -> list[Path]:
    """Label/XML path (without suffix) of each image; two images mapping to one file is an error."""
    stems = [Path(str(f)).with_suffix("") if str(f) else Path(f"image_{int(i)}") for f, i in zip(ds.file_name, ds.image_id)]
    seen: dict[Path, str] = {}
    for s, f in zip(stems, ds.file_name):
        if s in seen:
            raise DetkitError(f"{ds.source}: images '{seen[s]}' and '{f}' would share the label file {s}.*")
        seen[s] = str(f)
    return stems


def _write(path: Path, data: str | bytes) -> None:
    """Plain write: files inside a staged folder need no per-file atomicity (nor 100k fsyncs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)


@contextlib.contextmanager
def _staged_folder(out: Path):
    """Yield a temp folder beside ``out``; on success it becomes ``out`` (which must be absent or empty)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DetkitError(f"{out}: exists and is not an empty folder; choose a new output folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _rows_by_image(ds: Dataset) -> tuple[np.ndarray, list[np.ndarray]]:
    idx = ds.image_index()
    order = np.argsort(idx, kind="stable")
    bounds = np.searchsorted(idx[order], np.arange(ds.num_images + 1))
    return idx, [order[bounds[i] : bounds[i + 1]] for i in range(ds.num_images)]


def write_yolo(ds: Dataset, out: str | Path, image_root: str | Path | None = None) -> dict[str, Any]:
    """Write ``out/labels/*.txt`` (``k cx cy w h``, normalised), ``out/classes.txt`` and ``out/images`` links.

    Class k is the k-th category in id order. Returns counts of what was written.
    """
    out = Path(out)
    root = Path(image_root) if image_root else (Path(ds.image_root) if ds.image_root else None)
    order = np.argsort(ds.cat_id, kind="stable")
    cls_of = {int(ds.cat_id[k]): i for i, k in enumerate(order)}
    stems = _stems(ds)
    idx, rows_of = _rows_by_image(ds)
    skipped = int((idx < 0).sum()) + int(sum(1 for c in ds.category_id[idx >= 0] if int(c) not in cls_of))
    linked = 0
    with _staged_folder(out) as tmp, progress() as bar:
        task = bar.add_task("writing YOLO labels", total=len(stems), info="")
        _write(tmp / "classes.txt", "".join(f"{ds.cat_name[k]}\n" for k in order))
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
            _write(tmp / "labels" / stem.with_suffix(".txt"), "".join(lines))
            linked += _link_image(root, str(ds.file_name[i]), tmp / "images" / str(ds.file_name[i]))
    return {"format": "yolo", "out": str(out), "images": ds.num_images, "labels_written": ds.num_images,
            "boxes": ds.num_annotations - skipped, "skipped_boxes": skipped, "classes": len(order),
            "images_linked": linked, "crowd_as_boxes": int((ds.iscrowd == 1).sum())}  # fmt: skip


def _voc_xml(ds: Dataset, i: int, rows: np.ndarray, names: dict[int, str]) -> bytes:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = str(ds.file_name[i])
    size = ET.SubElement(root, "size")
    for tag, v in (("width", ds.width[i]), ("height", ds.height[i]), ("depth", 3)):
        ET.SubElement(size, tag).text = str(_num(v))
    ET.SubElement(root, "segmented").text = "0"
    for r in rows:
        name = names.get(int(ds.category_id[r]))
        if name is None:
            continue
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = name
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        bb = ET.SubElement(obj, "bndbox")
        x, y, w, h = (float(v) for v in ds.bbox[r])
        for tag, v in (("xmin", x), ("ymin", y), ("xmax", x + w), ("ymax", y + h)):
            ET.SubElement(bb, tag).text = str(_num(round(v, 4)))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_voc(ds: Dataset, out: str | Path, image_root: str | Path | None = None) -> dict[str, Any]:
    """Write ``out/Annotations/*.xml`` (xmin = x, xmax = x + w, ...) and ``out/JPEGImages`` links."""
    out = Path(out)
    root = Path(image_root) if image_root else (Path(ds.image_root) if ds.image_root else None)
    names = ds.category_names()
    stems = _stems(ds)
    idx, rows_of = _rows_by_image(ds)
    skipped = int((idx < 0).sum()) + int(sum(1 for c in ds.category_id[idx >= 0] if int(c) not in names))
    linked = 0
    with _staged_folder(out) as tmp, progress() as bar:
        task = bar.add_task("writing VOC XML", total=len(stems), info="")
        for i, stem in enumerate(stems):
            bar.advance(task)
            _write(tmp / "Annotations" / stem.with_suffix(".xml"), _voc_xml(ds, i, rows_of[i], names))
            linked += _link_image(root, str(ds.file_name[i]), tmp / "JPEGImages" / str(ds.file_name[i]))
    return {"format": "voc", "out": str(out), "images": ds.num_images, "boxes": ds.num_annotations - skipped,
            "skipped_boxes": skipped, "classes": ds.num_categories, "images_linked": linked,
            "crowd_as_boxes": int((ds.iscrowd == 1).sum())}  # fmt: skip


def write_coco(ds: Dataset, out: str | Path, source_json: str | Path | None = None) -> dict[str, Any]:
    """Write a COCO instances json. From a COCO source the original document is re-written as is
    (segmentations and extra fields kept); otherwise it is built from the dataset."""
    out = Path(out)
    if source_json is not None:
        import msgspec

        with atomic_write(out, "wb") as f:
            f.write(msgspec.json.encode(msgspec.json.decode(Path(source_json).read_bytes())))
    else:
        write_json(out, ds.to_coco_dict(), indent=None)
    return {"format": "coco", "out": str(out), "images": ds.num_images, "boxes": ds.num_annotations,
            "classes": ds.num_categories}  # fmt: skip


def convert(ds: Dataset, out: str | Path, to: str, image_root: str | Path | None = None) -> dict[str, Any]:
    """Write ``ds`` in format ``to`` (coco | yolo | voc) at ``out`` and return what was written.

    Args:
        ds: the loaded dataset.
        out: a .json file for coco, a new (or empty) folder for yolo and voc.
        to: the target format.
        image_root: where the images are, when ``ds.image_root`` is unknown or wrong.
    """
    if to not in TARGETS:
        raise DetkitError(f"unknown target format '{to}' (choose from {', '.join(TARGETS)})")
    out = Path(out)
    if Path(ds.source).exists() and out.resolve() == Path(ds.source).resolve():
        raise DetkitError(f"{out}: output would overwrite the input")
    if to == "coco":
        src = ds.source if ds.format == "coco" and Path(ds.source).is_file() else None
        return write_coco(ds, out, source_json=src)
    if to == "yolo":
        return write_yolo(ds, out, image_root)
    return write_voc(ds, out, image_root)
