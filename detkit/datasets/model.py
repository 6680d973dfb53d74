"""The one in-memory annotation model every detkit command works on.

A :class:`Dataset` is three column tables (numpy arrays, not lists of dicts):

    images       id, file_name, width, height
    annotations  id, image_id, category_id, bbox (N, 4) as x, y, w, h in pixels from the top-left
                 corner (COCO's convention, whatever the source format), area, iscrowd
    categories   id, name

plus, for error messages, ``ann_record``: where each annotation came from in its source (a line
number, a JSON index or a file name), and ``missing``: which optional fields were absent in the source
(``{"area": bool mask, "iscrowd": bool mask}``) so that ``validate`` can report them after the
loader filled the defaults (area = w·h, iscrowd = 0).

Datasets with splits (an ultralytics data.yaml, a Roboflow export, VOC ``ImageSets/Main``) carry
``split``: the split name of each image (``train``, ``val``, ``test``...; None when the source has no
splits). An image that two splits name (``coco128.yaml``: train and val the same folder) is one row whose
``split`` is its memberships joined by ``+`` (``train+val``): it is counted once, and
:meth:`Dataset.select_split` finds it in each; :meth:`Dataset.split_overlaps` says which splits share
images. What a lenient loader left out (an orphan label
file, a corrupt image, an out-of-range row) or repaired (a polygon row read as its box) is in
``skipped``, one :class:`Skipped` each, for the CLI to count and ``validate`` to report.

A dataset read from a COCO json by ``validate`` carries ``raw``, a :class:`RawProvenance`: the index of
each row's record in that file and what the reader saw there, for ``--fix`` to copy records verbatim.
``extra`` holds only the source format's leftovers (COCO ``info`` and ``licenses``).

Helpers shared with the writers and the evaluator: :func:`lookup` (row of each id), :func:`json_number`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# COCO's 80 detection classes, in their usual order, with their official (non-contiguous) ids.
COCO80_NAMES: tuple[str, ...] = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)
COCO80_IDS: tuple[int, ...] = (
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    13,
    14,
    15,
    16,
    17,
    18,
    19,
    20,
    21,
    22,
    23,
    24,
    25,
    27,
    28,
    31,
    32,
    33,
    34,
    35,
    36,
    37,
    38,
    39,
    40,
    41,
    42,
    43,
    44,
    46,
    47,
    48,
    49,
    50,
    51,
    52,
    53,
    54,
    55,
    56,
    57,
    58,
    59,
    60,
    61,
    62,
    63,
    64,
    65,
    67,
    70,
    72,
    73,
    74,
    75,
    76,
    77,
    78,
    79,
    80,
    81,
    82,
    84,
    85,
    86,
    87,
    88,
    89,
    90,
)


SPLIT_NAMES = ("train", "val", "test")  # the names every layout's splits map onto, in this order
MEMBER_SEP = "+"  # an image in several splits: "train+val"


def declared_splits_of(doc: dict[str, Any]) -> list[str]:
    """The splits a data yaml declares: its ``train`` / ``val`` / ``test`` keys that hold a value."""
    return [k for k in SPLIT_NAMES if doc.get(k) not in (None, "", [])]


def overlap_line(a: str, b: str, both: int, n_a: int, n_b: int) -> str:
    """The one warning for images two splits share: what it means for the numbers measured on them."""
    train_val = {a, b} == {"train", "val"}
    what = "validation measures training fit" if train_val else f"{b} is not independent of {a}"
    if both == n_a == n_b:
        return f"{a} and {b} are the same {both:,} images: {what}"
    are = "image is" if both == 1 else "images are"
    return f"{both:,} {are} in both {a} ({n_a:,}) and {b} ({n_b:,}): {what} on those"


@dataclass(frozen=True)
class Skipped:
    """One item a lenient loader left out, or used after a repair (``kept``, e.g. a polygon row as its box).

    Args:
        code: the finding code ``validate`` reports it under (see :mod:`detkit.datasets.checks.findings`).
        path: the file it is about.
        where: the record in that file (``line 3``), or None for the whole file.
        what: what is wrong, in a few words.
        kept: True when the item was used anyway (a note, not a loss).
    """

    code: str
    path: str
    where: str | None
    what: str
    kept: bool = False

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"code": self.code, "path": self.path, "what": self.what}
        if self.where:
            d["where"] = self.where
        if self.kept:
            d["kept"] = True
        return d


@dataclass
class RawProvenance:
    """Where each row of a dataset read from a COCO json came from in that file (set by
    :mod:`detkit.datasets.checks.raw`, read by ``validate`` and ``--fix``).

    Args:
        raw_index: (N,) int64, each annotation row's index in the file's ``annotations`` array.
        image_raw_index: (I,) int64, each image row's index in ``images``.
        category_raw_index: (C,) int64, each category row's index in ``categories``.
        bad_polygon_rows: annotation rows whose segmentation has a bad polygon (what ``--fix`` repairs).
        decode_changes: what the tolerant decoder repaired (re-encoded UTF-16 text, lone surrogates), as
            ``--fix`` changes (action, record, before, after).
        bad_top_keys: top-level keys of the wrong type (``info`` not an object...): ``--fix`` drops them.
    """

    raw_index: np.ndarray
    image_raw_index: np.ndarray
    category_raw_index: np.ndarray
    bad_polygon_rows: list[int] = field(default_factory=list)
    decode_changes: list[dict[str, Any]] = field(default_factory=list)
    bad_top_keys: list[str] = field(default_factory=list)

    def take(self, images: np.ndarray, annotations: np.ndarray, categories: np.ndarray) -> RawProvenance:
        """The provenance of the dataset made of these image, annotation and category rows (index arrays)."""
        bad = np.flatnonzero(np.isin(annotations, np.asarray(self.bad_polygon_rows, dtype=np.int64)))
        return RawProvenance(
            self.raw_index[annotations],
            self.image_raw_index[images],
            self.category_raw_index[categories],
            bad.tolist(),
            list(self.decode_changes),
            list(self.bad_top_keys),
        )


@dataclass
class Dataset:
    """Columnar detection annotations (see the module docstring)."""

    image_id: np.ndarray  # (I,) int64
    file_name: np.ndarray  # (I,) object (str)
    width: np.ndarray  # (I,) float64
    height: np.ndarray  # (I,) float64
    ann_id: np.ndarray  # (N,) int64
    ann_image_id: np.ndarray  # (N,) int64
    category_id: np.ndarray  # (N,) int64
    bbox: np.ndarray  # (N, 4) float64, x y w h pixels, top-left
    area: np.ndarray  # (N,) float64
    iscrowd: np.ndarray  # (N,) int64
    cat_id: np.ndarray  # (C,) int64
    cat_name: np.ndarray  # (C,) object (str)
    source: str = ""
    format: str = "coco"
    image_root: str | None = None  # folder the file_names are relative to, when known
    ann_record: np.ndarray | None = None  # (N,) object: where each annotation came from
    missing: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # format-specific leftovers (e.g. COCO info)
    split: np.ndarray | None = None  # (I,) object (str): each image's split; None when there are none
    skipped: list[Skipped] = field(default_factory=list)  # what a lenient loader left out or repaired
    raw: RawProvenance | None = None  # each row's record in the source COCO json (validate's reader)

    # ---- sizes -------------------------------------------------------------------------------
    @property
    def num_images(self) -> int:
        return int(self.image_id.shape[0])

    @property
    def num_annotations(self) -> int:
        return int(self.ann_id.shape[0])

    @property
    def num_categories(self) -> int:
        return int(self.cat_id.shape[0])

    def __repr__(self) -> str:
        return (
            f"Dataset({self.format} {self.source!r}: {self.num_images} images, "
            f"{self.num_annotations} annotations, {self.num_categories} categories)"
        )

    # ---- joins -------------------------------------------------------------------------------
    def image_index(self) -> np.ndarray:
        """Row in the image table of each annotation's image; -1 where the image_id dangles."""
        return lookup(self.image_id, self.ann_image_id)

    def category_index(self) -> np.ndarray:
        """Row in the category table of each annotation's category; -1 where the id dangles."""
        return lookup(self.cat_id, self.category_id)

    def category_names(self) -> dict[int, str]:
        return {int(i): str(n) for i, n in zip(self.cat_id, self.cat_name)}

    def split_names(self) -> list[str]:
        """The splits present, train / val / test first, then the others in sorted order ([] when none)."""
        if self.split is None:
            return []
        present = {m for s in set(self.split.tolist()) for m in str(s).split(MEMBER_SEP)}
        return [s for s in SPLIT_NAMES if s in present] + sorted(present - set(SPLIT_NAMES))

    def split_mask(self, name: str) -> np.ndarray:
        """(I,) bool: the images of split ``name`` (an image of ``train+val`` is in both)."""
        if self.split is None:
            return np.zeros(self.num_images, dtype=bool)
        mask = np.zeros(self.num_images, dtype=bool)
        for s in set(self.split.tolist()):  # (a few memberships: a comparison of the column per each)
            if name in str(s).split(MEMBER_SEP):
                mask |= self.split == s
        return mask

    def select_split(self, name: str) -> Dataset:
        """Only the images (and their boxes) of split ``name``; ``split`` stays a column."""
        if self.split is None:
            return self
        return self.subset_images(self.image_id[self.split_mask(name)])

    def split_overlaps(self) -> list[str]:
        """One :func:`overlap_line` per pair of splits that share images ([] when none do)."""
        names = self.split_names()
        masks = {n: self.split_mask(n) for n in names}
        return [
            overlap_line(a, b, int((masks[a] & masks[b]).sum()), int(masks[a].sum()), int(masks[b].sum()))
            for i, a in enumerate(names)
            for b in names[i + 1 :]
            if (masks[a] & masks[b]).any()
        ]

    def record(self, i: int) -> str:
        """Where annotation row ``i`` came from, for messages (e.g. ``line 12``, ``$.annotations[3]``)."""
        if self.ann_record is not None:
            return str(self.ann_record[i])
        return f"$.annotations[{i}]"

    def normalized_wh(self) -> np.ndarray:
        """(N, 2) box width/height divided by their image's width/height (dangling ids -> NaN)."""
        idx = self.image_index()
        ok = idx >= 0
        wh = np.full((self.num_annotations, 2), np.nan)
        wh[ok, 0] = self.bbox[ok, 2] / self.width[idx[ok]]
        wh[ok, 1] = self.bbox[ok, 3] / self.height[idx[ok]]
        return wh

    # ---- views -------------------------------------------------------------------------------
    def images_df(self):
        import pandas as pd

        cols = {"id": self.image_id, "file_name": self.file_name, "width": self.width, "height": self.height}
        return pd.DataFrame(cols | ({"split": self.split} if self.split is not None else {}))

    def annotations_df(self):
        import pandas as pd

        x, y, w, h = self.bbox.T
        return pd.DataFrame(
            {
                "id": self.ann_id,
                "image_id": self.ann_image_id,
                "category_id": self.category_id,
                "x": x,
                "y": y,
                "w": w,
                "h": h,
                "area": self.area,
                "iscrowd": self.iscrowd,
            }
        )

    def categories_df(self):
        import pandas as pd

        return pd.DataFrame({"id": self.cat_id, "name": self.cat_name})

    def to_coco_dict(self) -> dict[str, Any]:
        """The dataset as a COCO instances dict (boxes as [x, y, w, h] floats)."""
        info = self.extra.get("info") or {"description": f"converted by detkit from {self.source}"}
        return {
            "info": info,
            "licenses": self.extra.get("licenses", []),
            "images": [
                {"id": int(i), "file_name": str(f), "width": json_number(w), "height": json_number(h)}
                for i, f, w, h in zip(self.image_id, self.file_name, self.width, self.height)
            ],
            "annotations": [
                {
                    "id": int(a),
                    "image_id": int(im),
                    "category_id": int(c),
                    "bbox": [json_number(v) for v in b],
                    "area": json_number(ar),
                    "iscrowd": int(cr),
                }
                for a, im, c, b, ar, cr in zip(
                    self.ann_id, self.ann_image_id, self.category_id, self.bbox, self.area, self.iscrowd
                )
            ],
            "categories": [
                {"id": int(i), "name": str(n), "supercategory": ""}
                for i, n in zip(self.cat_id, self.cat_name)
            ],
        }

    def subset_images(self, keep_image_ids: np.ndarray) -> Dataset:
        """A new dataset with only the given images and their annotations (categories kept)."""
        keep_img = np.isin(self.image_id, keep_image_ids)
        keep_ann = np.isin(self.ann_image_id, self.image_id[keep_img])
        return Dataset(
            image_id=self.image_id[keep_img],
            file_name=self.file_name[keep_img],
            width=self.width[keep_img],
            height=self.height[keep_img],
            ann_id=self.ann_id[keep_ann],
            ann_image_id=self.ann_image_id[keep_ann],
            category_id=self.category_id[keep_ann],
            bbox=self.bbox[keep_ann],
            area=self.area[keep_ann],
            iscrowd=self.iscrowd[keep_ann],
            cat_id=self.cat_id,
            cat_name=self.cat_name,
            source=self.source,
            format=self.format,
            image_root=self.image_root,
            ann_record=None if self.ann_record is None else self.ann_record[keep_ann],
            missing={k: v[keep_ann] for k, v in self.missing.items()},
            extra=dict(self.extra),
            split=None if self.split is None else self.split[keep_img],
            skipped=list(self.skipped),
            raw=None
            if self.raw is None
            else self.raw.take(
                np.flatnonzero(keep_img), np.flatnonzero(keep_ann), np.arange(self.num_categories)
            ),
        )


