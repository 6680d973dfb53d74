"""YOLO datasets -> :class:`~detkit.datasets.model.Dataset`, read leniently.

What the files are comes from :mod:`detkit.datasets.formats.layouts` (a data yaml, a Roboflow export, a label
folder); this module reads them. Per label row ``class cx cy w h`` (normalised to the image; a polygon row
``class x1 y1 ... xn yn`` is read as its bounding box):

    box (pixels)  x = (cx - w/2) * W,  y = (cy - h/2) * H,  w * W,  h * H    W, H from the image header

Each image is probed from its header and end marker (:func:`~detkit.datasets.images.probe_image`). A
problem — orphan label file, empty or truncated image, class >= nc, a coordinate outside 0..1 beyond
``YOLO_TOL``, a duplicated row, an unparsable row — goes through a :class:`Reporter`: into
``Dataset.skipped`` (default), to ``on_error`` (``validate``), or raised (``strict``). Notes that lose
nothing (a polygon read as its box, an image without a label file = a background image) are never raised.
"""

from __future__ import annotations

import itertools
import math
import operator
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from detkit.datasets.formats.layouts import (
    MAX_CLASSES,
    NAME_FILES,
    SplitSource,
    YoloLayout,
    find_yaml,
    label_path,
    read_data_yaml,
    read_yaml,
    resolve_labels,
    yolo_folder_layout,
)
from detkit.datasets.formats.readers import OnError, problem, suffix
from detkit.datasets.formats.yolo_cache import (
    Inputs,
    Remembered,
    key,
    key_of,
    packed,
    recall,
    remembering,
    unpack,
)
from detkit.datasets.formats.yolo_rows import mapped
from detkit.datasets.formats.yolo_scan import list_txt, scan
from detkit.datasets.model import MEMBER_SEP, Dataset, Skipped, declared_splits_of
from detkit.errors import InputError

MAX_YOLO_CLASSES = MAX_CLASSES  # a larger class index is a corrupt line, not a real class


# ---- where a lenient loader's problems go ----------------------------------------------------------------
class Reporter:
    """Routes a loader's problems: to ``on_error`` (validate), as an exception (``strict``), or into the
    :class:`~detkit.datasets.model.Skipped` list the dataset carries (the default: lenient, never silent).

    ``kept=True`` marks a note (a polygon read as its box, a background image): never raised, even strict.
    """

    def __init__(self, on_error: OnError | None = None, strict: bool = False):
        self.on_error, self.strict = on_error, strict
        self.items: list[Skipped] = []
        self.first: InputError | None = None  # the first problem (raised when nothing at all is usable)

    def __call__(self, err: InputError, kept: bool = False) -> None:
        code = err.code or "record.unparsable"
        if self.first is None and not kept:
            self.first = err
        if self.on_error is not None:
            self.on_error(code, err)
        elif self.strict and not kept:
            raise err
        else:
            self.items.append(Skipped(code, err.path, err.where, err.what, kept))


# ---- YOLO label files -----------------------------------------------------------------------------------
YOLO_TOL = 0.01  # normalised: coordinates this far outside 0..1 (export rounding) are kept for validate


def _yolo_rows(
    lf: Path, text: str, nc: int | None, report: Reporter
) -> list[tuple[int, float, float, float, float, int]]:
    """(class, cx, cy, w, h, line) of each usable row; bad rows are reported and skipped, polygons boxed."""
    rows, seen, polygons = [], set(), 0
    top = nc if nc is not None else MAX_YOLO_CLASSES
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        where, n = f"line {lineno}", len(parts)
        if n != 5 and not (n >= 7 and n % 2 == 1):
            report(
                problem(
                    lf,
                    where,
                    f"expected 'class cx cy w h' or a polygon 'class x1 y1 x2 y2 x3 y3 ...', got {n} fields",
                    "record.unparsable",
                )
            )
            continue
        try:
            c = int(parts[0])
            vals = [float(v) for v in parts[1:]]
        except ValueError:
            report(problem(lf, where, f"not numbers: '{line.strip()[:60]}'", "record.wrong_type"))
            continue
        if not all(math.isfinite(v) for v in vals):
            report(problem(lf, where, "NaN or infinite coordinate", "value.non_finite"))
            continue
        if c < 0:
            report(problem(lf, where, f"class id {c} is negative", "record.wrong_type"))
            continue
        if c >= top:
            known = f" ({nc} class names)" if nc is not None else ""
            report(
                problem(lf, where, f"class id {c} is outside 0..{top - 1}{known}", "label.class_out_of_range")
            )
            continue
        lo, hi = min(vals), max(vals)
        if lo < -YOLO_TOL or hi > 1 + YOLO_TOL:
            hint = (
                f"; values up to {hi:g} look like pixels: YOLO wants cx cy w h divided by the image "
                "width and height"
                if lo >= 0 and hi > 2
                else ""
            )
            report(
                problem(
                    lf,
                    where,
                    f"coordinate {lo if lo < -YOLO_TOL else hi:g} is outside 0..1{hint}",
                    "label.coords_out_of_range",
                )
            )
            continue
        if n > 5:
            xs, ys = vals[0::2], vals[1::2]
            box = ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys))
            polygons += 1
        else:
            box = (vals[0], vals[1], vals[2], vals[3])
        key = (c, *box)
        if key in seen:
            report(problem(lf, where, "same class and box as an earlier row", "label.duplicate_row"))
            continue
        seen.add(key)
        rows.append((c, *box, lineno))
    if polygons:
        report(
            problem(
                lf,
                None,
                f"{polygons} polygon row(s) (segmentation format) read as their bounding boxes",
                "label.polygon",
            ),
            kept=True,
        )
    return rows


