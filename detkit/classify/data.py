"""Classification data: Tiny ImageNet / ImageFolder catalogs, the seeded split and the uint8 decode cache.

Decoding ~100k small JPEGs every epoch is what usually starves the GPU, so images are decoded once into a
memory-mapped uint8 array (N, S, S, 3) keyed by the file list, sizes, mtimes and S, and reused while the
data is unchanged. Training then runs from that array held on the device (see :mod:`detkit.classify.augment`).
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detkit.console import info, progress, warn
from detkit.datasets.formats.layouts import IMAGE_EXTS  # the one list of image suffixes detkit reads
from detkit.errors import DetkitError, InputError, OptionError
from detkit.io import write_json

CACHE_VERSION = 1
MAX_LISTED = 20  # unreadable images named one per line before the error
TRAIN, VAL = 0, 1  # Catalog.group: the train folder, or the official (labelled) val folder


@dataclass
class Catalog:
    """Every labelled image of a data set.

    Attributes:
        root: the data set folder; ``files`` are relative to it (posix).
        layout: ``"tiny-imagenet"`` or ``"imagefolder"``.
        classes: class ids (Tiny ImageNet wnids in wnids.txt order, or folder names); index = label.
        names: readable class names (words.txt's first synonym, or the folder name).
        files, labels, group: one entry per image; ``group`` is TRAIN or VAL (the official val folder).
    """

    root: Path
    layout: str
    classes: list[str]
    names: list[str]
    files: list[str]
    labels: np.ndarray
    group: np.ndarray

    def __len__(self) -> int:
        return len(self.files)


def _images_below(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, None, f"cannot read: {exc}") from None


def _scan_tiny(root: Path) -> Catalog:
    """Tiny ImageNet's layout. A class of wnids.txt without a ``train/<wnid>/images`` folder (a subset
    copied with the original wnids.txt) is left out with one warning naming how many, as are its
    val_annotations.txt lines: the classes are those with images, and the warning shows which are not."""
    listed = [w.strip() for w in _read_lines(root / "wnids.txt") if w.strip()]
    if len(set(listed)) != len(listed):
        raise InputError(root / "wnids.txt", None, "a class id is listed twice")
    wnids = [w for w in listed if (root / "train" / w / "images").is_dir()]
    absent = [w for w in listed if w not in set(wnids)]
    if listed and not wnids:
        raise InputError(
            root / "train",
            None,
            f"none of the {len(listed)} classes in wnids.txt has a train/<wnid>/images folder",
        )
    names = {w: w for w in wnids}
    if (root / "words.txt").exists():
        for line in _read_lines(root / "words.txt"):
            wnid, _, words = line.partition("\t")
            if wnid in names and words.strip():
                names[wnid] = words.split(",")[0].strip()
    label = {w: i for i, w in enumerate(wnids)}
    files, labels, group = [], [], []
    for w in wnids:
        for p in _images_below(root / "train" / w / "images"):
            files.append(p.relative_to(root).as_posix())
            labels.append(label[w])
            group.append(TRAIN)
    ann = root / "val" / "val_annotations.txt"
    dropped_val = 0
    if ann.exists():
        for lineno, line in enumerate(_read_lines(ann), 1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 2:
                raise InputError(ann, lineno, "expected '<file>\\t<wnid>\\t...'")
            name, wnid = fields[0].strip(), fields[1].strip()
            if wnid not in label:
                if wnid in absent:
                    dropped_val += 1
                    continue
                raise InputError(ann, lineno, f"class {wnid} is not in wnids.txt")
            path = root / "val" / "images" / name
            if not path.is_file():
                raise InputError(path, None, f"listed in {ann}:{lineno} but missing")
            files.append(path.relative_to(root).as_posix())
            labels.append(label[wnid])
            group.append(VAL)
    if absent:
        first = ", ".join(absent[:3]) + (" ..." if len(absent) > 3 else "")
        val = f" with their {dropped_val:,} val_annotations.txt lines" if dropped_val else ""
        warn(
            f"{root / 'wnids.txt'}: {len(absent):,} of {len(listed):,} classes have no train/<wnid>/images "
            f"folder and are left out{val} ({first}); the other {len(wnids):,} are the classes"
        )
    return Catalog(
        root,
        "tiny-imagenet",
        wnids,
        [names[w] for w in wnids],
        files,
        np.asarray(labels, np.int64),
        np.asarray(group, np.int64),
    )


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _scan_imagefolder(root: Path) -> Catalog:
    parts = [(root, TRAIN)]
    if (root / "train").is_dir() and (root / "val").is_dir():  # root/{train,val}/<class>/*
        parts = [(root / "train", TRAIN), (root / "val", VAL)]
    classes = [d.name for d in _class_dirs(parts[0][0])]
    label = {c: i for i, c in enumerate(classes)}
    files, labels, group = [], [], []
    for folder, g in parts:
        for d in _class_dirs(folder):
            if d.name not in label:
                raise InputError(d, None, f"class {d.name!r} is not among the training classes")
            for p in _images_below(d):
                files.append(p.relative_to(root).as_posix())
                labels.append(label[d.name])
                group.append(g)
    return Catalog(
        root,
        "imagefolder",
        classes,
        list(classes),
        files,
        np.asarray(labels, np.int64),
        np.asarray(group, np.int64),
    )


def scan_dataset(root: str | Path) -> Catalog:
    """Catalog a Tiny ImageNet folder (has wnids.txt) or an ImageFolder (``root/<class>/*.jpg|png``).

    Args:
        root: the data set folder.
    """
    root = Path(root)
    if not root.exists():
        raise InputError(root, None, "data folder not found")
    if not root.is_dir():
        raise InputError(root, None, "is a file; expected a data set folder")
    if not (root / "wnids.txt").exists() and (root / "val" / "val_annotations.txt").exists():
        raise InputError(root / "wnids.txt", None, "missing: Tiny ImageNet's layout needs its class list")
    cat = _scan_tiny(root) if (root / "wnids.txt").exists() else _scan_imagefolder(root)
    per_class = np.bincount(cat.labels[cat.group == TRAIN], minlength=len(cat.classes))
    empty = [c for c, n in zip(cat.classes, per_class) if n == 0]
    if empty and len(cat):
        where = "train/<wnid>/images" if cat.layout == "tiny-imagenet" else "<class>"
        raise InputError(
            root,
            None,
            f"{len(empty)} class folder(s) hold no training images ({where}): {', '.join(empty[:5])}"
            + (" ..." if len(empty) > 5 else ""),
        )
    if len(cat) == 0 or len(cat.classes) < 2:
        raise InputError(
            root,
            None,
            "need images of at least 2 classes: expected Tiny ImageNet's layout "
            "(wnids.txt, train/<wnid>/images/) or an ImageFolder (<class>/*.jpg|png)",
        )
    return cat


def stratified_split(labels: np.ndarray, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split; each class with >= 2 images keeps at least one image on each side.

    Args:
        labels: (N,) class index per image.
        train_fraction: share of each class that goes to training.
        seed: same seed and labels, same split.
    Returns: sorted train and val indices.
    """
    if not 0.0 < train_fraction < 1.0:
        raise OptionError("split", f"must be between 0 and 1, got {train_fraction}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n = round(train_fraction * len(idx))
        if len(idx) >= 2:
            n = min(max(n, 1), len(idx) - 1)
        train.append(idx[:n])
        val.append(idx[n:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


VAL_OFFICIAL = {"val='official'": "--val official"}  # the CLI names the flag (detkit.errors.cli_text)


def make_split(cat: Catalog, val: str, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``val="split"``: stratified split of all labelled images; ``"official"``: train folder / val folder."""
    if val == "official":
        if not (cat.group == VAL).any():
            raise InputError(
                cat.root,
                None,
                "val='official' needs a labelled val folder (val/val_annotations.txt, or val/<class>/ beside "
                "train/)",
                flags=VAL_OFFICIAL,
            )
        return np.flatnonzero(cat.group == TRAIN), np.flatnonzero(cat.group == VAL)
    return stratified_split(cat.labels, train_fraction, seed)


def save_split(path: Path, cat: Catalog, train_idx: np.ndarray, val_idx: np.ndarray, **meta: object) -> None:
    """Write split.json: the files on each side (relative to the data root), so the split can be rebuilt."""
    write_json(
        path,
        {
            **meta,
            "layout": cat.layout,
            "classes": cat.classes,
            "train": [cat.files[i] for i in train_idx],
            "val": [cat.files[i] for i in val_idx],
        },
    )


def load_split(path: Path, cat: Catalog) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``cat`` of a saved split; every file it names must still be in the data."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(path, None, f"cannot read split: {exc}") from None
    if doc.get("classes") != cat.classes:
        raise InputError(path, None, f"the split's classes differ from those of {cat.root}")
    where = {f: i for i, f in enumerate(cat.files)}
    out = []
    for side in ("train", "val"):
        missing = [f for f in doc[side] if f not in where]
        if missing:
            raise InputError(
                cat.root / missing[0],
                None,
                f"named in {path} but not in the data ({len(missing)} such files)",
            )
        out.append(np.asarray([where[f] for f in doc[side]], np.int64))
    return out[0], out[1]


def fingerprint(cat: Catalog, size: int) -> str:
    """Hash of the file list, sizes and mtimes and the decode size: the cache key."""
    h = hashlib.sha256(f"v{CACHE_VERSION}|{size}|{cat.root.resolve()}".encode())
    for f in cat.files:
        st = (cat.root / f).stat()
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def decode_image(path: Path, size: int) -> np.ndarray:
    """Decode one image to (size, size, 3) uint8 RGB; grayscale/CMYK/palette images are converted."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")  # decodes fully: truncated files raise here
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(path, None, f"cannot decode image ({exc})") from None


def subset(cat: Catalog, idx: np.ndarray) -> Catalog:
    """The catalog of rows ``idx`` of ``cat`` (same classes), e.g. the images an evaluation scores."""
    return Catalog(
        cat.root,
        cat.layout,
        cat.classes,
        cat.names,
        [cat.files[i] for i in idx.tolist()],
        cat.labels[idx],
        cat.group[idx],
    )


def cache_path(cat: Catalog, size: int, cache_dir: Path, family: str) -> tuple[Path, str]:
    """(the cache file of ``cat`` at ``size``, its family prefix): ``<family>-<root hash>-<content key>``."""
    key = fingerprint(cat, size)
    # one cache per family, data root and size; a new content hash replaces the old
    fam = f"{family}-" + hashlib.sha256(str(cat.root.resolve()).encode()).hexdigest()[:8]
    return cache_dir / f"{fam}-{key[:16]}-{size}px.npy", fam


def cached(cat: Catalog, size: int, cache_dir: str | Path, family: str = "classify") -> np.ndarray | None:
    """The decoded images of ``cat`` from an existing cache (read-only memory map), or None."""
    path, _ = cache_path(cat, size, Path(cache_dir), family)
    if not path.exists():
        return None
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError):  # truncated or foreign: decode again
        return None
    return arr if arr.shape == (len(cat), size, size, 3) and arr.dtype == np.uint8 else None


def _decode_into(arr: np.ndarray, cat: Catalog, size: int, workers: int) -> None:
    """Decode every image of ``cat`` into ``arr`` (threads; PIL releases the GIL while decoding); all
    unreadable files are named (the first 20 one per line) before the error."""
    bad: list[str] = []

    def work(lo: int) -> int:
        for i in range(lo, min(lo + 256, len(cat))):
            try:
                arr[i] = decode_image(cat.root / cat.files[i], size)
            except InputError as exc:
                bad.append(str(exc))
        return min(256, len(cat) - lo)

    with progress() as bar, ThreadPoolExecutor(max(1, workers)) as pool:
        task = bar.add_task("decoding images", total=len(cat), info="")
        for n in pool.map(work, range(0, len(cat), 256)):
            bar.advance(task, n)
    if bad:
        bad.sort()
        for line in bad[:MAX_LISTED] if len(bad) > 1 else ():  # one bad file: the error names it
            warn(line)
        if len(bad) > MAX_LISTED:
            warn(f"... and {len(bad) - MAX_LISTED} more unreadable images")
        more = f" (and {len(bad) - 1} more unreadable images, listed above)" if len(bad) > 1 else ""
        raise DetkitError(bad[0] + more)


def decode_images(cat: Catalog, size: int, workers: int = 8) -> np.ndarray:
    """The images of ``cat`` decoded in memory, (N, size, size, 3) uint8; no file written."""
    arr = np.empty((len(cat), size, size, 3), np.uint8)
    _decode_into(arr, cat, size, workers)
    return arr


def decode_cache(
    cat: Catalog, size: int, cache_dir: str | Path, workers: int = 8, family: str = "classify"
) -> tuple[np.ndarray, bool]:
    """All images of ``cat`` as a read-only memory-mapped (N, size, size, 3) uint8 array.

    Args:
        cat: the catalog to decode, in its order.
        size: square side the images are resized to.
        cache_dir: folder holding ``<family>-<root hash>-<key>-<size>px.npy``; reused while the data is
            unchanged, and replaced (with the older file of its family removed) when it changes.
        workers: decoding threads (PIL releases the GIL while decoding).
        family: the file-name prefix: ``classify`` for a training set, ``classify-eval`` for the images
            an evaluation scores (its own family, so neither replaces the other).
    Returns: the array and whether an existing cache was reused.
    """
    cache_dir = Path(cache_dir)
    path, fam = cache_path(cat, size, cache_dir, family)
    if (arr := cached(cat, size, cache_dir, family)) is not None:
        return arr, True
    tmp = cache_dir / f".{path.name}.{os.getpid()}.tmp"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(cat), size, size, 3))
    except OSError as exc:
        raise InputError(
            cache_dir,
            None,
            f"cannot write the decoded-image cache ({exc}); give another cache_dir",
            flags={"another cache_dir": "another --cache-dir"},
        ) from None
    try:
        _decode_into(arr, cat, size, workers)
        arr.flush()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    for stale in cache_dir.glob(f"{fam}-*-{size}px.npy"):  # caches of this data before it changed
        if stale != path:
            stale.unlink(missing_ok=True)
    info(f"decoded {len(cat)} images into {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return np.load(path, mmap_mode="r"), False
