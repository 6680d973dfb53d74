"""What every `detkit coco ...` command module shares: the Typer group, option types and printing helpers.

The commands live in :mod:`detkit.datasets.cli.inspect` (inspect, validate, classes),
:mod:`detkit.datasets.cli.convert`, :mod:`detkit.datasets.cli.ops` (split, merge, filter, sample, draw) and
:mod:`detkit.evaluation.cli` (eval); each imports this module and none imports another, so the imports run
one way; :mod:`detkit.cli` imports all four. Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from detkit.console import err, esc, info, progress_enabled
from detkit.datasets import load as loaders
from detkit.datasets.formats.layouts import read_names
from detkit.datasets.load import detect_format, load_dataset, skipped_summary
from detkit.errors import DetkitError
from detkit.train.runs import record_run, write_summary

app = typer.Typer(no_args_is_help=True)


class Fmt(str, Enum):
    coco = "coco"
    text = "text"
    yolo = "yolo"
    voc = "voc"
    cvat = "cvat"
    labelstudio = "labelstudio"
    labelme = "labelme"


class Target(str, Enum):
    coco = "coco"
    yolo = "yolo"
    voc = "voc"


class ConvertTarget(str, Enum):
    """What ``convert --to`` writes: :data:`Target` and the annotation tools."""

    coco = "coco"
    yolo = "yolo"
    voc = "voc"
    cvat = "cvat"
    labelstudio = "labelstudio"
    labelme = "labelme"


class CategoryIds(str, Enum):
    index = "index"
    coco80 = "coco80"


class FailOn(str, Enum):
    error = "error"
    warning = "warning"
    never = "never"


InPath = Annotated[
    Path,
    typer.Argument(
        help="COCO json, course text file, YOLO folder or data.yaml, VOC folder, CVAT XML, Label Studio "
        "JSON or LabelMe folder."
    ),
]
FormatOpt = Annotated[
    Fmt | None, typer.Option("--format", "-f", help="Input format (default: detected from the path).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else.")]
OutOpt = Annotated[
    Path | None, typer.Option("--out", help="Also write DIR/summary.json (+ run.json) for `detkit report`.")
]
SplitOpt = Annotated[
    str | None,
    typer.Option("--split", help="Read only this split (train, val, test); default: all, side by side."),
]
NamesOpt = Annotated[
    Path | None,
    typer.Option(
        "--names",
        help="Class names for YOLO labels that have none (class0, class1... otherwise): a file with one "
        "name per line, or a data.yaml.",
    ),
]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Stop (exit 2) at the first orphan label, corrupt image or bad row instead of skipping it.",
    ),
]


def busy(message: str):
    """A spinner on stderr while a long single step runs (a no-op when stderr is not a terminal)."""
    import contextlib

    return err.status(message) if progress_enabled() else contextlib.nullcontext()


def load(
    path: Path, fmt: Fmt | None, split: str | None = None, strict: bool = False, names: Path | None = None
):
    with busy(f"reading {path}"):
        ds = load_dataset(
            path, format=fmt.value if fmt else None, split=split, strict=strict, **names_kw(path, fmt, names)
        )
    warn_skipped(ds)
    return ds


def names_kw(path: Path, fmt: Fmt | None, names: Path | None) -> dict:
    """``{"names": [...]}`` read from the ``--names`` file ({} without one); refused for sources whose
    files carry their class names (only YOLO labels are bare class indexes)."""
    if names is None:
        return {}

    kind = fmt.value if fmt else detect_format(path)
    if kind != "yolo":
        raise DetkitError(
            f"--names: {path} is {kind}, whose files name their classes; --names is for YOLO labels"
        )
    return {"names": read_names(names)}


def skipped_doc(ds) -> dict | None:
    """The ``skipped`` block of --json: what the loader left out or repaired (None when nothing)."""
    return skipped_summary(ds) if hasattr(ds, "skipped") else None


def warn_skipped(ds) -> None:
    """One warning line for what the loader skipped, one note for what it repaired (stderr)."""
    if hasattr(ds, "skipped"):
        loaders.warn_skipped(ds, hint="--strict to stop instead, `detkit coco validate` for all")


def table(title: str, columns: list[str], rows: list[list[object]]):
    from rich.table import Table

    t = Table(title=esc(title), title_justify="left", show_edge=False, pad_edge=False)
    cells = [[cell(v) for v in r] for r in rows]
    for k, c in enumerate(columns):
        left = c in ("name", "table", "field", "type", "meaning", "code", "severity")
        width = None if left else max([len(c)] + [len(r[k]) for r in cells])
        t.add_column(esc(c), justify="left" if left else "right", no_wrap=k == 0 or not left, min_width=width)
    for r in cells:
        t.add_row(*r)
    return t


def cell(v: object) -> str:

    if v is None:
        return ""
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return esc(str(v))


def write_out(out_dir: Path, kind: str, title: str, path: Path, config: dict, **fields) -> None:
    record_run(out_dir, config=config, inputs=[path])
    write_summary(out_dir, kind, title, **fields)
    info(f"wrote {out_dir / 'summary.json'}")


def write_op_summary(out: Path, kind: str, title: str, doc: dict, tables: dict | None = None) -> Path | None:
    """The summary.json of a command that writes a data set to an output folder OUT (split, filter,
    sample, merge, convert), so ``detkit report`` shows it. An output that is one file (``OUT.json``,
    ``OUT.xml``) gets none: nothing is written beside what the user named. ``doc`` is the command's
    --json document; its counts become the metrics."""
    if not out.is_dir():
        return None
    folder, name = out, "summary.json"
    counts = ("images", "boxes", "categories")
    metrics = {k: doc[k] for k in counts if isinstance(doc.get(k), int)}
    written = doc.get("written")
    if not metrics and isinstance(written, dict):
        metrics = {k: written[k] for k in counts if isinstance(written.get(k), int)}
    rest = {k: v for k, v in doc.items() if k not in (*counts, "kind", "title")}
    return write_summary(folder, kind, title, file=name, metrics=metrics, tables=tables or {}, **rest)
