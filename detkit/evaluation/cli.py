"""`detkit coco eval GT PRED`: score any detector's predictions as pycocotools does, and say why it misses.

Registered on :data:`detkit.datasets.cli.common.app` (:mod:`detkit.cli` imports it with the group). Parses,
calls :func:`detkit.evaluation.result.load_and_evaluate`, prints; no torch is imported."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from detkit.console import emit_json, esc, info, out, warn
from detkit.datasets.cli.common import FormatOpt, JsonOpt, OutOpt, SplitOpt, app, busy, table
from detkit.errors import DetkitError
from detkit.evaluation.compare import drops, paired_bootstrap, parse_fail_if_drop
from detkit.evaluation.engine import STAT_NAMES
from detkit.evaluation.per_image import check_table_path, draw_worst, write_per_image
from detkit.evaluation.plots import write_plots
from detkit.evaluation.result import ALIASES, load_and_evaluate, load_checked, usable_gt
from detkit.evaluation.suspects import draw_suspects, find_suspects
from detkit.io import check_out_folder
from detkit.train.runs import record_run, write_summary


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
    float | None,
    typer.Option(
        "--conf",
        min=0.0,
        help="Confusion matrix (default 0.25) and --per-image (default: the best-F1 confidence): "
        "detections scoring at least this.",
    ),
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
PerImageOpt = Annotated[
    Path | None,
    typer.Option(
        "--per-image",
        help="Write every image's errors here (.csv or .json): GT, TP, FP by kind (class, duplicate, "
        "localisation, background), FN and an error score, at --conf and IoU .50.",
    ),
]
WorstOpt = Annotated[int, typer.Option("--worst", min=1, help="How many of the worst images --draw draws.")]
DrawOpt = Annotated[
    Path | None,
    typer.Option(
        "--draw",
        help="Draw the --worst images here (ground truth, TP, FP, FN in four colours) with a contact sheet.",
    ),
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
    conf: ConfOpt = None,
    iou: IouOpt = 0.45,
    slices: SlicesOpt = None,
    anchors: AnchorsOpt = None,
    tide: TideOpt = False,
    plots: PlotsOpt = None,
    per_image: PerImageOpt = None,
    worst: WorstOpt = 16,
    draw: DrawOpt = None,
    fail_under: FailUnderOpt = None,
    json: JsonOpt = False,
    out_dir: OutOpt = None,
) -> None:
    """Score a detector's predictions against ground truth: the 12 COCO numbers (pycocotools-exact), per-class
    AP, AP by size and slice, PR and F1-confidence curves, a confusion matrix, TIDE errors, anchor coverage.

    Exit 0, or 1 when --fail-under is missed, 2 for unusable input.

    Example: detkit coco eval instances_val2017.json predictions.json --tide --fail-under mAP50=0.6 --plots
        eval/

    Which images: detkit coco eval GT PRED --per-image errors.csv --worst 16 --draw worst/
    """
    thresholds = parse_fail_under(fail_under)
    if out_dir is not None:
        check_out_folder(out_dir)
    if draw is not None:
        check_out_folder(draw)
    if per_image is not None:
        check_table_path(per_image)
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
            conf=0.25 if conf is None else conf,
            iou=iou,
            tide=tide,
            per_image=per_image is not None or draw is not None,
            per_image_conf=conf,
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
    if draw is None and out_dir is not None and per_image is not None:
        draw = out_dir / "worst"  # the run folder's report shows the worst images
    _write_per_image(res, gt, per_image, worst, draw, doc)
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


def _write_per_image(res: Any, gt: Any, path: Path | None, n: int, draw: Path | None, doc: dict) -> None:
    """The per-image table (``--per-image``) and the worst images drawn (``--draw``)."""
    if res.per_image is None:
        return
    if path is not None:
        write_per_image(path, res.per_image["rows"])
        info(f"wrote {len(res.per_image['rows']):,} images' errors to {path}")
    if draw is not None:
        drawn = draw_worst(gt, res.preds, res.per_image, n, draw)
        doc["per_image"]["drawn"] = {"folder": str(draw), "images": [d["jpeg"] for d in drawn]}
        info(f"drew the {len(drawn)} worst images in {draw} (contact_sheet.png)")


def _write_outputs(
    doc: dict, plot_dir: Path | None, out_dir: Path | None, gt_path: Path, pred_path: Path
) -> None:
    """The plots (into ``plot_dir``) and the run folder's summary (into ``out_dir``), each when named."""
    written = {}
    if plot_dir is not None:
        written = write_plots(doc, plot_dir)
        info(f"wrote {len(written)} plots to {plot_dir}")
    if out_dir is not None:
        _write_summary(out_dir, doc, written, plot_dir, gt_path, pred_path)


