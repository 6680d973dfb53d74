"""Training curves from the per-epoch CSV a training run writes (its summary's ``curves`` key).

Columns are grouped by name, so a new logged column shows up without code changes: losses (``*loss*``
and loss parts such as ``coord``/``obj``/``noobj``/``cls``), quality metrics (mAP, AP50, accuracy, top-k,
precision, recall, F1, IoU), learning rate (``lr*``), speed (``*_per_s``, ``*_s``, time), and anything
else numeric. One small figure per non-empty group, as PNG bytes. Columns filled only on some epochs
(validation every N epochs) are drawn through the epochs that have a value.
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

# Columns used as the x axis, in order of preference; never plotted as a curve.
X_COLUMNS = ("epoch", "step", "iter", "iteration")
LOSS_PARTS = {
    "coord",
    "xy",
    "wh",
    "box",
    "obj",
    "noobj",
    "conf",
    "cls",
    "class",
    "dfl",
    "giou",
    "ciou",
    "l1",
    "prior",
}
_SKIP = re.compile(r"seen", re.IGNORECASE)  # cumulative counters say nothing per epoch
_SPEED = re.compile(r"(per_s\b|/s$|_s$|seconds|time|duration)", re.IGNORECASE)
_METRIC = re.compile(r"(map|ap\d*\b|ap_|acc|top\d|precision|recall|f1|iou)", re.IGNORECASE)
_LR = re.compile(r"(^|[/_.\-])(lr|learning_rate)($|[/_.\-\d])", re.IGNORECASE)

GROUP_TITLES = {
    "loss": "Loss",
    "metric": "Metrics",
    "lr": "Learning rate",
    "speed": "Speed",
    "other": "Other columns",
}


def read_curves(path: str | Path) -> dict[str, list[float]]:
    """Numeric columns of a CSV (non-numeric cells become NaN; all-text columns are dropped).

    Args:
        path: the per-epoch metrics.csv.
    """
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    cols: dict[str, list[float]] = {}
    for name in rows[0]:
        if name is None:
            continue
        values = []
        for r in rows:
            try:
                values.append(float(r.get(name) or "nan"))
            except ValueError:
                values.append(math.nan)
        if any(math.isfinite(v) for v in values):
            cols[name.strip()] = values
    return cols


def group_of(column: str) -> str | None:
    """Which figure a column belongs to (a key of :data:`GROUP_TITLES`), or None to leave it out."""
    if _SKIP.search(column):
        return None
    if "loss" in column.lower() or re.split(r"[/_.\-]", column.lower())[-1] in LOSS_PARTS:
        return "loss"
    if _LR.search(column):
        return "lr"
    if _SPEED.search(column):
        return "speed"
    if _METRIC.search(column):
        return "metric"
    return "other"


def group_columns(cols: dict[str, list[float]]) -> tuple[str | None, dict[str, list[str]]]:
    """The x column (or None) and the plotted columns per group, in :data:`GROUP_TITLES` order."""
    x = next((c for c in cols if c.lower() in X_COLUMNS), None)
    groups: dict[str, list[str]] = {g: [] for g in GROUP_TITLES}
    for c in cols:
        if c != x and c.lower() not in X_COLUMNS and (g := group_of(c)) is not None:
            groups[g].append(c)
    return x, {g: cs for g, cs in groups.items() if cs}


def finite_points(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """The (x, y) pairs where both are finite: a column validated every N epochs becomes one joined line."""
    pts = [(x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_curves(path: str | Path, skip: re.Pattern | None = None) -> list[tuple[str, bytes]]:
    """One PNG per column group of the CSV at ``path``: [(title, png bytes), ...].

    Args:
        path: the per-epoch metrics.csv named by a summary's ``curves`` key.
        skip: columns whose name it matches are left out (top-5 with 5 classes or fewer).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    cols = read_curves(path)
    if skip is not None:
        cols = {c: v for c, v in cols.items() if not skip.search(c)}
    x_name, groups = group_columns(cols)
    n = len(next(iter(cols.values()))) if cols else 0
    xs = cols[x_name] if x_name else list(range(1, n + 1))
    figures = []
    for group, names in groups.items():
        fig, ax = plt.subplots(figsize=(3.4, 2.5), dpi=100)
        for name in names:
            px, py = finite_points(xs, cols[name])
            ax.plot(px, py, marker="o" if len(px) <= 30 else None, markersize=3, linewidth=1.5, label=name)
        if group == "lr" and all(v > 0 for v in cols[names[0]] if math.isfinite(v)):
            ax.set_yscale("log")
        ax.set_title(GROUP_TITLES[group], fontsize=10)
        ax.set_xlabel(x_name or "epoch", fontsize=9)
        ax.tick_params(labelsize=8)
        if n == 1:  # one epoch: one tick, not a fractional axis around it
            ax.set_xticks(xs)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        figures.append((GROUP_TITLES[group], buf.getvalue()))
    return figures
