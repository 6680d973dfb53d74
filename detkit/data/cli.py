"""`detkit data ...`: synthetic data sets for demos and tests."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from detkit.console import emit_json, info
from detkit.data.synth import write_detection_set
from detkit.data.synth_classify import write_classify_set

app = typer.Typer(no_args_is_help=True)


class Task(str, Enum):
    detect = "detect"
    classify = "classify"


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Output folder.")],
    task: Annotated[
        Task, typer.Option(help="detect: COCO shapes set; classify: Tiny-ImageNet layout.")
    ] = Task.detect,
    images: Annotated[int, typer.Option(min=1, help="[detect] number of images.")] = 64,
    size: Annotated[int, typer.Option(min=32, help="[detect] image side in pixels.")] = 128,
    max_objects: Annotated[int, typer.Option(min=1, help="[detect] most shapes per image.")] = 4,
    classes: Annotated[int, typer.Option(min=2, help="[classify] number of classes.")] = 5,
    per_class: Annotated[int, typer.Option(min=2, help="[classify] images per class (train + val).")] = 60,
    seed: Annotated[int, typer.Option(help="Same seed, same files.")] = 0,
    json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document with what was written.")
    ] = False,
) -> None:
    """Write a small synthetic data set.

    Example: detkit data synth out/shapes --task detect --images 64 --size 128 --seed 0
    """
    if task == Task.detect:
        path = write_detection_set(out, images=images, size=size, seed=seed, max_objects=max_objects)
        result = {
            "task": "detect",
            "annotations": str(path),
            "images": str(out / "images"),
            "num_images": images,
        }
    else:
        root = write_classify_set(out, classes=classes, per_class=per_class, seed=seed)
        result = {"task": "classify", "root": str(root), "classes": classes, "per_class": per_class}
    if json:
        emit_json(result)
    elif task == Task.detect:
        info(f"wrote {images} images to {out / 'images'} and their annotations to {result['annotations']}")
    else:
        info(f"wrote a Tiny-ImageNet-layout set ({classes} classes x {per_class} images) to {result['root']}")