def _write_summary(
    out_dir: Path, doc: dict, written: dict, plot_dir: Path, gt_path: Path, pred_path: Path
) -> None:
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
            **{k: (v if v >= 0 else None) for k, v in s.items() if k not in ("AP", "AP50", "AP75")},
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
        **_worst_images(doc, out_dir),
    )
    info(f"wrote {out_dir / 'summary.json'}")


def _worst_images(doc: dict, out_dir: Path) -> dict[str, Any]:
    """summary.json's ``worst_images`` (shown by ``detkit report``): the worst rows, and the drawn images
    that lie inside the run folder."""
    p = doc.get("per_image")
    if not p:
        return {}
    drawn = p.get("drawn") or {}
    rel = []
    for jpeg in drawn.get("images", []):
        try:
            rel.append(str((Path(drawn["folder"]) / jpeg).resolve().relative_to(out_dir.resolve())))
        except ValueError:
            pass  # drawn outside the run folder: not linked
    return {
        "worst_images": {
            "conf": p["conf"],
            "iou": p["iou"],
            "totals": p["totals"],
            "rows": p["worst"],
            "images": rel,
        }
    }


def _f(v: Any) -> str:
    return "—" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _print(doc: dict) -> None:

    c, s = doc["counts"], doc["summary"]
    out.print(
        f"[bold]{esc(doc['predictions'])}[/bold] vs {esc(doc['gt'])} ({doc['backend']}): "
        f"{c['predictions']:,} predictions, {c['gt_boxes']:,} boxes, {c['images']:,} images"
    )
    out.print(table("COCO metrics", list(s), [[_f(v if v >= 0 else None) for v in s.values()]]))
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
                    _f((per_f1.get(str(r["category_id"]), {}).get("best") or {}).get("f1")),
                    _f((per_f1.get(str(r["category_id"]), {}).get("best") or {}).get("conf")),
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
    cal = doc.get("calibration") or {}
    if cal.get("ece") is not None:
        out.print(f"calibration at IoU .50: ECE {cal['ece']:.3f}, MCE {cal['mce']:.3f} (10 score bins)")
    p = doc.get("per_image")
    if p:
        t = p["totals"]
        out.print()
        out.print(
            table(
                f"Worst images at conf >= {p['conf']}, IoU >= {p['iou']} (score: misses + false positives' "
                f"confidences; totals: TP {t['tp']}, FP class/dup/loc/bkg {t['fp_class']}/{t['fp_dup']}/"
                f"{t['fp_loc']}/{t['fp_bkg']}, FN {t['fn']})",
                ["file", "gt", "tp", "fp cls", "fp dup", "fp loc", "fp bkg", "fn", "score"],
                [
                    [
                        r["file_name"],
                        *(r[k] for k in ("gt", "tp", "fp_class", "fp_dup", "fp_loc", "fp_bkg", "fn")),
                        f"{r['score']:.2f}",
                    ]
                    for r in p["worst"][:10]
                ],
            )
        )


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


