"""`detkit classify ...` commands (thin: parse, call, print). Import heavy libraries inside commands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from detkit.console import emit_json, info
from detkit.errors import DetkitError

app = typer.Typer(no_args_is_help=True)


@app.command()
def train(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Tiny ImageNet folder (wnids.txt, train/, val/) or an ImageFolder "
            "(<class>/*.jpg|png). Optional with --resume."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (created).")] = None,
    model: Annotated[
        str,
        typer.Option(help="resnet18, resnet34 or resnet50 (torchvision, random init)."),
    ] = "resnet18",
    stem: Annotated[
        str,
        typer.Option(help="64: 3x3 stride-1 conv, no max-pool (for 64x64 images); imagenet."),
    ] = "64",
    width: Annotated[float, typer.Option(help="Channel multiplier (1.0 = the torchvision model).")] = 1.0,
    weights: Annotated[
        Path | None,
        typer.Option(help="Local weights to start from (matching shapes only)."),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Length of the one-cycle schedule.")] = 40,
    batch: Annotated[int, typer.Option(min=1, help="Global batch size.")] = 256,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (default: 0.2 x batch / 256).")] = None,
    weight_decay: Annotated[float, typer.Option(help="Weight decay (conv and linear weights).")] = 5e-4,
    label_smoothing: Annotated[float, typer.Option(help="Label smoothing.")] = 0.1,
    split: Annotated[float, typer.Option(help="Training share of the seeded stratified split.")] = 0.7,
    val: Annotated[
        str,
        typer.Option(help="split: validate on the split's rest; official: train/ vs val/."),
    ] = "split",
    img_size: Annotated[int, typer.Option(min=8, help="Images are resized to this square side.")] = 64,
    cutout: Annotated[
        int | None,
        typer.Option(help="Cutout side in pixels, 0 = off (default: img-size / 4)."),
    ] = None,
    flip: Annotated[bool, typer.Option("--flip/--no-flip", help="Random horizontal flip.")] = True,
    ema_decay: Annotated[float, typer.Option(help="Weight EMA decay per step; 0 = off.")] = 0.999,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the split, init, order and augmentation.")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Image decoding threads.")] = 8,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Decoded-image cache (default: OUT/../.detkit-cache)."),
    ] = None,
    stop_after: Annotated[
        int | None,
        typer.Option(min=1, help="Train this many epochs now; go on with --resume."),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue the run in this folder exactly (its last.pt)."),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON document with the result.")] = False,
) -> None:
    """Train a ResNet classifier (SGD + one-cycle, label smoothing, crop/flip/cutout, EMA).

    Example: detkit classify train --data tiny-imagenet-200 --out runs/r18 --epochs 40 --batch 256
    """
    from detkit.classify.train import TrainConfig
    from detkit.classify.train import train as run_train

    run = resume or out
    if run is None:
        raise DetkitError("give --out RUN (or --resume RUN)")
    if resume is not None and out is not None and out != resume:
        raise DetkitError("--resume continues in its own folder; leave out --out or give the same folder")
    if data is None and resume is None:
        raise DetkitError("give --data ROOT")
    cfg = TrainConfig(
        data=str(data) if data else "",
        out=str(run),
        model=model,
        stem=stem,
        width=width,
        weights=str(weights) if weights else None,
        epochs=epochs,
        batch=batch,
        lr=lr,
        weight_decay=weight_decay,
        label_smoothing=label_smoothing,
        split=split,
        val=val,
        img_size=img_size,
        cutout=cutout,
        flip=flip,
        ema_decay=ema_decay,
        device=device,
        compile=compile,
        seed=seed,
        workers=workers,
        cache_dir=str(cache_dir) if cache_dir else None,
        stop_after=stop_after,
    )
    given = [n for n in ctx.params if getattr(ctx.get_parameter_source(n), "name", "") == "COMMANDLINE"]
    result = run_train(cfg, resume=resume is not None, given=given)
    if os.environ.get("RANK", "0") != "0":  # torchrun: only rank 0 reports
        return
    if json:
        emit_json(result)
    elif result["best_val_top1"] is not None:
        info(
            f"{result['status']}: best val top-1 {100 * result['best_val_top1']:.2f}% "
            f"(epoch {result['best_epoch']}); run folder {run}"
        )
    if result["status"] == "diverged":
        raise typer.Exit(1)


@app.command("eval")
def eval_(
    weights: Annotated[Path, typer.Argument(help="A run's best.pt or last.pt.")],
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
    min_top1: Annotated[float | None, typer.Option(help="Exit 1 when top-1 (0-1) is below this.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON document with the metrics.")] = False,
) -> None:
    """Top-1/top-5, per-class accuracy, most-confused classes, misclassified gallery with Grad-CAM.

    Example: detkit classify eval runs/r18/best.pt --out runs/r18/eval --gallery 24
    """
    from detkit.classify.evaluate import evaluate_run

    result = evaluate_run(weights, out, data, subset, gallery, cam_layer, device, batch)
    if json:
        emit_json(result)
    if min_top1 is not None and result["top1"] < min_top1:
        info(f"top-1 {result['top1']:.4f} is below --min-top1 {min_top1}")
        raise typer.Exit(1)


@app.command("lr-find")
def lr_find(
    data: Annotated[Path, typer.Option(help="Data root (as for train).")],
    out: Annotated[Path, typer.Option(help="Output folder (lr_find.png, lr_find.csv, summary.json).")],
    model: Annotated[str, typer.Option(help="resnet18, resnet34 or resnet50.")] = "resnet18",
    stem: Annotated[str, typer.Option(help="64 or imagenet.")] = "64",
    width: Annotated[float, typer.Option(help="Channel multiplier.")] = 1.0,
    weights: Annotated[Path | None, typer.Option(help="Local weights to start from.")] = None,
    batch: Annotated[
        int,
        typer.Option(min=1, help="Batch size (the suggestion holds for this batch size)."),
    ] = 256,
    img_size: Annotated[int, typer.Option(min=8, help="Images are resized to this square side.")] = 64,
    split: Annotated[float, typer.Option(help="Training share of the seeded stratified split.")] = 0.7,
    val: Annotated[str, typer.Option(help="split or official (which images count as training).")] = "split",
    start_lr: Annotated[float, typer.Option(help="First learning rate.")] = 1e-5,
    end_lr: Annotated[float, typer.Option(help="Last learning rate.")] = 10.0,
    steps: Annotated[int, typer.Option(min=3, help="Steps of the exponential ramp.")] = 100,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the split, init, order and augmentation.")] = 0,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Decoded-image cache (default: OUT/../.detkit-cache)."),
    ] = None,
    json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON document with the suggestion."),
    ] = False,
) -> None:
    """Learning-rate range test: plot of loss vs LR and a suggested one-cycle peak LR.

    Example: detkit classify lr-find --data tiny-imagenet-200 --out runs/lrfind --batch 256
    """
    from detkit.classify.lrfind import lr_find as run_lr_find
    from detkit.classify.train import TrainConfig

    cfg = TrainConfig(
        data=str(data),
        out=str(out),
        model=model,
        stem=stem,
        width=width,
        weights=str(weights) if weights else None,
        batch=batch,
        img_size=img_size,
        split=split,
        val=val,
        device=device,
        seed=seed,
        cache_dir=str(cache_dir) if cache_dir else None,
    )
    result = run_lr_find(cfg, start_lr, end_lr, steps)
    if json:
        emit_json(result)
