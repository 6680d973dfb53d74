"""`detkit coco split / merge / filter / sample / draw` (thin: parse, call one function, print).

Registered on :data:`detkit.datasets.cli.common.app`; the work is in :mod:`detkit.datasets.ops`. No torch
here."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from detkit.console import emit_json, esc, info, out, warn
from detkit.datasets.cli.common import (
    FormatOpt,
    JsonOpt,
    SplitOpt,
    StrictOpt,
    Target,
    app,
    busy,
    skipped_doc,
    table,
    warn_skipped,
    write_op_summary,
)
from detkit.datasets.formats.write import default_target, write_one, write_split_parts
from detkit.datasets.ops.draw import draw_run
from detkit.datasets.ops.merge import merge_sources, parse_renames, write_merged
from detkit.datasets.ops.select import filter_dataset, sample_dataset
from detkit.datasets.ops.source import load_source
from detkit.datasets.ops.split import parse_ratios, split_dataset
from detkit.errors import DetkitError


class Empty(str, Enum):
    keep = "keep"
    drop = "drop"
    only = "only"


InArg = Annotated[
    Path,
    typer.Argument(metavar="IN", help="COCO json, YOLO folder / data.yaml, VOC folder or course text file."),
]
OutArg = Annotated[
    Path, typer.Argument(metavar="OUT", help="A new folder (or a .json file for COCO output).")
]
ToOpt = Annotated[
    Target | None, typer.Option("--to", help="Output format (default: the input's; text input -> coco).")
]
CopyOpt = Annotated[
    bool, typer.Option("--copy-images", help="Copy the images into OUT instead of referencing them.")
]
RootOpt = Annotated[
    Path | None,
    typer.Option(
        "--image-root", help="Folder the image file names are relative to (default: found from the input)."
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seeds every random choice: same seed, same output.")]


def _source(
    path: Path,
    fmt,
    image_root: Path | None,
    split: str | None = None,
    strict: bool = False,
    raw: bool = True,
    boxes: bool = True,
):
    """Load an input (``boxes=False``: the command never reads a box, see ``load_source``)."""
    fmt = fmt.value if fmt else None
    with busy(f"reading {path}"):
        src = load_source(path, fmt, image_root, raw=raw, boxes=boxes, split=split, strict=strict)
    warn_skipped(src.ds)
    for note in src.notes:
        warn(note)
    return src


def _target(src, to: Target | None) -> str:
    return to.value if to else default_target(src.format)


def _link_warnings(result: dict[str, Any], src_root: Any) -> None:
    if result.get("images_missing"):
        warn(f"{result['images_missing']:,} images not found to link under {src_root}; pass --image-root DIR")
    if result.get("unsafe_names"):
        warn(
            f"{result['unsafe_names']:,} image file names are not linked: absolute, climbing out with "
            "'..', naming "
            "no file, or taken by another image (`detkit coco validate` lists the first three as path.*)"
        )


def _base(src, out_path: Path, to: str, **extra: Any) -> dict[str, Any]:
    doc = {"in": str(src.path), "from": src.format, "out": str(out_path), "to": to, **extra}
    if (skipped := skipped_doc(src.ds)) is not None:
        doc["skipped"] = skipped
    return doc


# ---- split -------------------------------------------------------------------------------------------
@app.command()
def split(
    src_path: InArg,
    out_path: OutArg,
    ratios: Annotated[
        str, typer.Option("--ratios", help="Shares of images for train,val or train,val,test; they sum to 1.")
    ] = "0.8,0.1,0.1",
    seed: SeedOpt = 0,
    group: Annotated[
        str | None,
        typer.Option(
            "--group",
            help="Regex on file names; images sharing its captured group (a video, a patient) stay in "
            "one split.",
        ),
    ] = None,
    to: ToOpt = None,
    copy_images: CopyOpt = False,
    image_root: RootOpt = None,
    format: FormatOpt = None,
    only_split: SplitOpt = None,
    strict: StrictOpt = False,
    json: JsonOpt = False,
) -> None:
    """Split into train/val or train/val/test, stratified over each image's set of classes.

    Iterative stratification: rare classes are dealt out first, background images are spread in proportion,
    split sizes are exact. Writes OUT/<split>.json (coco), OUT/<split>/{images,labels} + OUT/data.yaml (yolo)
    or OUT/ImageSets/Main/<split>.txt (voc), and prints each class's share of images per split and the worst
    deviation from the ratios.

    Example: detkit coco split instances.json splits/ --ratios 0.8,0.1,0.1 --seed 0 --group '^(video\\d+)_'
    """
    r = parse_ratios(ratios)
    src = _source(src_path, format, image_root, only_split, strict, boxes=to not in (None, Target.coco))
    target = _target(src, to)
    with busy("splitting"):
        res = split_dataset(src.ds, r, seed=seed, group=group)
    parts = {n: p for n, p in res.parts.items() if p.images.size or res.ratios[res.names.index(n)] > 0}
    with busy(f"writing {out_path}"):
        written = write_split_parts(src, parts, out_path, target, copy_images)
    _link_warnings(written, src.image_root)
    if res.dangling:
        warn(f"{res.dangling:,} boxes whose image is not in the image list were not written")
    if group is not None and res.unmatched:
        warn(f"{res.unmatched:,} file names do not match --group {group!r}; each is its own group")
    doc = _base(src, out_path, target, seed=seed, group=group, **res.as_dict(), written=written)
    tables = {"splits": doc["splits"], "classes": _class_share_rows(res)}
    write_op_summary(out_path, "coco.split", f"split of {src_path.name}", doc, tables)
    if json:
        emit_json(doc)
        return
    out.print(
        table(
            f"{src_path} -> {out_path} ({target})",
            ["name", "images", "boxes", "background", "share"],
            [
                [
                    s["name"],
                    s["images"],
                    s["boxes"],
                    s["background"],
                    f"{s['images'] / max(1, src.ds.num_images):.1%}",
                ]
                for s in doc["splits"]
            ],
        )
    )
    out.print()
    names = res.names
    out.print(
        table(
            "Share of each class's images per split (boxes in brackets)",
            ["name", "images", *names],
            [
                [
                    c["name"],
                    c["images"],
                    *(f"{c['image_share'][n]:.1%} ({c['box_share'][n]:.1%})" for n in names),
                ]
                for c in res.classes
            ],
        )
    )
    w = res.worst
    out.print(
        f"\nworst deviation from the ratios: {w['images']:.2%} of a class's images"
        + (f" ({esc(w['class'])} in {esc(w['split'])})" if w["class"] else "")
        + f", {w['boxes']:.2%} of its boxes"
    )


def _class_share_rows(res) -> list[dict[str, Any]]:
    """Each class's share of images per split, as report table rows."""
    return [
        {"name": c["name"], "images": c["images"], **{n: round(c["image_share"][n], 4) for n in res.names}}
        for c in res.classes
    ]


