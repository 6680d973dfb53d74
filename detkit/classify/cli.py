"""`detkit classify ...` commands (thin: parse, call, print). Import heavy libraries inside commands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from detkit.console import emit_json, info
from detkit.errors import DetkitError

app = typer.Typer(no_args_is_help=True)


@app.command()
def train(
    data: Optional[Path] = typer.Option(None, help="Tiny ImageNet folder (wnids.txt, train/, val/) or an "
                                                   "ImageFolder (<class>/*.jpg|png). Optional with --resume."),
    out: Optional[Path] = typer.Option(None, help="Run folder (created)."),
    model: str = typer.Option("resnet18", help="resnet18, resnet34 or resnet50 (torchvision, random init)."),
    stem: str = typer.Option("64", help="64: 3x3 stride-1 conv, no max-pool (for 64x64 images); imagenet."),
    width: float = typer.Option(1.0, help="Channel multiplier (1.0 = the torchvision model)."),
    weights: Optional[Path] = typer.Option(None, help="Local weights to start from (matching shapes only)."),
    epochs: int = typer.Option(40, min=1, help="Length of the one-cycle schedule."),
    batch: int = typer.Option(256, min=1, help="Global batch size."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate [default: 0.2 x batch / 256]."),
    weight_decay: float = typer.Option(5e-4, help="Weight decay (conv and linear weights)."),
    label_smoothing: float = typer.Option(0.1, help="Label smoothing."),
    split: float = typer.Option(0.7, help="Training share of the seeded stratified split."),
    val: str = typer.Option("split", help="split: validate on the split's rest; official: train/ vs val/."),
    img_size: int = typer.Option(64, min=8, help="Images are resized to this square side."),
    cutout: Optional[int] = typer.Option(None, help="Cutout side in pixels, 0 = off [default: img-size / 4]."),
    flip: bool = typer.Option(True, "--flip/--no-flip", help="Random horizontal flip."),
    ema_decay: float = typer.Option(0.999, help="Weight EMA decay per step; 0 = off."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the model."),
    seed: int = typer.Option(0, help="Seed of the split, init, order and augmentation."),
    workers: int = typer.Option(8, min=1, help="Image decoding threads."),
    cache_dir: Optional[Path] = typer.Option(None, help="Decoded-image cache [default: OUT/../.detkit-cache]."),
    stop_after: Optional[int] = typer.Option(None, min=1, help="Train this many epochs now; go on with --resume."),
    resume: Optional[Path] = typer.Option(None, help="Continue the run in this folder exactly (its last.pt)."),
    json: bool = typer.Option(False, "--json", help="Print one JSON document with the result."),
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
    if val not in ("split", "official"):
        raise DetkitError(f"--val must be split or official, got {val!r}")
    cfg = TrainConfig(
        data=str(data) if data else "", out=str(run), model=model, stem=stem, width=width,
        weights=str(weights) if weights else None, epochs=epochs, batch=batch, lr=lr, weight_decay=weight_decay,
        label_smoothing=label_smoothing, split=split, val=val, img_size=img_size, cutout=cutout, flip=flip,
        ema_decay=ema_decay, device=device, compile=compile, seed=seed, workers=workers,
        cache_dir=str(cache_dir) if cache_dir else None, stop_after=stop_after,
    )
    result = run_train(cfg, resume=resume is not None)
    if os.environ.get("RANK", "0") != "0":  # torchrun: only rank 0 reports
        return
    if json:
        emit_json(result)
    else:
        info(f"{result['status']}: best val top-1 {100 * result['best_val_top1']:.2f}% "
             f"(epoch {result['best_epoch']}); run folder {run}")
    if result["status"] == "diverged":
        raise typer.Exit(1)


@app.command("eval")
def eval_(
    weights: Path = typer.Argument(..., help="A run's best.pt or last.pt."),
    data: Optional[Path] = typer.Option(None, help="Data root [default: the one the run trained on]."),
    out: Path = typer.Option(..., help="Output folder (summary.json, confusion.png, gallery/, gradcam/)."),
    subset: str = typer.Option("val", help="val: the run's validation split; official: the val folder; all."),
    gallery: int = typer.Option(16, min=0, help="Misclassified images to draw (most confident mistakes first)."),
    cam_layer: str = typer.Option("layer3", help="Layer Grad-CAM explains (layer3: 16x16 with the 64 stem)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    batch: int = typer.Option(256, min=1, help="Batch size."),
    min_top1: Optional[float] = typer.Option(None, help="Exit 1 when top-1 (0-1) is below this."),
    json: bool = typer.Option(False, "--json", help="Print one JSON document with the metrics."),
) -> None:
    """Top-1/top-5, per-class accuracy, confusion of the most-confused classes, misclassified gallery + Grad-CAM.

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
    data: Path = typer.Option(..., help="Data root (as for train)."),
    out: Path = typer.Option(..., help="Output folder (lr_find.png, lr_find.csv, summary.json)."),
    model: str = typer.Option("resnet18", help="resnet18, resnet34 or resnet50."),
    stem: str = typer.Option("64", help="64 or imagenet."),
    width: float = typer.Option(1.0, help="Channel multiplier."),
    weights: Optional[Path] = typer.Option(None, help="Local weights to start from."),
    batch: int = typer.Option(256, min=1, help="Batch size (the suggestion holds for this batch size)."),
    img_size: int = typer.Option(64, min=8, help="Images are resized to this square side."),
    split: float = typer.Option(0.7, help="Training share of the seeded stratified split."),
    val: str = typer.Option("split", help="split or official (which images count as training)."),
    start_lr: float = typer.Option(1e-5, help="First learning rate."),
    end_lr: float = typer.Option(10.0, help="Last learning rate."),
    steps: int = typer.Option(100, min=3, help="Steps of the exponential ramp."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    seed: int = typer.Option(0, help="Seed of the split, init, order and augmentation."),
    cache_dir: Optional[Path] = typer.Option(None, help="Decoded-image cache [default: OUT/../.detkit-cache]."),
    json: bool = typer.Option(False, "--json", help="Print one JSON document with the suggestion."),
) -> None:
    """Learning-rate range test: plot of loss vs LR and a suggested one-cycle peak LR.

    Example: detkit classify lr-find --data tiny-imagenet-200 --out runs/lrfind --batch 256
    """
    from detkit.classify.lrfind import lr_find as run_lr_find
    from detkit.classify.train import TrainConfig

    if val not in ("split", "official"):
        raise DetkitError(f"--val must be split or official, got {val!r}")
    cfg = TrainConfig(data=str(data), out=str(out), model=model, stem=stem, width=width,
                      weights=str(weights) if weights else None, batch=batch, img_size=img_size, split=split,
                      val=val, device=device, seed=seed, cache_dir=str(cache_dir) if cache_dir else None)
    result = run_lr_find(cfg, start_lr, end_lr, steps)
    if json:
        emit_json(result)
