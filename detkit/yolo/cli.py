"""`detkit yolo ...` commands (thin: parse, call, print). Import heavy libraries inside commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)

# options that may change when a run is resumed (the rest come back from the checkpoint)
RESUME_OVERRIDES = ("epochs", "device", "workers", "amp", "compile", "max_steps", "eval_every")


@app.callback()
def _yolo() -> None:
    """YOLOv2-style detector: train, eval (COCO mAP), predict."""


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    data: Annotated[str | None, typer.Option("--data", help="Annotations: COCO json, course text, YOLO or VOC folder.")] = None,
    images: Annotated[str | None, typer.Option("--images", help="Image folder (default: the one the annotations name).")] = None,
    anchors: Annotated[str | None, typer.Option("--anchors", help="anchors.json from `detkit anchors kmeans --out` (default: k-means on the data).")] = None,
    out: Annotated[str | None, typer.Option("--out", help="Run folder (created).")] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="Continue the run in this folder from its last.pt.")] = None,
    epochs: Annotated[int, typer.Option("--epochs")] = 100,
    batch: Annotated[int, typer.Option("--batch", help="Images per batch (per GPU).")] = 16,
    img_size: Annotated[int, typer.Option("--img-size", help="Input size, a multiple of 32.")] = 416,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (after warm-up).")] = 1e-3,
    optimizer: Annotated[str, typer.Option("--optimizer", help="sgd or adamw.")] = "sgd",
    weight_decay: Annotated[float, typer.Option("--weight-decay")] = 5e-4,
    warmup_epochs: Annotated[float, typer.Option("--warmup-epochs", help="Linear LR warm-up, then cosine decay.")] = 1.0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the init, data order, sizes and augmentation.")] = 0,
    backbone: Annotated[str, typer.Option("--backbone", help="darknet19, resnet18 or resnet50 (random init).")] = "darknet19",
    width: Annotated[float, typer.Option("--width", help="Channel multiplier (0.125 for tiny CPU runs).")] = 1.0,
    weights: Annotated[str | None, typer.Option("--weights", help="Local backbone weights file (nothing is downloaded).")] = None,
    loss: Annotated[str, typer.Option("--loss", help="Loss preset: darknet or course.")] = "darknet",
    size_loss: Annotated[str | None, typer.Option("--size-loss", help="log (darknet) or sqrt (course).")] = None,
    rescore: Annotated[bool | None, typer.Option("--rescore/--no-rescore", help="Objectness target = IoU (default: per preset).")] = None,
    lambda_coord: Annotated[float | None, typer.Option("--lambda-coord")] = None,
    lambda_obj: Annotated[float | None, typer.Option("--lambda-obj")] = None,
    lambda_noobj: Annotated[float | None, typer.Option("--lambda-noobj")] = None,
    lambda_cls: Annotated[float | None, typer.Option("--lambda-cls")] = None,
    multi_scale: Annotated[bool, typer.Option("--multi-scale", help="Sizes from 10/13 to 19/13 of --img-size (320..608 at 416), step 32, changed every 10 batches.")] = False,
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help="Flip, HSV, scale/translate.")] = True,
    amp: Annotated[bool, typer.Option("--amp/--no-amp", help="bf16 autocast on CUDA.")] = True,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")] = False,
    ema_decay: Annotated[float, typer.Option("--ema-decay", help="EMA of the weights for evaluation (0 = off).")] = 0.9998,
    grad_clip: Annotated[float, typer.Option("--grad-clip", help="Max gradient norm (0 = off).")] = 10.0,
    val_data: Annotated[str | None, typer.Option("--val-data", help="Validation annotations (default: --data).")] = None,
    val_images: Annotated[str | None, typer.Option("--val-images")] = None,
    train_list: Annotated[str | None, typer.Option("--train-list", help="Train only on these image names (e.g. VOC ImageSets/Main/train.txt).")] = None,
    val_list: Annotated[str | None, typer.Option("--val-list", help="Validate on these image names.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Use only the first N images (smoke runs).")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Stop after N optimizer steps.")] = None,
    eval_every: Annotated[int, typer.Option("--eval-every", help="Evaluate every N epochs (and after the last).")] = 1,
    workers: Annotated[int, typer.Option("--workers", help="Image-decoding processes.")] = 4,
) -> None:
    """Train a YOLOv2 detector; writes RUN/{run.json, config.json, metrics.csv, last.pt, best.pt, summary.json}.

    Example: detkit yolo train --data shapes/instances.json --anchors anchors.json --epochs 50 --batch 16 --img-size 416 --out runs/y1

    Continue an interrupted run exactly: detkit yolo train --resume runs/y1 [--epochs 80]
    """
    from detkit.errors import DetkitError
    from detkit.yolo.train import TrainConfig, load_checkpoint, train

    given = {k: v for k, v in ctx.params.items() if k not in ("resume",)}
    if resume:
        ckpt = load_checkpoint(resume)
        cfg = TrainConfig.from_dict(ckpt["args"])
        cfg.out = str(Path(resume) if Path(resume).is_dir() else Path(resume).parent)  # RUN or RUN/last.pt
        cfg.max_steps = None  # a limit of the interrupted invocation, not of the run
        clash = []
        for name, value in given.items():
            if ctx.get_parameter_source(name).name != "COMMANDLINE":
                continue
            if name in RESUME_OVERRIDES:
                setattr(cfg, name, value)
            elif value != getattr(cfg, name, value):
                clash.append(f"--{name.replace('_', '-')} {value} (the run has {getattr(cfg, name)})")
        if clash:  # as in `classify train`: another value describes another run, not this one
            raise DetkitError(f"{cfg.out}: a resumed run keeps its own options; leave out {', '.join(clash)} "
                              f"(only {', '.join('--' + n.replace('_', '-') for n in RESUME_OVERRIDES)} may change)")  # fmt: skip
        if ckpt["epoch"] >= cfg.epochs:
            raise DetkitError(f"{resume}: already trained {ckpt['epoch']} of {cfg.epochs} epochs (pass --epochs N to go on)")
        train(cfg, resume=ckpt)
    else:
        if data is None or out is None:
            raise DetkitError("--data and --out are required (or --resume RUN_DIR)")
        train(TrainConfig(**given))


@app.command("eval")
def eval_cmd(
    weights: Annotated[str, typer.Argument(help="Checkpoint: RUN/best.pt or RUN/last.pt.")],
    data: Annotated[str, typer.Option("--data", help="Annotations to evaluate on (any detkit format).")],
    images: Annotated[str | None, typer.Option("--images", help="Image folder (default: the one the annotations name).")] = None,
    conf: Annotated[float, typer.Option("--conf", help="Score threshold.")] = 0.001,
    iou: Annotated[float, typer.Option("--iou", help="NMS IoU threshold.")] = 0.45,
    img_size: Annotated[int | None, typer.Option("--img-size", help="Input size (default: the training size).")] = None,
    batch: Annotated[int, typer.Option("--batch")] = 16,
    list_file: Annotated[str | None, typer.Option("--list", help="Evaluate only these image names (e.g. VOC test.txt).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N images.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    workers: Annotated[int, typer.Option("--workers")] = 2,
    out: Annotated[str | None, typer.Option("--out", help="Write predictions.json + summary.json here.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """COCO mAP@[.5:.95], mAP@.5 and per-class AP of a checkpoint (pycocotools, with its traps guarded).

    Example: detkit yolo eval runs/y1/best.pt --data shapes/instances.json --out runs/y1/eval --json
    """
    from detkit.console import emit_json
    from detkit.console import out as stdout
    from detkit.yolo.predict import run_eval

    metrics, results = run_eval(weights, data, images, conf=conf, iou=iou, img_size=img_size, batch=batch,
                                list_file=list_file, limit=limit, device=device, workers=workers)  # fmt: skip
    doc = {"kind": "yolo.eval", "weights": str(weights), "data": str(data), "conf": conf, "iou": iou,
           "metrics": {k: metrics[k] for k in ("mAP", "mAP50", "mAP75", "detections", "images", "images_per_s")},
           "per_class": metrics["per_class"]}  # fmt: skip
    if out:
        from detkit.io import write_json
        from detkit.runs import record_run, write_summary

        record_run(out, {k: v for k, v in doc.items() if k in ("weights", "data", "conf", "iou")} | {"images": images},
                   inputs=[weights, data])  # fmt: skip
        write_json(Path(out) / "predictions.json", results, indent=None)
        write_summary(out, "yolo.eval", f"YOLOv2 evaluation: {Path(str(data)).name}", metrics=doc["metrics"],
                      tables={"per_class": metrics["per_class"]}, predictions="predictions.json", weights=str(weights))  # fmt: skip
    if json_out:
        emit_json(doc)
        return
    from rich.table import Table

    m = doc["metrics"]
    stdout.print(f"mAP@[.5:.95] {m['mAP']:.4f}   mAP@.5 {m['mAP50']:.4f}   mAP@.75 {m['mAP75']:.4f}   "
                 f"({m['detections']} detections on {m['images']} images)")  # fmt: skip
    t = Table("id", "class", "gt boxes", "AP", "AP50")
    for r in metrics["per_class"]:
        fmt = (lambda v: "-" if v is None else f"{v:.4f}")
        t.add_row(str(r["category_id"]), r["name"], str(r["gt_boxes"]), fmt(r["AP"]), fmt(r["AP50"]))
    stdout.print(t)


@app.command("predict")
def predict_cmd(
    weights: Annotated[str, typer.Argument(help="Checkpoint: RUN/best.pt.")],
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the drawn images and detections.json.")],
    conf: Annotated[float, typer.Option("--conf", help="Score threshold.")] = 0.25,
    iou: Annotated[float, typer.Option("--iou", help="NMS IoU threshold.")] = 0.45,
    img_size: Annotated[int | None, typer.Option("--img-size", help="Input size (default: the training size).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Detect objects in images: OUT/<image> with labelled boxes, OUT/detections.json, OUT/summary.json.

    Example: detkit yolo predict runs/y1/best.pt photos/*.jpg --out preds/ --conf 0.3
    """
    from detkit.coco.loaders import IMAGE_EXTS
    from detkit.errors import DetkitError
    from detkit.runs import record_run, write_summary
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
    record_run(out, {"weights": weights, "images": [str(f) for f in files], "conf": conf, "iou": iou,
                     "img_size": img_size, "device": device}, inputs=[weights])  # fmt: skip
    n = sum(len(r["detections"]) for r in records)
    write_summary(out, "yolo.predict", "YOLOv2 predictions", metrics={"images": len(records), "detections": n},
                  galleries={"predictions": [r["output"] for r in records]}, detections="detections.json")  # fmt: skip
    print(f"{n} detections on {len(records)} images -> {out}/detections.json")