# ---- merge -------------------------------------------------------------------------------------------
@app.command()
def merge(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="A B ... OUT", help="Two or more inputs, then the output (a new folder or a .json)."
        ),
    ],
    rename: Annotated[
        list[str] | None,
        typer.Option("--map", help="Rename a class before merging: old=new (repeat, or comma-separate)."),
    ] = None,
    to: ToOpt = None,
    copy_images: CopyOpt = False,
    format: FormatOpt = None,
    strict: StrictOpt = False,
    json: JsonOpt = False,
) -> None:
    """Merge datasets: classes unified by name (case and spacing ignored), ids remapped where they collide.

    The same image file in two inputs becomes one image; each image records its input in
    `detkit_source`. Output format: the first input's (or --to). Image names become relative to the
    inputs' common folder (a/images/x.jpg, b/images/x.jpg); inputs sharing no folder below / get
    <input>/<file_name>, <input> the input's stem (its folder's name for data.yaml or a shared stem),
    and a folder OUT links the images under those names in OUT/images.

    Example: detkit coco merge a.json b.json merged.json --map "motorbike=motorcycle"
    """
    if len(paths) < 3:
        raise DetkitError("merge needs at least two inputs and an output: detkit coco merge A B OUT")
    *inputs, out_path = paths
    renames = parse_renames(rename or [])
    sources = [_source(p, format, None, None, strict, boxes=to not in (None, Target.coco)) for p in inputs]
    target = _target(sources[0], to)
    with busy("merging"):
        m = merge_sources(sources, renames)
    with busy(f"writing {out_path}"):
        written = write_merged(m, out_path, target, copy_images)
    _link_warnings(written, m.common_root or "the inputs' folders")
    if m.common_root is None and "image_root" in written:
        warn(
            f"the inputs share no parent folder, so image names are <input>/<file_name> and {out_path} "
            "records "
            "no image folder; name an output folder to get the images linked under OUT/images"
        )
    dropped = sum(s["dangling_boxes_dropped"] for s in m.stats)
    if dropped:
        warn(f"{dropped:,} boxes with an image or category id missing from their input were not written")
    doc = {
        "in": [str(p) for p in inputs],
        "out": str(out_path),
        "to": target,
        "renames": renames,
        **m.as_dict(),
        "written": written,
    }
    write_op_summary(out_path, "coco.merge", f"merge of {len(inputs)} inputs", doc, {"inputs": m.stats})
    if json:
        emit_json(doc)
        return
    out.print(
        table(
            f"merge -> {out_path} ({target})",
            ["name", "images", "shared", "renumbered", "boxes", "renumbered "],
            [
                [
                    s["path"],
                    s["images"],
                    s["shared_images"],
                    s["images_renumbered"],
                    s["boxes"],
                    s["boxes_renumbered"],
                ]
                for s in m.stats
            ],
        )
    )
    info(
        f"wrote {out_path}: {written['images']:,} images, {written['boxes']:,} boxes, "
        f"{written['categories']} classes"
    )