@app.command("suspects")
def suspects(
    gt_path: GtArg,
    pred_path: PredArg,
    format: FormatOpt = None,
    split: SplitOpt = None,
    pred_format: PredFmtOpt = None,
    lenient: LenientOpt = False,
    conf: Annotated[
        float, typer.Option("--conf", min=0.0, help="A detection is confident from this score.")
    ] = 0.5,
    top: Annotated[int, typer.Option("--top", min=1, help="How many suspects to list (and draw).")] = 100,
    draw: Annotated[
        Path | None,
        typer.Option("--draw", help="Draw the images of the listed suspects here, with a contact sheet."),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Annotations that are probably wrong, ranked: missing labels (a confident detection on no box), wrong
    classes (a confident detection of another class on a box its class never found), loose boxes (IoU .3-.5
    with the only detection of its class) and spurious labels (a box nothing touches while its class is
    found elsewhere). Best with predictions on images the model was not trained on.

    Exit 0 (suspects are data, not a failure), 2 for unusable input.

    Example: detkit coco suspects data/val.json runs/eval/predictions.json --top 20 --draw suspects/
    """
    if draw is not None:
        check_out_folder(draw)
    with busy(f"finding label-error suspects in {gt_path}"):
        gt, preds, findings = load_checked(
            gt_path,
            pred_path,
            format.value if format else None,
            split,
            pred_format.value if pred_format else None,
            lenient,
        )
        gt, gt_findings = usable_gt(gt)
        res = find_suspects(gt, preds, conf=conf)
    if len(gt.split_names()) > 1:
        warn(f"{gt_path}: {len(gt.split_names())} splits together; pass --split test to check one")
    listed = res["suspects"][:top]
    doc = {
        "gt": str(gt_path),
        "predictions": str(pred_path),
        **{k: v for k, v in res.items() if k != "suspects"},
        "total": len(res["suspects"]),
        "suspects": listed,
        "findings": gt_findings + findings,
    }
    for f in doc["findings"]:
        warn(f"{f['code']}: {f['count']:,} dropped ({f['message']}); first: {f['example']}")
    if draw is not None and listed:
        doc["drawn"] = {"folder": str(draw), "images": draw_suspects(gt, listed, draw)}
        info(f"drew {len(doc['drawn']['images'])} images in {draw} (contact_sheet.png)")
    if json:
        emit_json(doc)
        return
    c = res["counts"]
    out.print(
        table(
            f"Label-error suspects: {len(listed)} of {doc['total']:,} (missing {c['missing_label']}, "
            f"wrong class {c['wrong_class']}, loose {c['loose_box']}, spurious {c['spurious_label']}; "
            f"confident >= {conf})",
            ["rank", "kind", "score", "file", "ann id", "gt class", "predicted", "IoU", "box x,y,w,h"],
            [
                [
                    r["rank"],
                    r["kind"],
                    f"{r['score']:.3f}",
                    r["file_name"],
                    _f(r["ann_id"]),
                    _f(r["gt_class"]),
                    _f(r["pred_class"]),
                    f"{r['iou']:.2f}",
                    ",".join(f"{v:g}" for v in r["bbox"]),
                ]
                for r in listed
            ],
        )
    )


@app.command("compare")
def compare(
    gt_path: GtArg,
    a_path: Annotated[Path, typer.Argument(metavar="A", help="Predictions of model A (the baseline).")],
    b_path: Annotated[Path, typer.Argument(metavar="B", help="Predictions of model B (the candidate).")],
    format: FormatOpt = None,
    split: SplitOpt = None,
    pred_format: PredFmtOpt = None,
    lenient: LenientOpt = False,
    samples: Annotated[
        int, typer.Option("--samples", min=0, help="Bootstrap samples (images drawn).")
    ] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    fail_if_drop: Annotated[
        str | None,
        typer.Option(
            "--fail-if-drop",
            help="Exit 1 when B is worse than A by more than this, with the whole 95% interval below 0, "
            "e.g. AP=0.01,AP50=0.02.",
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Is B better than A, or is it noise? AP, AP50 and AP75 of both prediction sets side by side, per-class
    AP deltas, and a paired bootstrap over images (the same images drawn for both) giving a 95% interval
    for each difference B - A.

    Exit 0, or 1 when --fail-if-drop is met (a drop larger than the threshold that the interval says is
    real), 2 for unusable input.

    Example: detkit coco compare val.json runs/a/predictions.json runs/b/predictions.json --fail-if-drop
        AP=0.01
    """
    thresholds = parse_fail_if_drop(fail_if_drop)
    fmt, pfmt = format.value if format else None, pred_format.value if pred_format else None
    with busy(f"comparing {a_path} and {b_path}"):
        gt, a, fa = load_checked(gt_path, a_path, fmt, split, pfmt, lenient)
        _, b, fb = load_checked(gt_path, b_path, fmt, split, pfmt, lenient)
        gt, gt_findings = usable_gt(gt)
        if not (gt.iscrowd == 0).any():
            raise DetkitError(f"{gt_path}: has no boxes to score the predictions against")
        res = paired_bootstrap(gt, a, b, samples=samples, seed=seed)
    if len(gt.split_names()) > 1:
        warn(f"{gt_path}: comparing on {len(gt.split_names())} splits together; pass --split val to use one")
    failed = drops(res, thresholds)
    doc = {
        "gt": str(gt_path),
        "a": str(a_path),
        "b": str(b_path),
        "metrics": {"a": res["a"], "b": res["b"]},
        **{k: v for k, v in res.items() if k not in ("a", "b")},
        "fail_if_drop": {"thresholds": thresholds, "failed": failed},
        "findings": {"gt": gt_findings, "a": fa, "b": fb},
    }
    for f in failed:
        info(
            f"FAIL --fail-if-drop {f['metric']}: B - A = {f['delta']:+.4f} < -{f['threshold']} and the 95% "
            f"interval [{f['interval'][0]:+.4f}, {f['interval'][1]:+.4f}] is below 0"
        )
    if json:
        emit_json(doc)
    else:
        _print_compare(doc)
    if failed:
        raise typer.Exit(1)


def _print_compare(doc: dict) -> None:
    from rich.markup import escape

    m, d, iv = doc["metrics"], doc["delta"], doc["interval"]
    out.print(
        f"[bold]B[/bold] {escape(doc['b'])} vs [bold]A[/bold] {escape(doc['a'])} on {escape(doc['gt'])}: "
        f"paired bootstrap, {doc['samples']:,} samples over images, seed {doc['seed']}"
    )

    def ci(v: list[float] | None) -> str:
        return "—" if v is None else f"[{v[0]:+.4f}, {v[1]:+.4f}]"

    def verdict(delta: float, v: list[float] | None) -> str:
        if v is None:
            return "—"
        if delta == 0 and v[0] == v[1] == 0:
            return "same"
        return "B better" if v[0] > 0 else "B worse" if v[1] < 0 else "noise"

    out.print(
        table(
            "COCO metrics (95% interval of B - A)",
            ["metric", "A", "B", "B - A", "95% interval", "reading"],
            [
                [k, f"{m['a'][k]:.4f}", f"{m['b'][k]:.4f}", f"{d[k]:+.4f}", ci(iv[k]), verdict(d[k], iv[k])]
                for k in d
            ],
        )
    )
    rows = sorted(doc["per_class"], key=lambda r: r["delta"])
    out.print()
    out.print(
        table(
            f"Per class AP@[.5:.95] (largest changes; {len(rows)} classes with ground truth)",
            ["name", "A", "B", "B - A", "95% interval", "reading"],
            [
                [
                    r["name"],
                    f"{r['AP_a']:.4f}",
                    f"{r['AP_b']:.4f}",
                    f"{r['delta']:+.4f}",
                    ci(r["interval"]),
                    verdict(r["delta"], r["interval"]),
                ]
                for r in sorted(rows, key=lambda r: -abs(r["delta"]))[:15]
            ],
        )
    )