class _Files:
    """Which label files exist: the ``.txt`` files found walking the label folders (one ``scandir`` per
    folder instead of a ``stat`` per image); ``os.stat`` for a path outside them. A listed file can be
    marked (as one an image has) once nothing asks whether it exists. What it looked at — the folders
    listed and the paths looked for — with their stats is ``looked``: inputs of the read."""

    def __init__(self, folders: list[Path]):
        self.roots: tuple[str, ...] = ()
        self.files: dict[str, str | None] = {}  # each listed file -> itself (None: marked)
        self.listed: dict[Path, list[str]] = {}
        self.looked: dict[str, tuple[int, int, int, int]] = {}
        for f in folders:
            self.add(f)

    def add(self, folder: Path) -> None:
        """List one more label folder (one that a split's labels were found in under another name)."""
        if folder not in self.listed:
            self.roots += (str(folder) + os.sep,)
            found, seen = list_txt(folder)
            self.listed[folder] = seen.paths
            if self.files:
                self.files |= found
            else:  # (the first: its own dict, not a copy)
                self.files = found
            self.looked.update(zip(seen.folders, map(tuple, seen.stats.tolist())))

    def exists(self, p: str) -> bool:
        if p.startswith(self.roots):
            return p in self.files
        try:
            st = os.stat(p)
        except OSError:
            self.looked[p] = key_of(None)
            return False
        self.looked[p] = key_of(st)
        return stat.S_ISREG(st.st_mode)

    def mark(self, paths: list[str]) -> None:
        """Mark the listed files among ``paths``."""
        for p in paths:
            if p in self.files:
                self.files[p] = None

    def marked(self, p: str) -> bool:
        return p in self.files and self.files[p] is None


def _label_file(img: str, folders: list[tuple[str, str]], files: _Files) -> str:
    """The label file of an image: the mirror path under its folder's labels folder when that file exists
    (``labels/images/x.txt`` for ``images/images/x.jpg``), else ultralytics' rule (last ``images`` ->
    ``labels``), else a ``.txt`` beside the image (darknet). ``folders``: (images folder + '/', labels
    folder + '/') pairs; all paths as str."""
    name = img[img.rfind(os.sep) + 1 :]
    beside = img[: len(img) - len(suffix(name))] + ".txt"  # Path.with_suffix(".txt")
    for img_dir, lbl_dir in folders:
        if lbl_dir == img_dir:
            if files.exists(beside):  # darknet: image and .txt side by side
                return beside
        elif img.startswith(img_dir):
            mirror = lbl_dir + beside[len(img_dir) :]
            if files.exists(mirror):
                return mirror
    ultra = str(label_path(Path(img)))
    if not files.exists(ultra) and files.exists(beside):  # darknet lists: labels beside the images
        return beside
    return ultra


