"""A self-contained HTML report: inline CSS, images as data: URIs, no scripts, nothing fetched.

A Content-Security-Policy meta tag forbids every network load, so the file renders the same offline, attached
to an email or archived as a CI artifact."""

from __future__ import annotations

import base64
from html import escape

from detkit.report.sections import FOLD_ROWS, Figure, Section, Table

MIME = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
    ".bmp": "image/bmp",
}

CSS = """
:root{--fg:#1d2330;--muted:#5b6475;--line:#dde2ea;--bg:#f6f7f9;--card:#fff;--accent:#2f6fdf;--warn:#b4530b}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",
  Roboto,"DejaVu Sans",sans-serif}
header{background:#1d2330;color:#fff;padding:22px 32px 14px}
header h1{margin:0 0 4px;font-size:24px}
header .meta{color:#b8c0cf;font-size:13px;margin:0 0 10px}
nav{display:flex;flex-wrap:wrap;gap:4px 16px}
nav a{color:#cfe0ff;text-decoration:none;font-size:14px;white-space:nowrap}
main{max-width:1160px;margin:0 auto;padding:8px 24px 40px}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;margin:20px 0;padding:18px 24px}
h2{margin:0;font-size:20px}
h2 .kind{font:12px ui-monospace,Menlo,Consolas,monospace;color:var(--muted);margin-left:8px;font-weight:400}
h3{font-size:15px;margin:18px 0 8px;color:#34405a}
.blurb{color:var(--muted);margin:2px 0 10px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 12px;min-width:120px;background:#fafbfd}
.card .v{font-size:19px;font-weight:600;font-variant-numeric:tabular-nums}
.card .k{font-size:12px;color:var(--muted)}
dl.details{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0;font-size:14px}
dl.details dt{color:var(--muted)} dl.details dd{margin:0;word-break:break-word}
.figs{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
figure{margin:0} figure img{max-width:100%;border:1px solid var(--line);border-radius:4px;background:#fff}
figcaption{font-size:12px;color:var(--muted);text-align:center}
.figs figure img{max-height:340px}
.gallery{display:flex;flex-wrap:wrap;gap:8px}
.gallery figure{width:176px} .gallery img{width:176px;height:auto}
.gallery figcaption{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.blocks{display:flex;flex-wrap:wrap;gap:0 36px;align-items:flex-start}.blocks>div{max-width:100%}
.tablewrap{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums;margin:4px 0}
th,td{border-bottom:1px solid var(--line);padding:4px 10px;text-align:left;white-space:nowrap}
th{background:#eef1f6;position:sticky;top:0} tr:nth-child(even) td{background:#fafbfd}
td.long{white-space:normal;min-width:240px;word-break:break-word} td.bad{color:#c0262d;font-weight:600}
pre.raw{font:12px/1.35 ui-monospace,Menlo,Consolas,monospace;background:#f6f7f9;padding:8px;
  max-height:420px;overflow:auto}
details>summary{cursor:pointer;color:var(--accent);font-size:14px;margin:6px 0}
.note{color:var(--warn);font-size:13px;margin:4px 0}
.prov{margin-top:16px;border-top:1px dashed var(--line);padding-top:10px;font-size:12px;color:var(--muted)}
.prov pre{background:#f0f2f6;color:var(--fg);padding:8px 10px;border-radius:4px;overflow-x:auto;margin:4px 0;
  font:12px/1.4 ui-monospace,Menlo,Consolas,"DejaVu Sans Mono",monospace;white-space:pre-wrap;
  word-break:break-all}
footer{text-align:center;color:var(--muted);font-size:12px;padding:10px}
"""


