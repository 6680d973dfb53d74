"""Figures of an evaluation: PR curves at IoU .50 / .75, the F1-confidence curve, the confusion matrix and
the TIDE breakdown (matplotlib, imported only when plots are asked for). Each takes ``EvalResult.as_dict()``
pieces and writes one PNG atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from detkit.io import atomic_path

MAX_CLASS_LINES = 20  # thin per-class lines drawn under the mean (the largest classes)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    _plt().close(fig)
    return path


def _top_classes(doc: dict[str, Any]) -> list[str]:
    rows = sorted(doc["per_class"], key=lambda r: -r["gt"])
    return [str(r["category_id"]) for r in rows if r["gt"]][:MAX_CLASS_LINES]


def plot_pr(doc: dict[str, Any], path: Path) -> Path:
    """Precision against recall at IoU .50 and .75: the mean over classes bold, the largest classes thin."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), dpi=100, sharey=True)
    names = {str(r["category_id"]): r["name"] for r in doc["per_class"]}
    for ax, key in zip(axes, ("iou50", "iou75")):
        pr = doc["pr_curves"][key]
        for c in _top_classes(doc):
            if c in pr["per_class"]:
                ax.plot(
                    pr["recall"],
                    pr["per_class"][c],
                    lw=0.8,
                    alpha=0.5,
                    label=names[c] if len(names) <= 10 else None,
                )
        ax.plot(
            pr["recall"],
            pr["mean"],
            lw=2.5,
            color="#1f3b73",
            label=f"all classes (AP {np.mean(pr['mean']):.3f})",
        )
        ax.set(title=f"Precision-recall at IoU {pr['iou']:.2f}", xlabel="recall", xlim=(0, 1), ylim=(0, 1))
        ax.legend(fontsize=7, loc="lower left")
    axes[0].set_ylabel("precision")
    return _save(fig, path)


def plot_f1(doc: dict[str, Any], path: Path) -> Path:
    """F1 against the confidence threshold: per class thin, the mean bold with its best threshold."""
    plt = _plt()
    f1 = doc["f1"]
    fig, ax = plt.subplots(figsize=(7, 4.6), dpi=100)
    for c in _top_classes(doc):
        if c in f1["per_class"]:
            ax.plot(f1["conf"], f1["per_class"][c]["f1"], lw=0.8, alpha=0.5)
    ax.plot(f1["conf"], f1["mean_f1"], lw=2.5, color="#1f3b73", label="mean over classes")
    if f1.get("best"):
        b = f1["best"]
        ax.axvline(b["conf"], color="#c44e52", ls="--", lw=1)
        ax.set_title(f"F1-confidence (IoU .50): best {b['f1']:.3f} at conf {b['conf']:.2f}")
    ax.set(xlabel="confidence threshold", ylabel="F1", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_confusion(cm: dict[str, Any], path: Path) -> Path:
    """Row-normalised confusion matrix (ground truth rows, predictions columns) with counts written in."""
    plt = _plt()
    m, norm, names = np.asarray(cm["matrix"]), np.asarray(cm["normalized"]), cm["names"]
    n = len(names)
    size = min(4 + 0.35 * n, 22)
    fig, ax = plt.subplots(figsize=(size, size * 0.85), dpi=100)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the row")
    ax.set_xticks(range(n), names, rotation=90, fontsize=7 if n > 20 else 9)
    ax.set_yticks(range(n), names, fontsize=7 if n > 20 else 9)
    ax.set(
        xlabel="predicted",
        ylabel="ground truth",
        title=f"Confusion at conf >= {cm['conf']}, IoU >= {cm['iou']}",
    )
    if n <= 25:
        for i, j in zip(*np.nonzero(m)):
            ax.text(
                j,
                i,
                f"{m[i, j]}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    return _save(fig, path)


def plot_tide(tide: dict[str, Any], path: Path) -> Path:
    """dAP50 per TIDE error type (how much mAP50 fixing it would add), with the counts."""
    plt = _plt()
    rows = tide["errors"]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    bars = ax.bar([r["type"] for r in rows], [r["dAP"] for r in rows], color="#dd8452")
    for b, r in zip(bars, rows):
        ax.text(
            b.get_x() + b.get_width() / 2,
            b.get_height(),
            f"{r['count']:,}",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set(ylabel="dAP50 if fixed", title=f"TIDE errors (AP50 {tide['ap50']:.3f}; counts on the bars)")
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)


def plot_calibration(cal: dict[str, Any], path: Path) -> Path:
    """Reliability diagram: the share of true positives (IoU .50) against the mean score, per score bin,
    beside the diagonal of a calibrated detector; bar width follows the bin, counts on the bars."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 5), dpi=100)
    rows = [r for r in cal["bins"] if r["count"]]
    ax.plot([0, 1], [0, 1], ls="--", color="#888888", lw=1, label="calibrated")
    ax.bar(
        [(r["lo"] + r["hi"]) / 2 for r in rows],
        [r["accuracy"] for r in rows],
        width=[0.95 * (r["hi"] - r["lo"]) for r in rows],
        color="#4c72b0",
        alpha=0.8,
        label="share of true positives",
    )
    ax.plot([r["conf"] for r in rows], [r["accuracy"] for r in rows], "o", color="#c44e52", ms=4)
    for r in rows:
        ax.text(
            (r["lo"] + r["hi"]) / 2,
            min(r["accuracy"], 0.93) + 0.01,
            f"{r['count']:,}",
            ha="center",
            fontsize=7,
        )
    ece = cal.get("ece")
    ax.set(
        xlabel="score",
        ylabel="precision at IoU .50",
        xlim=(0, 1),
        ylim=(0, 1),
        title="Reliability" + (f" (ECE {ece:.3f})" if ece is not None else ""),
    )
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def write_plots(doc: dict[str, Any], folder: str | Path) -> dict[str, str]:
    """Every figure the result has data for, into ``folder``; returns {name: file name}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    if doc.get("pr_curves"):
        written["pr_curves"] = plot_pr(doc, folder / "pr_curves.png").name
    if doc.get("f1") and doc["f1"].get("per_class") is not None:
        written["f1_curve"] = plot_f1(doc, folder / "f1_curve.png").name
    if doc.get("confusion"):
        written["confusion_matrix"] = plot_confusion(doc["confusion"], folder / "confusion_matrix.png").name
    if doc.get("tide"):
        written["tide"] = plot_tide(doc["tide"], folder / "tide.png").name
    if (doc.get("calibration") or {}).get("ece") is not None:
        written["calibration"] = plot_calibration(doc["calibration"], folder / "calibration.png").name
    return written
