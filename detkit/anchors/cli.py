"""`detkit anchors ...` commands (thin: parse, call, print). Import heavy libraries inside commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from detkit.anchors.config import KMeansConfig
from detkit.anchors.run import run_anchors, text_tables
from detkit.console import emit_json, info, progress, warn
from detkit.console import out as stdout

app = typer.Typer(no_args_is_help=True)


@app.callback()
def _anchors() -> None:
    """IoU k-means anchor boxes, sweeps and plots."""


D = KMeansConfig()  # the defaults live in the library; the options below read them


@app.command("kmeans")
def kmeans(
    path: Annotated[
        Path,
        typer.Argument(help="Annotations: any format detkit reads (COCO json, data.yaml, VOC, CVAT...)."),
    ],
    k: Annotated[str, typer.Option("--k", help="One k (5), a list (3,4,5) or a range (1-10).")] = str(D.k),
    pick: Annotated[
        str,
        typer.Option(
            "--pick",
            help="k written by a sweep: bpr (smallest k with BPR >= 0.98, else 5), elbow, or a number.",
        ),
    ] = str(D.pick),
    format: Annotated[
        str | None, typer.Option("--format", help="coco|text|yolo|voc|cvat|labelstudio|labelme (from PATH).")
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split", help="Only the boxes of this split (train, val, test); default: every image once."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of every random choice (same seed, same anchors).")
    ] = D.seed,
    restarts: Annotated[
        int, typer.Option("--restarts", help="k-means++ seedings per k; the best mean IoU wins.")
    ] = D.restarts,
    update: Annotated[
        str, typer.Option("--update", help="Centroid update: median (robust) or mean.")
    ] = D.update,
    method: Annotated[
        str, typer.Option("--method", help="iou (1 - IoU k-means) or euclidean (scikit-learn).")
    ] = D.method,
    norm: Annotated[
        str, typer.Option("--norm", help="image (w/W, h/H) or letterbox (long side = img-size).")
    ] = D.norm,
    img_size: Annotated[
        int, typer.Option("--img-size", help="Network input side in pixels (pixel units).")
    ] = D.img_size,
    grid: Annotated[
        int, typer.Option("--grid", help="Output grid cells per side (grid units, YOLOv2).")
    ] = D.grid,
    iou_thr: Annotated[
        float, typer.Option("--iou-thr", help="IoU threshold of best-possible recall.")
    ] = D.iou_thr,
    no_refine: Annotated[
        bool, typer.Option("--no-refine", help="Skip the mean-IoU refinement step.")
    ] = not D.refine,
    plots: Annotated[
        Path | None, typer.Option("--plots", help="Folder for PNGs, summary.json and run.json.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the anchors file detkit yolo train reads (the --pick k)."),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")] = False,
) -> None:
    """Anchor boxes by k-means under 1 - IoU, with mean IoU, recall and plots per k.

    For a sweep, --out writes the k chosen by --pick: by default the smallest k whose best-possible
    recall reaches 0.98 (5 when none does); the choice is printed on stderr.

    Example: detkit anchors kmeans instances.json --k 1-10 --norm letterbox --plots anchors/ --out
        anchors.json
    """
    cfg = KMeansConfig(
        k=k,
        pick=pick,
        seed=seed,
        restarts=restarts,
        update=update,
        method=method,
        norm=norm,
        img_size=img_size,
        grid=grid,
        iou_thr=iou_thr,
        refine=not no_refine,
        format=format,
        split=split,
    )
    with progress() as bar:
        task = bar.add_task(f"k-means on the boxes of {path.name}", total=len(cfg.ks), info="")
        res = run_anchors(
            path, cfg, out=out, plots=plots, on_k=lambda kk: bar.update(task, advance=1, info=f"k={kk}")
        )
    _print_result(res, path, json_, out, plots)


def _print_result(res, path: Path, json_: bool, out: Path | None, plots: Path | None) -> None:
    """The tables (or the --json document) on stdout; dropped boxes, the pick and the files on stderr."""
    if res.dropped:
        warn(
            f"{path}: dropped {res.dropped} of {res.dropped + len(res.wh)} boxes with zero, negative or "
            "missing "
            f"size (first: {', '.join(res.dropped_where)})"
        )
    if json_:
        emit_json(res.to_dict())
    else:
        for part in text_tables(res):
            stdout.print(part, soft_wrap=True, markup=False)
    info(("wrote " + str(out) + ": " if out is not None else "") + res.pick.line())
    if plots is not None:
        info(f"wrote {len(res.files['plots'])} plots, summary.json and run.json to {plots}")
