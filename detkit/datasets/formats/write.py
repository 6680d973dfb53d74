"""Put the parts an operation chose on disk: COCO json, YOLO folders (+ data.yaml) or Pascal VOC.

Layouts (OUT is what the user named; everything is staged beside it and renamed into place):

    one output   coco: OUT.json, or OUT/annotations.json     yolo: OUT/{images,labels,classes.txt,data.yaml}
                 voc:  OUT/{Annotations,JPEGImages}
    splits       coco: OUT/<split>.json                       yolo: OUT/<split>/{images,labels}, OUT/data.yaml
                 voc:  OUT/{Annotations,JPEGImages}, OUT/ImageSets/Main/<split>.txt

Images are referenced, not copied: a COCO json records the image folder relative to itself under its top-level
``detkit`` key (other readers ignore the key); YOLO ``images/`` and VOC ``JPEGImages/`` hold symlinks.
``copy_images`` copies them instead. Names follow the one rule of :mod:`detkit.datasets.paths`: a safe name is
read and linked under its canonical form (``a\\b.jpg`` as ``a/b.jpg``, ``a/../b.jpg`` as ``b.jpg``); an image
whose name is absolute, climbs out or names no file is counted under ``unsafe_names`` and not linked."""

from __future__ import annotations

import contextlib
import os
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from detkit.console import progress
from detkit.datasets.model import COCO80_IDS, COCO80_NAMES, Dataset, json_number
from detkit.datasets.ops.source import Part, Source, subset
from detkit.datasets.paths import (
    check_outside,
    input_folders,
    inside,
    name_problem,
    safe_relative,
    source_path,
    yolo_relative,
)
from detkit.errors import DetkitError, InputError
from detkit.io import atomic_write, remove_leftovers, staged_folder

TARGETS = ("coco", "yolo", "voc")
CHUNK = 1 << 12  # records joined per write (~2 MB: larger joins cost a fresh mmap and page faults each)
FILE_TARGETS = {"coco": ".json", "cvat": ".xml", "labelstudio": ".json"}  # one file per set of images
ANNOTATION_SUFFIXES = (".json", ".xml", ".yaml", ".yml", ".txt")
OUTPUT_RULE = (
    "coco, cvat and labelstudio write one file per set of images: an OUT ending in .json (coco, labelstudio) "
    "or .xml (cvat) is that file; any other OUT is a new folder holding annotations.json / annotations.xml, "
    "or <split>.json / <split>.xml per split. yolo, voc and labelme always write a new folder OUT. "
    "An OUT that contradicts this (a .xml for coco, a .json for yolo, one file for several splits) "
    "is refused."
)
CLASS_INDEXED = ("yolo", "text")  # formats whose boxes carry a class index, not a COCO category id


def default_target(fmt: str) -> str:
    """The output format for an input format (the course text format has no writer: COCO)."""
    return fmt if fmt in TARGETS else "coco"


def check_out(out: Path, inputs: Iterable[Path], single_json: bool) -> None:
    """Refuse an output that would overwrite, contain or (a folder) lie inside an input
    (:func:`~detkit.datasets.paths.check_outside`), or a non-empty folder. ``inputs``: the input files and
    the folders read (:func:`~detkit.datasets.paths.input_folders`)."""
    check_outside(out, inputs if not single_json else [p for p in inputs if not Path(p).is_dir()])
    if single_json:
        if out.is_dir():
            raise InputError(out, None, "is a folder; name a .json file or a new folder")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(out, None, "exists and is not an empty folder; choose a new output folder")


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


# ---- images ------------------------------------------------------------------------------------------
def image_source(root: Path | None, name: str) -> Path | None:
    """The file an image record names, or None when the folder is unknown or the name is unsafe."""
    name = str(name)
    return None if root is None or name_problem(name) is not None else source_path(root, name)


