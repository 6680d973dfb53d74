"""Files of a classify run folder: metrics.csv, curves.png, checkpoints and the training summary.json
(all rebuilt from last.pt through :class:`detkit.train.harness.Checkpoints`); loading a checkpoint, and the
one loader of a classifier (checkpoint, TorchScript or ONNX: :func:`load_classifier`)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from detkit.deploy.runtime import Exported, load_if_onnx
from detkit.io import atomic_write
from detkit.train import harness as H
from detkit.train.plots import Panel
from detkit.train.plots import plot_curves as draw
from detkit.train.runs import write_summary

METRIC_FIELDS = [
    "epoch",
    "lr",
    "train_loss",
    "train_top1",
    "val_loss",
    "val_top1",
    "val_top5",
    "images_per_s",
    "epoch_s",
]


def read_metrics(path: Path, upto: int) -> list[dict]:
    """Rows of metrics.csv up to epoch ``upto`` (what a resumed run keeps)."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [
            {k: (int(float(v)) if k == "epoch" else float(v)) for k, v in r.items()}
            for r in csv.DictReader(f)
            if int(float(r["epoch"])) <= upto
        ]


def write_metrics(path: Path, rows: list[dict]) -> None:
    """metrics.csv, one row per epoch, written atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (int(r[k]) if k == "epoch" else f"{r[k]:.6g}") for k in METRIC_FIELDS})
    with atomic_write(path) as f:
        f.write(buf.getvalue())


def plot_curves(path: Path, rows: list[dict], top5: bool = True) -> None:
    """curves.png: train/val loss and val top-1 (and top-5, when ``top5``: not with 5 classes or fewer)."""

    col = lambda k: [r[k] for r in rows]  # noqa: E731
    acc = {"val top-1": col("val_top1"), **({"val top-5": col("val_top5")} if top5 else {})}
    draw(
        path,
        col("epoch"),
        [
            Panel("loss", "loss", {"train": col("train_loss"), "val": col("val_loss")}),
            Panel("validation accuracy", "%", acc, scale=100),
        ],
    )


# what eval needs of a checkpoint (best.pt has these), and what --resume needs on top (last.pt)
EVAL_KEYS = ("config", "classes", "names", "mean", "std", "model")
RESUME_KEYS = (*EVAL_KEYS, "epoch", "best_top1", "best_epoch", "optimizer", "scheduler", "rng", "ema")


def load_checkpoint(path: Path, need: tuple[str, ...] = EVAL_KEYS) -> dict:
    """A detkit classify checkpoint (last.pt / best.pt), loaded safely (``weights_only``).

    Args:
        path: the checkpoint file.
        need: keys it must hold; a plain state dict or another tool's checkpoint is refused by name.
    """
    return H.load_checkpoint(
        path,
        "classify",
        need,
        hint="; plain weights go in the weights option",
        flags={"the weights option": "--weights"},
    )


def load_classifier(path: str | Path, device: str = "auto", threads: int | None = None) -> Exported:
    """The one loader of a classifier, for ``classify eval`` and :class:`detkit.Classifier`: a classify
    checkpoint (``best.pt`` / ``last.pt``), a TorchScript (``.ts``) or an ONNX export (on onnxruntime, torch
    not imported), ready to give logits of uint8 (B, S, S, 3) RGB images (``Exported.run``).

    Args:
        path: the model file.
        device: auto, cpu or cuda.
        threads: CPU intra-op threads (None: the trainers' policy,
            :func:`detkit.deploy.runtime.inference_threads`).
    """
    if (onnx := load_if_onnx(path, "classify", threads, device)) is not None:
        return onnx
    from detkit.classify.export import load_torch  # lazy: torch: an ONNX model runs on onnxruntime alone

    return load_torch(Path(path), device, threads)


def best_state(state: dict) -> dict:
    """best.pt from the state of the best epoch: only the evaluated weights (the EMA's when on)."""
    keep = {
        k: v
        for k, v in state.items()
        if k not in ("model", "ema", "optimizer", "scheduler", "rng", "history")
    }
    return {**keep, "model": state["ema"]["module"] if state.get("ema") else state["model"], "ema": None}


def write_train_summary(run: Path, state: dict, status: str) -> None:
    """summary.json (kind ``classify.train``), from a checkpoint's state alone."""
    rows, cfg, split = state["history"], state["config"], state.get("split") or {}
    last = rows[-1]
    best = state["best_top1"]
    metrics = {
        "best_val_top1": best if best >= 0 else None,
        "best_epoch": state["best_epoch"],
        "val_top1": last["val_top1"],
        "val_top5": last["val_top5"],
        "val_loss": last["val_loss"],
        "train_loss": last["train_loss"],
        "epochs_done": int(last["epoch"]),
        "train_images_per_s": float(np.median([r["images_per_s"] for r in rows])),
        "total_train_s": float(sum(r["epoch_s"] for r in rows)),
    }
    write_summary(
        run,
        "classify.train",
        f"{cfg['model']} on {Path(cfg['data']).name} ({len(state['classes'])} classes)",
        metrics=metrics,
        plots={"curves": "curves.png"} if (run / "curves.png").is_file() else {},
        curves="metrics.csv",
        tables={"epochs": [{k: r[k] for k in METRIC_FIELDS} for r in rows]},
        status=status,
        model=cfg["model"],
        stem=cfg["stem"],
        num_classes=len(state["classes"]),
        layout=state["layout"],
        split={**split, "file": "split.json"},
        config=cfg,
    )


def checkpoints(run: Path) -> H.Checkpoints:
    """The commit and side files of a classifier run."""
    return H.Checkpoints(
        run,
        METRIC_FIELDS,
        best_state=best_state,
        summary=lambda state, status: write_train_summary(run, state, status),
        plots=lambda state: plot_curves(
            run / "curves.png", state["history"], top5=len(state.get("classes", ())) > 5
        ),
        plot_files=("curves.png",),
        fmt=lambda k, v: str(int(v)) if k == "epoch" else f"{v:.6g}",
    )
