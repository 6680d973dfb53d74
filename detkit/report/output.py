"""Report files on disk: which renderer a suffix means, and the permissions of what was written.

A leaf module: the renderers (``html``, ``markdown``) and ``render`` import it, it imports none of them,
so report rendering runs one way: render -> html | markdown -> sections -> collect.
"""

from __future__ import annotations

import os
from pathlib import Path

from detkit.errors import DetkitError

FORMATS = {".html": "html", ".htm": "html", ".md": "markdown", ".markdown": "markdown"}


def publish(path: Path) -> None:
    """Give a written file the usual umask permissions (atomic writes start as private 0600 temp files)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def report_format(out: Path) -> str:
    """``html`` or ``markdown`` from the output file's suffix."""
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise DetkitError(f"{out}: report must end in .html or .md (got {out.suffix or 'no suffix'!r})")
    return fmt
