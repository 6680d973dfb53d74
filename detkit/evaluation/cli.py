"""`detkit coco eval GT PRED`: score any detector's predictions as pycocotools does, and say why it misses.

Registered on :data:`detkit.datasets.cli.common.app` by one import at the end of that module. Parses, calls
:func:`detkit.evaluation.load_and_evaluate`, prints; no torch is imported.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from detkit.console import emit_json, esc, info, out, warn
from detkit.datasets.cli.common import FormatOpt, JsonOpt, OutOpt, SplitOpt, app, busy, table
from detkit.errors import DetkitError


class Backend(str, Enum):
    hotcoco = "hotcoco"
    pycocotools = "pycocotools"


class PredFmt(str, Enum):
    coco = "coco"
    yolo = "yolo"
    detkit = "detkit"
    ultralytics = "ultralytics"


def parse_fail_under(text: str | None) -> dict[str, float]:
    """``mAP50=0.6,mAP=0.4`` -> {"mAP50": 0.6, "mAP": 0.4}; a bad item is a usage error (exit 2)."""
    from detkit.evaluation.engine import STAT_NAMES
    from detkit.evaluation.result import ALIASES

    known = (*ALIASES, *STAT_NAMES, "F1")
    out_: dict[str, float] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            v = float(value)
        except ValueError:
            v = float("nan")
        if not sep or name not in known or not 0 <= v <= 1:
            raise DetkitError(
                f"--fail-under: '{item.strip()}' is not NAME=VALUE with NAME one of {', '.join(known)} "
                "and VALUE in 0..1"
            )
        out_[name] = v
    return out_


GtArg = Annotated[
    Path,
    typer.Argument(
        metavar="GT", help="Ground truth: COCO json, YOLO folder, VOC folder or course text file."
    ),
]
PredArg = Annotated[
    Path,
    typer.Argument(
        metavar="PRED",
        help="Predictions: COCO results json, YOLO txt folder (class cx cy w h conf) or `detkit yolo "
        "predict` detections.json.",
    ),
]
PredFmtOpt = Annotated[
    PredFmt | None,
    typer.Option(
        "--pred-format",
        help="Predictions format (default: detected). ultralytics: the predictions.json of `yolo val "
        "save_json=True` on your own data (images by file stem, classes from 1).",
    ),
]
BackendOpt = Annotated[
    Backend, typer.Option("--backend", help="COCOeval engine; both give the same numbers.")
]
LenientOpt = Annotated[
    bool,
    typer.Option(
        "--lenient",
        help="Drop bad predictions (unknown image/category, bad score or box) as counted findings "
        "instead of exit 2.",
    ),
]
ConfOpt = Annotated[
    float, typer.Option("--conf", min=0.0, help="Confusion matrix: detections scoring at least this.")
]
IouOpt = Annotated[
    float, typer.Option("--iou", min=0.0, max=1.0, help="Confusion matrix: IoU that makes a match.")
]
SlicesOpt = Annotated[
    Path | None,
    typer.Option(
        "--slices",
        help="JSON mapping slice names to lists of image ids or file names: the 12 numbers per slice.",
    ),
]
AnchorsOpt = Annotated[
    Path | None,
    typer.Option("--anchors", help="anchors.json of `detkit anchors kmeans`: recall by best anchor IoU."),
]
TideOpt = Annotated[
    bool,
    typer.Option(
        "--tide",
        help="Also break the errors down as TIDE does (classification, localisation, both, duplicate, "
        "background, missed: count and mAP50 gain if fixed).",
    ),
]
PlotsOpt = Annotated[
    Path | None,
    typer.Option("--plots", help="Write PR curves, F1 curve, confusion matrix and TIDE PNGs here."),
]
FailUnderOpt = Annotated[
    str | None,
    typer.Option("--fail-under", help="Exit 1 when a metric is below its threshold, e.g. mAP50=0.6,mAP=0.4."),
]


@app.command("eval")
def eval_(
    gt_path: GtArg,
    pred_path: PredArg,
    format: FormatOpt = None,
    split: SplitOpt = None,
    pred_format: PredFmtOpt = None,
    backend: BackendOpt = Backend.hotcoco,
    lenient: LenientOpt = False,
    conf: ConfOpt = 0.25,
    iou: IouOpt = 0.45,
    slices: SlicesOpt = None,
    anchors: AnchorsOpt = None,
    tide: TideOpt = False,
    plots: PlotsOpt = None,
    fail_under: FailUnderOpt = None,
    json: JsonOpt = False,
    out_dir: OutOpt = None,
) -> None:
    """Score a detector's predictions against ground truth: the 12 COCO numbers (pycocotools-exact), per-class
    AP, AP by size and slice, PR and F1-confidence curves, a confusion matrix, TIDE errors, anchor coverage.

    Exit 0, or 1 when --fail-under is missed, 2 for unusable input.

    Example: detkit coco eval instances_val2017.json predictions.json --tide --fail-under mAP50=0.6 --plots
        eval/
    """
    from detkit.evaluation import load_and_evaluate
    from detkit.io import check_out_folder

    thresholds = parse_fail_under(fail_under)
    if out_dir is not None:
        check_out_folder(out_dir)
    with busy(f"evaluating {pred_path}"):
        gt, res = load_and_evaluate(
            gt_path,
            pred_path,
            gt_format=format.value if format else None,
            gt_split=split,
            pred_format=pred_format.value if pred_format else None,
            slices=slices,
            anchors=anchors,
            backend=backend.value,
            lenient=lenient,
            conf=conf,
            iou=iou,
            tide=tide,
        )
    doc = {"gt": str(gt_path), "predictions": str(pred_path), **res.as_dict()}
    splits = gt.split_names()
    if len(splits) > 1:
        warn(
            f"{gt_path}: scoring {len(splits)} splits together ({', '.join(splits)}); pass --split val "
            "to score one"
        )
    failed = [
        {"metric": k, "value": res.metric(k), "threshold": v}
        for k, v in thresholds.items()
        if res.metric(k) < v
    ]
    doc["fail_under"] = {"thresholds": thresholds, "failed": failed}
    _write_outputs(doc, plots if plots is not None else out_dir, out_dir, gt_path, pred_path)
    for f in res.findings:
        warn(f"{f['code']}: {f['count']:,} dropped ({f['message']}); first: {f['example']}")
    for n in res.notes:
        flag = (
            " Pass --pred-format ultralytics for that file." if n["code"] == "pred.ids_by_numbering" else ""
        )
        warn(f"{n['code']}: {n['count']:,} ({n['share']:.0%}) {n['message']}{flag} First: {n['example']}")
    if json:
        emit_json(doc)
    else:
        _print(doc)
    for f in failed:
        info(f"FAIL --fail-under {f['metric']}: {f['value']:.4f} < {f['threshold']}")
    if failed:
        raise typer.Exit(1)


def _write_outputs(
    doc: dict, plot_dir: Path | None, out_dir: Path | None, gt_path: Path, pred_path: Path
) -> None:
    """The plots (into ``plot_dir``) and the run folder's summary (into ``out_dir``), each when named."""
    written = {}
    if plot_dir is not None:
        from detkit.evaluation.plots import write_plots

        written = write_plots(doc, plot_dir)
        info(f"wrote {len(written)} plots to {plot_dir}")
    if out_dir is not None:
        _write_summary(out_dir, doc, written, plot_dir, gt_path, pred_path)