def link_image(src: Path | None, dst: Path, folder: Path, copy: bool = False) -> str:
    """Put the image ``src`` at ``dst`` inside the output ``folder`` — a symlink to its real path, or a copy
    (``copy``, or where links cannot be made) — under the one set of safety rules every writer uses:

        missing  ``src`` is None, not a file, or a name the file system cannot hold (NUL, too long)
        taken    something is already at ``dst`` (nothing is written through an existing link), or a file
                 stands where ``dst`` needs a folder
        linked   otherwise

    A ``dst`` whose real folder would lie outside ``folder`` (a symlinked folder on the way) is an error,
    checked before any folder is made.
    """
    try:
        if src is None or not src.is_file():
            return "missing"
    except (OSError, ValueError):
        return "missing"
    there = dst.parent
    while not os.path.lexists(there) and there != there.parent:
        there = there.parent
    if not there.is_dir():  # a file (or a link to one) where this name needs a folder
        return "taken"
    if not inside(folder, dst.parent):
        raise DetkitError(f"{dst}: refusing to write outside the output folder {folder}")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(dst):
            return "taken"
    except OSError:  # a file where this name needs a folder
        return "taken"
    if copy:
        shutil.copy2(src, dst)
    else:
        try:
            os.symlink(src.resolve(), dst)
        except OSError:
            shutil.copy2(src, dst)
    return "linked"


def _link_image(src_root: Path | None, file_name: str, dst: Path, folder: Path) -> bool:
    """Link ``src_root/file_name`` at ``dst`` (:func:`link_image`, the one rule); False when the source image
    is absent."""

    if src_root is None:
        return False
    return link_image(source_path(src_root, file_name), dst, folder) == "linked"


def link_images(
    pairs: Iterable[tuple[Path | None, str]], dst_root: Path, copy: bool = False
) -> dict[str, int]:
    """Link (or copy) each ``source file -> dst_root/safe_relative(name)`` (:func:`link_image`); count
    linked, missing and unsafe names. A name whose place is taken by another file (``b.jpg`` after
    ``a/../b.jpg`` of another image, or ``a/b.jpg`` after a file ``a``) counts as unsafe."""
    n = {"images_linked": 0, "images_missing": 0, "unsafe_names": 0}
    placed: dict[str, Path] = {}  # name written -> its real source file
    for src, name in pairs:
        if name_problem(str(name)) is not None:
            n["unsafe_names"] += 1
            continue
        rel = safe_relative(str(name))
        got = link_image(src, dst_root / rel, dst_root, copy)
        if got == "missing":
            n["images_missing"] += 1
        elif got == "taken":  # the same image twice is linked once; another image's place is not overwritten
            n["images_linked" if placed.get(rel) == src.resolve() else "unsafe_names"] += 1
        else:
            placed[rel] = src.resolve()
            n["images_linked"] += 1
    return n


def image_pairs(root: Path | None, names: Iterable[str], new_names: Iterable[str] | None = None):
    """(source file, name in the output) per image; the source is None when the folder is unknown."""
    names = [str(f) for f in names]
    new = names if new_names is None else [str(f) for f in new_names]
    return [(image_source(root, f), g) for f, g in zip(names, new)]


def root_key(json_path: Path, image_root: Path | None) -> bytes | None:
    """The raw ``{"image_root": ...}`` value recorded under the top-level ``detkit`` key."""
    if image_root is None:
        return None
    rel = os.path.relpath(Path(image_root).resolve(), json_path.parent.resolve())
    return msgspec.json.encode({"image_root": Path(rel).as_posix()})


# ---- COCO json ---------------------------------------------------------------------------------------
def write_list(f: Any, records: list[Any], rows: np.ndarray | None = None) -> None:
    """Write ``[r, r, ...]`` (raw records, or the ``rows`` of them) in chunks."""
    f.write(b"[")
    order = range(len(records)) if rows is None else rows.tolist()
    for s in range(0, len(order), CHUNK):
        if s:
            f.write(b",")
        f.write(b",".join([records[i] for i in order[s : s + CHUNK]]))
    f.write(b"]")


