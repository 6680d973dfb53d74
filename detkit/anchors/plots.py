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


def scatter_style(n: int) -> tuple[float, float]:
    """Marker area (pt²) and opacity for ``n`` points: large and opaque for a few hundred boxes, small and
    faint for tens of thousands, so the plot reads neither as a few specks nor as a solid blot.

    Both fall with log10(n): 40 pt², 0.9 at <= 100 points; 2 pt², 0.25 at >= 20,000.
    """
    t = min(1.0, max(0.0, (np.log10(max(n, 1)) - 2.0) / (np.log10(MAX_SCATTER_POINTS) - 2.0)))
    return float(40.0 * (2.0 / 40.0) ** t), float(0.9 - 0.65 * t)


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
    size, alpha = scatter_style(len(idx))
    # saturated tab10 colours up to 10 clusters (tab20's pale half vanishes on white), tab20 beyond
    palette = plt.get_cmap("tab10" if len(anchors) <= 10 else "tab20")
    colours = palette(np.asarray(assignments[idx]) % palette.N)
    ax.scatter(wh[idx, 0], wh[idx, 1], c=colours, s=size, alpha=alpha, linewidths=0)
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
    ks: list[int],
    mean_ious: list[float],
    elbow_k: int,
    path: str | Path,
    reference: dict | None = None,
    chosen_k: int | None = None,
) -> Path:
    """Mean IoU (%) against k, the elbow and the chosen k marked; stock anchors drawn as single points."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    y = 100 * np.asarray(mean_ious)
    ax.plot(ks, y, "o-", label="detkit k-means")
    if elbow_k in ks:
        i = ks.index(elbow_k)
        ax.plot([elbow_k], [y[i]], "o", ms=14, mfc="none", mec="red", mew=2, label=f"elbow k = {elbow_k}")
    if chosen_k is not None and chosen_k in ks:
        i = ks.index(chosen_k)
        ax.plot([chosen_k], [y[i]], "*", ms=16, color="gold", mec="black", label=f"written k = {chosen_k}")
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
    lim = max(float(img_size), float(a.max()) if a.size else 0.0)
    for j, (w, h) in enumerate(a):
        col = colours(j % 10)
        ax.add_patch(Rectangle((c - w / 2, c - h / 2), w, h, fill=False, ec=col, lw=2))
    # labels in a column at the left edge, one line each, in the colour of their anchor: small nested
    # anchors have their corners a few pixels apart, so labels at the corners overlap
    line = lim * 0.045
    for j, (w, h) in enumerate(a):
        ax.text(
            c - lim / 2 + lim * 0.02,
            c - lim / 2 + line * (j + 1),
            f"#{j} {w:.0f}x{h:.0f}",
            color=colours(j % 10),
            fontsize=9,
            ha="left",
            va="bottom",
            family="monospace",
        )
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
