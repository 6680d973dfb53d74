"""Dataset layouts as users bring them: which image and label files make up each split, and the class names.

Nothing here reads a label or an image; the loaders in :mod:`detkit.datasets.formats.voc` and
:mod:`detkit.datasets.load` do, from what these functions find:

    ultralytics data yaml   path (relative to the yaml's folder), train / val / test each a folder of
                            images, a .txt list of image paths or a list of these; names (list or dict)
                            or nc alone. Labels: the last ``images`` path component -> ``labels``.
    Roboflow YOLO export    the export folder: data.yaml (paths start with ``../``) and
                            ``train|valid|test/{images,labels}``; the same folders without a yaml too.
    Roboflow COCO export    the export folder: ``<split>/_annotations.coco.json`` beside the images.
    plain YOLO folder       ``images/`` + ``labels/`` (subfolders named train*/val*/test* become splits).
    class names             data.yaml, classes.txt or obj.names beside or above the label folder.
    VOC                     ``ImageSets/Main/{train,val,test}.txt`` (``trainval`` when train/val are absent).

Split names are normalised: ``valid`` / ``validation`` / ``val2017`` -> ``val``, ``train2017`` -> ``train``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detkit.datasets.formats.readers import load_yaml, read_text, suffix
from detkit.datasets.formats.yolo_cache import listing
from detkit.datasets.model import SPLIT_NAMES, declared_splits_of
from detkit.errors import InputError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")
NAME_FILES = ("classes.txt", "obj.names", "names.txt", "coco.names")
ROBOFLOW_COCO = "_annotations.coco.json"
MAX_CLASSES = 100_000  # a larger class count or index is a corrupt file, not a real dataset
_SPLIT_RE = re.compile(r"^(train|training|val|valid|validation|test|testing)[-_]?\d*$", re.IGNORECASE)


def normalize_split(name: str) -> str | None:
    """``valid`` -> ``val``, ``train2017`` -> ``train``...; None when the name is not a split name."""
    m = _SPLIT_RE.match(name)
    if m is None:
        return None
    word = m.group(1).lower()
    return {"training": "train", "valid": "val", "validation": "val", "testing": "test"}.get(word, word)


@dataclass
class SplitSource:
    """The images of one split and the (images folder, labels folder) pairs scanned for orphan labels.

    Args:
        name: split name (None for a dataset without splits).
        images: image files (paths as str: a dataset may name millions), in order.
        folders: (images folder, labels folder) for every folder source (orphan labels are looked for there).
        missing: (list file, line, path) of listed images that do not exist.
    """

    name: str | None
    images: list[str] = field(default_factory=list)
    folders: list[tuple[Path, Path]] = field(default_factory=list)
    missing: list[tuple[Path, int, Path]] = field(default_factory=list)


@dataclass
class YoloLayout:
    """A YOLO dataset: its splits, class names (None when unknown) and the folder file names are
    relative to."""

    root: Path
    splits: list[SplitSource]
    names: list[str] | None
    descriptor: Path | None = None  # the data yaml, when there is one


# ---- paths ---------------------------------------------------------------------------------------------
def label_path(image: Path) -> Path:
    """ultralytics' rule: the last ``images`` path component becomes ``labels``, the suffix ``.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def labels_folder(images: Path) -> Path:
    """The labels folder that mirrors an images folder (the folder itself when no component is ``images``)."""
    return label_path(images / "x.jpg").parent


def list_images(folder: Path) -> list[str]:
    """Every image file under ``folder`` (as str), sorted (as ``folder.rglob('*')``, on ``os.scandir``;
    remembered while its folders are unchanged: :func:`~detkit.datasets.formats.yolo_cache.listing`)."""
    return listing(folder, "images", _is_image).paths


def _is_image(e: os.DirEntry) -> bool:
    return suffix(e.name).lower() in IMAGE_EXTS and e.is_file()


# ---- ultralytics data yaml ----------------------------------------------------------------------------
def read_yaml(path: Path) -> dict[str, Any]:
    """The yaml as a mapping (read by the bounded :func:`~detkit.datasets.formats.readers.load_yaml`); an
    unparsable, oversized or alias-bomb file or a non-mapping is an InputError naming the line."""
    doc = load_yaml(path)
    if not isinstance(doc, dict):
        raise InputError(path, None, "expected a YAML mapping with train / val / names keys")
    return doc


