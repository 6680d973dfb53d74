"""One rule for a record's file name (COCO ``file_name``, VOC ``<filename>``) written under an output folder.

A record's name is data, not a path detkit may follow: ``/home/u/a.jpg`` or ``../../etc/passwd`` joined
to an output folder would write outside it. Every command that writes a name taken from a record (convert,
split, merge, filter, sample, draw) and validate's ``path.*`` findings use this one rule.

Let ``s`` be the name with every ``\\`` read as ``/`` (Windows exports write ``images\\a.jpg``), and
``parts(s)`` its components resolved left to right: ``''`` and ``.`` are dropped, ``..`` pops the last
kept component, and a ``..`` with nothing to pop *climbs out*. Then :func:`name_problem` is

    path.invalid     s holds a NUL, or is empty, or parts(s) is empty ('.', 'a/..'), or s ends in '/'
    path.absolute    s starts with '/' (also '\\\\server\\share'), or with a drive 'X:' ('C:/x', 'C:\\x',
    'C:x')
    path.climbs_out  some '..' climbs out ('../a.jpg', 'a/../../b.jpg')
    None             otherwise: the name is safe ('a/../b.jpg', './a.jpg', 'a//b.jpg', 'a\\b.jpg')

checked in that order (a NUL wins over everything; an absolute name that also climbs is absolute).
:func:`safe_relative` is ``'/'.join(parts(s'))`` where ``s'`` is ``s`` with a NUL read as ``_`` and a
leading drive ``X:`` removed, the ``..`` that climb out dropped: ``a/../b.jpg -> b.jpg``,
``a\\b.jpg -> a/b.jpg``, ``C:\\x.jpg -> x.jpg``, ``/home/u/a.jpg -> home/u/a.jpg``, ``../../etc/passwd ->
etc/passwd``, ``images/ -> images``, ``'' and '.' -> ''``. For a safe name it is the name's canonical form
(what the ops write); ``convert`` writes every name as its safe_relative (``image_<id>`` when that is
empty), the ops write only safe names and count the others (``unsafe_names``).

:func:`source_path` is where a record's image is read: ``root / safe_relative(name)`` for a safe name, else
the name as written (reading an absolute path is allowed; writing one is not). :func:`inside` is the last
check before a write: the real path, symlinks followed, must lie in the folder. :func:`yolo_relative` is a
canonical name without ``images`` / ``labels`` folders, the name a YOLO layout writes under ``OUT/images`` and
``OUT/labels``."""

from __future__ import annotations

import re
from pathlib import Path

from detkit.datasets.formats.layouts import labels_folder, read_yaml
from detkit.datasets.model import default_image_root
from detkit.errors import InputError

_DRIVE = re.compile(r"[A-Za-z]:")


def _separators(name: str) -> str:
    """``name`` with ``\\`` read as ``/``."""
    return name.replace("\\", "/")


def _components(s: str) -> tuple[list[str], bool]:
    """The components of ``s`` ('/'-separated) resolved left to right, and whether a '..' climbed out."""
    out: list[str] = []
    climbed = False
    for part in s.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
            else:
                climbed = True
            continue
        out.append(part)
    return out, climbed


def name_problem(name: str) -> str | None:
    """The ``path.*`` finding code of a record's file name, or None when it is safe (module docstring)."""
    s = _separators(name)
    if "\0" in s:
        return "path.invalid"
    if s.startswith("/") or _DRIVE.match(s):
        return "path.absolute"
    parts, climbed = _components(s)
    if climbed:
        return "path.climbs_out"
    if not parts or s.endswith("/"):
        return "path.invalid"  # '', '.', 'a/..', 'images/': names no file
    return None


def safe_relative(name: str) -> str:
    """``name`` as a relative '/'-separated path that cannot leave its folder ('' when nothing is left)."""
    s = _separators(name).replace("\0", "_")
    if _DRIVE.match(s):
        s = s[2:]
    return "/".join(_components(s)[0])


def source_path(root: Path, name: str) -> Path:
    """The file a record names: ``root / safe_relative(name)`` for a safe name, else ``root / name``."""
    return root / (safe_relative(name) if name_problem(name) is None else name)


