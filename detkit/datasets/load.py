"""Loaders from COCO json, the course's text format, YOLO datasets (ultralytics data.yaml, Roboflow
exports, label folders), Pascal VOC XML and the annotation tools' exports (CVAT for images 1.1 XML, Label
Studio JSON, LabelMe JSON) into one :class:`~detkit.datasets.model.Dataset`:
:func:`load_dataset` (format and layout detected from the path) and :func:`load_labels` (only what class
counts need).

Unusable input (no images, an unparsable yaml, a split path that does not exist, a malformed COCO json) raises
:class:`~detkit.errors.InputError` naming the file, the record (line number, JSON path, yaml key) and what is
wrong; the CLI prints it as one line and exits 2. A few bad items in a YOLO or VOC dataset (orphan labels,
corrupt images, out-of-range rows) are skipped and listed in ``Dataset.skipped`` — ``strict=True`` raises the
first instead, and :func:`skipped_summary` gives the CLI its one warning line and ``--json`` block. Suspicious
but loadable content (degenerate or out-of-image boxes, dangling ids, duplicates) is loaded as is, for
``detkit coco validate`` to report. Datasets with splits carry the ``split`` column (see
:mod:`detkit.datasets.formats.layouts`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from detkit.console import info, warn
from detkit.datasets.formats.coco import load_coco, load_coco_labels
from detkit.datasets.formats.cvat import load_cvat
from detkit.datasets.formats.labelme import load_labelme
from detkit.datasets.formats.labelstudio import load_labelstudio
from detkit.datasets.formats.layouts import (
    find_yaml,
    normalize_split,
    read_yaml,
    roboflow_coco_files,
    split_folders,
    voc_image_sets,
    yolo_folder_layout,
)
from detkit.datasets.formats.readers import check_file
from detkit.datasets.formats.text import load_text
from detkit.datasets.formats.voc import load_voc
from detkit.datasets.formats.yolo import load_yolo
from detkit.datasets.model import MEMBER_SEP, SPLIT_NAMES, Dataset, Labels, declared_splits_of, overlap_line
from detkit.errors import InputError

__all__ = [
    "FORMATS",
    "coco_json_in",
    "concat_splits",
    "declared_splits",
    "detect_format",
    "load_dataset",
    "load_labels",
    "skipped_summary",
    "warn_skipped",
]

FORMATS = ("coco", "text", "yolo", "voc", "cvat", "labelstudio", "labelme")
TOOL_LOADERS = {"cvat": load_cvat, "labelstudio": load_labelstudio, "labelme": load_labelme}
_SNIFF = 1 << 16  # bytes read to tell JSON and XML formats apart


def sniff_json(path: Path) -> str:
    """coco, labelstudio or labelme, from the first bytes of a .json: Label Studio exports a list of tasks,
    LabelMe an object with ``shapes``; anything else is COCO (whose loader names what is wrong)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError:
        return "coco"
    if re.match(rb"\[\s*[{\]]", head):  # a list of objects (tasks)
        return "labelstudio"
    if re.search(rb'"shapes"\s*:', head) and not re.search(rb'"(images|annotations|categories)"\s*:', head):
        return "labelme"
    return "coco"


def sniff_xml(path: Path) -> str:
    """cvat (root ``<annotations>``, CVAT for images 1.1) or voc (root ``<annotation>``)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF)
    except OSError:
        return "voc"
    return "cvat" if re.search(rb"<annotations[\s>]", head) else "voc"


def _is_summary(path: Path) -> bool:
    """detkit's own record of a command (``summary.json``, ``<name>.summary.json``), never annotations."""
    return path.name == "summary.json" or path.name.endswith(".summary.json")


def _folder_json(p: Path) -> str | None:
    """The format of a folder's .json files: one of any format, or several LabelMe files; None otherwise."""
    tops = sorted(j for j in p.glob("*.json") if not _is_summary(j))
    jsons = tops + sorted(p.glob("annotations/instances_*.json"))
    if len(jsons) == 1:
        return sniff_json(jsons[0])
    first = tops[0] if tops else next((j for j in p.rglob("*.json") if not _is_summary(j)), None)
    if first is not None and sniff_json(first) == "labelme":
        return "labelme"
    return None