def _label_files(imgs: list[str], folders: list[tuple[str, str]], files: _Files) -> list[str]:
    """:func:`_label_file` of each image, the common case without a call per image: with one (images,
    labels) folder pair, an image under the images folder whose name has a suffix and whose mirror label
    file exists has that file; the rule decides the others."""
    if len(folders) != 1 or folders[0][0] == folders[0][1]:
        return [_label_file(img, folders, files) for img in imgs]
    (img_dir, lbl_dir), n, sep, listed = folders[0], len(folders[0][0]), os.sep, files.files
    # s[n:i]: the path below the images folder without its suffix (i: the name's last '.', as in suffix())
    mirror = [
        lbl_dir + s[n:i] + ".txt" if s.rfind(sep) + 1 < (i := s.rfind(".")) < len(s) - 1 else "" for s in imgs
    ]
    if not lbl_dir.startswith(files.roots):  # (a folder the walk did not list: ask the file system)
        listed = {m: m for m in mirror if m and files.exists(m)}
    # the listing's own string for each file found (not a second copy per image)
    return [
        hit
        if s.startswith(img_dir) and (hit := listed.get(m)) is not None
        else _label_file(s, folders, files)
        for s, m in zip(imgs, mirror)
    ]


def _pairs(src: SplitSource) -> list[tuple[str, str]]:
    """A split's (images folder + '/', labels folder + '/') pairs, as str."""
    return [(str(i) + os.sep, str(lb) + os.sep) for i, lb in src.folders]


def _follow_labels(layout: YoloLayout, files: _Files, where) -> list[tuple[str, bool] | InputError | None]:
    """Per split, :func:`~detkit.datasets.formats.layouts.resolve_labels`' note, or its InputError (reported,
    or raised, at the split's turn, in the order one pass over the splits gives); the label folders it
    follows are listed."""
    found: list[tuple[str, bool] | InputError | None] = []
    for src in layout.splits:
        pairs = _pairs(src)
        try:
            found.append(
                resolve_labels(src, lambda img, q=pairs: files.exists(_label_file(str(img), q, files)), where)
            )
        except InputError as err:
            found.append(err)
        for _, lbl in src.folders:
            files.add(lbl)
    return found


@dataclass
class _Rows:
    """The images of a layout, one row each, and their label files, before any file is read.

    Attributes:
        images: (I,) each image's path; an image several splits (or one list twice) name is one row.
        split_of: (I,) its splits, joined with MEMBER_SEP.
        bounds: per split, the rows ``start:end`` of the images it names first.
        label_files: the label files that exist, each once, in the order of the images that have them.
        label: (I,) int64 index into ``label_files`` of each image's label file, -1 when it has none.
        no_label: {row: the label file it would have} for the images without one.
        orphans: per split, (images folder, label file) of each label file in its label folders that no
            image has (a folder two splits share is searched at the first).
    """

    images: list[str]
    split_of: list[str | None]
    bounds: list[tuple[int, int]]
    label_files: list[str]
    label: np.ndarray
    no_label: dict[int, str]
    orphans: list[list[tuple[Path, str]]]


def _key(path: str, dot: str = os.sep + ".") -> str:
    """An image's normalised absolute path (an absolute path without . or .. parts is its own)."""
    return path if path[:1] == os.sep and dot not in path else os.path.normpath(os.path.abspath(path))


def _increasing(keys: list[str]) -> bool:
    """Whether each string is greater than the one before (then no two are the same): a listing's order,
    checked without a set of them."""
    return all(map(operator.lt, keys, itertools.islice(keys, 1, None)))


def _apart(keys: list[str], spans: list[tuple[str, str]]) -> bool:
    """Whether no key is named twice, among ``keys`` or in the earlier splits (``spans``: the first and
    last key of each), told from their order alone: keys that increase, in a range that meets no earlier
    split's (then their span is added)."""
    if not keys:
        return True
    if not _increasing(keys) or any(not (hi < keys[0] or keys[-1] < lo) for lo, hi in spans):
        return False
    spans.append((keys[0], keys[-1]))
    return True


