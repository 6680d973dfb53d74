"""Keep part of a dataset: ``detkit coco filter`` (by class, box size, emptiness) and ``detkit coco sample``.

Both return a :class:`~detkit.datasets.ops.source.Part` (rows of the source's tables, in file order) and
counts; :mod:`detkit.datasets.formats.write` writes it. Areas and sides are the box's, in pixels (``w·h`` and
``min(w, h)``): YOLO and VOC files have no other area, and it is what the detector sees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detkit.datasets.model import Dataset
from detkit.datasets.ops.source import Part
from detkit.datasets.ops.split import split_dataset
from detkit.errors import DetkitError, OptionError

EMPTY = ("keep", "drop", "only")


def norm_name(name: str) -> str:
    """A class name compared without case and spacing: ``Traffic_Light`` == ``traffic light``."""
    return re.sub(r"[\s_\-]+", "", str(name)).casefold()


def resolve_classes(ds: Dataset, wanted: list[str]) -> np.ndarray:
    """Category rows for names (case and spacing ignored) or ids; an unknown one is an error naming it."""
    by_name: dict[str, list[int]] = {}
    for k, n in enumerate(ds.cat_name):
        by_name.setdefault(norm_name(n), []).append(k)
    by_id = {int(c): k for k, c in enumerate(ds.cat_id)}
    rows: list[int] = []
    for w in wanted:
        w = w.strip()
        if not w:
            continue
        if norm_name(w) in by_name:
            rows += by_name[norm_name(w)]
        elif re.fullmatch(r"-?\d+", w) and int(w) in by_id:
            rows.append(by_id[int(w)])
        else:
            shown = ", ".join(map(str, ds.cat_name[:12])) + (" ..." if ds.num_categories > 12 else "")
            raise DetkitError(f"{ds.source}: no class '{w}' (by name or id); classes: {shown}")
    return np.unique(np.asarray(rows, dtype=np.int64))


@dataclass
class Selection:
    """What ``filter`` / ``sample`` keeps and what they dropped, by reason."""

    part: Part
    dropped: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**self.part.counts(), "dropped": self.dropped}


def filter_dataset(
    ds: Dataset,
    classes: list[str] | None = None,
    min_area: float | None = None,
    max_area: float | None = None,
    min_side: float | None = None,
    empty: str = "keep",
) -> Selection:
    """Keep the boxes that pass every given test, then choose images by emptiness.

    Args:
        ds: the dataset.
        classes: class names or ids to keep (others' boxes and categories are dropped); None keeps all.
        min_area / max_area: bounds on the box area w·h in pixels (inclusive).
        min_side: lower bound on the shorter box side in pixels.
        empty: images left without boxes: ``keep`` them, ``drop`` them, or keep ``only`` them.
    """
    if empty not in EMPTY:
        raise OptionError("empty", f"{empty!r}: choose from {', '.join(EMPTY)}")
    cat_rows = np.arange(ds.num_categories) if classes is None else resolve_classes(ds, classes)
    img, cat = ds.image_index(), ds.category_index()
    keep = img >= 0
    dropped = {"dangling_image": int((~keep).sum())}
    if classes is not None:
        in_class = np.isin(cat, cat_rows)
        dropped["class"] = int((keep & ~in_class).sum())
        keep &= in_class
    w, h = ds.bbox[:, 2], ds.bbox[:, 3]
    with np.errstate(invalid="ignore"):
        for name, bad in (
            ("min_area", None if min_area is None else ~(w * h >= min_area)),
            ("max_area", None if max_area is None else ~(w * h <= max_area)),
            ("min_side", None if min_side is None else ~(np.minimum(w, h) >= min_side)),
        ):
            if bad is not None:
                dropped[name] = int((keep & bad).sum())
                keep &= ~bad
    has = np.zeros(ds.num_images, dtype=bool)
    has[img[keep]] = True
    image_rows = {
        "keep": np.arange(ds.num_images),
        "drop": np.flatnonzero(has),
        "only": np.flatnonzero(~has),
    }[empty]
    if empty == "only":
        keep[:] = False
    dropped["images_empty" if empty == "drop" else "images_with_boxes" if empty == "only" else "images"] = (
        ds.num_images - image_rows.size
    )
    dropped = {k: v for k, v in dropped.items() if v}
    return Selection(Part(image_rows, np.flatnonzero(keep), cat_rows), dropped)


def sample_dataset(ds: Dataset, n: int, seed: int = 0, stratify: bool = False) -> Selection:
    """``n`` images at random (all their boxes), kept in file order.

    Args:
        ds: the dataset.
        n: how many images (at most all of them).
        seed: seeds the choice.
        stratify: choose by iterative stratification over each image's class set, so each class keeps
            its share of images (see :mod:`detkit.datasets.ops.split`), instead of uniformly.
    """
    if n < 0:
        raise OptionError("n", f"{n}: must be 0 or more")
    total = ds.num_images
    n = min(n, total)
    if stratify and 0 < n < total:
        rows = split_dataset(ds, [n / total, 1 - n / total], seed=seed).parts["train"].images
    else:
        rows = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
    return Selection(Part.of_images(ds, rows), {"images": total - n} if total > n else {})
