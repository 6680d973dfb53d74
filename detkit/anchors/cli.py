"""`detkit anchors ...` commands (thin: parse, call, print). Import heavy libraries inside commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)


@app.callback()
def _anchors() -> None:
    """IoU k-means anchor boxes, sweeps and plots."""


@app.command("kmeans")
def kmeans(
    path: Annotated[
        Path, typer.Argument(help="Annotations: COCO json, course text file, YOLO folder or VOC folder.")
    ],
    k: Annotated[str, typer.Option("--k", help="One k (5), a list (3,4,5) or a range (1-10).")] = "5",
    format: Annotated[
        str | None, typer.Option("--format", help="coco|text|yolo|voc (guessed from PATH).")
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of every random choice (same seed, same anchors).")
    ] = 0,
    restarts: Annotated[
        int, typer.Option("--restarts", help="k-means++ seedings per k; the best mean IoU wins.")
    ] = 6,
    update: Annotated[
        str, typer.Option("--update", help="Centroid update: median (robust) or mean.")
    ] = "median",
    method: Annotated[
        str, typer.Option("--method", help="iou (1 - IoU k-means) or euclidean (scikit-learn).")
    ] = "iou",
    norm: Annotated[
        str, typer.Option("--norm", help="image (w/W, h/H) or letterbox (long side = img-size).")
    ] = "image",
    img_size: Annotated[
        int, typer.Option("--img-size", help="Network input side in pixels (pixel units).")
    ] = 416,
    grid: Annotated[
        int, typer.Option("--grid", help="Output grid cells per side (grid units, YOLOv2).")
    ] = 13,
    iou_thr: Annotated[float, typer.Option("--iou-thr", help="IoU threshold of best-possible recall.")] = 0.5,
    no_refine: Annotated[
        bool, typer.Option("--no-refine", help="Skip the mean-IoU refinement step.")
    ] = False,
    plots: Annotated[
        Path | None, typer.Option("--plots", help="Folder for PNGs, summary.json and run.json.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the anchors file detkit yolo train reads.")
    ] = None,
    out_k: Annotated[
        int | None, typer.Option("--out-k", help="k written to --out (default: the elbow).")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")] = False,
) -> None:
    """Anchor boxes by k-means under 1 - IoU, with mean IoU, recall and plots per k.

    For a sweep, --out writes the elbow k unless --out-k names another.

    Example: detkit anchors kmeans instances.json --k 1-10 --norm letterbox --plots anchors/ --out anchors.json
    """
    from detkit.anchors.kmeans import UPDATES
    from detkit.anchors.sweep import anchors_file, choose_k, parse_ks, run_sweep
    from detkit.anchors.units import NORMS, clean_wh, dataset_wh
    from detkit.coco.loaders import load_dataset
    from detkit.console import emit_json, progress, warn
    from detkit.errors import DetkitError
    from detkit.io import write_json

    ks = parse_ks(k)
    for name, value, allowed in (
        ("--update", update, UPDATES),
        ("--norm", norm, NORMS),
        ("--method", method, ("iou", "euclidean")),
    ):
        if value not in allowed:
            raise DetkitError(f"{name} '{value}': choose from {', '.join(allowed)}")
    if img_size < 1 or grid < 1 or restarts < 1:
        raise DetkitError("--img-size, --grid and --restarts must be at least 1")
    if out_k is not None and out_k not in ks:
        raise DetkitError(f"--out-k {out_k} is not one of the swept k ({', '.join(map(str, ks))})")

    ds = load_dataset(path, format)
    wh, dropped = clean_wh(dataset_wh(ds, norm))
    if dropped.any():
        where = ", ".join(ds.record(int(i)) for i in dropped.nonzero()[0][:3])
        warn(
            f"{path}: dropped {int(dropped.sum())} of {len(dropped)} boxes with zero, negative or missing size (first: {where})"
        )
    if len(wh) == 0:
        raise DetkitError(f"{path}: no boxes with a positive size")

    with progress() as bar:
        task = bar.add_task(f"k-means on {len(wh):,} boxes", total=len(ks), info="")
        sweep = run_sweep(
            wh, ks, method=method, seed=seed, restarts=restarts, update=update, refine=not no_refine,
            grid=grid, img_size=img_size, iou_thr=iou_thr, on_k=lambda kk: bar.update(task, advance=1, info=f"k={kk}"),
        )  # fmt: skip
    chosen = choose_k(sweep, out_k)
    config = {
        "path": str(path), "format": ds.format, "ks": ks, "seed": seed, "restarts": restarts, "update": update,
        "method": method, "norm": norm, "img_size": img_size, "grid": grid, "iou_thr": iou_thr, "refine": not no_refine,
    }  # fmt: skip
    doc = {
        **config,
        "boxes": len(wh),
        "dropped": int(dropped.sum()),
        "elbow_k": sweep.elbow_k,
        "chosen_k": chosen,
        "results": sweep.rows,
        "reference": sweep.reference,
    }
    if out is not None:
        write_json(
            out,
            anchors_file(
                sweep,
                chosen,
                norm=norm,
                grid=grid,
                img_size=img_size,
                seed=seed,
                method=method,
                source=str(path),
            ),
        )
        doc["out"] = str(out)
    if plots is not None:
        doc["plots"] = _write_plots(plots, wh, sweep, config, chosen, path)
        doc["plots_dir"] = str(plots)

    if json_:
        emit_json(doc)
        return
    _print_tables(doc, sweep)


def _write_plots(folder: Path, wh, sweep, config: dict, chosen: int, path: Path) -> dict[str, str]:
    """PNGs, summary.json (kind anchors.kmeans) and run.json into ``folder``; returns the plot names."""
    from detkit.anchors.plots import plot_anchor_boxes, plot_elbow, plot_scatter
    from detkit.runs import record_run, write_summary

    folder.mkdir(parents=True, exist_ok=True)
    plots: dict[str, str] = {}
    img_size, seed = config["img_size"], config["seed"]
    for k, res, row in zip(sweep.ks, sweep.results, sweep.rows):
        plot_scatter(wh, res.assignments, res.anchors, folder / f"scatter_k{k}.png", seed=seed,
                     title=f"boxes by cluster, k = {k}, mean IoU {100 * res.mean_iou:.2f}%")  # fmt: skip
        plot_anchor_boxes(row["anchors_pixels"], img_size, folder / f"anchors_k{k}.png",
                          title=f"{k} anchors at {img_size} px ({config['norm']} norm)")  # fmt: skip
        plots[f"scatter_k{k}"] = f"scatter_k{k}.png"
        plots[f"anchors_k{k}"] = f"anchors_k{k}.png"
    if len(sweep.ks) > 1:
        plot_elbow(
            sweep.ks,
            [r["mean_iou"] for r in sweep.rows],
            sweep.elbow_k,
            folder / "elbow.png",
            sweep.reference,
        )
        plots = {"elbow": "elbow.png", **plots}
    best = sweep.row(chosen)
    per_k = [
        {"k": r["k"], "mean_iou": r["mean_iou"], "mean_iou_before_refine": r["mean_iou_before_refine"],
         "bpr": r["bpr"], "ratio_recall": r["ratio_recall"], "elbow": r["k"] == sweep.elbow_k}
        for r in sweep.rows
    ]  # fmt: skip
    tables = {"mean_iou_by_k": per_k}
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
    write_summary(
        folder, "anchors.kmeans", f"Anchor boxes for {path.name}",
        metrics={"k": chosen, "mean_iou": best["mean_iou"], "mean_iou_before_refine": best["mean_iou_before_refine"],
                 "bpr": best["bpr"], "ratio_recall": best["ratio_recall"], "elbow_k": sweep.elbow_k, "boxes": len(wh)},
        tables=tables, plots=plots,
        mean_iou_curve={"k": sweep.ks, "mean_iou": [r["mean_iou"] for r in sweep.rows]},
        config=config, chosen_k=chosen, elbow_k=sweep.elbow_k, darknet=best["darknet"], reference=sweep.reference,
    )  # fmt: skip
    record_run(folder, config, seed=seed, inputs=[path])
    return plots


def _print_tables(doc: dict, sweep) -> None:
    """Human-readable output on stdout: anchors per k, the sweep table and the darknet line."""
    from rich.table import Table

    from detkit.console import info, out

    unit = f"grid {doc['grid']}, {doc['img_size']} px, {doc['norm']} norm"
    out.print(
        f"{doc['boxes']:,} boxes from {doc['path']} ({doc['method']} k-means, {doc['update']} update, seed {doc['seed']})"
    )
    for r in sweep.rows:
        refine_gain = 100 * (r["mean_iou"] - r["mean_iou_before_refine"])
        t = Table(title=f"k = {r['k']}: mean IoU {100 * r['mean_iou']:.2f}% (k-means {100 * r['mean_iou_before_refine']:.2f}%, "
                  f"refinement {refine_gain:+.2f}), BPR@{doc['iou_thr']:g} {100 * r['bpr']:.1f}%, ratio<4 {100 * r['ratio_recall']:.1f}%",
                  title_justify="left")  # fmt: skip
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
        out.print(t)
    if len(sweep.ks) > 1:
        t = Table(title="mean IoU by k", title_justify="left")
        for col in ("k", "mean IoU %", "BPR %", "ratio<4 %", ""):
            t.add_column(col, justify="right")
        for r in sweep.rows:
            mark = "<- elbow" if r["k"] == doc["elbow_k"] else ""
            t.add_row(
                str(r["k"]),
                f"{100 * r['mean_iou']:.2f}",
                f"{100 * r['bpr']:.1f}",
                f"{100 * r['ratio_recall']:.1f}",
                mark,
            )
        out.print(t)
    for name, ref in doc["reference"].items():
        out.print(
            f"stock {name} anchors (k = {ref['k']}): mean IoU {100 * ref['mean_iou']:.2f}%, BPR {100 * ref['bpr']:.1f}%"
        )
    chosen = sweep.row(doc["chosen_k"])
    out.print(f"k = {doc['chosen_k']} ({unit}):", soft_wrap=True)
    out.print(chosen["darknet"], soft_wrap=True, markup=False)
    if "out" in doc:
        info(f"wrote {doc['out']} (k = {doc['chosen_k']})")
    if "plots" in doc:
        info(f"wrote {len(doc['plots'])} plots, summary.json and run.json to {doc['plots_dir']}")
