"""A loaded input for the dataset operations: the :class:`Dataset` columns plus, for a COCO json or a
Roboflow COCO export folder, the original bytes of every record.

Why the bytes: a split, filter or sample of a COCO file keeps records whole, so copying each kept
record's bytes is both lossless (segmentations, licenses, any extra field) and several times faster
than building and re-encoding Python dicts. msgspec hands out the records as ``msgspec.Raw`` views
into one memory map of the file (one skip-parse pass, no values built).

A Roboflow COCO export (``<split>/_annotations.coco.json``, see :mod:`detkit.datasets.formats.layouts`) is
read as one dataset: file names gain their split folder and the later splits' image and box ids move past the
earlier ones' (:func:`detkit.datasets.load.concat_splits`). Its raw records are the files' records with
exactly those fields re-encoded from the columns, so the folder is as lossless as a single file."""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from detkit.datasets.formats.coco import CocoCat, Int64, decode_file, recorded_image_root
from detkit.datasets.formats.layouts import normalize_split, roboflow_coco_files
from detkit.datasets.formats.readers import check_image_sizes
from detkit.datasets.load import load_dataset, sniff_json
from detkit.datasets.model import Dataset, default_image_root
from detkit.errors import InputError

LIST_KEYS = ("images", "annotations", "categories")


class _IdImage(msgspec.Struct, gc=False):
    id: Int64
    width: float
    height: float
    file_name: str = ""


class _IdAnn(msgspec.Struct, gc=False):
    id: Int64
    image_id: Int64
    category_id: Int64


class _IdOnly(msgspec.Struct, gc=False):
    id: Int64


class _IdFile(msgspec.Struct):
    """What an operation that never reads a box needs: ids, image sizes and names, category names."""

    images: list[_IdImage]
    annotations: list[_IdAnn] = []
    categories: list[CocoCat] = []
    detkit: Any = None


_ID_DECODER = msgspec.json.Decoder(_IdFile)


class _RawFile(msgspec.Struct, forbid_unknown_fields=True):
    """The usual top level of a COCO file; another key makes the decode fall back to a plain dict."""

    images: list[msgspec.Raw]
    annotations: list[msgspec.Raw] = []
    categories: list[msgspec.Raw] = []
    info: msgspec.Raw = msgspec.Raw()  # (an empty Raw = absent; msgspec takes no Raw in a union)
    licenses: msgspec.Raw = msgspec.Raw()
    detkit: msgspec.Raw = msgspec.Raw()


@dataclass
class RawCoco:
    """Each record of a COCO json as its original bytes (views into a memory map kept open here).

    Args:
        top: every other top-level key (info, licenses, ...) -> its raw value, in file order.
        images / annotations / categories: one raw record per element, in file order.
    """

    top: dict[str, Any]
    images: list[msgspec.Raw]
    annotations: list[msgspec.Raw]
    categories: list[msgspec.Raw]
    buffer: Any = None  # the mmap (or bytes) the records point into


@dataclass
class Source:
    """One input: its dataset, the raw COCO records when it is a COCO json or a Roboflow COCO export, and
    how it was given."""

    path: Path
    ds: Dataset
    raw: RawCoco | None = None
    notes: list[str] = field(default_factory=list)
    boxes: bool = True  # False: read without boxes (bbox and area are NaN; the raw records hold them)

    @property
    def format(self) -> str:
        return self.ds.format

    @property
    def image_root(self) -> Path | None:
        return Path(self.ds.image_root) if self.ds.image_root else None