def write_coco_records(
    path: Path,
    top: dict[str, Any],
    lists: dict[str, tuple[list[Any], np.ndarray | None]],
    image_root: bytes | None,
) -> None:
    """Write a COCO json from raw values: ``top`` keys first, then the three lists, then ``detkit``."""
    keys = [k for k in top if k != "detkit"]
    with atomic_write(path, "wb") as f:
        f.write(b"{")
        for k in keys:
            f.write(msgspec.json.encode(k) + b":" + bytes(top[k]) + b",")
        for j, k in enumerate(("images", "annotations", "categories")):
            f.write((b"," if j else b"") + msgspec.json.encode(k) + b":")
            write_list(f, *lists[k])
        if image_root is not None:
            f.write(b',"detkit":' + image_root)
        f.write(b"}\n")


def coco_from_columns(
    ds: Dataset, image_root: bytes | None, image_fields: dict[str, list] | None = None
) -> bytes:
    """A COCO json built from the columns (inputs that are not COCO json; no segmentations to keep)."""
    doc = ds.to_coco_dict()
    for key, values in (image_fields or {}).items():
        for rec, v in zip(doc["images"], values):
            rec[key] = v
    if image_root is not None:
        doc["detkit"] = msgspec.json.decode(image_root)
    return msgspec.json.encode(doc) + b"\n"


def write_coco_part(src: Source, part: Part, path: Path, image_root: Path | None) -> None:
    """One COCO json with the part's records (original bytes when the source is a COCO json)."""
    key = root_key(path, image_root)
    if src.raw is not None:
        rc = src.raw
        lists = {
            "images": (rc.images, part.images),
            "annotations": (rc.annotations, part.annotations),
            "categories": (rc.categories, part.categories),
        }
        write_coco_records(path, rc.top, lists, key)
    else:
        with atomic_write(path, "wb") as f:
            f.write(coco_from_columns(subset(src.ds, part), key))


# ---- names and files of the folder writers ---------------------------------------------------------
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


def _image_root(ds: Dataset, image_root: str | Path | None) -> Path | None:
    """The folder the writers link images from: ``image_root`` when given, else the dataset's own."""
    if image_root:
        return Path(image_root)
    return Path(ds.image_root) if ds.image_root else None


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


def _unwritten(ds: Dataset, idx: np.ndarray, known) -> int:
    """Boxes a writer leaves out: those of no image (``idx`` < 0) and those whose category is not in
    ``known``."""
    return int((idx < 0).sum()) + int(sum(1 for c in ds.category_id[idx >= 0] if int(c) not in known))


def _xml_text(s: str) -> str:
    """``s`` without the characters XML 1.0 cannot hold (control characters, lone surrogates)."""
    s = s.encode("utf-8", "replace").decode("utf-8")
    return "".join(ch for ch in s if ch in "\t\n\r" or ord(ch) >= 0x20)


