"""One or many k: anchors, metrics, the elbow and the documents ``detkit anchors kmeans`` writes.

Plain data in and out; the CLI only parses options, calls :func:`run_sweep` and prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detkit.anchors.kmeans import DEFAULT_RESTARTS, KMeansResult, euclidean_kmeans, iou_kmeans
from detkit.anchors.metrics import anchor_metrics, elbow, stock_anchors
from detkit.anchors.units import anchor_units
from detkit.errors import DetkitError

METHODS = ("iou", "euclidean")
_KS = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_ks(text: str) -> list[int]:
    """``"5"`` -> [5]; ``"3,4,6"`` -> [3, 4, 6]; ``"1-10"`` -> [1..10] (sorted, unique, each >= 1)."""
    ks: set[int] = set()
    for part in str(text).split(","):
        m = _KS.match(part)
        if m is None:
            raise DetkitError(f"--k '{text}': expected a number, a list (3,4,5) or a range (1-10)")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if lo < 1 or hi < lo:
            raise DetkitError(f"--k '{text}': k must be at least 1 and ranges increasing")
        ks.update(range(lo, hi + 1))
    if len(ks) > 64:
        raise DetkitError(f"--k '{text}': at most 64 values of k at once")
    return sorted(ks)


@dataclass
class Sweep:
    """Everything a sweep computed: one entry per k (``rows``), the elbow and stock-anchor references."""

    ks: list[int]
    results: list[KMeansResult]
    rows: list[dict[str, Any]]
    elbow_k: int
    reference: dict[str, dict[str, float]] = field(default_factory=dict)

    def row(self, k: int) -> dict[str, Any]:
        return self.rows[self.ks.index(k)]

    def result(self, k: int) -> KMeansResult:
        return self.results[self.ks.index(k)]


def run_sweep(
    wh: np.ndarray,
    ks: list[int],
    *,
    method: str = "iou",
    seed: int = 0,
    restarts: int = DEFAULT_RESTARTS,
    update: str = "median",
    refine: bool = True,
    grid: int = 13,
    img_size: int = 416,
    iou_thr: float = 0.5,
    on_k: Any = None,
) -> Sweep:
    """Cluster ``wh`` for every k in ``ks`` and measure each result.

    Args:
        wh: (N, 2) clean normalised box sizes.
        ks: the k values, increasing.
        method: ``iou`` (detkit's IoU k-means) or ``euclidean`` (scikit-learn KMeans baseline).
        seed, restarts, update, refine: passed to the clustering.
        grid, img_size: units of the reported anchors.
        iou_thr: IoU threshold of best-possible recall.
        on_k: optional callback ``on_k(k)`` after each k (progress bars).
    """
    if method not in METHODS:
        raise DetkitError(f"unknown --method '{method}' (choose from {', '.join(METHODS)})")
    results, rows = [], []
    for k in ks:
        if method == "iou":
            res = iou_kmeans(wh, k, seed=seed, restarts=restarts, update=update, refine=refine)
        else:
            res = euclidean_kmeans(wh, k, seed=seed, restarts=restarts)
        m = anchor_metrics(wh, res.anchors, iou_thr=iou_thr)
        rows.append(
            {
                "k": k,
                "mean_iou": res.mean_iou,
                "mean_iou_before_refine": res.mean_iou_before_refine,
                "bpr": m["bpr"],
                "ratio_recall": m["ratio_recall"],
                **anchor_units(res.anchors, grid, img_size),
                "counts": res.counts.tolist(),
                "restart_mean_ious": res.restart_mean_ious,
                "iterations": res.iterations,
                **({"sse": res.sse} if res.sse is not None else {}),
            }
        )
        results.append(res)
        if on_k is not None:
            on_k(k)
    reference = {
        name: {"k": len(a), **anchor_metrics(wh, a, iou_thr=iou_thr), "anchors": a.tolist()}
        for name, a in stock_anchors().items()
    }
    return Sweep(ks, results, rows, elbow(ks, [r["mean_iou"] for r in rows]), reference)


def choose_k(sweep: Sweep, out_k: int | None) -> int:
    """The k written to ``--out``: ``--out-k`` when given, else the elbow of the sweep (the k itself for one k)."""
    if out_k is None:
        return sweep.elbow_k
    if out_k not in sweep.ks:
        raise DetkitError(f"--out-k {out_k} is not one of the swept k ({', '.join(map(str, sweep.ks))})")
    return out_k


def anchors_file(
    sweep: Sweep, k: int, *, norm: str, grid: int, img_size: int, seed: int, method: str, source: str
) -> dict[str, Any]:
    """The ``--out anchors.json`` document that ``detkit yolo train --anchors`` reads."""
    row = sweep.row(k)
    return {
        "anchors_normalized": row["anchors"],
        "anchors_grid": row["anchors_grid"],
        "anchors_pixels": row["anchors_pixels"],
        "grid": grid,
        "img_size": img_size,
        "k": k,
        "mean_iou": row["mean_iou"],
        "bpr": row["bpr"],
        "ratio_recall": row["ratio_recall"],
        "norm": norm,
        "method": method,
        "seed": seed,
        "darknet": row["darknet"],
        "darknet_yolov3": row["darknet_yolov3"],
        "source": source,
    }