def yaml_class_names(path: Path, doc: dict[str, Any]) -> list[str] | None:
    """``names`` as a list or an {index: name} dict, or ``class{i}`` for ``nc`` alone; None when neither."""
    names, nc = doc.get("names"), doc.get("nc")
    if isinstance(names, dict):
        try:
            idx = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise InputError(path, "names", "dict keys must be class indices 0..N-1") from None
        if sorted(idx) != list(range(len(idx))):
            raise InputError(path, "names", f"class indices must be 0..{len(idx) - 1}, got {sorted(idx)[:8]}")
        out = [idx[i] for i in range(len(idx))]
    elif isinstance(names, list):
        out = [str(n) for n in names]
    elif names is None:
        out = None
    else:
        raise InputError(
            path, "names", f"expected a list or a dict of class names, got {type(names).__name__}"
        )
    if nc is not None:
        if not isinstance(nc, int) or isinstance(nc, bool) or nc < 0:
            raise InputError(path, "nc", f"expected a class count, got {nc!r}")
        if nc > MAX_CLASSES and out is None:  # class{i} for 10**12 classes would take all memory
            raise InputError(path, "nc", f"{nc} classes without names: at most {MAX_CLASSES:,} are read")
        if out is None:
            out = [f"class{i}" for i in range(nc)]
        elif len(out) != nc:
            raise InputError(path, "nc", f"nc is {nc} but names lists {len(out)} classes")
    return out


def _resolve(root: Path, yaml_path: Path, key: str, value: Any) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise InputError(yaml_path, key, f"expected a path or a list of paths, got {value!r}")
    p = Path(value)
    cand = p if p.is_absolute() else root / p
    if not cand.exists() and value.startswith("../"):  # Roboflow: ../train/images from the export folder
        cand = root / value[3:]
    if not cand.exists():
        raise InputError(yaml_path, key, f"'{value}' does not exist (looked at {cand})")
    check_root(cand, yaml_path, key)
    return cand


SYSTEM_FOLDERS = ("/proc", "/sys", "/dev", "/etc", "/boot", "/run")


def check_root(folder: Path, descriptor: Path, key: str) -> None:
    """Refuse a dataset folder a yaml names that no dataset lives in: ``/``, a system folder
    (:data:`SYSTEM_FOLDERS`, or anything inside one) or a folder above the user's home (``/home``), whose
    walk would read the whole disk (and ``/proc``'s files vanish while it walks)."""
    real = Path(os.path.realpath(folder))
    home = Path(os.path.realpath(Path.home()))
    system = next((s for s in SYSTEM_FOLDERS if real == Path(s) or Path(s) in real.parents), None)
    above_home = home != Path(home.anchor) and real in home.parents
    if real == Path(real.anchor):
        what = "the file system's root"
    elif system is not None:
        what = f"inside {system}"
    elif above_home:
        what = f"a folder above your home {home}"
    else:
        return
    raise InputError(descriptor, key, f"'{folder}' is {what}: not a dataset folder")


