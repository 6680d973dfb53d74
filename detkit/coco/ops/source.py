"""A loaded input for the dataset operations: the :class:`Dataset` columns plus, for a COCO json, the
original bytes of every record.

Why the bytes: a split, filter or sample of a COCO file keeps records whole, so copying each kept
record's bytes is both lossless (segmentations, licenses, any extra field) and several times faster
than building and re-encoding Python dicts. msgspec hands out the records as ``msgspec.Raw`` views
into one memory map of the file (one skip-parse pass, no values built).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from detkit.coco.model import Dataset
from detkit.errors import InputError

LIST_KEYS = ("images", "annotations", "categories")


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
    """One input: its dataset, the raw COCO records when it is a COCO json, and how it was given."""

    path: Path
    ds: Dataset
    raw: RawCoco | None = None
    notes: list[str] = field(default_factory=list)

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


def load_source(path: str | Path, format: str | None = None, image_root: str | Path | None = None,
                raw: bool = True, **load_kwargs: Any) -> Source:  # fmt: skip
    """Load ``path`` with :func:`detkit.coco.loaders.load_dataset`; keep the raw records of a COCO json.

    Args:
        path: any input ``load_dataset`` reads.
        format: force the input format.
        image_root: the folder the image file names are relative to, when the loader cannot tell.
        raw: keep the raw COCO records (False when only the columns are needed, e.g. ``draw``).
        **load_kwargs: passed on to ``load_dataset`` when not None (``split``, ``strict``).
    """
    from detkit.coco.loaders import load_dataset

    path = Path(path)
    ds = load_dataset(path, format=format, **{k: v for k, v in load_kwargs.items() if v not in (None, False)})
    if image_root is not None:
        ds.image_root = str(image_root)
    src = Source(path, ds)
    json_path = Path(ds.source) if ds.source else path
    if raw and ds.format == "coco" and json_path.is_file() and json_path.suffix.lower() == ".json":
        rc = read_raw_coco(json_path)
        if (len(rc.images), len(rc.annotations), len(rc.categories)) == (
            ds.num_images, ds.num_annotations, ds.num_categories,
        ):  # fmt: skip
            src.raw = rc
        else:  # the loader left records out: write from the columns (segmentations are not kept)
            src.notes.append(f"{json_path}: some records were skipped while loading; written from the parsed "
                             "fields only (segmentations and extra fields of this file are not kept)")  # fmt: skip
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
        return {"images": int(self.images.size), "boxes": int(self.annotations.size),
                "categories": int(self.categories.size)}  # fmt: skip


def subset(ds: Dataset, part: Part) -> Dataset:
    """The columns of ``part`` as a new :class:`Dataset` (ids unchanged)."""
    i, a, c = part.images, part.annotations, part.categories
    return Dataset(
        image_id=ds.image_id[i], file_name=ds.file_name[i], width=ds.width[i], height=ds.height[i],
        ann_id=ds.ann_id[a], ann_image_id=ds.ann_image_id[a], category_id=ds.category_id[a], bbox=ds.bbox[a],
        area=ds.area[a], iscrowd=ds.iscrowd[a], cat_id=ds.cat_id[c], cat_name=ds.cat_name[c],
        source=ds.source, format=ds.format, image_root=ds.image_root,
        ann_record=None if ds.ann_record is None else ds.ann_record[a], extra=dict(ds.extra),
    )  # fmt: skip