def _write_summary(
    out_dir: Path, doc: dict, written: dict, plot_dir: Path, gt_path: Path, pred_path: Path
) -> None:
    from detkit.train.runs import record_run, write_summary

    config = {k: doc.get(k) for k in ("gt", "predictions", "backend")} | {
        "fail_under": doc["fail_under"]["thresholds"]
    }
    record_run(out_dir, config=config, inputs=[gt_path, pred_path])
    rel = {}
    for name, f in written.items():
        p = (plot_dir / f).resolve()
        try:
            rel[name] = str(p.relative_to(out_dir.resolve()))
        except ValueError:
            pass  # plots written outside the run folder are not linked from it
    s = doc["summary"]
    best = (doc.get("f1") or {}).get("best") or {}
    tables: dict[str, Any] = {"per_class": doc["per_class"], "sizes": doc["sizes"]}
    if doc.get("slices"):
        tables["slices"] = [{"slice": k, **v} for k, v in doc["slices"].items()]
    if doc.get("tide"):
        tables["tide"] = doc["tide"]["errors"]
    if doc.get("anchors"):
        tables["anchor_coverage"] = doc["anchors"]["buckets"]
    if doc.get("findings"):
        tables["findings"] = doc["findings"]
    if doc.get("notes"):
        tables["notes"] = doc["notes"]
    write_summary(
        out_dir,
        "coco.eval",
        f"Evaluation of {pred_path.name}",
        metrics={
            "mAP": s["AP"],
            "mAP50": s["AP50"],
            "mAP75": s["AP75"],
            **{k: v for k, v in s.items() if k not in ("AP", "AP50", "AP75")},
            "best_f1": best.get("f1"),
            "best_f1_conf": best.get("conf"),
            "predictions": doc["counts"]["predictions"],
            "failed": bool(doc["fail_under"]["failed"]),
        },
        tables=tables,
        plots=rel,
        counts=doc["counts"],
        backend=doc["backend"],
        fail_under=doc["fail_under"],
    )
    info(f"wrote {out_dir / 'summary.json'}")