def _image_rows(layout: YoloLayout, files: _Files) -> _Rows:
    """The :class:`_Rows` of a layout whose label folders ``files`` lists (whose files it marks: those an
    image has). An image is read with the label file its first split gives."""
    images: list[str] = []
    split_of: list[str | None] = []
    label_of: list[str] = []  # per image: its label file (that may not exist)
    spans: list[tuple[str, str]] | None = []  # (see _apart; None once an image is named twice)
    bounds: list[tuple[int, int]] = []
    for src in layout.splits:
        first = len(images)
        keys = [_key(s) for s in src.images]
        if spans is not None and _apart(keys, spans):  # (the common case) each image once
            images = images + src.images if images else src.images  # (the layout's list is not changed)
            split_of += [src.name] * len(keys)
        else:
            spans, images = None, list(images)
            row_of = {_key(img): r for r, img in enumerate(images)}
            for img, key in zip(src.images, keys):
                r = row_of.setdefault(key, len(images))
                if r < len(images):  # named before: one image, its memberships joined
                    if src.name and split_of[r] and src.name not in split_of[r].split(MEMBER_SEP):
                        split_of[r] = f"{split_of[r]}{MEMBER_SEP}{src.name}"
                    continue
                images.append(img)
                split_of.append(src.name)
            del row_of
        del keys
        label_of += _label_files(images[first:] if first else images, _pairs(src), files)
        bounds.append((first, len(images)))
    exists = np.fromiter((files.exists(lf) for lf in label_of), dtype=bool, count=len(label_of))
    label_files = list(itertools.compress(label_of, exists))
    if not _increasing(label_files):  # (else each once)
        label_files = list(dict.fromkeys(label_files))
    if len(label_files) == np.count_nonzero(exists):  # (the common case) one image per label file
        label = np.cumsum(exists)
        label -= 1
        label[~exists] = -1
    else:
        index = {lf: k for k, lf in enumerate(label_files)}
        label = np.array([index[lf] if e else -1 for lf, e in zip(label_of, exists.tolist())], np.int64)
        del index
    no_label = {i: label_of[i] for i in np.flatnonzero(~exists).tolist()}
    del label_of
    files.mark(label_files)
    orphans = _orphans(layout, files, set(no_label.values()))  # every split's: a folder two splits share
    return _Rows(images, split_of, bounds, label_files, label, no_label, orphans)


def _orphans(layout: YoloLayout, files: _Files, missing: set[str]) -> list[list[tuple[Path, str]]]:
    """Per split, (images folder, label file) of the label files (not a names file) in its label folders
    that no image has: not marked in ``files``, nor (not a file) one of the label files ``missing``; a
    folder two splits share is searched once, at the first."""
    scanned: set[Path] = set()
    out = []
    for src in layout.splits:
        mine: list[tuple[Path, str]] = []
        for img_dir, lbl_dir in src.folders:
            if lbl_dir == img_dir or lbl_dir in scanned or not lbl_dir.is_dir():
                continue
            scanned.add(lbl_dir)
            mine += [
                (img_dir, lf)
                for lf in files.listed.get(lbl_dir, [])
                if not files.marked(lf) and lf not in missing and os.path.basename(lf) not in NAME_FILES
            ]
        out.append(mine)
    return out


def read_yolo_layout(
    layout: YoloLayout, on_error: OnError | None = None, strict: bool = False, source: str = ""
) -> Dataset:
    """Read the images (header sizes) and label files of a
    :class:`~detkit.datasets.formats.layouts.YoloLayout`.

    The files are read by :func:`~detkit.datasets.formats.yolo_scan.scan` (the label rows parsed in
    numpy); problems are then reported in the order of the images, as one pass over them would. The
    Dataset of a lenient read (neither ``on_error`` nor ``strict``) is remembered
    (:mod:`~detkit.datasets.formats.yolo_cache`) under the layout and ``source``, and a read of the same
    while no file it read or looked for and no label folder it listed has changed gives it again.

    Args:
        layout: the splits, their image files and the class names (from
            :mod:`detkit.datasets.formats.layouts`).
        on_error: when given (``validate``), every problem and note is reported to it.
        strict: raise the first problem instead of skipping it.
        source: the path the user gave, for messages.
    """
    if on_error is not None or strict:
        return _read_layout(layout, Reporter(on_error, strict), source)
    name = _read_key(layout, source)
    if (got := recall(name, _restored)) is not None:
        return got
    with remembering(name, time.time_ns()) as kept:
        ds = _read_layout(layout, Reporter(), source, kept)
        if kept is not None:
            doc: dict = {}
            kept.result(_stored(ds, doc), lambda: doc)
    return ds


def _read_key(layout: YoloLayout, source: str) -> str:
    """What a read of ``layout`` is remembered under: everything it was given but the files' contents."""
    parts: list[str | list[str]] = [
        "yolo read",
        source,
        str(layout.root),
        str(layout.descriptor),
        "\0".join(layout.names) if layout.names is not None else "\1",
    ]
    for src in layout.splits:
        parts += [str(src.name), repr([(str(i), str(lb)) for i, lb in src.folders]), repr(src.missing)]
        parts.append(src.images)
    return key(*parts)