# ---- filter ------------------------------------------------------------------------------------------
@app.command("filter")
def filter_(
    src_path: InArg,
    out_path: OutArg,
    classes: Annotated[
        str | None, typer.Option("--classes", help="Classes to keep, by name or id, comma-separated.")
    ] = None,
    min_area: Annotated[
        float | None, typer.Option("--min-area", help="Keep boxes with w*h >= this (px^2).")
    ] = None,
    max_area: Annotated[
        float | None, typer.Option("--max-area", help="Keep boxes with w*h <= this (px^2).")
    ] = None,
    min_side: Annotated[
        float | None, typer.Option("--min-side", help="Keep boxes whose shorter side >= this (px).")
    ] = None,
    empty: Annotated[
        Empty, typer.Option("--empty", help="Images left without boxes: keep, drop, or keep only them.")
    ] = Empty.keep,
    to: ToOpt = None,
    copy_images: CopyOpt = False,
    image_root: RootOpt = None,
    format: FormatOpt = None,
    only_split: SplitOpt = None,
    strict: StrictOpt = False,
    json: JsonOpt = False,
) -> None:
    """Keep some classes and box sizes; choose what happens to images left without boxes.

    Example: detkit coco filter instances.json people.json --classes person --min-side 8 --empty drop
    """
    sizes = (min_area, max_area, min_side) != (None, None, None)
    src = _source(
        src_path, format, image_root, only_split, strict, boxes=sizes or to not in (None, Target.coco)
    )
    target = _target(src, to)
    sel = filter_dataset(
        src.ds, None if classes is None else classes.split(","), min_area, max_area, min_side, empty.value
    )
    with busy(f"writing {out_path}"):
        written = write_one(src, sel.part, out_path, target, copy_images)
    _link_warnings(written, src.image_root)
    _finish(src, out_path, target, sel, written, json, "coco.filter")


def _finish(
    src, out_path: Path, target: str, sel, written: dict, json: bool, kind: str, **extra: Any
) -> None:
    doc = _base(src, out_path, target, **extra, **sel.as_dict(), written=written)
    write_op_summary(out_path, kind, f"{kind.split('.')[1]} of {Path(src.path).name}", doc)
    if json:
        emit_json(doc)
        return
    drop = ", ".join(f"{k} {v:,}" for k, v in sel.dropped.items())
    info(
        f"wrote {out_path} ({target}): {doc['images']:,} images, {doc['boxes']:,} boxes, "
        f"{doc['categories']} classes" + (f"; dropped: {drop}" if drop else "")
    )