def split_files(p: Path) -> dict[str, Path]:
    """``<split>.json`` / ``<split>.xml`` files of a folder, as ``coco convert`` writes a source with splits
    (``OUT/train.json``, ``OUT/val.json``...), by normalised split name (``valid`` -> ``val``); {} unless
    there are two or more and every .json (or .xml) file of the folder names a different split."""
    if not p.is_dir():
        return {}
    for suffix in (".json", ".xml"):
        files = sorted(
            f for f in p.iterdir() if f.suffix.lower() == suffix and f.is_file() and not _is_summary(f)
        )
        names = [normalize_split(f.stem) for f in files]
        if len(files) >= 2 and None not in names and len(set(names)) == len(names):
            found = {n: f for n, f in zip(names, files) if n is not None}
            return {n: found[n] for n in sorted(found, key=_split_order)}
    return {}


def _split_order(name: str) -> tuple[int, str]:
    return (SPLIT_NAMES.index(name) if name in SPLIT_NAMES else len(SPLIT_NAMES), name)


def load_labels(path: str | Path, format: str | None = None, **kwargs: Any) -> Labels | Dataset:
    """Image ids, each box's image and category, and the categories — the fast path for class counts.

    A COCO json file is decoded without boxes, areas or file names (several times faster on large files);
    other formats and layouts are loaded in full (``kwargs`` as for :func:`load_dataset`). Both results have
    the columns :func:`class_table` reads."""
    p = Path(path)
    fmt = format or detect_format(p)
    if fmt == "coco" and p.is_file() and not kwargs.get("split"):
        return load_coco_labels(p)
    return load_dataset(p, format=fmt, **kwargs)


def _coco_jsons(folder: Path) -> list[Path]:
    """The COCO json candidates of a folder: its .json files (not detkit's summaries), else
    ``annotations/instances_*.json``."""
    return sorted(j for j in folder.glob("*.json") if not _is_summary(j)) or sorted(
        folder.glob("annotations/instances_*.json")
    )


def coco_json_in(folder: Path) -> Path:
    """The one COCO json of a folder (the rule of :func:`detect_format`, :func:`load_dataset` and
    ``validate``)."""
    jsons = _coco_jsons(folder)
    if len(jsons) != 1:
        raise InputError(folder, None, "expected one COCO .json in this folder; pass the file itself")
    return jsons[0]