# ---- YOLO and VOC ------------------------------------------------------------------------------------
def write_data_yaml(path: Path, names: list[str], splits: dict[str, str]) -> None:
    """An ultralytics data yaml: image folders relative to the yaml's folder, names as a dict."""
    import yaml

    doc = {**splits, "nc": len(names), "names": dict(enumerate(names))}
    with atomic_write(path) as f:
        f.write(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def yolo_names(ds: Dataset) -> list[str]:
    """Class names in YOLO index order (category id order, as :func:`write_yolo` numbers them)."""
    return [str(ds.cat_name[k]) for k in np.argsort(ds.cat_id, kind="stable")]


def yolo_name(name: str) -> str:
    """``name`` without ``images`` / ``labels`` folders: ``images/train/x.jpg`` -> ``train/x.jpg``, so that
    ultralytics' rule (the last ``images`` in an image path becomes ``labels``) finds the label file.
    A safe name is made canonical first; an unsafe one stays unsafe (and is counted, not linked)."""
    name = str(name)
    canonical = safe_relative(name) if name_problem(name) is None else name.replace("\\", "/")
    return yolo_relative(canonical) or str(name)


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


def write_yolo(
    ds: Dataset, out: str | Path, image_root: str | Path | None = None, category_ids: str | None = None
) -> dict[str, Any]:
    """Write ``out/labels/*.txt`` (``k cx cy w h``, normalised), ``out/classes.txt`` and ``out/images`` links.

    Names lose their ``images`` / ``labels`` folders (:func:`~detkit.datasets.paths.yolo_relative`), so that
    ultralytics finds each image's labels. Class k follows ``category_ids`` (see :func:`class_indexes`).
    Returns counts of what was written."""
    out = Path(out)
    root = _image_root(ds, image_root)
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
    skipped = _unwritten(ds, idx, cls_of)
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


def write_voc(ds: Dataset, out: str | Path, image_root: str | Path | None = None) -> dict[str, Any]:
    """Write ``out/Annotations/*.xml`` (xmin = x, xmax = x + w, ...) and ``out/JPEGImages`` links."""
    out = Path(out)
    root = _image_root(ds, image_root)
    cat_names = ds.category_names()
    names, renamed = safe_names(ds)
    stems = _stems(ds, names)
    idx, rows_of = _rows_by_image(ds)
    skipped = _unwritten(ds, idx, cat_names)
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


def write_folder_part(ds: Dataset, folder: Path, to: str, pairs, copy: bool) -> dict[str, int]:
    """Labels (yolo) or XML (voc) of ``ds`` into ``folder`` (absent or empty), then the image links.

    Returns the link counts (see :func:`link_images`)."""
    if to == "yolo":
        ds.file_name = np.array([yolo_name(f) for f in ds.file_name], dtype=object)
        pairs = [(src, yolo_name(name)) for src, name in pairs]
    ds.image_root = None  # the writers would link from it; links are made here (path-safe, copy option)
    staging = folder / "_part"  # the writer wants a new folder; its files then move up into ``folder``
    folder.mkdir(parents=True, exist_ok=True)
    (write_yolo if to == "yolo" else write_voc)(ds, staging)
    for p in staging.iterdir():
        os.replace(p, folder / p.name)
    staging.rmdir()
    return link_images(pairs, folder / ("images" if to == "yolo" else "JPEGImages"), copy)


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in {**a, **b}}


# ---- entry points ------------------------------------------------------------------------------------
def copy_into_json(out: Path) -> DetkitError:
    """The error of ``copy_images`` with a single-file output (write_one, merge); the CLI names the flag."""
    return DetkitError(
        f"{out}: copy_images=True needs an output folder, not a .json file",
        flags={"copy_images=True": "--copy-images"},
    )


def write_one(src: Source, part: Part, out: Path, to: str, copy_images: bool = False) -> dict[str, Any]:
    """Write one output (filter, sample). ``out`` ending in .json (coco) is a file, else a new folder."""
    if to not in TARGETS:
        raise DetkitError(f"unknown output format '{to}' (choose from {', '.join(TARGETS)})")
    single_json = output_file(out, to) is not None  # the convert output rule: OUT.json, or a folder
    if single_json and copy_images:
        raise copy_into_json(out)
    check_out(out, [src.path, *input_folders(src.ds, src.path)], single_json)
    result = {"out": str(out), "to": to, **part.counts()}
    if single_json:
        write_coco_part(src, part, out, src.image_root)
        return {**result, "files": [str(out)]}
    pairs = image_pairs(src.image_root, src.ds.file_name[part.images])
    with staged_folder(out) as tmp:
        if to == "coco":
            links = link_images(pairs, tmp / "images", True) if copy_images else {}
            write_coco_part(
                src, part, tmp / "annotations.json", tmp / "images" if copy_images else src.image_root
            )
        else:
            sub = subset(src.ds, part)
            links = write_folder_part(sub, tmp, to, pairs, copy_images)
            if to == "yolo":
                write_data_yaml(tmp / "data.yaml", yolo_names(sub), {"train": "images", "val": "images"})
        files = sorted(p.name for p in tmp.iterdir())
    return {**result, "files": files, **links}


