"""One anchor run end to end: boxes from a dataset, the sweep, the chosen k, the files and the tables.

``detkit anchors kmeans`` parses its options into a :class:`KMeansConfig`, calls :func:`run_anchors`
and prints what it returns; notebooks call :func:`kmeans_anchors` (nothing written)::

    res = kmeans_anchors("instances.json", k="1-9")    # picks the smallest k with BPR >= 0.98
    res.pick.k, res.anchors                             # e.g. 5, (5, 2) normalised (w, h)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detkit.anchors.config import KMeansConfig
from detkit.anchors.plots import plot_anchor_boxes, plot_elbow, plot_scatter
from detkit.anchors.sweep import Pick, Sweep, anchors_file, pick_k, run_sweep
from detkit.anchors.units import clean_wh, dataset_wh
from detkit.datasets.load import load_dataset, skipped_summary, warn_skipped
from detkit.datasets.model import Dataset
from detkit.errors import DetkitError
from detkit.io import write_json
from detkit.train.runs import record_run, write_summary


@dataclass
class AnchorsResult:
    """A sweep over the boxes of ``source`` and the k it hands on.

    ``dropped`` counts boxes without a positive finite size (``dropped_where`` names the first few).
    """

    config: KMeansConfig
    source: str
    wh: np.ndarray  # (N, 2) normalised sizes that were clustered
    sweep: Sweep
    pick: Pick
    format: str | None = None
    dropped: int = 0
    dropped_where: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # what run_anchors wrote: out, plots_dir, plots
    skipped: dict[str, Any] | None = None  # what the loader left out (detkit.datasets.load.skipped_summary)

    @property
    def anchors(self) -> np.ndarray:
        """(k, 2) normalised anchors of the chosen k, sorted by area."""
        return self.sweep.result(self.pick.k).anchors

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document: options, counts, every k's row, the pick and the stock references."""
        doc = {
            "path": self.source,
            "format": self.format,
            **{k: v for k, v in self.config.to_dict().items() if k != "format"},
            "boxes": len(self.wh),
            "dropped": self.dropped,
            "elbow_k": self.sweep.elbow_k,
            "chosen_k": self.pick.k,
            "pick": {
                "rule": self.pick.rule,
                "reason": self.pick.reason,
                "mean_iou": self.pick.mean_iou,
                "bpr": self.pick.bpr,
            },
            "results": self.sweep.rows,
            "reference": self.sweep.reference,
        }
        if self.skipped is not None:  # as the coco commands' --json
            doc["skipped"] = self.skipped
        return {**doc, **self.files}


def _load(data: Any, cfg: KMeansConfig) -> Any:
    """``data`` as an (N, 2) array or a :class:`~detkit.datasets.model.Dataset` (a path is loaded)."""
    if isinstance(data, np.ndarray):
        return data

    if isinstance(data, Dataset):
        return data

    return load_dataset(data, cfg.format, split=cfg.split)


def _boxes(data: Any, cfg: KMeansConfig) -> tuple[np.ndarray, str, str | None, np.ndarray, list[str]]:
    """(kept wh, source name, format, dropped mask, names of the first dropped records)."""
    data = _load(data, cfg)
    if isinstance(data, np.ndarray):
        wh, dropped = clean_wh(data)
        where = [f"row {int(i)}" for i in dropped.nonzero()[0][:3]]
        return wh, "array", None, dropped, where
    wh, dropped = clean_wh(dataset_wh(data, cfg.norm))
    where = [data.record(int(i)) for i in dropped.nonzero()[0][:3]]
    return wh, str(data.source), data.format, dropped, where


