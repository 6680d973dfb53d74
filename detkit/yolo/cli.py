"""`detkit yolo ...` commands (thin: parse, call, print). Import heavy libraries inside commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from detkit.console import emit_json, esc, warn
from detkit.console import out as stdout
from detkit.deploy.cli import BatchOpt, DynamicOpt, FormatOpt, JsonOpt, report_export
from detkit.deploy.formats import format_of
from detkit.errors import DetkitError
from detkit.io import write_json
from detkit.train.options import config_command, given_options, run_folder_options
from detkit.train.runs import record_run, write_summary
from detkit.yolo.config import TrainConfig

app = typer.Typer(no_args_is_help=True)

THREADS = typer.Option(
    "--threads", min=1, help="CPU threads (default: the free cores, as in training; $OMP_NUM_THREADS wins)."
)


@app.callback()
def _yolo() -> None:
    """YOLOv2-style detector: train, eval (COCO mAP), predict, export (ONNX, TorchScript)."""


def _train_command() -> None:
    # the options are TrainConfig's fields (help, default, check declared there once)

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
    from detkit.yolo import train as T  # lazy: torch, which --help and the other commands skip

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
    weights: Annotated[
        str, typer.Argument(help="Checkpoint (RUN/best.pt) or a `detkit yolo export` file (.onnx, .ts).")
    ],
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
    split: Annotated[
        str | None,
        typer.Option("--split", help="Split of a data.yaml / Roboflow / VOC source (default: val)."),
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N images.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    workers: Annotated[int, typer.Option("--workers")] = 2,
    threads: Annotated[int | None, THREADS] = None,
    out: Annotated[
        str | None, typer.Option("--out", help="Write predictions.json + summary.json here.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """COCO mAP@[.5:.95], mAP@.5 and per-class AP of a checkpoint (pycocotools, with its traps guarded).

    Example: detkit yolo eval runs/y1/best.pt --data shapes/instances.json --out runs/y1/eval --json

    An export runs too: detkit yolo eval model.onnx --data data.yaml --split test
    """
    # lazy: start-up time: the data and eval layers would take `detkit yolo --help` from 0.15 to 0.48 s CPU
    from detkit.yolo.predict import run_eval

    metrics, results, gt = run_eval(
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
        split=split,
        threads=threads,
    )
    doc = {
        "kind": "yolo.eval",
        "weights": str(weights),
        "data": str(data),
        "conf": conf,
        "iou": iou,
        "metrics": {k: metrics[k] for k in ("mAP", "mAP50", "mAP75", "detections", "images", "images_per_s")},
        "per_class": metrics["per_class"],
        "runtime": metrics["runtime"],
    }
    if out:
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
            plots=_eval_plots(gt, results, Path(out)),
            predictions="predictions.json",
            weights=str(weights),
        )
    if json_out:
        emit_json(doc)
    else:
        _print_eval(doc["metrics"], metrics["per_class"])


def _eval_plots(gt, results: list[dict], out: Path) -> dict[str, str]:
    """The PR curves, F1-confidence curve and confusion matrix of ``coco eval`` (confusion at its
    defaults, conf 0.25 and IoU 0.45), drawn into ``out`` for the report; {name: file}."""
    # lazy: start-up time: the data and eval layers would take `detkit yolo --help` from 0.15 to 0.48 s CPU
    from detkit.evaluation import plots, result

    try:
        res = result.evaluate(gt, results, lenient=True)
    except DetkitError as exc:  # e.g. no scorable ground truth: the metrics above already say so
        warn(f"plots not drawn: {exc}")
        return {}
    return plots.write_plots(res.as_dict(), out)


def _print_eval(m: dict, per_class: list[dict]) -> None:
    from rich.table import Table

    stdout.print(
        f"mAP@[.5:.95] {m['mAP']:.4f}   mAP@.5 {m['mAP50']:.4f}   mAP@.75 {m['mAP75']:.4f}   "
        f"({m['detections']} detections on {m['images']} images)"
    )
    t = Table("id", "class", "gt boxes", "AP", "AP50")
    for r in per_class:
        fmt = lambda v: "-" if v is None else f"{v:.4f}"
        t.add_row(str(r["category_id"]), esc(r["name"]), str(r["gt"]), fmt(r["AP"]), fmt(r["AP50"]))
    stdout.print(t)


@app.command("predict")
def predict_cmd(
    weights: Annotated[str, typer.Argument(help="Checkpoint (RUN/best.pt) or an export (.onnx, .ts).")],
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Images, folders, globs ('photos/*.jpg'), .txt image lists, a data.yaml (its --split) or "
            "videos (.mp4, .avi, ...)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for drawings and detections.")],
    conf: Annotated[float, typer.Option("--conf", help="Score threshold.")] = 0.25,
    iou: Annotated[float, typer.Option("--iou", help="NMS IoU threshold.")] = 0.45,
    img_size: Annotated[
        int | None, typer.Option("--img-size", help="Input size (default: the training size).")
    ] = None,
    max_det: Annotated[int, typer.Option("--max-det", min=1, help="Most detections per image.")] = 100,
    split: Annotated[
        str | None, typer.Option("--split", help="Split of a data source (default for a data.yaml: val).")
    ] = None,
    save_txt: Annotated[
        bool, typer.Option("--save-txt", help="Also OUT/labels/<stem>.txt: class cx cy w h conf.")
    ] = False,
    draw: Annotated[bool, typer.Option("--draw/--no-draw", help="Write the drawn images and videos.")] = True,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    threads: Annotated[int | None, THREADS] = None,
) -> None:
    """Detect objects in images and videos: OUT/<image> and OUT/<video>.mp4 with labelled boxes,
    OUT/detections.json, OUT/predictions.json (COCO results), OUT/summary.json; with --save-txt
    OUT/labels/. `detkit coco eval GT OUT/predictions.json` (or OUT/labels) scores them.

    Example: detkit yolo predict runs/y1/best.pt photos/ clip.mp4 --out preds/ --conf 0.3

    On a split with its ids, then scored: detkit yolo predict model.onnx data.yaml --split val --out p/
    --conf 0.001 && detkit coco eval data.yaml --split val p/predictions.json
    """
    # lazy: start-up time: the data and eval layers would take `detkit yolo --help` from 0.15 to 0.48 s CPU
    from detkit.yolo.predict import predict_files

    doc = predict_files(
        weights,
        paths,
        out,
        conf=conf,
        iou=iou,
        img_size=img_size,
        device=device,
        threads=threads,
        split=split,
        save_txt=save_txt,
        max_det=max_det,
        draw=draw,
    )
    record_run(
        out,
        {
            "weights": weights,
            "sources": [str(p) for p in paths],
            "split": split,
            "conf": conf,
            "iou": iou,
            "img_size": img_size,
            "max_det": max_det,
            "device": device,
            "threads": threads,
            "save_txt": save_txt,
            "thread_policy": doc["runtime"],
        },
        inputs=[weights],
    )
    images = doc["images"]
    frames = sum(len(v["frames"]) for v in doc["videos"])
    n = sum(len(r["detections"]) for r in images) + sum(
        len(f["detections"]) for v in doc["videos"] for f in v["frames"]
    )
    write_summary(
        out,
        "yolo.predict",
        "YOLOv2 predictions",
        metrics={"images": len(images), "video_frames": frames, "detections": n},
        galleries={"predictions": [r["output"] for r in images if "output" in r]},
        detections="detections.json",
        predictions="predictions.json",
    )
    what = f"{len(images)} images" + (f" and {frames} video frames" if frames else "")
    print(f"{n} detections on {what} -> {out}/detections.json, {out}/predictions.json")


@app.command("export")
def export_cmd(
    weights: Annotated[str, typer.Argument(help="Checkpoint: RUN/best.pt (or RUN, meaning RUN/last.pt).")],
    out: Annotated[Path, typer.Argument(help="File to write: model.onnx or model.ts.")],
    fmt: FormatOpt = None,
    dynamic: DynamicOpt = False,
    batch: BatchOpt = 1,
    img_size: Annotated[
        int | None, typer.Option("--img-size", help="Input size (default: the training size).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Export the detector with its decode (uint8 RGB letterboxed image in; boxes and scores out), class
    names, input size, letterbox rule and anchors in the file's metadata; ONNX opset 17, checked with
    onnx.checker and run once against PyTorch.

    Example: detkit yolo export runs/y1/best.pt model.onnx && detkit yolo predict model.onnx photos/ --out p/
    """
    from detkit.yolo.export import export  # lazy: torch, which --help and the other commands skip

    doc = export(weights, out, format_of(out, fmt), dynamic=dynamic, batch=batch, img_size=img_size)
    report_export(doc, "yolo.export", json_out)