def _f(v: Any) -> str:
    return "" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _print(doc: dict) -> None:

    c, s = doc["counts"], doc["summary"]
    out.print(
        f"[bold]{esc(doc['predictions'])}[/bold] vs {esc(doc['gt'])} ({doc['backend']}): "
        f"{c['predictions']:,} predictions, {c['gt_boxes']:,} boxes, {c['images']:,} images"
    )
    out.print(table("COCO metrics", list(s), [[_f(v) for v in s.values()]]))
    f1 = doc.get("f1") or {}
    per_f1 = f1.get("per_class", {})
    out.print()
    shown = [r for r in doc["per_class"] if r["gt"]]  # a class without ground truth has no AP to show
    hidden = (
        f"; {len(doc['per_class']) - len(shown)} classes without ground truth left out"
        if len(shown) < len(doc["per_class"])
        else ""
    )
    out.print(
        table(
            f"Per class (AP@[.5:.95]; F1 conf: the confidence of best F1{hidden})",
            ["name", "id", "gt", "AP", "AP50", "AP75", "AR100", "APs", "APm", "APl", "F1", "F1 conf"],
            [
                [
                    r["name"],
                    r["category_id"],
                    r["gt"],
                    *(_f(r[k]) for k in ("AP", "AP50", "AP75", "AR100", "APs", "APm", "APl")),
                    _f(per_f1.get(str(r["category_id"]), {}).get("best", {}).get("f1")),
                    _f(per_f1.get(str(r["category_id"]), {}).get("best", {}).get("conf")),
                ]
                for r in shown
            ],
        )
    )
    out.print()
    out.print(
        table(
            "By size (COCO areas)",
            ["size", "gt", "AP", "AR100"],
            [[r["size"], r["gt"], _f(r["AP"]), _f(r["AR100"])] for r in doc["sizes"]],
        )
    )
    if doc.get("slices"):
        out.print()
        out.print(
            table(
                "By slice",
                ["name", "AP", "AP50", "AP75", "AR100"],
                [[k, *(_f(v[m]) for m in ("AP", "AP50", "AP75", "AR100"))] for k, v in doc["slices"].items()],
            )
        )
    if doc.get("tide"):
        t = doc["tide"]
        out.print()
        out.print(
            table(
                f"TIDE errors (dAP50: mAP50 {t['ap50']:.3f} gains this if fixed)",
                ["type", "count", "dAP50"],
                [[r["type"], r["count"], _f(r["dAP"])] for r in t["errors"]],
            )
        )
    if doc.get("confusion"):
        _print_confusion(doc["confusion"])
    if doc.get("anchors"):
        a = doc["anchors"]
        out.print()
        out.print(
            table(
                f"Recall@.50 by best anchor IoU ({len(a['anchors'])} anchors, {a['norm']})",
                ["name", "gt", "matched", "recall"],
                [[r["best_anchor_iou"], r["gt"], r["matched"], _f(r["recall"])] for r in a["buckets"]],
            )
        )
    if f1.get("best"):
        b = f1["best"]
        out.print(f"\nbest mean F1 {b['f1']:.3f} at confidence {b['conf']:.2f} (IoU .50)")


def _print_confusion(cm: dict) -> None:
    names, m = cm["names"], cm["matrix"]
    k = len(names) - 1
    pairs = sorted(
        ((m[i][j], names[i], names[j]) for i in range(k + 1) for j in range(k + 1) if i != j and m[i][j]),
        reverse=True,
    )
    out.print()
    if not pairs:
        out.print(
            f"Confusion at conf >= {cm['conf']}, IoU >= {cm['iou']}: no confusions, misses or false positives"
        )
        return
    out.print(
        table(
            f"Confusion at conf >= {cm['conf']}, IoU >= {cm['iou']}: largest off-diagonal cells, "
            "ground truth (name) vs predicted (background: a miss or a false positive)",
            ["name", "predicted", "count"],
            [[g, p, n] for n, g, p in pairs[:12]],
        )
    )