def inside(folder: Path, path: Path) -> bool:
    """True when ``path`` (symlinks resolved, as far as it exists) lies inside ``folder``."""
    try:
        path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError):
        return False
    return True


def yolo_relative(name: str) -> str:
    """A canonical name without ``images`` / ``labels`` folders (``images/val/x.jpg`` -> ``val/x.jpg``):
    ultralytics finds an image's labels by turning the last ``images`` folder of its path into
    ``labels``, which ``OUT/images/images/val/x.jpg`` would send to ``OUT/images/labels/...``."""
    parts = [p for p in name.split("/") if p not in ("images", "labels")]
    return "/".join(parts) or name


# ---- outputs never inside an input -----------------------------------------------------------------------
def input_folders(ds, path: str | Path | None = None, image_root: str | Path | None = None) -> list[Path]:
    """The folders a dataset is read from: the input ``path`` when it is a folder, the folder of the images'
    names (``image_root``) for the formats found by walking folders (YOLO, VOC), every folder that holds
    an image the dataset names, and for YOLO the ``labels`` folder that mirrors each. A COCO json's own
    folder is not one: only the json is read there (an output beside it changes no later read).

    Args:
        ds: a :class:`~detkit.datasets.model.Dataset`.
        path: the input the user named.
        image_root: the image folder the user named, when it is not ``ds.image_root``.
    """
    import os

    out: list[Path] = []
    if path is not None and Path(path).is_dir():
        out.append(Path(path))
    root = Path(image_root or ds.image_root) if (image_root or ds.image_root) else None
    if root is not None:
        if ds.format in ("yolo", "voc"):
            out.append(root)
        dirs = {os.path.dirname(str(f).replace("\\", "/")) for f in ds.file_name.tolist()}  # few distinct
        here = Path(path).resolve().parent if path is not None and Path(path).is_file() else None
        for d in sorted(dirs):
            folder = root / safe_relative(d) if not d or name_problem(d + "/x") is None else Path(d)
            if ds.format not in ("yolo", "voc") and here is not None:
                real = folder.resolve()
                if real == here or real in here.parents:  # a json's own folder (or above): not walked
                    continue
            out.append(folder)
            if ds.format == "yolo":
                out.append(labels_folder(folder))
    return out


def check_outside(out: str | Path, inputs, what: str = "output") -> None:
    """Refuse an ``out`` that is, contains, or lies inside an input (a file or folder; symlinks followed):
    one line naming both paths. A later read of a folder with the output inside would take it in."""

    if not inputs:
        return
    r = Path(out).resolve()
    for p in inputs:
        q = Path(p).resolve()
        if r == q or r in q.parents:
            raise InputError(out, None, f"{what} would overwrite the input {p}; choose a new {what}")
        if q in r.parents and Path(p).is_dir():
            raise InputError(
                out,
                None,
                f"{what} is inside the input folder {p}, which later reads would take it in; "
                f"choose {'an' if what[0] in 'aeiou' else 'a'} {what} outside it",
            )


def data_folders(*paths: str | Path | None) -> list[Path]:
    """The folders a trainer's ``--data`` reads, known without loading it: a folder itself, a data yaml's
    dataset root (its ``path:``, else its folder: where its paths start), a COCO json's image folder."""

    out = []
    for p in paths:
        if not p:
            continue
        p = Path(p)
        if p.is_dir():
            out.append(p)
        elif p.suffix.lower() in (".yaml", ".yml"):
            out.append(_yaml_root(p))
        elif p.suffix.lower() == ".json" and (root := default_image_root(p)) is not None:
            if Path(root).resolve() != p.resolve().parent:  # a json's own folder is not walked
                out.append(Path(root))
    return out


def _yaml_root(y: Path) -> Path:
    """The folder a data yaml's paths start from: its ``path:`` (relative to the yaml) when that is a
    folder, else the yaml's folder (an unreadable yaml: its folder; the trainer names the problem)."""

    try:
        doc = read_yaml(y)
    except InputError:
        return y.parent
    base = doc.get("path")
    if isinstance(base, str) and base.strip() and (y.parent / base).is_dir():
        return y.parent / base
    return y.parent