def detect_format(path: str | Path) -> str:
    """Guess the format from the path.

    .json -> coco, labelstudio (a list of tasks) or labelme (an object with ``shapes``); .yaml / .yml ->
    yolo (ultralytics data yaml); .xml -> cvat (root ``<annotations>``) or voc; a folder with a CVAT
    ``annotations.xml`` -> cvat; with Annotations/ or .xml -> voc; with a data.yaml,
    ``train|valid|test/images`` or labels/ -> yolo; ``<split>/_annotations.coco.json`` (a Roboflow COCO
    export) -> coco; one .json -> its format; LabelMe .json files -> labelme; other files -> text.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(p, None, "no such file or folder")
    if not p.is_dir():
        check_file(p)  # a FIFO, a device or a socket is refused here, before anything opens it
    if p.is_file():
        suffix = p.suffix.lower()
        if suffix == ".json":
            return sniff_json(p)
        if suffix == ".xml":
            return sniff_xml(p)
        if suffix in (".yaml", ".yml"):
            return "yolo"
        return "text"
    if files := split_files(p):  # coco convert's one file per split
        first = next(iter(files.values()))
        return sniff_json(first) if first.suffix.lower() == ".json" else sniff_xml(first)
    xmls = sorted(p.glob("*.xml"))
    if (p / "annotations.xml").is_file() or len(xmls) == 1:
        if sniff_xml(p / "annotations.xml" if (p / "annotations.xml").is_file() else xmls[0]) == "cvat":
            return "cvat"
    if (p / "Annotations").is_dir() or xmls:
        return "voc"
    if roboflow_coco_files(p):
        return "coco"
    if find_yaml(p) is not None or split_folders(p) or (p / "labels").is_dir():
        return "yolo"
    if (kind := _folder_json(p)) is not None:  # before the .txt probe: a COCO folder may hold a README.txt
        return kind
    if (p / "images").is_dir() or next(p.rglob("*.txt"), None) is not None:  # images alone: background images
        return "yolo"
    raise InputError(
        p,
        None,
        "cannot tell the annotation format of this folder; name its format",
        flags={"name its format": "pass --format"},
    )


def load_dataset(
    path: str | Path,
    format: str | None = None,
    *,
    split: str | None = None,
    strict: bool = False,
    **kwargs: Any,
) -> Dataset:
    """Load any supported annotation source into a :class:`Dataset`.

    Args:
        path: a COCO json, a course text file, an ultralytics data yaml, a YOLO or Roboflow export folder,
            or a VOC folder/xml.
        format: one of :data:`FORMATS`; detected from the path when None.
        split: keep only this split (``train``, ``val``, ``test``; ``valid`` means ``val``); an error
            when the source has no such split.
        strict: raise the first skipped item (orphan label, corrupt image, bad row) instead of skipping it.
        **kwargs: passed to the loader (``image_root`` for coco, ``names`` for yolo, ``on_error`` for
            text / yolo / voc: report bad records to it and skip them instead of raising).
    """
    p = Path(path)
    fmt = format or detect_format(p)
    if fmt not in FORMATS:
        raise InputError(p, None, f"unknown format '{fmt}' (choose from {', '.join(FORMATS)})")
    if not p.exists():
        raise InputError(p, None, "no such file or folder")
    if split is not None:
        split = normalize_split(split) or split
    if fmt in ("coco", "cvat", "labelstudio") and (files := split_files(p)):
        return _load_split_files(p, fmt, files, split, strict=strict, **kwargs)
    if fmt == "coco":
        if p.is_dir() and (files := roboflow_coco_files(p)):
            return _load_coco_splits(p, files, split, **kwargs)
        if p.is_dir():
            p = coco_json_in(p)
        return _only_split(load_coco(p, **kwargs), p, split)
    if fmt == "yolo":
        return load_yolo(p, strict=strict, split=split, **kwargs)
    if fmt == "voc":
        return load_voc(p, strict=strict, split=split, **kwargs)
    if fmt in TOOL_LOADERS:
        if fmt == "labelstudio" and p.is_dir():
            p = _one_json(p)
        return TOOL_LOADERS[fmt](p, strict=strict, split=split, **kwargs)
    return _only_split(load_text(p, **kwargs), p, split)


def _load_split_files(
    folder: Path, fmt: str, files: dict[str, Path], split: str | None, strict: bool, **kwargs: Any
) -> Dataset:
    """A folder of ``<split>.json`` / ``<split>.xml`` files: each loaded with its own image folder, file
    names made relative to the folder all of them share (none: ``folder``)."""
    import os

    if split is not None:
        if split not in files:
            raise InputError(folder, None, f"no split '{split}' (this folder has {', '.join(files)})")
        files = {split: files[split]}
    parts = []
    for name, f in files.items():
        if (sniff_json(f) if f.suffix.lower() == ".json" else sniff_xml(f)) != fmt:
            raise InputError(f, None, f"not {fmt} like the other split files of {folder}")
        if fmt == "coco":
            kw = {k: v for k, v in kwargs.items() if k != "on_error"}  # typed by the decoder
            ds = load_coco(f, **kw)
            ds.ann_record = np.array([f"{f.name} $.annotations[{i}]" for i in range(ds.num_annotations)])
            parts.append((name, ds))
        else:
            parts.append((name, TOOL_LOADERS[fmt](f, strict=strict, **kwargs)))
    roots = [os.path.abspath(ds.image_root or f.parent) for (_, ds), f in zip(parts, files.values())]
    common = os.path.commonpath(roots)
    for (_, ds), root in zip(parts, roots):
        if (rel := os.path.relpath(root, common)) != ".":
            ds.file_name = np.array([str(Path(rel) / str(n)) for n in ds.file_name], dtype=object)
    return _merge_shared(concat_splits(parts, source=str(folder), image_root=common))


def _merge_shared(ds: Dataset) -> Dataset:
    """One row per image that several split files hold with the same size and boxes (``coco convert`` of a
    data yaml whose train and val are the same folder writes both): its split is its memberships
    (``train+val``), as a data yaml's shared images are, so it is counted once. Copies that differ stay
    apart (the split overlap is then in validate's leak checks)."""
    if ds.split is None or len(set(ds.file_name.tolist())) == ds.num_images:
        return ds
    idx = ds.image_index()
    order = np.argsort(idx, kind="stable")
    rows = np.arange(ds.num_images)
    lo, hi = np.searchsorted(idx[order], rows), np.searchsorted(idx[order], rows, side="right")

    def content(r: int) -> tuple:
        a = order[lo[r] : hi[r]]
        boxes = sorted(zip(ds.category_id[a].tolist(), map(tuple, ds.bbox[a].tolist())))
        return float(ds.width[r]), float(ds.height[r]), boxes

    split, first, keep = ds.split.copy(), {}, np.ones(ds.num_images, dtype=bool)
    for r, name in enumerate(ds.file_name.tolist()):
        f = first.setdefault(name, r)
        if f != r and content(f) == content(r):
            split[f], keep[r] = f"{split[f]}{MEMBER_SEP}{split[r]}", False
    if keep.all():
        return ds
    ds.split = split
    return ds.subset_images(ds.image_id[keep])


def _one_json(p: Path) -> Path:
    jsons = sorted(j for j in p.glob("*.json") if not _is_summary(j))
    if len(jsons) != 1:
        raise InputError(p, None, "expected one .json export in this folder; pass the file itself")
    return jsons[0]


def _only_split(ds: Dataset, path: Path, split: str | None) -> Dataset:
    if split is not None:
        raise InputError(
            path,
            None,
            f"split {split}: this {ds.format} file has no splits",
            flags={f": split {split}: ": f": --split {split}: "},  # after the path: a path may hold "split "
        )
    return ds


def _load_coco_splits(folder: Path, files: dict[str, Path], split: str | None, **kwargs: Any) -> Dataset:
    """A Roboflow COCO export: one json per split, images beside it; file names become ``<split>/<name>``."""
    if split is not None:
        if split not in files:
            raise InputError(folder, None, f"no split '{split}' (this export has {', '.join(files)})")
        files = {split: files[split]}
    kwargs.pop("on_error", None)  # COCO json records are typed by the decoder (validate reads them apart)
    parts = []
    for name, f in files.items():
        ds = load_coco(f, image_root=str(f.parent), **kwargs)
        prefix = f.parent.relative_to(folder)
        ds.file_name = np.array([str(prefix / str(n)) for n in ds.file_name], dtype=object)
        parts.append((name, ds))
    return concat_splits(parts, source=str(folder), image_root=str(folder))


def concat_splits(parts: list[tuple[str, Dataset]], source: str, image_root: str | None) -> Dataset:
    """One dataset from per-split datasets: ids offset to stay unique, categories united by id, ``split`` set,
    each box's record (``ann_record``: ``train.xml <image name="a.jpg"> <box> #2``) kept for messages.

    A category id that two parts name differently is an InputError (the splits disagree on the classes).
    """
    if len(parts) == 1:
        name, ds = parts[0]
        ds.split = np.full(ds.num_images, name, dtype=object) if name else None
        ds.source, ds.image_root = source, image_root
        return ds
    cats: dict[int, str] = {}
    for _name, ds in parts:
        for i, n in ds.category_names().items():
            if cats.setdefault(i, n) != n:
                raise InputError(
                    ds.source, f"category {i}", f"named '{n}' here but '{cats[i]}' in another split"
                )
    img_off = ann_off = 0
    cols: dict[str, list[np.ndarray]] = {
        k: [] for k in ("iid", "fn", "w", "h", "aid", "aiid", "cid", "bb", "ar", "cr", "sp")
    }
    for name, ds in parts:
        cols["iid"].append(ds.image_id + img_off)
        cols["aiid"].append(ds.ann_image_id + img_off)
        cols["aid"].append(ds.ann_id + ann_off)
        for k, v in (
            ("fn", ds.file_name),
            ("w", ds.width),
            ("h", ds.height),
            ("cid", ds.category_id),
            ("bb", ds.bbox),
            ("ar", ds.area),
            ("cr", ds.iscrowd),
        ):
            cols[k].append(v)
        cols["sp"].append(np.full(ds.num_images, name, dtype=object))
        # the next split's ids follow this one's largest
        img_off = int((ds.image_id + img_off).max()) + 1 if ds.num_images else img_off
        ann_off = int((ds.ann_id + ann_off).max()) + 1 if ds.num_annotations else ann_off
    cat_ids = np.array(sorted(cats), dtype=np.int64)
    c = {k: np.concatenate(v) for k, v in cols.items()}
    return Dataset(
        image_id=c["iid"],
        file_name=c["fn"],
        width=c["w"],
        height=c["h"],
        ann_id=c["aid"],
        ann_image_id=c["aiid"],
        category_id=c["cid"],
        bbox=c["bb"].reshape(-1, 4),
        area=c["ar"],
        iscrowd=c["cr"],
        cat_id=cat_ids,
        cat_name=np.array([cats[int(i)] for i in cat_ids], dtype=object),
        source=source,
        format=parts[0][1].format,
        image_root=image_root,
        split=c["sp"],
        skipped=[s for _, ds in parts for s in ds.skipped],
        ann_record=np.concatenate([_records(ds) for _, ds in parts])
        if any(ds.ann_record is not None for _, ds in parts)
        else None,
        missing={
            k: np.concatenate([ds.missing.get(k, np.zeros(ds.num_annotations, bool)) for _, ds in parts])
            for k in {k for _, ds in parts for k in ds.missing}
        },
    )


def _records(ds: Dataset) -> np.ndarray:
    """Each box's record, as :meth:`Dataset.record` names it."""
    if ds.ann_record is not None:
        return np.asarray(ds.ann_record, dtype=object)
    return np.array([ds.record(i) for i in range(ds.num_annotations)], dtype=object)


def skipped_summary(ds: Dataset) -> dict[str, Any] | None:
    """What the loader left out or repaired, for the CLI: counts by code, the first path, a one-line message.

    Returns None when nothing was skipped. ``message`` is the warning line (``skipped 2 items: ...``);
    ``notes`` the line for repairs that lost nothing (polygons read as boxes, background images).
    """
    if not ds.skipped:
        return None
    lost = [s for s in ds.skipped if not s.kept]
    kept = [s for s in ds.skipped if s.kept]

    def line(items) -> str | None:
        if not items:
            return None
        by: dict[str, int] = {}
        for s in items:
            by[s.code] = by.get(s.code, 0) + 1
        first = items[0]
        where = f"{first.path}" + (f":{first.where}" if first.where else "")
        return ", ".join(f"{n:,} {code}" for code, n in by.items()) + f" (first: {where}: {first.what})"

    by_code: dict[str, int] = {}
    for s in ds.skipped:
        by_code[s.code] = by_code.get(s.code, 0) + 1
    return {
        "count": len(lost),
        "notes_count": len(kept),
        "by_code": by_code,
        "first": lost[0].as_dict() if lost else None,
        "message": (f"skipped {len(lost):,} item(s): " + line(lost)) if lost else None,
        "notes": line(kept),
        "items": [s.as_dict() for s in ds.skipped[:20]],
    }


def warn_skipped(ds: Dataset, hint: str = "") -> None:
    """The one stderr warning line (count and first path) for what was skipped, a note for repairs, and
    one warning per pair of splits that share images (:meth:`Dataset.split_overlaps`).

    Args:
        ds: a dataset from :func:`load_dataset`.
        hint: appended after ``; `` (the CLI names its flags here: the library names none).
    """

    if isinstance(ds, Dataset) and ds.split is not None:
        for line in ds.split_overlaps():
            warn(f"{ds.source}: {line}")
    doc = skipped_summary(ds)
    if doc is not None:
        if doc["message"]:
            warn(f"{doc['message']}" + (f"; {hint}" if hint else ""))
        if doc["notes"]:
            info(f"note: {doc['notes']}")


def shared_images_line(a: Dataset, b: Dataset, names: tuple[str, str] = ("train", "val")) -> str | None:
    """The :func:`~detkit.datasets.model.overlap_line` for two datasets loaded apart (``yolo train``'s
    training and validation sets) that name the same image files; None when they share none."""
    import os

    def files(ds: Dataset) -> set[str]:
        root = ds.image_root or ""
        return {os.path.normpath(os.path.join(root, str(f))) for f in ds.file_name}

    fa, fb = files(a), files(b)
    both = len(fa & fb)
    return overlap_line(names[0], names[1], both, len(fa), len(fb)) if both else None


def declared_splits(path: str | Path, format: str | None = None) -> list[str]:
    """The splits a source declares, without reading labels or images ([] when it has none).

    A data yaml's train / val / test keys, a Roboflow export's split folders, ``images/<split>`` folders,
    VOC ``ImageSets/Main`` lists, CVAT ``subset`` attributes, the ``<split>.json`` / ``<split>.xml`` files
    or LabelMe ``<split>/`` folders that ``coco convert`` writes. Unreadable sources give [] (loading them
    names the problem).
    """

    p = Path(path)
    try:
        fmt = format or detect_format(p)
        if fmt in ("coco", "cvat", "labelstudio") and (files := split_files(p)):  # OUT/<split>.json
            return list(files)
        if fmt == "labelme":  # split folders, as labelme's loader reads them
            return load_labelme(p).split_names()
        if fmt == "coco":
            return [s for s in roboflow_coco_files(p) if s] if p.is_dir() else []
        if fmt == "voc":
            root = p if (p / "Annotations").is_dir() else p.parent
            return list(voc_image_sets(root)) if p.is_dir() else []
        if fmt == "cvat":  # the images' subset attributes: read the XML
            return load_cvat(p).split_names()
        if fmt == "yolo":
            y = p if p.is_file() else find_yaml(p)
            if y is not None:
                doc = read_yaml(y)
                return declared_splits_of(doc)
            return [s.name for s in yolo_folder_layout(p).splits if s.name]
    except InputError:
        return []
    return []