def _read_layout(
    layout: YoloLayout, report: Reporter, source: str, kept: Remembered | None = None
) -> Dataset:
    """The Dataset of ``layout`` (:func:`read_yolo_layout`); what it was read from goes to ``kept`` as soon
    as the files are read."""
    where = layout.descriptor or source or layout.root
    nc = len(layout.names) if layout.names else None
    files = _Files([lbl for src in layout.splits for _, lbl in src.folders])
    # Labels under another folder name: checked (and followed) per split before anything is read
    found = _follow_labels(layout, files, where)
    rows = _image_rows(layout, files)
    looked = files.looked  # (what the read looked at, for ``kept``)
    del files  # (the listings of the label folders: what the rows need of them is in the rows)
    images, label_files = rows.images, rows.label_files
    sc = scan(
        images,
        rows.label,
        label_files,
        nc,
        nc if nc is not None else MAX_YOLO_CLASSES,
        YOLO_TOL,
        lambda lf, text, note: _yolo_rows(lf, text, nc, note),
    )
    if kept is not None:
        at = len(images)
        stats = np.array(list(looked.values()), np.int64).reshape(-1, 4)
        kept.inputs(Inputs([(images, sc.stats[:at]), (label_files, sc.stats[at:]), (list(looked), stats)]))
    sc.stats = None  # (in the cache file by now: let go before the Dataset is built)
    # of the label files' paths: the names (each box's record) and the paths of those with a problem
    names = _Names.of(label_files)
    path_of = {k: label_files[k] for k in (*sc.file_problem, *sc.notes)}
    rows.label_files = sc.label_files = label_files = []
    n = len(images)
    lab = sc.label
    has = lab >= 0
    bad_img = np.zeros(n, dtype=bool)
    bad_img[list(sc.image_problem)] = True
    bad_file = np.zeros(len(names) + 1, dtype=bool)  # [-1]: no file
    bad_file[list(sc.file_problem)] = True
    noted = np.zeros(len(names) + 1, dtype=bool)
    noted[list(sc.notes)] = True
    keep = ~bad_img & ~(has & bad_file[lab])
    special = np.flatnonzero(~keep | ~has | noted[lab])  # the images with something to report
    listed, n_label_files = 0, 0
    for src, (start, end), labels, orphans in zip(
        layout.splits, rows.bounds, found, rows.orphans, strict=True
    ):
        if isinstance(labels, InputError):
            raise labels
        if labels is not None:
            report(problem(where, src.name, labels[0], "label.none_found"), kept=labels[1])
        for lst, lineno, p in src.missing:
            report(problem(lst, f"line {lineno}", f"listed image {p} does not exist", "image.missing_file"))
        listed += len(src.images)
        n_label_files += int(np.count_nonzero(keep[start:end] & has[start:end])) + len(orphans)
        for i in special[np.searchsorted(special, start) : np.searchsorted(special, end)].tolist():
            img, k = images[i], int(lab[i])
            if bad_img[i]:
                code, what = sc.image_problem[i]
                report(problem(img, None, what, code))
            elif k >= 0 and bad_file[k]:
                code, at, what = sc.file_problem[k]
                report(problem(Path(path_of[k]), at, what, code))
            elif k < 0:
                what = f"no label file {Path(rows.no_label[i]).name} (read as a background image)"
                report(problem(img, None, what, "image.no_label_file"), kept=True)
            else:
                for code, at, what, kept in sc.notes[k]:
                    report(problem(Path(path_of[k]), at, what, code), kept=kept)
        for img_dir, lf in orphans:
            what = f"label file without an image (no {Path(lf).stem}.* in {img_dir})"
            report(problem(Path(lf), None, what, "label.orphan"))
    root = str(layout.root) + os.sep
    every = bool(keep.all())  # (the common case: the scan's own columns, no copies)
    kept_rows = np.flatnonzero(keep)
    kept = images if every else [images[i] for i in kept_rows.tolist()]
    img_cols = {
        "image_id": np.arange(1, len(kept_rows) + 1, dtype=np.int64),
        "file_name": np.fromiter(
            (s[len(root) :] if s.startswith(root) else s for s in kept), dtype=object, count=len(kept)
        ),
        "width": sc.width if every else sc.width[kept_rows],
        "height": sc.height if every else sc.height[kept_rows],
    }
    splits = rows.split_of if every else [rows.split_of[i] for i in kept_rows.tolist()]
    kl = lab if every else lab[kept_rows]
    with_file = kl >= 0
    if with_file.all():
        parts = (img_cols["image_id"], kl)
    else:
        parts = (img_cols["image_id"][with_file], kl[with_file])
    if not len(kept_rows):
        if listed:
            raise InputError(
                where, None, f"none of the {listed} images could be read (see the first: {images[0]})"
            )
        if not n_label_files:
            raise InputError(
                source or where,
                None,
                "no YOLO label .txt files found" if not layout.descriptor else "no images found",
            )
        raise InputError(
            source or where,
            None,
            f"no images found for the {n_label_files} label files (looked under {layout.root})",
        )
    del rows, images, kept
    return _yolo_dataset(img_cols, parts, sc, names, splits, layout, report, source)


