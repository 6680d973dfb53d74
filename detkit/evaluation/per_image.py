"""Errors image by image: which images hold the false positives and the misses, and what kind they are.

At one confidence ``conf`` and IoU ``iou`` (.50), the matching is the confusion matrix's
(:func:`~detkit.evaluation.confusion.confusion_match`): detections scoring >= ``conf``, best first, each
takes the unmatched box of its class with the highest IoU >= ``iou``, failing that the unmatched box of any
class, failing that nothing. Per image:

    gt          ground-truth boxes (not crowd)
    tp          detections that took a box of their own class           (the matrix's diagonal)
    fp_class    detections that took a box of another class             (off-diagonal cells)
    fp_dup      took nothing, IoU >= ``iou`` with a box of their class  (TIDE's Dupe: a better detection
                                                                         took it)
    fp_loc      took nothing, ``bg`` <= IoU < ``iou`` with a box of     (TIDE's Loc)
                their class
    fp_bkg      took nothing and none of the above                      (TIDE's Bkg and Both)
    fn          boxes nothing took                                      (the background column)
    score       fn + the sum of the false positives' confidences: a confident false positive weighs
                nearly as much as a miss; images are ranked by it (then by file order)

so the per-image sums are the matrix's: tp = trace, fp_class = off-diagonal, fp_dup + fp_loc + fp_bkg =
the background row, fn = the background column (tests/evaluation/test_per_image.py). TIDE's thresholds
(t_f = ``iou``, t_b = ``bg`` = .10) are :mod:`detkit.evaluation.tide`'s.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from detkit.datasets.model import Dataset
from detkit.datasets.ops.draw import draw_images
from detkit.errors import DetkitError
from detkit.evaluation.confusion import confusion_match
from detkit.evaluation.matching import crowd_iou, pairs_by_key
from detkit.evaluation.predictions import Predictions, index_of
from detkit.io import atomic_write, write_json

COLUMNS = ("image_id", "file_name", "gt", "tp", "fp_class", "fp_dup", "fp_loc", "fp_bkg", "fn", "score")
FP_KINDS = ("fp_class", "fp_dup", "fp_loc", "fp_bkg")
# the four fixed colours of a drawn image (RGB): matched ground truth, true positive, false positive, miss
COLOURS = {"gt": (0, 114, 178), "tp": (0, 158, 115), "fp": (213, 94, 0), "fn": (240, 228, 66)}


def best_same_class_iou(gt: Dataset, preds: Predictions, rows: np.ndarray) -> np.ndarray:
    """Each detection's (``rows`` of ``preds``) highest IoU with an ordinary box of its class in its image (0:
    none)."""
    plain = np.flatnonzero(gt.iscrowd == 0)
    images = np.unique(np.concatenate([gt.ann_image_id[plain], preds.image_id[rows]]))
    cats = np.unique(np.concatenate([gt.category_id[plain], preds.category_id[rows]]))

    def key(img: np.ndarray, cat: np.ndarray) -> np.ndarray:
        return np.searchsorted(images, img) * len(cats) + np.searchsorted(cats, cat)

    own, pos = pairs_by_key(
        key(preds.image_id[rows], preds.category_id[rows]),
        key(gt.ann_image_id[plain], gt.category_id[plain]),
        len(images) * len(cats),
    )
    best = np.zeros(len(rows))
    ious = crowd_iou(preds.bbox[rows[own]], gt.bbox[plain[pos]], np.zeros(len(pos), bool))
    np.maximum.at(best, own, ious)
    return best


def per_image_errors(
    gt: Dataset, preds: Predictions, conf: float, iou: float = 0.5, bg: float = 0.1
) -> dict[str, Any]:
    """Counts per image (module docstring).

    Returns:
        ``conf``, ``iou``, ``rows`` (one dict per image with the :data:`COLUMNS`, in image order),
        ``totals`` (column sums) and, for drawing, ``detections`` (per counted detection: ``row`` of
        ``preds``, ``kind`` tp / fp_class / fp_dup / fp_loc / fp_bkg) and ``missed`` (annotation rows).
    """
    det, box, state, found = confusion_match(gt, preds, conf, iou)
    kind = np.full(len(det), "", dtype=object)
    took = state == 1
    same = np.zeros(len(det), bool)
    same[took] = gt.category_id[box[took]] == preds.category_id[det[took]]
    kind[took & same] = "tp"
    kind[took & ~same] = "fp_class"
    free = np.flatnonzero(state == 0)
    best = best_same_class_iou(gt, preds, det[free])
    kind[free] = np.where(best >= iou, "fp_dup", np.where(best >= bg, "fp_loc", "fp_bkg"))
    counted = state >= 0
    n_img = gt.num_images
    d_img = index_of(gt.image_id, preds.image_id[det])
    cols: dict[str, np.ndarray] = {}
    for k in ("tp", *FP_KINDS):
        m = counted & (kind == k)
        cols[k] = np.bincount(d_img[m], minlength=n_img)
    g_img = index_of(gt.image_id, gt.ann_image_id)
    plain = (gt.iscrowd == 0) & (g_img >= 0)
    cols["gt"] = np.bincount(g_img[plain], minlength=n_img)
    cols["fn"] = np.bincount(g_img[(found == 0) & (g_img >= 0)], minlength=n_img)
    fp = counted & (kind != "tp")
    score = cols["fn"] + np.bincount(d_img[fp], weights=preds.score[det[fp]], minlength=n_img)
    rows = [
        {
            "image_id": int(i),
            "file_name": str(f),
            **{k: int(cols[k][r]) for k in ("gt", "tp", *FP_KINDS, "fn")},
            "score": round(float(score[r]), 6),
        }
        for r, (i, f) in enumerate(zip(gt.image_id.tolist(), gt.file_name.tolist()))
    ]
    totals = {k: int(cols[k].sum()) for k in ("gt", "tp", *FP_KINDS, "fn")}
    return {
        "conf": conf,
        "iou": iou,
        "rows": rows,
        "totals": totals,
        "detections": {"row": det[counted], "kind": kind[counted]},
        "missed": np.flatnonzero(found == 0),
    }


def worst(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The ``n`` rows of highest score (ties: file order), leaving out images without an error."""
    ranked = sorted(range(len(rows)), key=lambda i: (-rows[i]["score"], i))
    return [rows[i] for i in ranked[:n] if rows[i]["score"] > 0]


