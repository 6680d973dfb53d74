"""YOLO checkpoints and the run-folder files made from them; loading one for evaluation or prediction.

A checkpoint holds everything needed to continue bit for bit: model, optimizer, scheduler and EMA
states, the epoch, the batches already trained of it and their loss sums (the metrics row of an epoch
resumed inside averages all its steps), images seen (the loss warm-up depends on it),
the Python/NumPy/torch/CUDA RNG states and the data order (a function of seed and epoch, see
``detkit.yolo.data``), plus the model config, class map, anchors, the arguments, the metric rows and the
best epoch. ``detkit.yolo.setup.epoch_state`` builds it; :func:`checkpoints` commits it (last.pt,
best.pt, metrics.csv, summary.json; see :class:`detkit.train.harness.Checkpoints`). :func:`load_checkpoint`
and :func:`model_from_checkpoint` are what ``detkit yolo eval / predict`` and ``detkit.api`` use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detkit.train import harness as H
from detkit.train.plots import Panel
from detkit.train.plots import plot_curves as draw
from detkit.train.runs import write_summary
from detkit.yolo.data import ClassMap
from detkit.yolo.engine import LOSS_PARTS
from detkit.yolo.model import YoloConfig, YOLOv2

CSV_COLUMNS = (
    "epoch",
    "loss",
    *LOSS_PARTS,
    "lr",
    "mAP",
    "mAP50",
    "images_per_s",
    "eval_images_per_s",
    "seen_images",
)
RUN_FILES = ("run.json", "config.json", "metrics.csv", "last.pt", "best.pt", "curves.png", "summary.json")


def model_from_checkpoint(ckpt: dict[str, Any], ema: bool = True):
    """(model in eval mode, class map, img_size) from a checkpoint; EMA weights when present."""
    model = YOLOv2(YoloConfig.from_dict(ckpt["model_config"]))
    sd = ckpt["ema"]["module"] if ema and ckpt.get("ema") else ckpt["model"]
    model.load_state_dict(sd)
    return model.eval(), ClassMap.from_dict(ckpt["class_map"]), int(ckpt["img_size"])


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a detkit YOLO checkpoint (``RUN`` means ``RUN/last.pt``) with ``weights_only``: a foreign
    file can run no code (RNG states are saved as plain lists and tensors, see detkit.train.common)."""
    p = Path(path)
    return H.load_checkpoint(p / "last.pt" if p.is_dir() else p, "yolo", ("model_config",))


def summary_fields(state: dict[str, Any], status: str) -> dict[str, Any]:
    """summary.json's fields, from a checkpoint alone (so a killed run's summary can be rebuilt)."""
    history, best, best_eval = state["history"], state["best"], state.get("best_eval") or {}
    last = history[-1] if history else {}
    return {
        "status": status,
        "metrics": {
            "best_mAP": max(best["mAP"], 0.0),
            "best_mAP50": best.get("mAP50", 0.0),
            "best_epoch": best.get("epoch"),
            "epochs": len(history) and history[-1]["epoch"],
            "final_loss": last.get("loss"),
            "train_images_per_s": last.get("images_per_s"),
            "train_images": state.get("train_images"),
        },
        "curves": "metrics.csv",
        "tables": {
            "per_class": [
                {k: r[k] for k in ("category_id", "name", "gt", "AP", "AP50")}
                for r in best_eval.get("per_class", [])
            ],
            "epochs": [{k: r.get(k) for k in CSV_COLUMNS} for r in history],
        },
        "classes": state["class_map"]["names"],
        "anchors": state["anchors"],
        "anchors_from": state["anchors_from"],
        "checkpoints": {"last": "last.pt", "best": "best.pt"},
        "config": state["args"],
    }


def plot_curves(path: Path, history: list[dict[str, Any]]) -> None:
    """curves.png: the loss and its parts, and mAP / mAP@.5 on the epochs that were evaluated."""

    col = lambda k: [r.get(k) for r in history]  # noqa: E731
    draw(
        path,
        col("epoch"),
        [
            Panel("training loss and its parts", "loss", {k: col(k) for k in ("loss", *LOSS_PARTS)}),
            Panel("validation mAP", "mAP", {"mAP@[.5:.95]": col("mAP"), "mAP@.5": col("mAP50")}),
        ],
    )


def checkpoints(path: Path) -> H.Checkpoints:
    """The commit and side files of a detector run (best.pt is the whole state of the best epoch);
    curves.png at the end of each call (``detkit report`` draws its own from metrics.csv)."""

    def summary(state: dict[str, Any], status: str) -> None:
        title = f"YOLOv2 training: {Path(state['args']['data']).name}"
        write_summary(path, "yolo.train", title, **summary_fields(state, status))

    return H.Checkpoints(
        path,
        CSV_COLUMNS,
        best_state=lambda s: s,
        summary=summary,
        plots=lambda state: plot_curves(path / "curves.png", state["history"]),
        plot_files=("curves.png",),
    )