class _Names:
    """The names (last parts) of many paths kept as one string: name ``k`` is ``text[at[k]:at[k + 1]]`` (a
    Python object per name costs some 50 bytes besides its characters). Made ``chunk`` paths at a time:
    never a string per path for all of them at once."""

    def __init__(self, text: str, at: np.ndarray):
        self.text, self.at = text, at

    @classmethod
    def of(cls, paths: list[str], chunk: int = 4096) -> _Names:
        parts, at = [], np.zeros(len(paths) + 1, dtype=np.int64)
        for i in range(0, len(paths), chunk):
            names = [os.path.basename(p) for p in paths[i : i + chunk]]
            at[i + 1 : i + 1 + len(names)] = [len(s) for s in names]
            parts.append("".join(names))
        np.cumsum(at, out=at)
        return cls("".join(parts), at)

    def __len__(self) -> int:
        return len(self.at) - 1

    def __getitem__(self, k: int) -> str:
        return self.text[self.at[k] : self.at[k + 1]]


class LabelRecords:
    """``ann_record`` of a YOLO dataset, ``"<label file name> line <n>"`` per box, made when asked from the
    label files' names (:class:`_Names`) and where each box is, held one of two ways instead of a string
    per box:

        per box    ``file``, ``line``: (N,) each box's label file and line;
        per run    where the boxes of each file are its lines 1, 2, ... in order (what nearly every label
                   file gives): ``file``: (R,) the file of each run of boxes and ``first``: (R + 1,) the
                   box each starts at, box ``j`` of run ``r`` on line ``j - first[r] + 1``; ``box``: the
                   boxes kept, by index (None: all ``first[-1]``).
    """

    def __init__(
        self,
        names: _Names,
        file: np.ndarray,
        line: np.ndarray | None = None,
        first: np.ndarray | None = None,
        box: np.ndarray | None = None,
    ):
        self.names, self.file, self.line, self.first, self.box = names, file, line, first, box

    def __len__(self) -> int:
        if self.line is not None:
            return len(self.line)
        return int(self.first[-1]) if self.box is None else len(self.box)

    def __getitem__(self, i):
        if isinstance(i, (int, np.integer)):
            if self.line is not None:
                return f"{self.names[self.file[i]]} line {int(self.line[i])}"
            j = range(len(self))[i] if self.box is None else int(self.box[i])
            r = int(np.searchsorted(self.first, j, side="right")) - 1
            return f"{self.names[self.file[r]]} line {j - int(self.first[r]) + 1}"
        if self.line is not None:
            return LabelRecords(self.names, self.file[i], self.line[i])
        box = np.arange(len(self))[i] if self.box is None else self.box[i]
        return LabelRecords(self.names, self.file, first=self.first, box=box)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __array__(self, dtype=None, copy=None):
        return np.array(list(self), dtype=object)


