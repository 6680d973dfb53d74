"""``write_report``: summaries under some folders -> one HTML file or one Markdown file + images.

detkit report runs/ -o report.html     # self-contained, images embedded
detkit report runs/ -o report.md       # images in report_files/ beside it
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detkit.errors import DetkitError
from detkit.io import atomic_write
from detkit.report.collect import find_incomplete, find_summaries
from detkit.report.html import render_html
from detkit.report.markdown import render_markdown
from detkit.report.output import publish, report_format
from detkit.report.sections import build_sections, incomplete_section
from detkit.train.runs import now


def write_report(dirs: list[str | Path], out: str | Path, title: str = "detkit report") -> dict[str, Any]:
    """Render every summary.json under ``dirs`` into ``out`` (.html or .md) and describe what was written.

    Args:
        dirs: run/output folders (searched recursively) or summary.json files.
        out: the report file; ``.html`` is self-contained, ``.md`` gets a ``<stem>_files/`` image folder.
        title: the report's heading.

    Returns:
        {"report": path, "format": ..., "sections": [{"kind", "heading", "folder", "notes"}], "assets":
        dir|None}
    """
    out = Path(out)
    fmt = report_format(out)
    incomplete = find_incomplete(list(dirs))
    try:
        summaries = find_summaries(list(dirs))
    except DetkitError:
        if not incomplete:
            raise
        summaries = []  # only interrupted runs: the report says so
    sections = build_sections(summaries, base=out.parent)
    if incomplete:  # listed with the reason, never silently left out
        sections.append(incomplete_section(incomplete, len(sections) + 1, base=out.parent))
    meta = f"{len(sections)} section(s) from {', '.join(str(d) for d in dirs)} · generated {now()}"
    assets = None
    if fmt == "html":
        text = render_html(sections, title, meta)
    else:
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
