"""Paths taken from records (``file_name``, VOC ``<filename>``) made safe to write under an output folder.

A record's name is data, not a path detkit may follow: ``/home/u/a.jpg`` or ``../../etc/passwd`` joined
to an output folder would write outside it. :func:`name_problem` classifies a name for ``validate``
(the ``path.*`` finding codes) and :func:`safe_relative` maps it to the name ``convert`` writes:
components are resolved lexically (``a/../b.jpg`` is ``b.jpg``), a leading ``/`` and any ``..`` that
would climb above the folder are dropped, and a NUL becomes ``_``. :func:`inside` is the last check
before a write: the real path, symlinks followed, must lie in the folder.
"""

from __future__ import annotations

from pathlib import Path


def _components(name: str) -> tuple[list[str], bool]:
    """The lexically resolved components of ``name`` and whether a ``..`` climbed above its folder."""
    out: list[str] = []
    climbed = False
    for part in name.split("/"):
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
    """The ``path.*`` finding code of a record's file name, or None when it stays inside its folder."""
    if "\0" in name:
        return "path.invalid"
    if name.startswith("/"):
        return "path.absolute"
    parts, climbed = _components(name)
    if climbed:
        return "path.climbs_out"
    if name and (not parts or name.endswith("/")):
        return "path.invalid"  # '.', 'a/..', 'images/': names no file
    return None


def safe_relative(name: str) -> str:
    """``name`` as a relative path that cannot leave its folder ('' when nothing is left of it)."""
    parts, _ = _components(name.replace("\0", "_"))
    return "/".join(parts)


def inside(folder: Path, path: Path) -> bool:
    """True when ``path`` (symlinks resolved, as far as it exists) lies inside ``folder``."""
    try:
        path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError):
        return False
    return True
