"""`detkit coco convert IN OUT --to coco|yolo|voc|cvat|labelstudio|labelme` (thin: parse, call
:func:`detkit.datasets.ops.convert.convert`, print). Registered on :data:`detkit.datasets.cli.common.app`
(:mod:`detkit.cli` imports it with the group).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from detkit.console import emit_json, esc, info, warn
from detkit.datasets.cli.common import (
    CategoryIds,
    ConvertTarget,
    FormatOpt,
    JsonOpt,
    NamesOpt,
    app,
    load,
    skipped_doc,
    write_op_summary,
)
from detkit.datasets.formats.write import FILE_TARGETS, output_file
from detkit.datasets.ops.convert import convert as do_convert
from detkit.datasets.ops.convert_splits import convert_splits
from detkit.errors import DetkitError


# ---- convert ---------------------------------------------------------------------------------------
@app.command()
def convert(
    src: Annotated[
        Path,
        typer.Argument(
            metavar="IN",
            help="COCO json, course text file, YOLO folder or data.yaml, VOC folder, CVAT XML, Label Studio "
            "JSON or LabelMe folder.",
        ),
    ],
    dst: Annotated[
        Path,
        typer.Argument(
            metavar="OUT",
            help="A .json (coco, labelstudio) or .xml (cvat) file, or a new folder; the rule is below.",
        ),
    ],
    to: Annotated[ConvertTarget, typer.Option("--to", help="Target format.")],
    format: FormatOpt = None,
    images: Annotated[
        Path | None, typer.Option("--images", help="Folder of the source images (linked into YOLO/VOC).")
    ] = None,
    category_ids: Annotated[
        CategoryIds | None,
        typer.Option(
            "--category-ids",
            help="YOLO / course-format class k <-> COCO category id: 'index' (id k, the default to COCO) "
            "or 'coco80' (COCO's official id of class k). COCO/VOC -> YOLO runs the rule backwards; "
            "without it, "
            "class k is the k-th category in id order.",
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="Convert only this split (train, val, test; valid = val); 'all': every split into one "
            "output. "
            "Default: each split apart.",
        ),
    ] = None,
    names: NamesOpt = None,
    json: JsonOpt = False,
) -> None:
    """Convert between COCO json, YOLO, Pascal VOC, CVAT for images 1.1, Label Studio JSON and LabelMe
    (the course text format converts too).

    OUT: coco, cvat and labelstudio write one file per set of images: an OUT ending in .json (coco,
    labelstudio) or .xml (cvat) is that file; any other OUT is a new folder holding annotations.json /
    annotations.xml, or <split>.json / <split>.xml per split. yolo, voc and labelme always write a new
    folder OUT. An OUT that contradicts this (a .xml for coco, a .json for yolo, one file for several
    splits) is refused.

    Boxes keep their pixel values; images stay where they are (YOLO images/ and VOC JPEGImages/ get links;
    a COCO json records the image folder under a "detkit" key, so detkit finds the images again).
    Image names that are absolute or climb out with '..' are written under safe names inside OUT.

    A source with splits (data.yaml, YOLO or Roboflow export, VOC ImageSets) keeps them apart in the
    folder OUT: OUT/<split>.json (coco, labelstudio), OUT/<split>.xml (cvat), OUT/<split>/ + OUT/data.yaml
    (yolo), OUT/<split>/ (voc, labelme);
    --split NAME converts one of them, --split all mixes them into one output.

    Example: detkit coco convert data.yaml coco/ --to coco --category-ids coco80
    """

    every = split is not None and split.strip().lower() == "all"
    output_file(dst, to.value)  # an OUT that contradicts the output rule: refused before reading anything
    ds = load(src, format, split=None if every else split, names=names)
    splits = [] if every else ds.split_names()
    ids = category_ids.value if category_ids else None
    if len(splits) > 1:
        if output_file(dst, to.value, 1) is not None:
            raise DetkitError(
                f"{src} has splits {', '.join(splits)}: name an output folder for one {to.value} output "
                f"per split ({dst.with_suffix('')}/{splits[0]}{FILE_TARGETS.get(to.value, '/')} ...), or "
                "choose one with --split NAME (--split all: every split in one output)"
            )
        result = convert_splits(ds, dst, to.value, image_root=images, category_ids=ids)
    else:
        result = do_convert(ds, dst, to.value, image_root=images, category_ids=ids)
    for leftover in result.get("removed_leftovers", []):
        info(f"removed {leftover} (left by a convert that was killed)")
    if result.get("renamed"):
        ex = result["renamed_examples"][0]
        warn(
            f"{result['renamed']:,} image names were absolute, climbed out of their folder or named no "
            "file; written "
            f"under safe names inside {dst} (e.g. {ex['file_name']!r} as {ex['written_as']!r})"
        )
    if (
        to == ConvertTarget.coco and result.get("image_root") is None and ds.format != "text"
    ):  # text: no images
        warn("the image folder is unknown, so the json does not record it; pass --images DIR to record it")
    if to.value not in FILE_TARGETS and result["images_linked"] < ds.num_images:
        warn(
            f"{ds.num_images - result['images_linked']:,} of {ds.num_images:,} images not found to link "
            f"(source image folder: {esc(str(images or ds.image_root))}); pass --images DIR"
        )
    if result.get("skipped_boxes"):
        warn(f"{result['skipped_boxes']:,} boxes with a dangling image or category id were not written")
    if result.get("crowd_as_boxes"):
        warn(
            f"{result['crowd_as_boxes']:,} crowd annotations written as ordinary boxes ({to.value} has "
            "no iscrowd)"
        )
    doc = {
        "in": str(src),
        "from": ds.format,
        **result,
        **({"skipped": sk} if (sk := skipped_doc(ds)) else {}),
    }
    splits = [{"split": k, **v} for k, v in result["splits"].items()] if "splits" in result else None
    write_op_summary(
        dst, "coco.convert", f"{src.name} as {to.value}", doc, {"splits": splits} if splits else None
    )
    if json:
        emit_json(doc)
    elif "splits" in result:
        parts = [
            f"{r['out']} ({r['images']:,} images, {r['boxes']:,} boxes)" for r in result["splits"].values()
        ]
        info(f"wrote {len(parts)} splits ({to.value}): " + ", ".join(parts))
    else:
        info(f"wrote {result['out']} ({to.value}): {result['images']:,} images, {result['boxes']:,} boxes")