def check_table_path(path: str | Path) -> Path:
    """``path`` when it names a .csv or .json file (the CLI checks it before evaluating, to fail fast)."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".json"):
        raise DetkitError(
            f"{path}: the per-image table needs a .csv or .json path",
            flags={"the per-image table needs": "--per-image needs"},
        )
    return path


def write_per_image(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """``rows`` as .csv (a header of :data:`COLUMNS`) or .json (a list), written atomically."""

    path = check_table_path(path)
    if path.suffix.lower() == ".json":
        return write_json(path, rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    with atomic_write(path) as f:
        f.write(buf.getvalue())
    return path


def draw_worst(
    gt: Dataset, preds: Predictions, errors: dict[str, Any], n: int, out: str | Path
) -> list[dict[str, Any]]:
    """Draw the ``n`` worst images into ``out`` (``images/*.jpg`` and ``contact_sheet.png``), with
    :mod:`detkit.datasets.ops.draw`'s drawing: matched ground truth, true positives, false positives (with
    their kind) and misses in the four :data:`COLOURS`, each tagged with its class name.

    Returns:
        the drawn rows (the per-image row plus ``jpeg``, its file under ``out``).
    """

    out = Path(out)
    picked = worst(errors["rows"], n)
    if not picked:
        return []
    names = gt.category_names()
    row_of = {int(i): r for r, i in enumerate(gt.image_id.tolist())}
    layers: dict[int, tuple[list, list[str], list]] = {row_of[p["image_id"]]: ([], [], []) for p in picked}
    d_img = index_of(gt.image_id, preds.image_id)
    for r, k in zip(errors["detections"]["row"].tolist(), errors["detections"]["kind"].tolist()):
        layer = layers.get(int(d_img[r]))
        if layer is None:
            continue
        name = names.get(int(preds.category_id[r]), str(int(preds.category_id[r])))
        tag = f"{name} {preds.score[r]:.2f}" if k == "tp" else f"{name} {preds.score[r]:.2f} FP {k[3:]}"
        layer[0].append(preds.bbox[r])
        layer[1].append(tag)
        layer[2].append(COLOURS["tp" if k == "tp" else "fp"])
    missed = set(errors["missed"].tolist())
    g_img = index_of(gt.image_id, gt.ann_image_id)
    for a in np.flatnonzero((gt.iscrowd == 0) & np.isin(g_img, list(layers))).tolist():
        layer = layers[int(g_img[a])]
        name = names.get(int(gt.category_id[a]), str(int(gt.category_id[a])))
        layer[0].insert(0, gt.bbox[a])  # ground truth first, detections drawn over it
        layer[1].insert(0, f"{name} FN" if a in missed else f"{name} GT")
        layer[2].insert(0, COLOURS["fn" if a in missed else "gt"])
    overlay = {r: (np.asarray(b, dtype=np.float64).reshape(-1, 4), t, c) for r, (b, t, c) in layers.items()}
    drawn = draw_images(gt, np.array([row_of[p["image_id"]] for p in picked]), out, overlay=overlay)
    return [{**p, "jpeg": d.jpeg} for p, d in zip(picked, drawn)]