def data_uri(fig: Figure) -> str | None:
    """The image as a ``data:`` URI, or None when its file cannot be read."""
    raw = fig.read()
    if raw is None:
        return None
    mime = MIME.get(fig.suffix, "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


def _figure(fig: Figure, alt: str, caption: bool = True) -> str:
    uri = data_uri(fig)
    if uri is None:
        return f'<p class="note">image {escape(fig.name)} could not be read</p>'
    cap = f"<figcaption>{escape(fig.name)}</figcaption>" if caption else ""
    return f'<figure><img src="{uri}" alt="{escape(alt)}" title="{escape(fig.name)}">{cap}</figure>'


def _td(v: str) -> str:
    cls = ' class="bad"' if v == "FAILED" else (' class="long"' if len(v) > 40 else "")
    return f"<td{cls}>{escape(v)}</td>"


def _table(t: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in t.columns)
    body = "".join("<tr>" + "".join(_td(v) for v in row) + "</tr>" for row in t.rows)
    more = (
        ""
        if t.total_rows == len(t.rows)
        else f'<p class="note">first {len(t.rows)} of {t.total_rows} rows</p>'
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    html = f'<div class="tablewrap">{table}</div>{more}'
    if t.total_rows > FOLD_ROWS:
        return (
            f"<h3>{escape(t.name)}</h3><details><summary>show {t.total_rows} rows</summary>{html}</details>"
        )
    return f"<h3>{escape(t.name)}</h3>{html}"


def _section(s: Section) -> str:
    out = [f'<section id="{s.anchor}"><h2>{escape(s.heading)}<span class="kind">{escape(s.kind)}</span></h2>']
    if s.blurb:
        out.append(f'<p class="blurb">{escape(s.blurb)}</p>')
    if s.title and s.title != s.heading:
        out.append(f"<p><strong>{escape(s.title)}</strong></p>")
    if not s.command:  # a section detkit report made itself (incomplete runs): no provenance block
        out += [f"<div>{_table(t)}</div>" for t in s.tables] + ["</section>"]
        return "\n".join(out)
    if s.metrics:
        cards = "".join(
            f'<div class="card"><div class="v">{escape(v)}</div><div class="k">{escape(k)}</div></div>'
            for k, v in s.metrics
        )
        out.append(f'<div class="cards">{cards}</div>')
    if s.details:
        out.append(
            '<dl class="details">'
            + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in s.details)
            + "</dl>"
        )
    if s.curves:
        out.append(
            '<h3>Training curves</h3><div class="figs">'
            + "".join(_figure(f, f"{s.heading}: {f.name}", caption=False) for f in s.curves)
            + "</div>"
        )
    if s.figures:
        out.append(
            '<h3>Plots</h3><div class="figs">'
            + "".join(_figure(f, f"{s.heading}: {f.name}") for f in s.figures)
            + "</div>"
        )
    if s.tables:  # small tables sit side by side; wide ones take the row
        out.append('<div class="blocks">' + "".join(f"<div>{_table(t)}</div>" for t in s.tables) + "</div>")
    for name, images in s.galleries:
        out.append(
            f'<h3>{escape(name)} <small>({len(images)})</small></h3><div class="gallery">'
            + "".join(_figure(f, f"{name}: {f.name}") for f in images)
            + "</div>"
        )
    out += [
        f'<details><summary>{escape(name)} (all values, JSON)</summary><pre class="raw">{escape(text)}</pre>'
        "</details>"
        for name, text in s.raw
    ]
    out += [f'<p class="note">&#9888; {escape(n)}</p>' for n in s.notes]
    versions = " &middot; ".join(f"{escape(k)} {escape(v)}" for k, v in s.versions.items())
    out.append(
        f'<div class="prov"><div>Produced by</div><pre><code>{escape(s.command)}</code></pre>'
        f"<div>{escape(s.created)} &middot; folder <code>{escape(s.folder)}</code></div>"
        f"<div>{versions}</div></div></section>"
    )
    return "\n".join(out)


def render_html(sections: list[Section], title: str, meta: str) -> str:
    """The whole report as one HTML string.

    Args:
        sections: report sections in display order.
        title: page title and heading.
        meta: one line under the heading (when and from what it was generated).
    """
    nav = "".join(f'<a href="#{s.anchor}">{escape(s.nav or s.heading)}</a>' for s in sections)
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>"
        f'<header><h1>{escape(title)}</h1><p class="meta">{escape(meta)}</p><nav>{nav}</nav></header>\n'
        "<main>\n" + "\n".join(_section(s) for s in sections) + "\n</main>"
        "<footer>generated by detkit report &middot; self-contained, no network</footer></body></html>\n"
    )
