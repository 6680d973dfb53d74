"""`detkit coco inspect / validate / classes` (thin: parse, call, print); the other coco commands are in
:mod:`detkit.datasets.cli.convert`, :mod:`detkit.evaluation.cli` and :mod:`detkit.datasets.cli.ops`
(:mod:`detkit.cli` imports the four in that order, for --help)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from detkit.console import emit_json, esc, info, out
from detkit.datasets.checks.findings import CODES, FIX_FLAGS
from detkit.datasets.checks.fix import write_fix
from detkit.datasets.checks.validate import validate_path
from detkit.datasets.cli.common import (
    FailOn,
    FormatOpt,
    InPath,
    JsonOpt,
    NamesOpt,
    OutOpt,
    SplitOpt,
    StrictOpt,
    app,
    busy,
    load,
    names_kw,
    skipped_doc,
    table,
    warn_skipped,
    write_out,
)
from detkit.datasets.load import load_labels
from detkit.datasets.plots import plot_classes
from detkit.datasets.stats import class_table_by_split, inspect_dataset
from detkit.errors import cli_text
from detkit.io import atomic_write


# ---- inspect ---------------------------------------------------------------------------------------
@app.command()
def inspect(
    path: InPath,
    format: FormatOpt = None,
    split: SplitOpt = None,
    strict: StrictOpt = False,
    names: NamesOpt = None,
    json: JsonOpt = False,
    out_dir: OutOpt = None,
) -> None:
    """Explain an annotation file: schema field by field, counts, image sizes, boxes per image, box sizes.

    Example: detkit coco inspect annotations/instances_val2017.json
    """
    ds = load(path, format, split, strict, names)
    doc = inspect_dataset(ds)
    doc["skipped"] = skipped_doc(ds)
    if out_dir is not None:
        c = doc["counts"]
        write_out(
            out_dir,
            "coco.inspect",
            f"Inspect {path.name}",
            path,
            {"path": str(path), "format": ds.format},
            metrics={
                **c,
                **{
                    f"boxes_{k}": v for k, v in doc["size_split"].items() if k in ("small", "medium", "large")
                },
            },
            tables={
                "schema": doc["schema"],
                "image_sizes": doc["image_sizes"]["most_common"],
                "boxes_per_image": doc["boxes_per_image"]["histogram"],
                "box_sizes": [
                    {
                        "stat": k,
                        **{
                            n: doc[n][k]
                            for n in ("box_width", "box_height", "box_area", "box_aspect_w_over_h")
                        },
                    }
                    for k in doc["box_width"]
                ],
            },
            inspect=doc,
        )
    if json:
        emit_json(doc)
        return
    _print_inspect(doc)


def _print_inspect(doc: dict) -> None:

    c = doc["counts"]
    out.print(f"[bold]{esc(doc['path'])}[/bold]  ({doc['format']}: {esc(doc['source_note'])})")
    out.print(f"bbox convention: {doc['bbox_convention']}\n")
    out.print(
        table("Schema", ["table", "field", "type", "meaning"], [list(r.values()) for r in doc["schema"]])
    )
    out.print()
    out.print(
        table(
            "Counts",
            ["images", "annotations", "categories", "used", "crowd", "images w/o boxes"],
            [
                [
                    c["images"],
                    c["annotations"],
                    c["categories"],
                    c["categories_used"],
                    c["crowd"],
                    c["images_without_annotations"],
                ]
            ],
        )
    )
    if doc.get("splits"):
        out.print()
        out.print(
            table(
                "Splits",
                ["split", "images", "annotations", "images w/o boxes", "share of images"],
                [
                    [
                        r["split"],
                        r["images"],
                        r["annotations"],
                        r["images_without_annotations"],
                        f"{r['share']:.1%}",
                    ]
                    for r in doc["splits"]
                ],
            )
        )
    out.print()
    sizes = doc["image_sizes"]
    out.print(
        table(
            f"Image sizes ({sizes['distinct']} distinct; most common)",
            ["width", "height", "images"],
            [[r["width"], r["height"], r["images"]] for r in sizes["most_common"]],
        )
    )
    out.print()
    stats = ["min", "p5", "p25", "median", "p75", "p95", "max", "mean"]
    dists = [
        ("image width", sizes["width"]),
        ("image height", sizes["height"]),
        ("boxes per image", doc["boxes_per_image"]),
        ("box width", doc["box_width"]),
        ("box height", doc["box_height"]),
        ("box area w*h", doc["box_area"]),
        ("box aspect w/h", doc["box_aspect_w_over_h"]),
    ]
    out.print(table("Distributions (px)", ["name", *stats], [[n, *(d[s] for s in stats)] for n, d in dists]))
    out.print()
    out.print(
        table(
            "Boxes per image",
            ["boxes", "images"],
            [[r["boxes"], r["images"]] for r in doc["boxes_per_image"]["histogram"]],
        )
    )
    out.print()
    sp = doc["size_split"]
    out.print(
        table(
            f"COCO size split ({sp['by']})",
            ["small", "medium", "large"],
            [
                [sp["small"], sp["medium"], sp["large"]],
                [f"{sp['share'][k]:.1%}" for k in ("small", "medium", "large")],
            ],
        )
    )


# ---- validate --------------------------------------------------------------------------------------
def _list_codes(value: bool) -> None:
    if value:
        out.print(
            table(
                "Finding codes", ["code", "severity", "meaning"], [[c, s, m] for c, (s, m) in CODES.items()]
            )
        )
        raise typer.Exit(0)


@app.command()
def validate(
    path: InPath,
    format: FormatOpt = None,
    fail_on: Annotated[
        FailOn, typer.Option("--fail-on", help="Exit 1 when a finding reaches this severity.")
    ] = FailOn.error,
    fix: Annotated[
        Path | None, typer.Option("--fix", help="Write a cleaned COCO json here and list every change.")
    ] = None,
    examples: Annotated[
        int, typer.Option("--examples", min=0, help="Offending records shown per finding.")
    ] = 5,
    images: Annotated[
        Path | None,
        typer.Option("--images", help="Image folder of a COCO json: check each file exists and its size."),
    ] = None,
    json: JsonOpt = False,
    out_dir: OutOpt = None,
    list_codes: Annotated[
        bool,
        typer.Option(
            "--list-codes",
            callback=_list_codes,
            is_eager=True,
            help="Print every finding code with its severity and exit.",
        ),
    ] = False,
) -> None:
    """Check an annotation file; findings have stable codes, a severity, a count and example records.

    Exit 0 when nothing reaches --fail-on, 1 when something does, 2 when the input is unusable.

    Example: detkit coco validate instances_train.json --fail-on warning --fix clean.json
    """
    with busy(f"validating {path}"):
        report = validate_path(
            path,
            format=format.value if format else None,
            max_examples=examples,
            keep_raw=fix is not None,
            images=images,
        )
    changes = None
    if fix is not None:
        changes = write_fix(report, fix)
        info(f"wrote {fix} ({len(changes):,} changes)")
    doc = {**report.as_dict(), "fail_on": fail_on.value, "failed": report.fails(fail_on.value)}
    if changes is not None:
        doc["fix"] = {"out": str(fix), "changes": changes, "counts": _count_actions(changes)}
    if out_dir is not None:
        write_out(
            out_dir,
            "coco.validate",
            f"Validate {path.name}",
            path,
            {
                "path": str(path),
                "format": report.format,
                "fail_on": fail_on.value,
                "fix": str(fix) if fix else None,
            },
            metrics={**report.counts, "findings": len(report.findings), "failed": doc["failed"]},
            tables={
                "findings": [
                    {k: v for k, v in f.as_dict().items() if k != "examples"} | {"example": _first(f)}
                    for f in report.findings
                ],
                **({"changes": changes} if changes else {}),
            },
            validate=doc,
        )
    if json:
        emit_json(doc)
    else:
        _print_validate(doc)
    if doc["failed"]:
        raise typer.Exit(1)


def _first(f) -> str:
    ex = f.examples[0] if f.examples else None
    return "" if ex is None else " ".join(str(ex[k]) for k in ("record", "id", "note") if k in ex)


def _count_actions(changes: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in changes:
        counts[c["action"]] = counts.get(c["action"], 0) + 1
    return counts


def _print_validate(doc: dict) -> None:

    out.print(
        f"[bold]{esc(doc['path'])}[/bold] ({doc['format']}): {doc['images']:,} images, "
        f"{doc['annotations']:,} annotations, {doc['categories']:,} categories"
    )
    if not doc["findings"]:
        out.print("no findings")
    colour = {"error": "red", "warning": "yellow", "info": "cyan"}
    for f in doc["findings"]:
        out.print(
            f"[{colour[f['severity']]}]{f['severity']:7}[/] {f['code']:32} {f['count']:>8,}  "
            + esc(cli_text(f["message"], FIX_FLAGS))
        )
        for ex in f["examples"]:
            extra = f" id {ex['id']}" if "id" in ex else ""
            out.print(
                esc(
                    f"          {ex['file']}:{ex['record']}{extra}{'  ' + ex['note'] if 'note' in ex else ''}"
                )
            )
        if f.get("details"):
            out.print(esc("          " + ", ".join(f"{k} {v}" for k, v in f["details"].items())))
    c = doc["counts"]
    out.print(
        f"\n{c['error']:,} errors, {c['warning']:,} warnings, {c['info']:,} info "
        f"(--fail-on {doc['fail_on']}: {'FAIL' if doc['failed'] else 'ok'})"
    )
    if "fix" in doc:
        fx = doc["fix"]
        out.print(
            f"\n--fix wrote {esc(fx['out'])}: " + ", ".join(f"{k} {v:,}" for k, v in fx["counts"].items())
            if fx["counts"]
            else f"\n--fix wrote {esc(fx['out'])}: no changes"
        )
        for ch in fx["changes"]:
            parts = [ch["action"], ch["record"]] + ([f"id {ch['id']}"] if "id" in ch else [])
            if "before" in ch:
                before, after = ch["before"], ch.get("after")
                parts.append(
                    f"{before} -> {after}"
                    if before is not None and after is not None
                    else (f"-> {after}" if after is not None else str(before))
                )
            out.print(esc("  " + " ".join(str(p) for p in parts)))


# ---- classes ---------------------------------------------------------------------------------------
@app.command()
def classes(
    path: InPath,
    format: FormatOpt = None,
    split: SplitOpt = None,
    strict: StrictOpt = False,
    names: NamesOpt = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a horizontal bar chart PNG here.")
    ] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Write the table as CSV here.")] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the table as Markdown.")] = False,
    json: JsonOpt = False,
    out_dir: OutOpt = None,
) -> None:
    """Class distribution: instances, images containing each class and its share, most frequent first
    (with splits: each split's instances and share side by side).

    Example: detkit coco classes instances_val2017.json --plot classes.png --csv classes.csv
    """
    with busy(f"reading {path}"):
        ds = load_labels(
            path,
            format=format.value if format else None,
            split=split,
            strict=strict,
            **names_kw(path, format, names),
        )
    warn_skipped(ds)
    splits, rows = class_table_by_split(ds)
    if plot is not None:
        plot_classes(rows, plot, title=f"Instances per class: {path.name}")
        info(f"wrote {plot}")
    if csv is not None:
        _write_csv(rows, csv)
        info(f"wrote {csv}")
    if out_dir is not None:
        plot_classes(rows, out_dir / "classes.png", title=f"Instances per class: {path.name}")
        write_out(
            out_dir,
            "coco.classes",
            f"Classes of {path.name}",
            path,
            {"path": str(path), "format": ds.format},
            metrics={
                "images": ds.num_images,
                "annotations": ds.num_annotations,
                "categories": ds.num_categories,
                "categories_used": sum(r["instances"] > 0 for r in rows),
            },
            tables={"classes": rows},
            plots={"classes": "classes.png"},
        )
    doc = {
        "path": str(path),
        "format": ds.format,
        "images": ds.num_images,
        "annotations": ds.num_annotations,
        "classes": rows,
    }
    if splits:
        doc["splits"] = splits
    if (skipped := skipped_doc(ds)) is not None:
        doc["skipped"] = skipped
    if json:
        emit_json(doc)
    elif markdown:
        print(_markdown(rows))
    elif splits:
        _print_split_classes(path, ds, splits, rows)
    else:
        out.print(
            table(
                f"{path} ({ds.num_annotations:,} boxes, {ds.num_images:,} images)",
                ["id", "name", "instances", "images", "share"],
                [[r["id"], r["name"], r["instances"], r["images"], f"{r['share']:.2%}"] for r in rows],
            )
        )


def _print_split_classes(path: Path, ds, splits: list[str], rows: list[dict]) -> None:
    """The class table (instances, images containing the class, share) with each split's instances and
    share side by side."""
    cols = ["id", "name", "instances", "images", "share"]
    for s in splits:
        cols += [f"{s}", f"{s} %"]
    cells = [
        [
            r["id"],
            r["name"],
            r["instances"],
            r["images"],
            f"{r['share']:.2%}",
            *(v for s in splits for v in (r["splits"][s]["instances"], f"{r['splits'][s]['share']:.1%}")),
        ]
        for r in rows
    ]
    sizes = ", ".join(f"{s} {int(ds.split_mask(s).sum()):,}" for s in splits)
    out.print(table(f"{path} ({ds.num_annotations:,} boxes, {ds.num_images:,} images: {sizes})", cols, cells))


def _write_csv(rows: list[dict], path: Path) -> None:
    import csv as _csv

    splits = list(rows[0].get("splits", {})) if rows else []
    flat = [
        {k: v for k, v in r.items() if k != "splits"}
        | {f"{s}_{k}": v for s in splits for k, v in r["splits"][s].items()}
        for r in rows
    ]
    fields = ["id", "name", "instances", "images", "share"] + [
        f"{s}_{k}" for s in splits for k in ("instances", "images", "share")
    ]
    with atomic_write(path, newline="") as f:
        w = _csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(flat)


def _markdown(rows: list[dict]) -> str:
    splits = list(rows[0].get("splits", {})) if rows else []  # each split's instances and share, side by side
    lines = [
        "| id | name | instances | images | share |" + "".join(f" {sp} | {sp} % |" for sp in splits),
        "|---:|---|---:|---:|---:|" + "---:|---:|" * len(splits),
    ]
    lines += [
        f"| {r['id']} | {r['name'].replace('|', '/')} | {r['instances']} | {r['images']} | {r['share']:.2%} |"
        + "".join(f" {r['splits'][sp]['instances']} | {r['splits'][sp]['share']:.1%} |" for sp in splits)
        for r in rows
    ]
    return "\n".join(lines)
