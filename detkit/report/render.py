"""``write_report``: summaries under some folders -> one HTML file or one Markdown file + images.

detkit report runs/ -o report.html     # self-contained, images embedded
detkit report runs/ -o report.md       # images in report_files/ beside it
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from detkit.errors import DetkitError
from detkit.io import atomic_write
from detkit.report.collect import find_summaries
from detkit.report.sections import build_sections
from detkit.runs import now

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


def write_report(dirs: list[str | Path], out: str | Path, title: str = "detkit report") -> dict[str, Any]:
    """Render every summary.json under ``dirs`` into ``out`` (.html or .md) and describe what was written.

    Args:
        dirs: run/output folders (searched recursively) or summary.json files.
        out: the report file; ``.html`` is self-contained, ``.md`` gets a ``<stem>_files/`` image folder.
        title: the report's heading.

    Returns:
        {"report": path, "format": ..., "sections": [{"kind", "heading", "folder", "notes"}], "assets": dir|None}
    """
    out = Path(out)
    fmt = report_format(out)
    summaries = find_summaries(list(dirs))
    sections = build_sections(summaries, base=out.parent)
    meta = f"{len(sections)} section(s) from {', '.join(str(d) for d in dirs)} · generated {now()}"
    assets = None
    if fmt == "html":
        from detkit.report.html import render_html

        text = render_html(sections, title, meta)
    else:
        from detkit.report.markdown import render_markdown

        assets = out.parent / f"{out.stem}_files"
        text = render_markdown(sections, title, meta, assets, assets.name)
    with atomic_write(out) as f:
        f.write(text)
    publish(out)
    return {
        "report": str(out),
        "format": fmt,
        "assets": str(assets) if assets else None,
        "sections": [
            {"kind": s.kind, "heading": s.heading, "folder": s.folder, "notes": s.notes} for s in sections
        ],
    }