def kmeans_anchors(data: Any, config: KMeansConfig | None = None, *, on_k=None, **options) -> AnchorsResult:
    """Anchors for a dataset (path, :class:`~detkit.datasets.model.Dataset` or an (N, 2) array of normalised
    sizes); writes nothing.

    Args:
        data: the boxes.
        config: the options (or pass them as keywords: ``k="1-9", pick="elbow", norm="letterbox"``).
        on_k: optional callback ``on_k(k)`` after each k (progress).
    """
    cfg = config if config is not None else KMeansConfig(**options)
    data = _load(data, cfg)
    wh, source, fmt, dropped, where = _boxes(data, cfg)
    if len(wh) == 0:
        raise DetkitError(f"{source}: no boxes with a positive size")
    sweep = run_sweep(
        wh,
        cfg.ks,
        method=cfg.method,
        seed=cfg.seed,
        restarts=cfg.restarts,
        update=cfg.update,
        refine=cfg.refine,
        grid=cfg.grid,
        img_size=cfg.img_size,
        iou_thr=cfg.iou_thr,
        on_k=on_k,
    )
    pick = pick_k(sweep, cfg.pick, cfg.iou_thr)
    skipped = None
    if not isinstance(data, np.ndarray):
        skipped = skipped_summary(data)
    return AnchorsResult(cfg, source, wh, sweep, pick, fmt, int(dropped.sum()), where, skipped=skipped)


def run_anchors(
    path: str | Path,
    config: KMeansConfig,
    *,
    out: str | Path | None = None,
    plots: str | Path | None = None,
    on_k=None,
) -> AnchorsResult:
    """:func:`kmeans_anchors` on ``path``, then the anchors file ``out`` and the ``plots`` folder (PNGs,
    summary.json, run.json) when given. Files the loader skipped are one warning line on stderr."""

    ds = load_dataset(path, config.format, split=config.split)
    warn_skipped(ds, hint="`detkit coco validate` lists them")
    res = kmeans_anchors(ds, config, on_k=on_k)
    res.source = str(path)
    if out is not None:
        cfg = res.config
        doc = anchors_file(
            res.sweep,
            res.pick,
            norm=cfg.norm,
            grid=cfg.grid,
            img_size=cfg.img_size,
            seed=cfg.seed,
            method=cfg.method,
            source=str(path),
        )
        write_json(out, doc)
        res.files["out"] = str(out)
    if plots is not None:
        res.files["plots"] = write_plots(Path(plots), res, Path(path))
        res.files["plots_dir"] = str(plots)
    return res


def _tables(res: AnchorsResult) -> dict[str, list[dict]]:
    sweep = res.sweep
    per_k = [
        {
            "k": r["k"],
            "mean_iou": r["mean_iou"],
            "mean_iou_before_refine": r["mean_iou_before_refine"],
            "bpr": r["bpr"],
            "ratio_recall": r["ratio_recall"],
            "elbow": r["k"] == sweep.elbow_k,
            "chosen": r["k"] == res.pick.k,
        }
        for r in sweep.rows
    ]
    tables: dict[str, list[dict]] = {"mean_iou_by_k": per_k}
    for r in sweep.rows:
        tables[f"anchors_k{r['k']}"] = [
            {
                "anchor": j,
                "w": a[0],
                "h": a[1],
                "w_grid": g[0],
                "h_grid": g[1],
                "w_px": p[0],
                "h_px": p[1],
                "boxes": n,
            }
            for j, (a, g, p, n) in enumerate(
                zip(r["anchors"], r["anchors_grid"], r["anchors_pixels"], r["counts"])
            )
        ]
    tables["stock_anchors"] = [
        {"name": n, **{key: v for key, v in ref.items() if key != "anchors"}}
        for n, ref in sweep.reference.items()
    ]
    return tables


