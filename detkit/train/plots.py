"""curves.png of a training run folder, the one drawing both trainers use.

A figure of side-by-side panels over the epochs, one line per series; a series may lack values on some
epochs (mAP measured every N epochs) and is drawn through the epochs that have one. Written atomically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from detkit.io import atomic_path


@dataclass
class Panel:
    """One panel: ``series`` maps a legend label to one value per row of the run's history (None: no
    value that epoch)."""

    title: str
    ylabel: str
    series: dict[str, Sequence[float | None]] = field(default_factory=dict)
    scale: float = 1.0  # values are multiplied by it (100: fractions shown as %)


def plot_curves(path: Path, epochs: Sequence[int], panels: Sequence[Panel]) -> Path:
    """Draw ``panels`` over ``epochs`` into ``path`` (PNG, 110 dpi, about 4.5 x 3.4 in per panel)."""
    import matplotlib  # lazy: seconds to import; only drawing needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after matplotlib.use
    from matplotlib.ticker import MaxNLocator  # lazy: as matplotlib

    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4), squeeze=False)
    for ax, p in zip(axes[0], panels):
        for name, values in p.series.items():
            pts = [
                (e, p.scale * float(v))
                for e, v in zip(epochs, values)
                if v is not None and math.isfinite(float(v))
            ]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, label=name, marker="o" if len(pts) == 1 else None)
        ax.set(xlabel="epoch", ylabel=p.ylabel, title=p.title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)
