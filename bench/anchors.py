"""Benchmark: anchors for 1,000,000 heavy-tailed boxes, k = 9, detkit vs two baselines in one run.

    python bench/anchors.py [--n 1000000] [--k 9] [--seed 0]

Baselines, each on the same boxes:
  * scikit-learn KMeans (Euclidean on normalised w, h; library defaults, k-means++, n_init="auto")
  * a plain IoU k-means as found in many repos: k random boxes as seeds, mean update, full (N, k)
    IoU matrix per iteration (detkit.boxes.wh_iou), until the assignment stops changing.
Prints wall and CPU time (CPU time is the fairer number on a shared machine) and mean IoU (YOLOv2's Avg IOU,
the same function for all) and ratios to detkit.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def heavy_tailed_boxes(n: int, seed: int) -> np.ndarray:
    """COCO-like normalised sizes: log-normal scale over three decades, log-normal aspect ratio."""
    rng = np.random.default_rng(seed)
    s = np.exp(rng.normal(np.log(0.08), 1.0, n))
    r = np.exp(rng.normal(0.0, 0.5, n))
    return np.clip(np.stack([s * np.sqrt(r), s / np.sqrt(r)], 1), 1e-3, 1.0)


def plain_mean_iou_kmeans(wh: np.ndarray, k: int, seed: int, max_iter: int = 300) -> tuple[np.ndarray, int]:
    """The common textbook version: random seeds, mean update, full IoU matrix each iteration."""
    from detkit.boxes import wh_iou

    rng = np.random.default_rng(seed)
    anchors = wh[rng.choice(len(wh), k, replace=False)].copy()
    last = None
    for it in range(1, max_iter + 1):  # noqa: B007  (the count is read after the loop)
        lab = wh_iou(wh, anchors).argmax(1)
        if last is not None and np.array_equal(lab, last):
            break
        for j in range(k):
            if (lab == j).any():
                anchors[j] = wh[lab == j].mean(0)
        last = lab
    return anchors, it


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=9)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from sklearn.cluster import KMeans

    from detkit.anchors.config import DEFAULT_RESTARTS
    from detkit.anchors.kmeans import iou_kmeans
    from detkit.anchors.metrics import mean_iou

    wh = heavy_tailed_boxes(args.n, args.seed)
    print(
        f"{args.n:,} heavy-tailed boxes, k = {args.k}, {os.cpu_count()} CPUs visible, load "
        f"{os.getloadavg()[0]:.2f}"
    )
    rows = []

    def timed(fn):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        return out, time.perf_counter() - t, time.process_time() - c

    res, secs, cpu = timed(lambda: iou_kmeans(wh, args.k, seed=args.seed))
    rows.append((f"detkit iou_kmeans (median, {DEFAULT_RESTARTS} restarts, refine)", secs, cpu, res.mean_iou))
    print(f"  detkit mean IoU before refinement {100 * res.mean_iou_before_refine:.2f}%")

    km, secs, cpu = timed(lambda: KMeans(n_clusters=args.k, random_state=args.seed).fit(wh))
    rows.append(("scikit-learn KMeans (Euclidean)", secs, cpu, mean_iou(wh, km.cluster_centers_)))

    (anchors, iters), secs, cpu = timed(lambda: plain_mean_iou_kmeans(wh, args.k, args.seed))
    rows.append((f"plain IoU k-means (mean update, {iters} iterations)", secs, cpu, mean_iou(wh, anchors)))

    t0, iou0 = rows[0][1], rows[0][3]
    print(
        f"{'method':52s} {'wall s':>7s} {'cpu s':>7s} {'x detkit':>9s} {'mean IoU %':>11s} {'vs detkit':>10s}"
    )
    for name, secs, cpu, iou in rows:
        print(
            f"{name:52s} {secs:7.2f} {cpu:7.2f} {secs / t0:9.2f} {100 * iou:11.2f} "
            f"{100 * (iou - iou0):+10.2f}"
        )


if __name__ == "__main__":
    main()
