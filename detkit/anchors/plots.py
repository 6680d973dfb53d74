"""Plots of anchor clustering: the (w, h) scatter by cluster, the mean-IoU elbow and the anchors drawn.

Every function writes one PNG atomically and returns its path; matplotlib (Agg) is imported inside.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detkit.io import atomic_path

MAX_SCATTER_POINTS = 20_000  # a million dots draw slowly and look the same as 20,000


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_scatter(
    wh: np.ndarray,
    assignments: np.ndarray,
    anchors: np.ndarray,
    path: str | Path,
    *,
    title: str = "",
    seed: int = 0,
) -> Path:
    """Normalised w vs h, one colour per cluster, anchors marked with black crosses.

    Args:
        wh: (N, 2) normalised box sizes.
        assignments: (N,) closest anchor of each box.
        anchors: (k, 2) normalised anchors.
        path: PNG to write.
        title: plot title.
        seed: seed of the subsample drawn when there are more than 20,000 boxes.
    """
    plt = _plt()
    idx = np.arange(len(wh))
    if len(wh) > MAX_SCATTER_POINTS:
        idx = np.sort(np.random.default_rng(seed).choice(len(wh), MAX_SCATTER_POINTS, replace=False))
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(wh[idx, 0], wh[idx, 1], c=assignments[idx], cmap="tab20", s=3, alpha=0.5, linewidths=0)
    ax.scatter(anchors[:, 0], anchors[:, 1], marker="x", c="black", s=80, linewidths=2, label="anchors")
    ax.set_xlabel("box width (normalised)")
    ax.set_ylabel("box height (normalised)")
    ax.set_xlim(0, max(1.0, float(np.quantile(wh[:, 0], 0.999))))
    ax.set_ylim(0, max(1.0, float(np.quantile(wh[:, 1], 0.999))))
    ax.set_aspect("equal")
    ax.legend(loc="upper right")
    ax.set_title(title or f"boxes by cluster (k = {len(anchors)})")
    fig.tight_layout()
    return _save(fig, path)


def plot_elbow(
    ks: list[int], mean_ious: list[float], elbow_k: int, path: str | Path, reference: dict | None = None
) -> Path:
    """Mean IoU (%) against k, the elbow marked; stock anchors drawn as single points when given."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    y = 100 * np.asarray(mean_ious)
    ax.plot(ks, y, "o-", label="detkit k-means")
    if elbow_k in ks:
        i = ks.index(elbow_k)
        ax.plot([elbow_k], [y[i]], "o", ms=14, mfc="none", mec="red", mew=2, label=f"elbow k = {elbow_k}")
    for name, ref in (reference or {}).items():
        ax.plot([ref["k"]], [100 * ref["mean_iou"]], "s", label=f"{name} ({100 * ref['mean_iou']:.1f})")
    ax.set_xlabel("k (number of anchors)")
    ax.set_ylabel("mean IoU (%)")
    ax.set_xticks(ks)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("mean IoU of boxes with their closest anchor")
    fig.tight_layout()
    return _save(fig, path)


def plot_anchor_boxes(
    anchors_pixels: np.ndarray, img_size: int, path: str | Path, *, title: str = ""
) -> Path:
    """The anchors as rectangles centred on one ``img_size`` canvas, each labelled with its size in pixels."""
    plt = _plt()
    from matplotlib.patches import Rectangle

    a = np.asarray(anchors_pixels, dtype=np.float64)
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(6, 6))
    c = img_size / 2
    for j, (w, h) in enumerate(a):
        col = colours(j % 10)
        ax.add_patch(Rectangle((c - w / 2, c - h / 2), w, h, fill=False, ec=col, lw=2))
        # label at the top-right corner, clipped into the canvas so large anchors stay readable
        x, y = min(c + w / 2, img_size * 0.98), max(c - h / 2, img_size * 0.02)
        ax.text(x, y, f"{w:.0f}x{h:.0f}", color=col, fontsize=8, ha="right", va="bottom")
    lim = max(float(img_size), float(a.max()) if a.size else 0.0)
    ax.set_xlim(c - lim / 2, c + lim / 2)
    ax.set_ylim(c + lim / 2, c - lim / 2)  # image coordinates: y grows downwards
    ax.set_aspect("equal")
    ax.set_xlabel("pixels")
    ax.set_title(title or f"{len(a)} anchors at {img_size} px")
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