def read_raw_coco(path: Path) -> RawCoco:
    """Split a COCO json into raw records without decoding any value (one pass over a memory map)."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        buf: Any = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    try:
        doc = msgspec.json.decode(buf, type=_RawFile)
        top = {k: getattr(doc, k) for k in ("info", "licenses", "detkit") if len(getattr(doc, k))}
        return RawCoco(top, doc.images, doc.annotations, doc.categories, buf)
    except msgspec.ValidationError:  # another top-level key: keep every key, in order
        pass
    except msgspec.DecodeError as exc:
        raise InputError(path, None, f"malformed JSON ({exc})") from None
    doc = msgspec.json.decode(buf, type=dict[str, msgspec.Raw])
    lists = {k: msgspec.json.decode(doc.pop(k, b"[]"), type=list[msgspec.Raw]) for k in LIST_KEYS}
    return RawCoco(doc, lists["images"], lists["annotations"], lists["categories"], buf)


def _patched(raw: Any, changes: dict[str, Any]) -> Any:
    """``raw`` with ``changes`` applied (key order kept), or ``raw`` itself when nothing changes."""
    d = msgspec.json.decode(raw)
    if all(k in d and d[k] == v and type(d[k]) is type(v) for k, v in changes.items()):
        return raw
    d.update(changes)
    return msgspec.json.encode(d)


def read_raw_roboflow(files: dict[str, Path], ds: Dataset) -> RawCoco | None:
    """The raw records of a Roboflow export's split files as ``ds`` (their concatenation) numbers them.

    Image records get ``ds``'s id and (split-prefixed) file name, box records of the later splits its
    id and image id; categories are each id's first record, in id order. Every other byte is the
    file's. None when the files do not hold exactly the rows of ``ds`` (the loader left some out).
    """
    raws = [read_raw_coco(f) for f in files.values()]
    counts = [sum(len(getattr(r, k)) for r in raws) for k in LIST_KEYS]
    if counts[:2] != [ds.num_images, ds.num_annotations]:
        return None
    images, anns = [], []
    for k, rc in enumerate(raws):
        i0, a0 = len(images), len(anns)
        images += [
            _patched(r, {"id": int(ds.image_id[i0 + j]), "file_name": str(ds.file_name[i0 + j])})
            for j, r in enumerate(rc.images)
        ]
        anns += (
            rc.annotations
            if k == 0
            else [
                _patched(r, {"id": int(ds.ann_id[a0 + j]), "image_id": int(ds.ann_image_id[a0 + j])})
                for j, r in enumerate(rc.annotations)
            ]
        )
    first: dict[int, Any] = {}
    for rc in raws:
        for r in rc.categories:
            first.setdefault(msgspec.json.decode(r, type=_IdOnly).id, r)
    cats = raws[0].categories if len(raws) == 1 else [first[c] for c in sorted(first)]
    if len(cats) != ds.num_categories:
        return None
    top = {k: v for k, v in raws[0].top.items() if k != "detkit"}  # its image_root was the split folder
    return RawCoco(top, images, anns, cats, [r.buffer for r in raws])


def load_ids(path: Path) -> Dataset:
    """A COCO json's ids, image sizes and names and category names, without boxes (bbox, area NaN).

    For operations that copy records without reading a box (split, sample, merge, filter by class):
    building a million box tuples is a third of a full load. Errors are :func:`load_coco`'s.
    """
    doc = decode_file(path, _ID_DECODER)
    imgs, anns, cats = doc.images, doc.annotations, doc.categories
    col = lambda items, name, dtype: np.fromiter(map(attrgetter(name), items), dtype, len(items))
    width, height = col(imgs, "width", np.float64), col(imgs, "height", np.float64)
    check_image_sizes(path, width, height, lambda i: f"$.images[{i}]")
    n = len(anns)
    return Dataset(
        image_id=col(imgs, "id", np.int64),
        file_name=np.array([i.file_name for i in imgs], dtype=object),
        width=width,
        height=height,
        ann_id=col(anns, "id", np.int64),
        ann_image_id=col(anns, "image_id", np.int64),
        category_id=col(anns, "category_id", np.int64),
        bbox=np.full((n, 4), np.nan),
        area=np.full(n, np.nan),
        iscrowd=np.zeros(n, dtype=np.int64),
        cat_id=col(cats, "id", np.int64),
        cat_name=np.array([c.name for c in cats], dtype=object),
        source=str(path),
        format="coco",
        image_root=recorded_image_root(path, doc.detkit) or default_image_root(path),
    )


def load_source(
    path: str | Path,
    format: str | None = None,
    image_root: str | Path | None = None,
    raw: bool = True,
    boxes: bool = True,
    **load_kwargs: Any,
) -> Source:
    """Load ``path`` with :func:`detkit.datasets.load.load_dataset`; keep the raw records of a COCO json
    or a Roboflow COCO export folder (:func:`read_raw_roboflow`).

    Args:
        path: any input ``load_dataset`` reads.
        format: force the input format.
        image_root: the folder the image file names are relative to, when the loader cannot tell.
        raw: keep the raw COCO records (False when only the columns are needed, e.g. ``draw``).
        boxes: False when the operation never reads a box and writes COCO: a COCO json file is then
            read by :func:`load_ids` (its raw records still carry every box).
        **load_kwargs: passed on to ``load_dataset`` when not None (``split``, ``strict``).
    """

    path = Path(path)
    kwargs = {k: v for k, v in load_kwargs.items() if v not in (None, False)}
    light = raw and not boxes and not kwargs.get("split") and format in (None, "coco")
    if light and path.is_file() and path.suffix.lower() == ".json" and sniff_json(path) == "coco":
        ds = load_ids(path)
    else:
        ds, light = load_dataset(path, format=format, **kwargs), False
    if image_root is not None:
        ds.image_root = str(image_root)
    src = Source(path, ds, boxes=not light)
    json_path = Path(ds.source) if ds.source else path
    if raw and ds.format == "coco" and json_path.is_dir() and (files := roboflow_coco_files(json_path)):
        split = kwargs.get("split")
        if split is not None:
            files = {k: v for k, v in files.items() if k == (normalize_split(split) or split)}
        src.raw = read_raw_roboflow(files, ds)
        if src.raw is None:
            src.notes.append(
                f"{json_path}: some records were skipped while loading; written from the parsed "
                "fields only (segmentations and extra fields of this export are not kept)"
            )
    elif raw and ds.format == "coco" and json_path.is_dir():  # OUT/<split>.json of coco convert
        src.notes.append(
            f"{json_path}: one json per split, written from the parsed fields (segmentations and extra "
            "fields are not kept)"
        )
    elif raw and ds.format == "coco" and json_path.is_file() and json_path.suffix.lower() == ".json":
        rc = read_raw_coco(json_path)
        if (len(rc.images), len(rc.annotations), len(rc.categories)) == (
            ds.num_images,
            ds.num_annotations,
            ds.num_categories,
        ):
            src.raw = rc
        elif light:  # the file changed between the two reads: read it whole
            return load_source(path, format, image_root, raw, True, **load_kwargs)
        else:  # the loader left records out: write from the columns (segmentations are not kept)
            src.notes.append(
                f"{json_path}: some records were skipped while loading; written from the parsed "
                "fields only (segmentations and extra fields of this file are not kept)"
            )
    return src


def rows_of_images(ds: Dataset, image_rows: np.ndarray) -> np.ndarray:
    """Annotation rows (in file order) whose image is one of ``image_rows``."""
    keep = np.zeros(ds.num_images + 1, dtype=bool)
    keep[image_rows] = True
    idx = ds.image_index()
    return np.flatnonzero(keep[idx])  # idx -1 (dangling) reads keep[-1], the always-False spare slot


@dataclass
class Part:
    """What one output holds: rows of the source's image, annotation and category tables, in order."""

    images: np.ndarray
    annotations: np.ndarray
    categories: np.ndarray

    @classmethod
    def of_images(cls, ds: Dataset, image_rows: np.ndarray) -> Part:
        """The given images with all their boxes, all categories."""
        image_rows = np.sort(np.asarray(image_rows, dtype=np.int64))
        return cls(image_rows, rows_of_images(ds, image_rows), np.arange(ds.num_categories))

    def counts(self) -> dict[str, int]:
        return {
            "images": int(self.images.size),
            "boxes": int(self.annotations.size),
            "categories": int(self.categories.size),
        }


def subset(ds: Dataset, part: Part) -> Dataset:
    """The columns of ``part`` as a new :class:`Dataset` (ids unchanged)."""
    i, a, c = part.images, part.annotations, part.categories
    return Dataset(
        image_id=ds.image_id[i],
        file_name=ds.file_name[i],
        width=ds.width[i],
        height=ds.height[i],
        ann_id=ds.ann_id[a],
        ann_image_id=ds.ann_image_id[a],
        category_id=ds.category_id[a],
        bbox=ds.bbox[a],
        area=ds.area[a],
        iscrowd=ds.iscrowd[a],
        cat_id=ds.cat_id[c],
        cat_name=ds.cat_name[c],
        source=ds.source,
        format=ds.format,
        image_root=ds.image_root,
        ann_record=None if ds.ann_record is None else ds.ann_record[a],
        extra=dict(ds.extra),
        raw=None if ds.raw is None else ds.raw.take(i, a, c),
    )