def write_split_parts(
    src: Source, parts: dict[str, Part], out: Path, to: str, copy_images: bool = False
) -> dict:
    """Write one output per split into the new folder ``out`` (layouts in the module docstring)."""
    if to not in TARGETS:
        raise DetkitError(f"unknown output format '{to}' (choose from {', '.join(TARGETS)})")
    output_file(out, to, splits=len(parts))  # several splits: a folder, whatever the format
    check_out(out, [src.path, *input_folders(src.ds, src.path)], single_json=False)
    ds = src.ds
    every = np.unique(np.concatenate([p.images for p in parts.values()]))
    links: dict[str, int] = {}
    with staged_folder(out) as tmp:
        if to == "coco":
            if copy_images:
                links = link_images(image_pairs(src.image_root, ds.file_name[every]), tmp / "images", True)
            for name, part in parts.items():
                write_coco_part(
                    src, part, tmp / f"{name}.json", tmp / "images" if copy_images else src.image_root
                )
        elif to == "yolo":
            for name, part in parts.items():
                sub = subset(ds, part)
                pairs = image_pairs(src.image_root, sub.file_name)
                links = _add(links, write_folder_part(sub, tmp / name, "yolo", pairs, copy_images))
            write_data_yaml(tmp / "data.yaml", yolo_names(ds), {n: f"{n}/images" for n in parts})
        else:  # one VOC folder; the splits are ImageSets/Main lists of stems
            sub = subset(ds, Part.of_images(ds, every))
            links = write_folder_part(
                sub, tmp, "voc", image_pairs(src.image_root, sub.file_name), copy_images
            )
            for name, part in parts.items():
                with atomic_write(tmp / "ImageSets" / "Main" / f"{name}.txt") as f:
                    f.writelines(
                        f"{Path(str(n)).with_suffix('').as_posix()}\n" for n in ds.file_name[part.images]
                    )
        files = sorted(p.name for p in tmp.iterdir())
    return {"out": str(out), "to": to, "files": files, **links}


# ---- annotation tools: CVAT for images 1.1, Label Studio JSON, LabelMe ---------------------------------
def _boxes_by_name(ds: Dataset) -> tuple[list[np.ndarray], dict[int, str], int]:
    """Each image's box rows, the category names by id, and how many boxes dangle (not written)."""
    names = ds.category_names()
    idx, rows_of = _rows_by_image(ds)
    keep = [
        np.array([r for r in rows if int(ds.category_id[r]) in names], dtype=np.int64) for rows in rows_of
    ]
    return keep, names, ds.num_annotations - sum(len(k) for k in keep)


def _tool_result(ds: Dataset, fmt: str, out: Path, skipped: int, linked: int = 0, **extra) -> dict[str, Any]:
    return {
        "format": fmt,
        "out": str(out),
        "images": ds.num_images,
        "boxes": ds.num_annotations - skipped,
        "skipped_boxes": skipped,
        "classes": ds.num_categories,
        "images_linked": linked,
        "crowd_as_boxes": int((ds.iscrowd == 1).sum()),
        **extra,
    }


def num(v: float) -> str:
    """The shortest text that reads back as the same number (``10`` for 10.0)."""
    return repr(json_number(v))


