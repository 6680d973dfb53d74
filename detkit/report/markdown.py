"""The Markdown twin of the HTML report: same sections, images copied beside the .md file.

Images go to ``<stem>_files/`` next to ``<stem>.md`` and are linked relatively, so the folder can be
committed, zipped or viewed on a code host as is.
"""

from __future__ import annotations

from pathlib import Path

from detkit.io import atomic_write
from detkit.report.output import publish
from detkit.report.sections import FOLD_ROWS, Figure, Section, Table, slug


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(columns: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured pipe table."""
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


class _Assets:
    """Writes each image once into the asset folder and returns its relative link."""

    def __init__(self, folder: Path, rel: str):
        self.folder, self.rel, self.count = folder, rel, 0

    def link(self, fig: Figure, stem: str) -> str | None:
        raw = fig.read()
        if raw is None:
            return None
        self.count += 1
        name = f"{self.count:03d}-{slug(stem)}{fig.suffix}"
        with atomic_write(self.folder / name, "wb") as f:
            f.write(raw)
        publish(self.folder / name)
        return f"{self.rel}/{name}"


def _image(assets: _Assets, fig: Figure, stem: str) -> str:
    link = assets.link(fig, stem)
    alt = fig.name.replace("]", ")").replace("[", "(")
    return f"![{alt}]({link})" if link else f"*image {fig.name} could not be read*"


def _table(t: Table) -> list[str]:
    out = [f"#### {t.name}", "", md_table(t.columns, t.rows), ""]
    if t.total_rows > len(t.rows):
        out += [f"*first {len(t.rows)} of {t.total_rows} rows*", ""]
    if t.total_rows > FOLD_ROWS:  # long tables fold (GitHub renders Markdown inside <details>)
        out = [
            out[0],
            "",
            f"<details><summary>show {t.total_rows} rows</summary>",
            "",
            *out[2:],
            "</details>",
            "",
        ]
    return out


def _section(s: Section, assets: _Assets) -> list[str]:
    out = [f'<a id="{s.anchor}"></a>', f"## {s.heading}", ""]
    if s.blurb:
        out += [f"*{s.blurb}*", ""]
    if s.title and s.title != s.heading:
        out += [f"**{s.title}**", ""]
    if s.metrics:
        out += [md_table(["metric", "value"], [[k, v] for k, v in s.metrics]), ""]
    if s.details:
        out += [f"- **{k}**: {v}" for k, v in s.details] + [""]
    if s.curves:
        out += [
            "#### Training curves",
            "",
            " ".join(_image(assets, f, f"{s.anchor}-curve-{f.name}") for f in s.curves),
            "",
        ]
    if s.figures:
        out += ["#### Plots", ""] + [_image(assets, f, f"{s.anchor}-{f.name}") + "\n" for f in s.figures]
    for t in s.tables:
        out += _table(t)
    for name, images in s.galleries:
        out += [
            f"#### {name} ({len(images)})",
            "",
            " ".join(_image(assets, f, f"{s.anchor}-{name}-{f.name}") for f in images),
            "",
        ]
    for name, text in s.raw:
        out += [
            f"<details><summary>{name} (all values, JSON)</summary>",
            "",
            "```json",
            text,
            "```",
            "",
            "</details>",
            "",
        ]
    out += [f"> warning: {n}" for n in s.notes] + ([""] if s.notes else [])
    if not s.command:  # a section detkit report made itself (incomplete runs): no provenance
        return [*out, "---", ""]
    versions = ", ".join(f"{k} {v}" for k, v in s.versions.items())
    out += [
        "Produced by:",
        "",
        "```sh",
        s.command,
        "```",
        "",
        f"<sub>{s.created} · folder `{s.folder}` · {versions}</sub>",
        "",
        "---",
        "",
    ]
    return out


def render_markdown(sections: list[Section], title: str, meta: str, asset_dir: Path, asset_rel: str) -> str:
    """The report as Markdown; images are written into ``asset_dir`` and linked as ``asset_rel/NAME``.

    Args:
        sections: report sections in display order.
        title: the top heading.
        meta: one line under the heading.
        asset_dir: folder beside the .md that receives the images (created).
        asset_rel: how the .md refers to that folder (relative).
    """
    asset_dir.mkdir(parents=True, exist_ok=True)
    assets = _Assets(asset_dir, asset_rel)
    out = [f"# {title}", "", f"*{meta}*", ""]
    out += [f"- [{s.nav or s.heading}](#{s.anchor})" for s in sections] + ["", "---", ""]
    for s in sections:
        out += _section(s, assets)
    return "\n".join(out).rstrip() + "\n"