def write_plots(folder: Path, res: AnchorsResult, path: Path) -> dict[str, str]:
    """PNGs, summary.json (kind anchors.kmeans) and run.json into ``folder``; returns the plot names."""

    folder.mkdir(parents=True, exist_ok=True)
    cfg, sweep, wh = res.config, res.sweep, res.wh
    plots: dict[str, str] = {}
    for k, kr, row in zip(sweep.ks, sweep.results, sweep.rows):
        plot_scatter(
            wh,
            kr.assignments,
            kr.anchors,
            folder / f"scatter_k{k}.png",
            seed=cfg.seed,
            title=f"boxes by cluster, k = {k}, mean IoU {100 * kr.mean_iou:.2f}%",
        )
        plot_anchor_boxes(
            row["anchors_pixels"],
            cfg.img_size,
            folder / f"anchors_k{k}.png",
            title=f"{k} anchors at {cfg.img_size} px ({cfg.norm} norm)",
        )
        plots[f"scatter_k{k}"] = f"scatter_k{k}.png"
        plots[f"anchors_k{k}"] = f"anchors_k{k}.png"
    if len(sweep.ks) > 1:
        ious = [r["mean_iou"] for r in sweep.rows]
        plot_elbow(sweep.ks, ious, sweep.elbow_k, folder / "elbow.png", sweep.reference, chosen_k=res.pick.k)
        plots = {"elbow": "elbow.png", **plots}
    best = sweep.row(res.pick.k)
    config = {"path": str(path), "format": res.format, **res.config.to_dict()}
    write_summary(
        folder,
        "anchors.kmeans",
        f"Anchor boxes for {path.name}",
        metrics={
            "k": res.pick.k,
            "mean_iou": best["mean_iou"],
            "mean_iou_before_refine": best["mean_iou_before_refine"],
            "bpr": best["bpr"],
            "ratio_recall": best["ratio_recall"],
            "elbow_k": sweep.elbow_k,
            "boxes": len(wh),
        },
        tables=_tables(res),
        plots=plots,
        mean_iou_curve={"k": sweep.ks, "mean_iou": [r["mean_iou"] for r in sweep.rows]},
        config=config,
        chosen_k=res.pick.k,
        pick={"rule": res.pick.rule, "reason": res.pick.reason},
        elbow_k=sweep.elbow_k,
        darknet=best["darknet"],
        reference=sweep.reference,
    )
    record_run(folder, config, seed=cfg.seed, inputs=[path])
    return plots


def text_tables(res: AnchorsResult) -> list[Any]:
    """What ``detkit anchors kmeans`` prints on stdout: a header, anchors per k, the sweep table, the
    stock-anchor lines and the darknet line of the chosen k (rich renderables and strings)."""
    from rich.table import Table

    cfg, sweep = res.config, res.sweep
    parts: list[Any] = [
        (
            f"{len(res.wh):,} boxes from {res.source} ({cfg.method} k-means, {cfg.update} update, seed "
            f"{cfg.seed})"
        )
    ]
    for r in sweep.rows:
        gain = 100 * (r["mean_iou"] - r["mean_iou_before_refine"])
        t = Table(
            title=f"k = {r['k']}: mean IoU {100 * r['mean_iou']:.2f}% (k-means "
            f"{100 * r['mean_iou_before_refine']:.2f}%, "
            f"refinement {gain:+.2f}), BPR@{cfg.iou_thr:g} {100 * r['bpr']:.1f}%, ratio<4 "
            f"{100 * r['ratio_recall']:.1f}%",
            title_justify="left",
        )
        for col in ("#", "w", "h", "w grid", "h grid", "w px", "h px", "boxes"):
            t.add_column(col, justify="right")
        for j, (a, g, p, n) in enumerate(
            zip(r["anchors"], r["anchors_grid"], r["anchors_pixels"], r["counts"])
        ):
            t.add_row(
                str(j),
                f"{a[0]:.4f}",
                f"{a[1]:.4f}",
                f"{g[0]:.3f}",
                f"{g[1]:.3f}",
                f"{p[0]:.1f}",
                f"{p[1]:.1f}",
                f"{n:,}",
            )
        parts.append(t)
    if len(sweep.ks) > 1:
        t = Table(title="mean IoU by k", title_justify="left")
        for col in ("k", "mean IoU %", "BPR %", "ratio<4 %", ""):
            t.add_column(col, justify="right")
        for r in sweep.rows:
            marks = [
                m for m, on in (("chosen", r["k"] == res.pick.k), ("elbow", r["k"] == sweep.elbow_k)) if on
            ]
            t.add_row(
                str(r["k"]),
                f"{100 * r['mean_iou']:.2f}",
                f"{100 * r['bpr']:.1f}",
                f"{100 * r['ratio_recall']:.1f}",
                ("<- " + ", ".join(marks)) if marks else "",
            )
        parts.append(t)
    for name, ref in sweep.reference.items():
        parts.append(
            f"stock {name} anchors (k = {ref['k']}): mean IoU {100 * ref['mean_iou']:.2f}%, BPR "
            f"{100 * ref['bpr']:.1f}%"
        )
    parts.append(f"k = {res.pick.k} (grid {cfg.grid}, {cfg.img_size} px, {cfg.norm} norm):")
    parts.append(sweep.row(res.pick.k)["darknet"])
    return parts
