"""One or many k: anchors, metrics, the elbow and the documents ``detkit anchors kmeans`` writes.

Plain data in and out; :mod:`detkit.anchors.run` drives it for the CLI and the Python API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detkit.anchors.config import BPR_TARGET, DEFAULT_RESTARTS, FALLBACK_K, METHODS, option_error
from detkit.anchors.kmeans import KMeansResult, euclidean_kmeans, iou_kmeans
from detkit.anchors.metrics import anchor_metrics, elbow, stock_anchors
from detkit.anchors.units import anchor_units


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
        raise option_error("method", method, f"choose from {', '.join(METHODS)}")
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


@dataclass
class Pick:
    """The k a sweep hands on (written to the anchors file): the rule, why, and how well it fits."""

    k: int
    rule: str  # bpr, elbow or k (asked for by number, or the only k computed)
    reason: str
    mean_iou: float
    bpr: float

    def line(self) -> str:
        return f"k = {self.k} ({self.reason}): mean IoU {100 * self.mean_iou:.2f}%, BPR {100 * self.bpr:.1f}%"


def pick_k(sweep: Sweep, pick: str | int = "bpr", iou_thr: float = 0.5) -> Pick:
    """Choose the k of a sweep by ``pick``: ``bpr`` (the smallest k whose best-possible recall reaches
    0.98, else 5, else the swept k nearest 5), ``elbow``, or a k among the swept ones."""
    if len(sweep.ks) == 1:
        k, rule, reason = sweep.ks[0], "k", "the only k computed"
    elif isinstance(pick, int):
        if pick not in sweep.ks:
            raise option_error("pick", pick, f"is not one of the swept k ({', '.join(map(str, sweep.ks))})")
        k, rule, reason = pick, "k", "asked for"
    elif pick == "elbow":
        k, rule, reason = sweep.elbow_k, "elbow", "the elbow of the mean-IoU curve"
    elif pick == "bpr":
        rule = "bpr"
        reached = [r["k"] for r in sweep.rows if r["bpr"] >= BPR_TARGET]
        target = f"BPR@{iou_thr:g} >= {100 * BPR_TARGET:g}%"
        if reached:
            k, reason = reached[0], f"the smallest k with {target}"
        else:
            k = min(sweep.ks, key=lambda kk: (abs(kk - FALLBACK_K), -kk))
            reason = f"no k reaches {target}; " + (
                f"YOLOv2's {FALLBACK_K}" if k == FALLBACK_K else f"the swept k nearest {FALLBACK_K}"
            )
    else:
        raise option_error("pick", pick, "choose bpr, elbow or a k among the swept ones")
    row = sweep.row(k)
    return Pick(k, rule, reason, row["mean_iou"], row["bpr"])


def anchors_file(
    sweep: Sweep, pick: Pick, *, norm: str, grid: int, img_size: int, seed: int, method: str, source: str
) -> dict[str, Any]:
    """The anchors file (``anchors.json``) that ``detkit yolo train --anchors`` reads."""
    k = pick.k
    row = sweep.row(k)
    return {
        "anchors_normalized": row["anchors"],
        "anchors_grid": row["anchors_grid"],
        "anchors_pixels": row["anchors_pixels"],
        "grid": grid,
        "img_size": img_size,
        "k": k,
        "pick": {"rule": pick.rule, "reason": pick.reason},
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