def _stored(ds: Dataset, doc: dict) -> Iterator[tuple[str, np.ndarray | Iterator[bytes]]]:
    """A YOLO Dataset as named arrays, made one at a time, and the JSON document ``doc`` (filled by the
    time they are all made): its numeric columns as they are, its string columns and label files packed,
    the rest in the document. :func:`_restored` makes it again."""
    doc |= {"strings": {}, "counts": {}, "zeros": {}, "missing": list(ds.missing)}
    for f in fields(Dataset):
        v = getattr(ds, f.name)
        if isinstance(v, LabelRecords):
            text = np.frombuffer(v.names.text.encode("utf-8", "surrogateescape"), np.uint8)
            yield from (("record.names", text), ("record.at", v.names.at), ("record.file", v.file))
            parts = {"line": v.line, "first": v.first, "box": v.box}
            yield from ((f"record.{k}", a) for k, a in parts.items() if a is not None)
            doc["record"] = [k for k, a in parts.items() if a is not None]
        elif isinstance(v, np.ndarray) and v.dtype == object:
            yield f.name, packed(v.tolist())
            doc["strings"][f.name] = len(v)
        elif isinstance(v, np.ndarray) and v.dtype == np.int64 and v.ndim == 1 and _is_count(v):
            doc["counts"][f.name] = len(v)  # 1..n: the ids, kept as their number
        elif isinstance(v, np.ndarray) and v.dtype == np.int64 and v.ndim == 1 and not v.any():
            doc["zeros"][f.name] = len(v)  # iscrowd
        elif isinstance(v, np.ndarray):
            yield f.name, v
        elif f.name == "skipped":
            doc["skipped"] = [[x.code, x.path, x.where, x.what, x.kept] for x in v]
        elif f.name == "missing":
            yield from ((f"missing.{k}", a) for k, a in v.items())
        else:  # source, format, image_root, extra, raw (None: a YOLO read has no COCO records)
            doc[f.name] = v


def _is_count(v: np.ndarray) -> bool:
    """Whether ``v`` is 1, 2, ..., len(v) (checked ``_BLOCK`` values at a time: no temporary of its size)."""
    return bool(len(v)) and all(
        np.array_equal(v[s : s + _BLOCK], np.arange(s + 1, min(s + _BLOCK, len(v)) + 1))
        for s in range(0, len(v), _BLOCK)
    )


def _restored(arrays: dict[str, np.ndarray], doc: dict) -> Dataset:
    """The Dataset :func:`_stored` took apart."""
    cols = {k: v for k, v in arrays.items() if "." not in k and k not in doc["strings"]}
    cols |= {k: np.array(unpack(arrays[k], n), dtype=object) for k, n in doc["strings"].items()}
    cols |= {k: np.arange(1, n + 1, dtype=np.int64) for k, n in doc["counts"].items()}
    cols |= {k: np.zeros(n, np.int64) for k, n in doc["zeros"].items()}
    cols.setdefault("split", None)
    if "record" in doc:
        text = arrays["record.names"].tobytes().decode("utf-8", "surrogateescape")
        names = _Names(text, arrays["record.at"])
        parts = {k: arrays[f"record.{k}"] for k in doc["record"]}
        cols["ann_record"] = LabelRecords(names, arrays["record.file"], **parts)
    return Dataset(
        **cols,
        missing={k: arrays[f"missing.{k}"] for k in doc["missing"]},
        skipped=[Skipped(c, p, w, what, kept) for c, p, w, what, kept in doc["skipped"]],
        **{k: doc[k] for k in ("source", "format", "image_root", "extra", "raw")},
    )


_BLOCK = 1 << 15  # rows converted at once by _yolo_dataset (1 MB of boxes)
_IMAGES = 1 << 12  # images whose rows' image and file _yolo_dataset writes at once