@dataclass
class Labels:
    """The id columns of a dataset without its boxes (what class counts need; see ``load_labels``)."""

    image_id: np.ndarray  # (I,) int64
    ann_image_id: np.ndarray  # (N,) int64
    category_id: np.ndarray  # (N,) int64
    cat_id: np.ndarray  # (C,) int64
    cat_name: np.ndarray  # (C,) object (str)
    source: str = ""
    format: str = "coco"

    @property
    def num_images(self) -> int:
        return int(self.image_id.shape[0])

    @property
    def num_annotations(self) -> int:
        return int(self.ann_image_id.shape[0])

    @property
    def num_categories(self) -> int:
        return int(self.cat_id.shape[0])

    def category_names(self) -> dict[int, str]:
        return {int(i): str(n) for i, n in zip(self.cat_id, self.cat_name)}


def json_number(v: float) -> float | int:
    """Whole numbers as int (keeps converted files tidy), others as float."""
    f = float(v)
    return int(f) if f.is_integer() else f


def lookup(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index of each query in ``keys`` (unique ids), -1 when absent. O((N+M) log M)."""
    if keys.size == 0:
        return np.full(queries.shape, -1, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    pos = np.searchsorted(sorted_keys, queries)
    pos = np.clip(pos, 0, len(sorted_keys) - 1)
    found = sorted_keys[pos] == queries
    return np.where(found, order[pos], -1).astype(np.int64)


def image_columns(rows: list[tuple[int, str, float, float]]) -> dict[str, np.ndarray]:
    """(id, file_name, width, height) rows -> the four image columns, as :class:`Dataset` keywords."""
    return {
        "image_id": np.array([r[0] for r in rows], dtype=np.int64),
        "file_name": np.array([r[1] for r in rows], dtype=object),
        "width": np.array([r[2] for r in rows], dtype=np.float64),
        "height": np.array([r[3] for r in rows], dtype=np.float64),
    }


def make_dataset(
    images: list[tuple[int, str, float, float]],
    annotations: list[tuple[int, int, int, float, float, float, float]],
    categories: list[tuple[int, str]],
    **kwargs: Any,
) -> Dataset:
    """Build a :class:`Dataset` from plain tuples (handy for tests and small loaders).

    Args:
        images: (id, file_name, width, height) per image.
        annotations: (id, image_id, category_id, x, y, w, h) per box; area = w·h, iscrowd = 0.
        categories: (id, name) per category.
    """
    an = np.array(annotations, dtype=np.float64).reshape(-1, 7)
    ca = list(zip(*categories)) if categories else [[], []]
    bbox = an[:, 3:7]
    return Dataset(
        **image_columns(images),
        ann_id=an[:, 0].astype(np.int64),
        ann_image_id=an[:, 1].astype(np.int64),
        category_id=an[:, 2].astype(np.int64),
        bbox=bbox,
        area=bbox[:, 2] * bbox[:, 3],
        iscrowd=np.zeros(len(an), dtype=np.int64),
        cat_id=np.asarray(ca[0], dtype=np.int64),
        cat_name=np.asarray(ca[1], dtype=object),
        **kwargs,
    )


def default_image_root(path: str | Path) -> str | None:
    """Guess where a COCO file's images live: ``images/`` or ``images/<split>`` beside ``annotations/``."""
    p = Path(path)
    stem = p.stem.replace("instances_", "")
    for cand in (
        p.parent / "images" / stem,
        p.parent.parent / "images" / stem,
        p.parent / "images",
        p.parent.parent / "images",
        p.parent / stem,
        p.parent,
    ):
        if cand.is_dir() and any(cand.iterdir()):
            return str(cand)
    return None