def cvat_xml(ds: Dataset) -> bytes:
    """CVAT for images 1.1 XML: labels in category-id order, one ``<box>`` per box (xbr = x + w, ybr = y + h,
    full float precision), the ``split`` column as each image's ``subset``."""
    rows_of, names, _ = _boxes_by_name(ds)
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    task = ET.SubElement(ET.SubElement(root, "meta"), "task")
    ET.SubElement(task, "name").text = _xml_text(Path(ds.source).name or "detkit")
    ET.SubElement(task, "size").text = str(ds.num_images)
    labels = ET.SubElement(task, "labels")
    for c in np.sort(ds.cat_id):
        lab = ET.SubElement(labels, "label")
        ET.SubElement(lab, "name").text = _xml_text(names[int(c)])
        ET.SubElement(lab, "type").text = "rectangle"
        ET.SubElement(lab, "attributes")
    for i in range(ds.num_images):
        attrs = {
            "id": str(i),
            "name": _xml_text(str(ds.file_name[i])),
            "width": num(ds.width[i]),
            "height": num(ds.height[i]),
        }
        if ds.split is not None and ds.split[i]:
            attrs["subset"] = _xml_text(str(ds.split[i]))
        im = ET.SubElement(root, "image", attrs)
        for r in rows_of[i]:
            x, y, w, h = (float(v) for v in ds.bbox[r])
            ET.SubElement(
                im,
                "box",
                {
                    "label": _xml_text(names[int(ds.category_id[r])]),
                    "source": "manual",
                    "occluded": "0",
                    "xtl": num(x),
                    "ytl": num(y),
                    "xbr": num(x + w),
                    "ybr": num(y + h),
                    "z_order": "0",
                },
            )
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def labelstudio_json(ds: Dataset) -> bytes:
    """A Label Studio JSON export: one task per image (``data.image`` = file name), one annotation whose
    ``rectanglelabels`` results hold the boxes in percent (x% = 100 x / W ...). The image size is in each
    result and in the task's ``meta`` (so that images without boxes keep it)."""
    rows_of, names, _ = _boxes_by_name(ds)
    tasks = []
    for i in range(ds.num_images):
        W, H = float(ds.width[i]), float(ds.height[i])
        results = []
        for k, r in enumerate(rows_of[i]):
            x, y, w, h = (float(v) for v in ds.bbox[r])
            results.append(
                {
                    "id": f"{i + 1}_{k + 1}",
                    "type": "rectanglelabels",
                    "from_name": "label",
                    "to_name": "image",
                    "original_width": json_number(W),
                    "original_height": json_number(H),
                    "image_rotation": 0,
                    "value": {
                        "x": 100 * x / W,
                        "y": 100 * y / H,
                        "width": 100 * w / W,
                        "height": 100 * h / H,
                        "rotation": 0,
                        "rectanglelabels": [names[int(ds.category_id[r])]],
                    },
                }
            )
        tasks.append(
            {
                "id": i + 1,
                "data": {"image": str(ds.file_name[i])},
                "meta": {"original_width": json_number(W), "original_height": json_number(H)},
                "annotations": [{"id": i + 1, "result": results, "was_cancelled": False}],
                "predictions": [],
            }
        )
    return msgspec.json.encode(tasks) + b"\n"


def labelme_json(ds: Dataset, i: int, image_path: str, rows: np.ndarray, names: dict[int, str]) -> bytes:
    """One LabelMe file: a ``rectangle`` shape [[x, y], [x + w, y + h]] per box."""
    shapes = []
    for r in rows:
        x, y, w, h = (float(v) for v in ds.bbox[r])
        shapes.append(
            {
                "label": names[int(ds.category_id[r])],
                "points": [[x, y], [x + w, y + h]],
                "group_id": None,
                "description": "",
                "shape_type": "rectangle",
                "flags": {},
            }
        )
    doc = {
        "version": "5.2.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": image_path,
        "imageData": None,
        "imageHeight": json_number(ds.height[i]),
        "imageWidth": json_number(ds.width[i]),
    }
    return msgspec.json.encode(doc) + b"\n"


def write_tool_file(ds: Dataset, out: Path, to: str) -> dict[str, Any]:
    """Write ``ds`` as one CVAT XML or Label Studio JSON file ``out`` (atomically)."""
    _, _, skipped = _boxes_by_name(ds)
    with atomic_write(out, "wb") as f:
        f.write(cvat_xml(ds) if to == "cvat" else labelstudio_json(ds))
    return _tool_result(ds, to, out, skipped)


def write_labelme(ds: Dataset, out: Path, image_root: str | Path | None = None) -> dict[str, Any]:
    """Write the new folder ``out``: ``<name>.json`` per image beside a link to the image (LabelMe keeps them
    side by side; ``imagePath`` is the image's base name). Names are made safe as for YOLO and VOC."""
    root = _image_root(ds, image_root)
    rows_of, names, skipped = _boxes_by_name(ds)
    safe, renamed = safe_names(ds)
    stems = _stems(ds, safe)
    linked = 0
    with new_folder(out) as tmp:
        for i, stem in enumerate(stems):
            _write(tmp, tmp / f"{stem}.json", labelme_json(ds, i, Path(safe[i]).name, rows_of[i], names))
            linked += _link_image(root, str(ds.file_name[i]), tmp / safe[i], tmp)
    return _tool_result(ds, "labelme", out, skipped, linked, **_renamed(renamed))
