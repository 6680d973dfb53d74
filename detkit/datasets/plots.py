"""The class-distribution bar chart (matplotlib, imported only when a plot is asked for)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detkit.io import atomic_path


def plot_classes(rows: list[dict[str, Any]], path: str | Path, title: str = "Instances per class") -> Path:
    """Horizontal bar chart, one bar per class with its name and count, most frequent on top.

    Args:
        rows: :func:`detkit.datasets.stats.class_table` rows (already sorted).
        path: the PNG to write (atomically).
        title: chart title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["name"] for r in rows][::-1]
    counts = [r["instances"] for r in rows][::-1]
    height = max(2.5, 0.8 + 0.24 * len(rows))
    fig, ax = plt.subplots(figsize=(8, height), dpi=100)
    bars = ax.barh(range(len(rows)), counts, color="#4C72B0")
    ax.set_yticks(range(len(rows)), names, fontsize=8 if len(rows) > 30 else 10)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("instances")
    ax.set_title(title)
    top = max(counts, default=0)
    for bar, c in zip(bars, counts):
        ax.text(
            bar.get_width() + top * 0.01,
            bar.get_y() + bar.get_height() / 2,
            f"{c:,}",
            va="center",
            fontsize=7,
        )
    ax.set_xlim(0, top * 1.12 + 1)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path
