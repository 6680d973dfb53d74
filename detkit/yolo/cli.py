"""`detkit yolo ...` commands (thin: parse, call, print). Import heavy libraries inside commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)


@app.callback()
def _yolo() -> None:
    """YOLOv2-style detector: train, eval (COCO mAP), predict."""


def _train_command() -> None:
    # the options are TrainConfig's fields (help, default, check declared there once)
    from detkit.train.options import config_command, run_folder_options
    from detkit.yolo.config import TrainConfig

    config_command(app, "train", [TrainConfig], extra=run_folder_options())(train_cmd)


def train_cmd(ctx: typer.Context, values: dict) -> None:
    """Train a YOLOv2 detector; writes RUN/{run.json, config.json, metrics.csv, last.pt, best.pt,
    summary.json}.

    Example: detkit yolo train --data shapes/instances.json --anchors anchors.json --epochs 50 --batch 16
        --img-size 416 --out runs/y1

    Continue an interrupted run exactly: detkit yolo train --resume runs/y1 [--epochs 80]

    A folder that holds a run is refused (--resume continues it, --exist-ok starts over and deletes its
    files); one trainer owns a folder at a time (RUN/.detkit.lock names its pid).
    """
    from detkit.errors import DetkitError
    from detkit.train.options import given_options
    from detkit.yolo import train as T

    resume, exist_ok = values.pop("resume"), values.pop("exist_ok")
    if resume:
        T.resume(resume, {k: values[k] for k in given_options(ctx) - {"out"} if k in values})
    elif values["data"] is None or values["out"] is None:
        raise DetkitError("--data and --out are required (or --resume RUN_DIR)")
    else:
        T.train(T.TrainConfig(**values), exist_ok=exist_ok)


_train_command()


@app.command("eval")
def eval_cmd(
    weights: Annotated[str, typer.Argument(help="Checkpoint: RUN/best.pt or RUN/last.pt.")],
    data: Annotated[str, typer.Option("--data", help="Annotations to evaluate on (any detkit format).")],
    images: Annotated[
        str | None, typer.Option("--images", help="Image folder (default: the one the annotations name).")
    ] = None,
    conf: Annotated[float, typer.Option("--conf", help="Score threshold.")] = 0.001,
    iou: Annotated[float, typer.Option("--iou", help="NMS IoU threshold.")] = 0.45,
    img_size: Annotated[
        int | None, typer.Option("--img-size", help="Input size (default: the training size).")
    ] = None,
    batch: Annotated[int, typer.Option("--batch")] = 16,
    list_file: Annotated[
        str | None, typer.Option("--list", help="Evaluate only these image names (e.g. VOC test.txt).")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N images.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    workers: Annotated[int, typer.Option("--workers")] = 2,
    out: Annotated[
        str | None, typer.Option("--out", help="Write predictions.json + summary.json here.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """COCO mAP@[.5:.95], mAP@.5 and per-class AP of a checkpoint (pycocotools, with its traps guarded).

    Example: detkit yolo eval runs/y1/best.pt --data shapes/instances.json --out runs/y1/eval --json
    """
    from detkit.console import emit_json
    from detkit.yolo.predict import run_eval

    metrics, results = run_eval(
        weights,
        data,
        images,
        conf=conf,
        iou=iou,
        img_size=img_size,
        batch=batch,
        list_file=list_file,
        limit=limit,
        device=device,
        workers=workers,
    )
    doc = {
        "kind": "yolo.eval",
        "weights": str(weights),
        "data": str(data),
        "conf": conf,
        "iou": iou,
        "metrics": {k: metrics[k] for k in ("mAP", "mAP50", "mAP75", "detections", "images", "images_per_s")},
        "per_class": metrics["per_class"],
    }
    if out:
        from detkit.io import write_json
        from detkit.train.runs import record_run, write_summary

        record_run(
            out,
            {k: v for k, v in doc.items() if k in ("weights", "data", "conf", "iou")} | {"images": images},
            inputs=[weights, data],
        )
        write_json(Path(out) / "predictions.json", results, indent=None)
        write_summary(
            out,
            "yolo.eval",
            f"YOLOv2 evaluation: {Path(str(data)).name}",
            metrics=doc["metrics"],
            tables={"per_class": metrics["per_class"]},
            predictions="predictions.json",
            weights=str(weights),
        )
    if json_out:
        emit_json(doc)
    else:
        _print_eval(doc["metrics"], metrics["per_class"])


def _print_eval(m: dict, per_class: list[dict]) -> None:
    from rich.table import Table

    from detkit.console import out as stdout

    stdout.print(
        f"mAP@[.5:.95] {m['mAP']:.4f}   mAP@.5 {m['mAP50']:.4f}   mAP@.75 {m['mAP75']:.4f}   "
        f"({m['detections']} detections on {m['images']} images)"
    )
    t = Table("id", "class", "gt boxes", "AP", "AP50")
    for r in per_class:
        fmt = lambda v: "-" if v is None else f"{v:.4f}"
        t.add_row(str(r["category_id"]), r["name"], str(r["gt"]), fmt(r["AP"]), fmt(r["AP50"]))
    stdout.print(t)


@app.command("predict")
def predict_cmd(
    weights: Annotated[str, typer.Argument(help="Checkpoint: RUN/best.pt.")],
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the drawn images and detections.json.")],
    conf: Annotated[float, typer.Option("--conf", help="Score threshold.")] = 0.25,
    iou: Annotated[float, typer.Option("--iou", help="NMS IoU threshold.")] = 0.45,
    img_size: Annotated[
        int | None, typer.Option("--img-size", help="Input size (default: the training size).")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Detect objects in images: OUT/<image> with labelled boxes, OUT/detections.json, OUT/summary.json.

    Example: detkit yolo predict runs/y1/best.pt photos/*.jpg --out preds/ --conf 0.3
    """
    from detkit.datasets.formats.layouts import IMAGE_EXTS
    from detkit.errors import DetkitError
    from detkit.train.runs import record_run, write_summary
    from detkit.yolo.predict import predict_files

    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS)
        elif p.is_file():
            files.append(p)
        else:
            raise DetkitError(f"{p}: no such image file or folder")
    if not files:
        raise DetkitError("no images to predict on")
    records = predict_files(weights, files, out, conf=conf, iou=iou, img_size=img_size, device=device)
    record_run(
        out,
        {
            "weights": weights,
            "images": [str(f) for f in files],
            "conf": conf,
            "iou": iou,
            "img_size": img_size,
            "device": device,
        },
        inputs=[weights],
    )
    n = sum(len(r["detections"]) for r in records)
    write_summary(
        out,
        "yolo.predict",
        "YOLOv2 predictions",
        metrics={"images": len(records), "detections": n},
        galleries={"predictions": [r["output"] for r in records]},
        detections="detections.json",
    )
    print(f"{n} detections on {len(records)} images -> {out}/detections.json")