def _txt_images(list_file: Path, root: Path, src: SplitSource) -> None:
    """Image paths from a .txt list: absolute, ``./x`` relative to the list, else the list's
    folder or root."""
    for lineno, line in enumerate(read_text(list_file).splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        p = Path(s)
        if p.is_absolute():
            cand = p
        elif s.startswith("./"):
            cand = list_file.parent / p
        else:
            cand = list_file.parent / p if (list_file.parent / p).exists() else root / p
        if cand.is_file():
            src.images.append(str(cand))
        else:
            src.missing.append((list_file, lineno, cand))


def _split_source(name: str | None, entries: list[Path], root: Path | None = None) -> SplitSource:
    src = SplitSource(name)
    for e in entries:
        if e.is_dir():
            src.images += list_images(e)
            src.folders.append((e, labels_folder(e)))
        elif e.suffix.lower() == ".txt":
            _txt_images(e, root or e.parent, src)
        else:
            src.images.append(str(e))
    return src


def read_data_yaml(path: Path, split: str | None = None) -> YoloLayout:
    """The splits and class names an ultralytics data yaml declares (``split`` keeps only that one)."""
    doc = read_yaml(path)
    names = yaml_class_names(path, doc)
    root = path.parent
    if doc.get("path") not in (None, ""):
        root = _resolve(path.parent, path, "path", str(doc["path"]))
    present = declared_splits_of(doc)
    if not present:
        raise InputError(path, None, "no train / val / test key: not an ultralytics data yaml")
    splits = []
    for key in present:
        if split is not None and key != split:
            continue
        values = doc[key] if isinstance(doc[key], list) else [doc[key]]
        entries = []
        for j, v in enumerate(values):
            entries.append(_resolve(root, path, key if len(values) == 1 else f"{key}[{j}]", v))
        src = _split_source(key, entries, root)
        splits.append(src)
    if split is not None and not splits:
        raise InputError(path, None, f"no split '{split}' (this yaml has {', '.join(present)})")
    return YoloLayout(root, splits, names, descriptor=path)


# ---- folders --------------------------------------------------------------------------------------------
def find_yaml(folder: Path) -> Path | None:
    """The data yaml of a dataset folder (data.yaml, dataset.yaml), if any."""
    for n in YAML_NAMES:
        if (folder / n).is_file():
            return folder / n
    return None


def split_folders(folder: Path) -> dict[str, Path]:
    """Roboflow-style ``train|valid|test/images`` subfolders of ``folder``, by normalised split name."""
    out: dict[str, Path] = {}
    if not folder.is_dir():
        return out
    for sub in sorted(folder.iterdir()):
        name = normalize_split(sub.name)
        if name is not None and (sub / "images").is_dir() and name not in out:
            out[name] = sub
    return out


def roboflow_coco_files(folder: Path) -> dict[str, Path]:
    """``<split>/_annotations.coco.json`` files of a Roboflow COCO export, by normalised split name."""
    out: dict[str, Path] = {}
    if not folder.is_dir():
        return out
    for sub in sorted(folder.iterdir()):
        f = sub / ROBOFLOW_COCO
        if f.is_file():
            out[normalize_split(sub.name) or sub.name] = f
    if (folder / ROBOFLOW_COCO).is_file() and not out:
        out[""] = folder / ROBOFLOW_COCO
    return out


def yolo_folder_layout(path: Path, split: str | None = None) -> YoloLayout:
    """The layout of a YOLO folder given without a yaml: split folders, images/ + labels/, or a
    labels folder."""
    subs = split_folders(path)
    if subs:
        srcs = [_split_source(n, [d / "images"]) for n, d in subs.items() if split is None or n == split]
        if not srcs:
            raise InputError(path, None, f"no split '{split}' (this folder has {', '.join(subs)})")
        return YoloLayout(path, srcs, find_class_names(path), None)
    if (path / "labels").is_dir() or (path / "images").is_dir():
        images, labels = path / "images", path / "labels"
    elif "labels" in path.parts:
        parts = list(path.parts)
        i = len(parts) - 1 - parts[::-1].index("labels")
        images, labels = Path(*parts[:i], "images", *parts[i + 1 :]), path
    else:  # darknet style: images and .txt side by side
        images, labels = path, path
    names = find_class_names(labels if labels.is_dir() else path)
    if not images.is_dir():
        return YoloLayout(images, [SplitSource(None, [], [(images, labels)])], names)
    subdirs = [d for d in sorted(images.iterdir()) if d.is_dir()]
    loose = any(p.is_file() and p.suffix.lower() in IMAGE_EXTS for p in images.iterdir())
    named = {d: normalize_split(d.name) for d in subdirs}
    if subdirs and not loose and all(named.values()) and len(set(named.values())) == len(subdirs):
        srcs = [_split_source(n, [d]) for d, n in named.items() if split is None or n == split]
        if not srcs:
            raise InputError(
                path, None, f"no split '{split}' (this folder has {', '.join(map(str, named.values()))})"
            )
        return YoloLayout(images, srcs, names)
    src = SplitSource(None, list_images(images), [(images, labels)])
    return YoloLayout(images, [src], names)


def find_class_names(folder: Path, names: list[str] | None = None) -> list[str] | None:
    """Class names from data.yaml, classes.txt or obj.names in ``folder`` or up to two folders above it."""
    if names:
        return names
    for d in (folder, folder.parent, folder.parent.parent):
        for n in NAME_FILES:
            f = d / n
            if f.is_file():
                return read_names(f)
        y = find_yaml(d)
        if y is not None:
            try:
                got = yaml_class_names(y, read_yaml(y))
            except InputError:
                got = None
            if got:
                return got
    return None


def read_names(path: Path) -> list[str]:
    """Class names from a file: a data yaml's ``names`` (or ``nc``), else one name per line."""
    if path.suffix.lower() in (".yaml", ".yml"):
        names = yaml_class_names(path, read_yaml(path))
        if not names:
            raise InputError(path, "names", "no class names (neither names nor nc)")
        return names
    return [ln.strip() for ln in read_text(path).splitlines() if ln.strip()]


# ---- VOC ------------------------------------------------------------------------------------------------
def voc_image_sets(root: Path) -> dict[str, list[str]]:
    """``ImageSets/Main/{train,val,test}.txt`` of a VOC folder: split -> image ids (``trainval`` as train
    when neither train nor val is there). Empty when there are no lists."""
    main = root / "ImageSets" / "Main"
    if not main.is_dir():
        return {}
    found = {k: main / f"{k}.txt" for k in (*SPLIT_NAMES, "trainval") if (main / f"{k}.txt").is_file()}
    if "trainval" in found and ("train" in found or "val" in found):
        del found["trainval"]
    out = {}
    for k, f in found.items():
        ids = [ln.split()[0] for ln in read_text(f).splitlines() if ln.strip()]
        out["train" if k == "trainval" else k] = ids
    return out


# ---- label folders under other names ---------------------------------------------------------------------
ALMOST_NONE = 0.05  # a split whose images find their label file less often than this has a layout mistake
_SCAN_DEPTH = 3  # folders below the dataset folder searched for label folders under other names


def nearby_label_folders(images: list[str], base: Path) -> list[tuple[Path, int, int]]:
    """(folder, .txt files, of them with the stem of one of ``images``) for each folder under ``base`` (up
    to :data:`_SCAN_DEPTH` levels) holding .txt files whose stems match some of the images; best first."""
    import os

    stems = {Path(p).stem for p in images}
    out = []
    stack = [(base, 0)]
    while stack:
        d, depth = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        txt = [e.name[:-4] for e in entries if e.name.endswith(".txt") and e.name not in NAME_FILES]
        hits = sum(s in stems for s in txt)
        if hits:
            out.append((Path(d), len(txt), hits))
        if depth < _SCAN_DEPTH:
            stack += [(Path(e.path), depth + 1) for e in entries if e.is_dir(follow_symlinks=False)]
    return sorted(out, key=lambda c: (-c[2], str(c[0])))


def resolve_labels(src: SplitSource, has_label, where: Path | str) -> tuple[str, bool] | None:
    """Check that a split's images find their label files; follow a label folder under another name.

    When none of the images (or under :data:`ALMOST_NONE` of them) has a label file where ultralytics'
    rule puts it, folders near the images are searched for .txt files with the images' stems. A single
    folder whose every stem is one of the split's images, when no image found its labels, is followed
    (``src.folders`` changed): returns the one-line note. Otherwise, when such folders exist and no image
    found its labels, that is an InputError naming the folder searched and the folders found nearby; a few
    found, or none with no label folder anywhere near (an unlabelled split, as ultralytics warns and reads
    it), returns the warning line.

    Args:
        src: the split (its images and (images, labels) folder pairs).
        has_label: image path -> True when its label file exists.
        where: the data yaml or folder named in messages.

    Returns:
        None when the labels are where they should be, else (message, followed).
    """
    n = len(src.images)
    if n == 0:
        return None
    enough, found = max(1, math.ceil(ALMOST_NONE * n)), 0
    for p in src.images:  # stops at the first `enough` found: a well-formed split costs ~5% of its stats
        found += has_label(p)
        if found >= enough:
            return None
    searched = src.folders[0][1] if src.folders else label_path(Path(src.images[0])).parent
    img_dir = src.folders[0][0] if src.folders else Path(src.images[0]).parent
    base = img_dir.parent.parent if img_dir.parent.name == "images" else img_dir.parent
    if base.name == "images" or not base.exists():
        base = img_dir.parent
    near = [c for c in nearby_label_folders(src.images, base) if c[0] != searched]
    name = f"split {src.name}" if src.name else "the images"
    exact = [c for c in near if c[1] == c[2]]
    if not found and len(exact) == 1 and len(src.folders) == 1:
        folder, k, _ = exact[0]
        src.folders = [(img_dir, folder)]
        return (
            f"{name}: no label file in {searched}; read the labels from {folder} ({k} .txt files, every "
            "stem one of these images)",
            True,
        )
    seen = (
        "; " + ", ".join(f"{f} holds {k} .txt files, {m} with these images' stems" for f, k, m in near[:3])
        if near
        else "; no label folder found nearby"
    )
    of = f" of split {src.name}" if src.name else ""
    msg = f"{found} of {n} images{of} have a label file in {searched}{seen}"
    if not found and near:
        raise InputError(
            where,
            src.name,
            f"{msg}: a layout mistake, not {n} background images (labels/ must mirror images/)",
        )
    return msg, False