def _yolo_dataset(
    img_cols, parts, sc, file_names: _Names, splits, layout: YoloLayout, report: Reporter, source: str
) -> Dataset:
    """The Dataset of the images kept (``img_cols``) and the rows of their label files (``parts``: image id
    and label file of each kept image that has one, in image order); ``file_names``: the label files'
    names, for each box's record."""
    image_id, file_k = parts
    take: slice | np.ndarray = slice(None)  # the scan's rows kept, in order: all (views, no copies) ...
    if np.array_equal(file_k, np.arange(len(sc.offset) - 1)):  # (the common case) every file, in order
        edge, lengths = sc.offset, np.diff(sc.offset)  # rows edge[j]:edge[j + 1] are image j's
    else:
        first = sc.offset[file_k]
        lengths = sc.offset[file_k + 1] - first
        edge = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=edge[1:])
        shift = edge[:-1] - first
        if edge[-1] != len(sc.cls) or shift.any():  # ... or rows first[j] .. last[j] - 1 for each j
            take = np.arange(edge[-1], dtype=np.int64) - np.repeat(shift, lengths)
        del first, shift
    n = int(edge[-1])
    # the columns with a row per box, each in a map of its own (as the scan's rows), written a block at a
    # time: no temporary of a column's size
    image_of = mapped(n, np.int64)
    line = sc.line[take]
    in_runs = True  # whether each file's boxes are its lines 1, 2, ... (LabelRecords' runs)
    for i in range(0, len(lengths), _IMAGES):
        rows, j = slice(int(edge[i]), int(edge[min(i + _IMAGES, len(lengths))])), slice(i, i + _IMAGES)
        image_of[rows] = np.repeat(image_id[j], lengths[j])
        if in_runs:
            run_line = np.arange(rows.start, rows.stop) - np.repeat(edge[:-1][j], lengths[j]) + 1
            in_runs = np.array_equal(line[rows], run_line)
    if in_runs:
        records = LabelRecords(file_names, file_k, first=edge)
    else:
        file_of = mapped(n, np.int32)
        for i in range(0, len(lengths), _IMAGES):
            rows, j = slice(int(edge[i]), int(edge[min(i + _IMAGES, len(lengths))])), slice(i, i + _IMAGES)
            file_of[rows] = np.repeat(file_k[j], lengths[j])
        records = LabelRecords(file_names, file_of, line)
    del line
    cls = sc.cls[take]
    # cx cy w h -> x y w h in pixels, in the scan's own array (its rows are not used again): no copy; a
    # block of rows at a time, which stays in the cache through the steps, each row's image size gathered
    # for its block only
    bbox = sc.box[take]
    area, ann_id = mapped(n, np.float64), mapped(n, np.int64)
    width, height = img_cols["width"], img_cols["height"]
    for s in range(0, n, _BLOCK):
        b, row_image = bbox[s : s + _BLOCK], image_of[s : s + _BLOCK] - 1  # (image ids are 1..)
        for c, size in ((0, width[row_image]), (1, height[row_image])):  # (a column at a time)
            b[:, c] -= b[:, c + 2] / 2
            b[:, c] *= size
            b[:, c + 2] *= size
        np.multiply(b[:, 2], b[:, 3], out=area[s : s + _BLOCK])
        ann_id[s : s + _BLOCK] = np.arange(s + 1, s + len(b) + 1)
    names = layout.names
    ncls = len(names) if names else (int(cls.max()) + 1 if n else 0)
    cat_names = [names[i] if names else f"class{i}" for i in range(ncls)]
    has_split = any(s is not None for s in splits)
    return Dataset(
        **img_cols,
        ann_id=ann_id,
        ann_image_id=image_of,
        category_id=cls,
        bbox=bbox,
        area=area,
        iscrowd=mapped(n, np.int64),
        cat_id=np.arange(ncls, dtype=np.int64),
        cat_name=np.array(cat_names, dtype=object),
        source=source,
        format="yolo",
        image_root=str(layout.root),
        ann_record=records,
        split=np.array([s or "" for s in splits], dtype=object) if has_split else None,
        skipped=report.items,
        extra={"descriptor": str(layout.descriptor)} if layout.descriptor else {},
    )


def load_yolo(
    path: str | Path,
    names: list[str] | None = None,
    on_error: OnError | None = None,
    strict: bool = False,
    split: str | None = None,
) -> Dataset:
    """Load a YOLO dataset: an ultralytics data yaml, a Roboflow YOLO export, or a folder of labels.

    Rows are ``class cx cy w h`` normalised (a polygon row is read as its bounding box); image sizes come
    from the image headers; class k becomes category id k with the name from the yaml / ``classes.txt`` /
    ``obj.names`` (``class{k}`` when there is none). An image without a label file is a background image.

    Args:
        path: a data yaml, or a dataset / export / labels folder (see :mod:`detkit.datasets.formats.layouts`).
        names: class names to use instead of those found beside the labels.
        on_error: when given (``validate``), problems are reported to it and the rest is loaded.
        strict: raise the first problem (orphan label, corrupt image, bad row) instead of skipping it.
        split: read only this split (``train``, ``val``, ``test``).
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() in (".yaml", ".yml"):
        layout = read_data_yaml(path, split)
    elif not path.is_dir():
        raise InputError(
            path, None, "a YOLO dataset is a data.yaml or a folder of images and label .txt files"
        )
    elif (y := find_yaml(path)) is not None and _declares_splits(y):
        layout = read_data_yaml(y, split)
    else:
        layout = yolo_folder_layout(path, split)
    if names:
        layout.names = list(names)
    return read_yolo_layout(layout, on_error=on_error, strict=strict, source=str(path))


def _declares_splits(y: Path) -> bool:
    try:
        doc = read_yaml(y)
    except InputError:
        return True  # let read_data_yaml name the problem
    return bool(declared_splits_of(doc))