# ---- sample ------------------------------------------------------------------------------------------
@app.command()
def sample(
    src_path: InArg,
    out_path: OutArg,
    n: Annotated[int, typer.Option("--n", min=0, help="Number of images to keep (all when larger).")] = 500,
    seed: SeedOpt = 0,
    stratify: Annotated[
        bool, typer.Option("--stratify", help="Keep each class's share of images (iterative stratification).")
    ] = False,
    to: ToOpt = None,
    copy_images: CopyOpt = False,
    image_root: RootOpt = None,
    format: FormatOpt = None,
    only_split: SplitOpt = None,
    strict: StrictOpt = False,
    json: JsonOpt = False,
) -> None:
    """A random subset of N images with all their boxes (in file order).

    Example: detkit coco sample instances_train2017.json small.json --n 500 --seed 0 --stratify
    """
    src = _source(src_path, format, image_root, only_split, strict, boxes=to not in (None, Target.coco))
    target = _target(src, to)
    if n > src.ds.num_images:
        warn(f"--n {n:,} is more than the {src.ds.num_images:,} images; keeping them all")
    sel = sample_dataset(src.ds, n, seed=seed, stratify=stratify)
    with busy(f"writing {out_path}"):
        written = write_one(src, sel.part, out_path, target, copy_images)
    _link_warnings(written, src.image_root)
    _finish(src, out_path, target, sel, written, json, "coco.sample", seed=seed, stratify=stratify)


# ---- draw --------------------------------------------------------------------------------------------
@app.command()
def draw(
    src_path: InArg,
    out_path: Annotated[
        Path,
        typer.Argument(metavar="OUT", help="A new folder: contact_sheet.png, images/*.jpg, summary.json."),
    ],
    n: Annotated[int, typer.Option("--n", min=1, help="Images to draw.")] = 16,
    images: Annotated[
        str | None,
        typer.Option("--images", help="Draw these images (file names or stems, comma-separated) instead."),
    ] = None,
    classes: Annotated[
        str | None,
        typer.Option("--classes", help="Draw only these classes (names or ids), on images that have them."),
    ] = None,
    findings: Annotated[
        bool,
        typer.Option(
            "--findings",
            help="First the images behind validate's box findings (past an edge, degenerate, duplicate).",
        ),
    ] = False,
    seed: SeedOpt = 0,
    image_root: RootOpt = None,
    format: FormatOpt = None,
    only_split: SplitOpt = None,
    strict: StrictOpt = False,
    json: JsonOpt = False,
) -> None:
    """Draw the ground-truth boxes with class names: a contact sheet (grid PNG) plus one JPEG per image.

    `detkit report OUT` shows the contact sheet.

    Example: detkit coco draw instances_val2017.json drawn/ --n 16 --findings
    """
    src = _source(src_path, format, image_root, only_split, strict, raw=False)
    with busy(f"drawing into {out_path}"):
        doc = draw_run(
            src,
            out_path,
            n=n,
            names=images.split(",") if images else None,
            classes=classes.split(",") if classes else None,
            findings=findings,
            seed=seed,
        )
    if doc["missing_images"]:
        warn(
            f"{doc['missing_images']:,} of {doc['drawn']:,} images not found under {src.image_root} "
            "(drawn on grey); "
            "pass --image-root DIR"
        )
    if images and doc["drawn"] < len([x for x in images.split(",") if x.strip()]):
        warn(f"{doc['drawn']} of the images named in --images were found in {src_path}")
    doc = {k: v for k, v in _base(src, out_path, "", **doc).items() if k != "to"}
    if json:
        emit_json(doc)
        return
    info(f"wrote {out_path / 'contact_sheet.png'} and {doc['drawn']} images in {out_path / 'images'}")
