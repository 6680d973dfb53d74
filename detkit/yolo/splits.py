"""Which images a YOLO run trains and validates on: a declared split, an image list, a limit.

``--data`` may declare splits (an ultralytics data.yaml, a Roboflow export, a VOC folder with
ImageSets/Main lists): training takes ``train`` and evaluation ``val`` when declared, else all of the
file. An explicit image list (``--train-list`` / ``--val-list``) wins over the declared split, and
``--limit`` keeps the first N images after it. What the loader skipped is one warning line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detkit.datasets.load import declared_splits, load_dataset, warn_skipped
from detkit.datasets.model import Dataset
from detkit.errors import DetkitError


def has_split(path: str | Path, name: str) -> bool:
    """True when ``path`` declares a split ``name`` (a data.yaml key, a Roboflow folder, a VOC ImageSets
    list)."""

    return name in declared_splits(path)


def load_split(
    path: str | Path, list_file: str | Path | None = None, limit: int | None = None, split: str | None = None
) -> Dataset:
    """The training or validation set: ``split`` of ``path`` when it declares splits (``--data data.yaml``
    trains on train and validates on val), else all of it; then :func:`select_images`.

    An explicit ``list_file`` wins over the declared split. What the loader skipped (orphan labels, corrupt
    images, bad rows) is one warning line on stderr."""

    use = split if split is not None and list_file is None and has_split(path, split) else None
    ds = load_dataset(path, split=use)
    warn_skipped(ds, hint="`detkit coco validate` lists them")
    return select_images(ds, list_file, limit)


def select_images(ds: Dataset, list_file: str | Path | None = None, limit: int | None = None) -> Dataset:
    """Keep the images named in ``list_file`` (one name per line, with or without extension, e.g. VOC's
    ``ImageSets/Main/train.txt``) and then the first ``limit`` of them."""
    if list_file is not None:
        p = Path(list_file)
        if not p.is_file():
            raise DetkitError(f"{p}: no such image list")
        wanted = {line.strip() for line in p.read_text().splitlines() if line.strip()}
        stems = np.array([Path(str(f)).stem for f in ds.file_name], dtype=object)
        names = np.array([str(f) for f in ds.file_name], dtype=object)
        keep = np.array([s in wanted or n in wanted for s, n in zip(stems, names)], dtype=bool)
        if not keep.any():
            raise DetkitError(f"{p}: none of its {len(wanted)} names is an image of {ds.source}")
        ds = ds.subset_images(ds.image_id[keep])
    if limit is not None and limit < ds.num_images:
        ds = ds.subset_images(ds.image_id[:limit])
    return ds
