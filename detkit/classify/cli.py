"""`detkit classify ...` commands (thin: parse, call, print). Import heavy libraries inside commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from detkit.classify.config import LR_FIND_SKIPS, LrFindConfig, TrainConfig
from detkit.console import emit_json, info
from detkit.deploy.cli import BatchOpt, DynamicOpt, FormatOpt, JsonOpt, report_export
from detkit.deploy.formats import format_of
from detkit.errors import DetkitError
from detkit.train.harness import Diverged, run_folder
from detkit.train.options import config_command, given_options, run_folder_options

app = typer.Typer(no_args_is_help=True)


def _json_option(what: str):
    return (
        "json",
        Annotated[bool, typer.Option("--json", help=f"Print one JSON document with the {what}.")],
        False,
    )


def train(ctx: typer.Context, values: dict) -> None:
    """Train a ResNet classifier (SGD + one-cycle, label smoothing, crop/flip/cutout, EMA).

    Example: detkit classify train --data tiny-imagenet-200 --out runs/r18 --epochs 40 --batch 256

    Continue an interrupted run exactly: detkit classify train --resume runs/r18. A folder that holds a run is
    refused (--resume continues it, --exist-ok starts over and deletes its files); one trainer owns a folder
    at a time (RUN/.detkit.lock names its pid)."""
    from detkit.classify import train as T  # lazy: torch, which --help and the other commands skip
    from detkit.train.common import is_main_process  # lazy: torch, which --help and the other commands skip

    resume, exist_ok, as_json = values.pop("resume"), values.pop("exist_ok"), values.pop("json")
    run = resume or values["out"]
    if run is None:
        raise DetkitError("give --out RUN (or --resume RUN)")
    if resume is not None and values["out"] is not None and Path(values["out"]) != run_folder(resume):
        raise DetkitError("--resume continues in its own folder; leave out --out or give the same folder")
    if values["data"] is None and resume is None:
        raise DetkitError("give --data ROOT")
    try:
        if resume is not None:
            result = T.resume(resume, {k: values[k] for k in given_options(ctx) - {"out"} if k in values})
        else:
            result = T.train(T.TrainConfig(**values), exist_ok=exist_ok)
    except Diverged as e:
        if as_json and e.result is not None and is_main_process():
            emit_json(e.result)
        raise
    if not is_main_process():  # torchrun: only rank 0 reports
        return
    if as_json:
        emit_json(result)
    elif result["best_val_top1"] is not None:
        info(
            f"{result['status']}: best val top-1 {100 * result['best_val_top1']:.2f}% "
            f"(epoch {result['best_epoch']}); run folder {run}"
        )


def lr_find(ctx: typer.Context, values: dict) -> None:
    """Learning-rate range test: plot of loss vs LR and a suggested one-cycle peak LR.

    Example: detkit classify lr-find --data tiny-imagenet-200 --out runs/lrfind --batch 256
    """
    from dataclasses import fields

    # lazy: torch, which --help and the other commands skip
    from detkit.classify.lrfind import lr_find as run_lr_find

    as_json = values.pop("json")
    if values["data"] is None or values["out"] is None:
        raise DetkitError("--data and --out are required")
    rf = LrFindConfig(**{f.name: values.pop(f.name) for f in fields(LrFindConfig)})
    result = run_lr_find(TrainConfig(**values), rf.start_lr, rf.end_lr, rf.steps)
    if as_json:
        emit_json(result)


def _register() -> None:
    # both commands' options are the config fields (help, default, check declared there once)

    config_command(app, "train", [TrainConfig], extra=[*run_folder_options(), _json_option("result")])(train)
    config_command(
        app, "lr-find", [TrainConfig, LrFindConfig], extra=[_json_option("suggestion")], exclude=LR_FIND_SKIPS
    )(lr_find)


_register()


@app.command("eval")
def eval_(
    weights: Annotated[
        Path,
        typer.Argument(help="A run's best.pt or last.pt, or a `detkit classify export` file (.onnx, .ts)."),
    ],
    out: Annotated[
        Path,
        typer.Option(help="Output folder (summary.json, confusion.png, gallery/, gradcam/)."),
    ],
    data: Annotated[
        Path | None,
        typer.Option(help="Data root (default: the one the run trained on)."),
    ] = None,
    subset: Annotated[
        str,
        typer.Option(help="val: the run's validation split; official: the val folder; all."),
    ] = "val",
    gallery: Annotated[
        int,
        typer.Option(min=0, help="Misclassified images to draw (most confident mistakes first)."),
    ] = 16,
    cam_layer: Annotated[
        str,
        typer.Option(help="Layer Grad-CAM explains (layer3: 16x16 with the 64 stem)."),
    ] = "layer3",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    batch: Annotated[int, typer.Option(min=1, help="Batch size.")] = 256,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1, help="CPU threads (default: the free cores, as in training; $OMP_NUM_THREADS wins)."
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Score a seeded pick of N images of the subset.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the --limit pick.")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Image decoding threads.")] = 8,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Decoded-image cache folder (default: the run's, RUN/../.detkit-cache). The training set's "
            "cache is read when there; otherwise only the scored images are decoded and cached there."
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Decode the scored images in memory; write no cache.")
    ] = False,
    min_top1: Annotated[float | None, typer.Option(help="Exit 1 when top-1 (0-1) is below this.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON document with the metrics.")] = False,
) -> None:
    """Top-1/top-5, per-class accuracy, most-confused classes, misclassified gallery with Grad-CAM.

    Only the scored images are decoded (all of a subset, or --limit N of them).

    Example: detkit classify eval runs/r18/best.pt --out runs/r18/eval --gallery 24 --limit 500

    An export runs too (no gallery): detkit classify eval classifier.onnx --out eval/ --subset all
    """
    from detkit.classify.evaluate import evaluate_run  # lazy: torch, which --help and the other commands skip

    result = evaluate_run(
        weights,
        out,
        data,
        subset,
        gallery,
        cam_layer,
        device,
        batch,
        cache_dir=cache_dir,
        workers=workers,
        threads=threads,
        limit=limit,
        seed=seed,
        cache=not no_cache,
    )
    if (c := result["cache"]) is not None and c["reused"]:  # a new cache's line (with its size) is said
        info(f"read the decoded images from {c['path']} ({c['bytes'] / 1e6:.1f} MB)")
    if json:
        emit_json(result)
    if min_top1 is not None and result["top1"] < min_top1:
        info(f"top-1 {result['top1']:.4f} is below --min-top1 {min_top1}")
        raise typer.Exit(1)


@app.command("export")
def export_(
    weights: Annotated[Path, typer.Argument(help="A run's best.pt or last.pt.")],
    out: Annotated[Path, typer.Argument(help="File to write: classifier.onnx or classifier.ts.")],
    fmt: FormatOpt = None,
    dynamic: DynamicOpt = False,
    batch: BatchOpt = 1,
    json: JsonOpt = False,
) -> None:
    """Export the classifier with its input normalisation (uint8 RGB images in, logits out); classes,
    names, input size, mean and std in the file's metadata; ONNX opset 17, checked with onnx.checker and run
    once against PyTorch.

    Example: detkit classify export runs/r18/best.pt classifier.onnx --dynamic
    """
    from detkit.classify.export import export  # lazy: torch, which --help and the other commands skip

    doc = export(weights, out, format_of(out, fmt), dynamic=dynamic, batch=batch)
    report_export(doc, "classify.export", json)
