"""A detector's predictions as columns, read from any of the forms detectors write, and checked.

    Predictions   image_id (N,), category_id (N,), bbox (N, 4) x y w h pixels from the top-left, score (N,)

Forms read by :func:`load_predictions` (detected from the path):
    COCO results json     ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}, ...]``; ids as in
                          the ground truth.
    YOLO txt folder       ultralytics ``save_txt`` + ``save_conf``: ``class cx cy w h conf`` (normalised to
                          the image) per line, one file per image, matched to the ground truth by file stem;
                          class k is the k-th ground-truth category in id order (0..n-1 for a YOLO dataset).
    detkit predictions    ``detections.json`` of ``detkit yolo predict`` (``{"images": [{"file", "detections":
                          [{category_id, score, bbox}]}]}``), matched by file stem.
    ultralytics json      ``predictions.json`` of ultralytics' ``val`` with ``save_json`` on a dataset that is
                          not COCO (never detected: named): a COCO results list whose ``image_id`` is the
                          image's file stem (an int when the stem is all digits: ultralytics writes
                          ``int(stem) if stem.isnumeric() else stem``) and whose ``category_id`` is the class
                          index + 1 (its ``class_map`` for such data); class k is the k-th ground-truth
                          category in id order, as for YOLO txt. (On COCO itself ultralytics writes COCO's
                          image and category ids: a plain COCO results json.)

:func:`check_predictions` finds predictions that would silently change the mAP — an image or category the
ground truth does not have, a NaN / infinite / negative score, a box with a negative or non-finite size — and
raises one :class:`~detkit.errors.InputError` naming the first, or (``lenient``) drops them and returns
them as counted findings. A box of zero width or height is not bad: it is scored as given (it matches
nothing, as in pycocotools) and :func:`empty_boxes` counts such boxes in one note.
:func:`boxes_past_image`, :func:`images_without_predictions` and :func:`ids_by_numbering` note (and
keep) boxes that look like x1, y1, x2, y2, predictions that cover only some of the images, and a results
file matched by ids the ground truth does not have of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from detkit.datasets.formats.coco import Int64, decode_bytes
from detkit.datasets.formats.readers import check_file, read_bytes
from detkit.datasets.model import Dataset, lookup
from detkit.errors import InputError
from detkit.evaluation.results_json import read_results

PRED_FORMATS = ("coco", "yolo", "detkit", "ultralytics")
LENIENT = {"lenient=True": "--lenient"}  # the CLI names the flag (DetkitError.flags)


@dataclass
class Predictions:
    """Columnar detections (see the module docstring)."""

    image_id: np.ndarray  # (N,) int64
    category_id: np.ndarray  # (N,) int64
    bbox: np.ndarray  # (N, 4) float64 xywh pixels
    score: np.ndarray  # (N,) float64
    source: str = ""
    format: str = "coco"
    records: np.ndarray | None = None  # (N,) object: where each row came from (None: ``$[i]``)

    def __len__(self) -> int:
        return int(self.score.shape[0])

    def record(self, i: int) -> str:
        return str(self.records[i]) if self.records is not None else f"$[{i}]"

    def take(self, keep: np.ndarray) -> Predictions:
        return Predictions(
            self.image_id[keep],
            self.category_id[keep],
            self.bbox[keep],
            self.score[keep],
            self.source,
            self.format,
            None if self.records is None else self.records[keep],
        )

    def to_results(self) -> list[dict[str, Any]]:
        """COCO results rows (one dict per detection: only for pycocotools and for writing files)."""
        return [
            {"image_id": i, "category_id": c, "bbox": b, "score": s}
            for i, c, b, s in zip(
                self.image_id.tolist(), self.category_id.tolist(), self.bbox.tolist(), self.score.tolist()
            )
        ]


def from_results(rows: list[dict[str, Any]], source: str = "") -> Predictions:
    """Predictions from COCO results rows held in memory (``detkit yolo eval``, the trainer)."""
    n = len(rows)
    return Predictions(
        image_id=np.fromiter((r["image_id"] for r in rows), np.int64, n),
        category_id=np.fromiter((r["category_id"] for r in rows), np.int64, n),
        bbox=np.array([r["bbox"] for r in rows], dtype=np.float64).reshape(n, 4),
        score=np.fromiter((r["score"] for r in rows), np.float64, n),
        source=source,
    )


def index_of(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index of each query in ``keys`` (unique ids), -1 when absent: :func:`detkit.datasets.model.lookup`, by
    a dense table when the ids span a range no larger than the arrays (COCO ids do): one gather per query
    instead of a binary search."""
    if keys.size == 0 or queries.size == 0:
        return lookup(keys, queries)
    lo, hi = int(keys.min()), int(keys.max())
    if hi - lo > 4 * (keys.size + queries.size):
        return lookup(keys, queries)
    table = np.full(hi - lo + 1, -1, dtype=np.int64)
    table[keys[::-1] - lo] = np.arange(keys.size)[::-1]  # a repeated key: its first index, as lookup
    q = queries - lo
    inside = (q >= 0) & (q <= hi - lo)
    return np.where(inside, table[np.where(inside, q, 0)], -1)


# ---- json forms: COCO results, ultralytics' predictions.json, detkit's detections.json ---------------------
class _UltraDet(msgspec.Struct, gc=False):
    image_id: Int64 | str  # the file stem, an int when all digits
    category_id: Int64  # class index + 1
    bbox: tuple[float, float, float, float]
    score: float


class _PredDet(msgspec.Struct, gc=False):
    category_id: Int64
    bbox: tuple[float, float, float, float]
    score: float


class _PredImage(msgspec.Struct, gc=False):
    file: str
    detections: list[_PredDet]


class _PredFile(msgspec.Struct):
    images: list[_PredImage]


def _decode(path: Path, type_: Any) -> Any:
    return decode_bytes(path, read_bytes(path), msgspec.json.Decoder(type_))


def load_coco_results(path: str | Path, chunk: int = 1 << 18, fork: bool | None = None) -> Predictions:
    """A COCO results json: a list of ``{image_id, category_id, bbox, score}`` (other keys ignored), read by
    :func:`detkit.evaluation.results_json.read_results` (in chunks of ``chunk`` bytes; the second half of the
    file in a forked child where that is safe, or as ``fork`` says)."""
    image_id, category_id, bbox, score = read_results(Path(path), chunk, fork)
    return Predictions(image_id, category_id, bbox, score, source=str(path), format="coco")


# ---- by file stem: YOLO txt and detkit predictions --------------------------------------------------
def _stem_index(gt: Dataset, path: Path) -> dict[str, int]:
    """Ground-truth row of each image file stem; a stem two images share cannot be matched."""
    index: dict[str, int] = {}
    for row, name in enumerate(gt.file_name.tolist()):
        stem = Path(str(name)).stem
        index[stem] = -2 if stem in index else row
    return index


def _image_row(index: dict[Any, int], stem: int | str, path: Path, where: str, bad: list[str]) -> int:
    """Ground-truth row of the image with this file stem; -1 (and the record noted in ``bad``) when none."""
    row = index.get(stem, -1)
    if row == -2:
        raise InputError(
            path, where, f"two ground-truth images share the file stem '{stem}'; cannot match by stem"
        )
    if row == -1:
        bad.append(f"{where or path} (file stem '{stem}')")
    return row


def load_yolo_predictions(path: str | Path, gt: Dataset) -> tuple[Predictions, list[str]]:
    """A folder of ultralytics ``save_txt`` + ``save_conf`` files: ``class cx cy w h conf`` per line.

    Returns:
        (predictions, the files whose stem names no ground-truth image).
    """
    path = Path(path)
    files = sorted(p for p in path.rglob("*.txt") if p.name not in ("classes.txt", "obj.names"))
    if not files:
        raise InputError(path, None, "no YOLO prediction .txt files found")
    index, unmatched = _stem_index(gt, path), []
    cats = np.sort(gt.cat_id)
    rows, records = [], []
    for f in files:
        row = _image_row(index, f.stem, f, "", unmatched)
        if row < 0:
            continue
        w, h = float(gt.width[row]), float(gt.height[row])
        img = int(gt.image_id[row])
        for lineno, line in enumerate(f.read_text(errors="replace").splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                what = (
                    "no confidence column (save with save_conf=True)"
                    if len(parts) == 5
                    else f"{len(parts)} fields"
                )
                raise InputError(f, f"line {lineno}", f"expected 'class cx cy w h conf', got {what}")
            try:
                k, (cx, cy, bw, bh, s) = int(parts[0]), (float(v) for v in parts[1:])
            except ValueError:
                raise InputError(f, f"line {lineno}", f"not numbers: '{line.strip()[:60]}'") from None
            c = int(cats[k]) if 0 <= k < len(cats) else -1 - k  # an unknown class stays unknown (negative id)
            rows.append((img, c, (cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h, s))
            records.append(f"{f.name} line {lineno}")
    return _from_rows(rows, records, str(path), "yolo"), [str(p) for p in unmatched]


def load_detkit_predictions(path: str | Path, gt: Dataset) -> tuple[Predictions, list[str]]:
    """``detections.json`` of ``detkit yolo predict`` (boxes in pixels, dataset category ids)."""
    path = Path(path)
    try:
        doc = _decode(path, _PredFile)
    except InputError as e:
        if e.where != "$" or "`images`" not in e.what:
            raise
        raise InputError(
            path,
            None,
            "is a JSON object without an 'images' list: expected a COCO results list "
            '[{image_id, category_id, bbox, score}, ...] or detkit predictions {"images": [...]}',
        ) from None
    index, unmatched = _stem_index(gt, path), []
    rows, records = [], []
    for i, im in enumerate(doc.images):
        row = _image_row(index, Path(im.file).stem, path, f"$.images[{i}]", unmatched)
        if row < 0:
            continue
        img = int(gt.image_id[row])
        for j, d in enumerate(im.detections):
            rows.append((img, d.category_id, *d.bbox, d.score))
            records.append(f"$.images[{i}].detections[{j}]")
    return _from_rows(rows, records, str(path), "detkit"), unmatched


def _stem_key(stem: str) -> int | str:
    """The ``image_id`` ultralytics writes for a file stem."""
    return int(stem) if stem.isascii() and stem.isdigit() else stem


def load_ultralytics_json(path: str | Path, gt: Dataset) -> tuple[Predictions, list[str]]:
    """ultralytics' ``predictions.json`` of a non-COCO dataset (module docstring), matched by file stem.

    Returns:
        (predictions, the records whose image_id names no ground-truth image's stem).
    """
    path = Path(path)
    dets = _decode(path, list[_UltraDet])
    index: dict[Any, int] = {}
    for stem, row in _stem_index(gt, path).items():  # '0042' and '42' are both image_id 42: ambiguous
        key = _stem_key(stem)
        index[key] = -2 if key in index else row
    cats = np.sort(gt.cat_id)
    rows, records, unmatched = [], [], []
    for i, d in enumerate(dets):
        row = _image_row(index, d.image_id, path, f"$[{i}]", unmatched)
        if row < 0:
            continue
        k = d.category_id - 1
        c = int(cats[k]) if 0 <= k < len(cats) else -1 - k  # an unknown class stays unknown (negative id)
        rows.append((int(gt.image_id[row]), c, *d.bbox, d.score))
        records.append(f"$[{i}]")
    return _from_rows(rows, records, str(path), "ultralytics"), unmatched


def _from_rows(rows: list[tuple], records: list[str], source: str, fmt: str) -> Predictions:
    arr = np.array(rows, dtype=np.float64).reshape(len(rows), 7)
    return Predictions(
        arr[:, 0].astype(np.int64),
        arr[:, 1].astype(np.int64),
        arr[:, 2:6].copy(),
        arr[:, 6].copy(),
        source,
        fmt,
        np.array(records, dtype=object),
    )


def detect_pred_format(path: str | Path) -> str:
    """``yolo`` for a folder, ``detkit`` for a json object with ``images``, ``coco`` for a json list."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, None, "no such file or folder")
    if p.is_dir():
        return "yolo"
    if check_file(p) < 0:  # a pipe (read once, by the reader): a results list
        return "coco"
    with open(p, "rb") as f:
        head = f.read(4096).lstrip()
    return "detkit" if head.startswith(b"{") else "coco"


def load_predictions(
    path: str | Path, gt: Dataset, format: str | None = None
) -> tuple[Predictions, list[str]]:
    """Predictions in any form (see the module docstring) against ``gt``.

    Returns:
        (predictions, where predictions named an image the ground truth lacks — files or records of the
        forms matched by file stem; COCO results with unknown image ids are left to
        :func:`check_predictions`).
    """
    fmt = format or detect_pred_format(path)
    if fmt == "coco":
        try:
            return load_coco_results(path), []
        except InputError as e:
            if e.where is None or not str(e.where).endswith(".image_id") or "`str`" not in e.what:
                raise
            raise InputError(
                e.path,
                e.where,
                f"{e.what} (image ids that are file stems are what ultralytics' predictions.json "
                "holds for a non-COCO dataset: read it with the 'ultralytics' predictions format)",
            ) from None
    if fmt == "yolo":
        return load_yolo_predictions(path, gt)
    if fmt == "detkit":
        return load_detkit_predictions(path, gt)
    if fmt == "ultralytics":
        return load_ultralytics_json(path, gt)
    raise InputError(
        path, None, f"unknown predictions format '{fmt}' (choose from {', '.join(PRED_FORMATS)})"
    )


# ---- checks ---------------------------------------------------------------------------------------------
CHECKS = {
    "pred.unknown_image": "image id not in the ground truth",
    "pred.unknown_category": "category id not in the ground truth",
    "pred.bad_score": "score is NaN, infinite or negative",
    "pred.bad_box": "box width/height negative or not finite (or x/y not finite)",
}


def check_predictions(
    gt: Dataset, preds: Predictions, lenient: bool = False, unmatched: list[str] | None = None
) -> tuple[Predictions, list[dict[str, Any]]]:
    """Drop (``lenient``) or reject predictions that would silently change the mAP.

    Args:
        gt: the ground truth.
        preds: the predictions.
        lenient: drop bad predictions and report them as findings instead of raising.
        unmatched: files / records that named no ground-truth image (from :func:`load_predictions`).

    Returns:
        (the good predictions, findings: ``{code, count, message, example}`` per kind of problem).

    Raises:
        InputError: (not lenient) at the first bad prediction, naming the file, record and problem.
    """
    findings = []
    if unmatched:
        finding = {
            "code": "pred.unknown_image",
            "count": len(unmatched),
            "example": unmatched[0],
            "message": "prediction files whose stem names no ground-truth image",
        }
        if not lenient:
            raise InputError(
                preds.source,
                None,
                f"{unmatched[0]} names no ground-truth image "
                f"({len(unmatched)} such; lenient=True skips them)",
                flags=LENIENT,
            )
        findings.append(finding)
    masks = {
        "pred.unknown_image": index_of(gt.image_id, preds.image_id) < 0,
        "pred.unknown_category": index_of(gt.cat_id, preds.category_id) < 0,
        "pred.bad_score": ~np.isfinite(preds.score) | (preds.score < 0),
        "pred.bad_box": ~_good_boxes(preds.bbox),
    }
    bad = np.zeros(len(preds), dtype=bool)
    for code, mask in masks.items():
        n = int(mask.sum())
        if not n:
            continue
        i = int(np.argmax(mask))
        what = _describe(code, preds, i) + (_index_hint(gt, preds) if code == "pred.unknown_category" else "")
        if not lenient:
            raise InputError(
                preds.source,
                preds.record(i),
                f"{what} ({n:,} prediction{'s' * (n > 1)} like this; lenient=True drops them)",
                flags=LENIENT,
            )
        findings.append(
            {"code": code, "count": n, "message": CHECKS[code], "example": f"{preds.record(i)}: {what}"}
        )
        bad |= mask
    return (preds.take(~bad) if bad.any() else preds), findings


def _good_boxes(b: np.ndarray) -> np.ndarray:
    """(N,) x, y, w, h all finite and w, h >= 0 (column by column: ``.all(axis=1)`` over (N, 4) is
    slower). A zero width or height is a detector's box clipped to its image edge: pycocotools scores it
    (IoU 0 with everything, a false positive), and so does detkit; :func:`empty_boxes` notes them."""
    finite = np.isfinite(b[:, 0]) & np.isfinite(b[:, 1]) & np.isfinite(b[:, 2]) & np.isfinite(b[:, 3])
    return finite & (np.minimum(b[:, 2], b[:, 3]) >= 0)  # (a NaN is not >= 0)


def empty_boxes(preds: Predictions) -> dict[str, Any] | None:
    """A note counting the boxes of zero width or height (scored as given: they match nothing). None when
    there are none."""
    empty = np.minimum(preds.bbox[:, 2], preds.bbox[:, 3]) == 0
    if not empty.any():
        return None
    i = int(np.argmax(empty))
    return {
        "code": "pred.empty_boxes",
        "count": int(empty.sum()),
        "share": round(float(empty.mean()), 4),
        "message": "boxes of zero width or height (a detector's box clipped at the image edge): scored as "
        "given, as pycocotools does (IoU 0 with every box: false positives)",
        "example": f"{preds.record(i)}: bbox {[float(v) for v in preds.bbox[i]]}",
    }


def boxes_overflowing(preds: Predictions) -> dict[str, Any] | None:
    """A note for finite boxes whose far corner or area is not (``x + w``, ``y + h`` or ``w * h`` past
    float64's 1.8e308, as a box of 1e308 is): they are kept, and match nothing, as in pycocotools, and the
    evaluation runs without numpy's overflow warnings. None when there are none."""
    b = preds.bbox
    with np.errstate(over="ignore", invalid="ignore"):
        far = np.isfinite(b[:, 0] + b[:, 2]) & np.isfinite(b[:, 1] + b[:, 3]) & np.isfinite(b[:, 2] * b[:, 3])
    over = _good_boxes(b) & ~far
    if not over.any():
        return None
    i = int(np.argmax(over))
    return {
        "code": "pred.box_overflow",
        "count": int(over.sum()),
        "share": round(float(over.mean()), 4),
        "message": "boxes whose x + w, y + h or w * h overflow float64: kept, they match nothing",
        "example": f"{preds.source}:{preds.record(i)}: bbox {[float(v) for v in b[i]]}",
    }


def boxes_past_image(gt: Dataset, preds: Predictions, share: float = 0.25) -> dict[str, Any] | None:
    """A note when more than ``share`` of the boxes reach over a pixel past their image: the mark of
    ``x1, y1, x2, y2`` boxes given as COCO's ``x, y, w, h`` (then every box whose centre lies right of or
    below the image's middle ends past its edge, about half of them), which pycocotools scores near 0
    without a word. A detector's own boxes stay within its image. None when there is nothing to say."""
    row = index_of(gt.image_id, preds.image_id)
    ok = np.flatnonzero(row >= 0)
    if not len(ok):
        return None
    b, r = preds.bbox[ok], row[ok]
    with np.errstate(over="ignore", invalid="ignore"):  # a box of 1e308: see boxes_overflowing
        past = (b[:, 0] + b[:, 2] > gt.width[r] + 1) | (b[:, 1] + b[:, 3] > gt.height[r] + 1)
    if past.mean() <= share:
        return None
    i, j = int(ok[np.argmax(past)]), int(r[np.argmax(past)])
    return {
        "code": "pred.boxes_past_image",
        "count": int(past.sum()),
        "share": round(float(past.mean()), 4),
        "message": "boxes reaching past their image: is bbox x1, y1, x2, y2 instead of COCO's x, y, w, h?",
        "example": f"{preds.record(i)}: bbox {[float(v) for v in preds.bbox[i]]} on a "
        f"{gt.width[j]:g}x{gt.height[j]:g} image",
    }


def ids_by_numbering(gt: Dataset, preds: Predictions) -> dict[str, Any] | None:
    """A note when a COCO results file is matched by image id against a ground truth with no ids of its own
    (YOLO, VOC, course text: detkit numbers the images 1..N in file order) and the file could have been
    numbered another way: every predicted image id is also the numeric file stem of a ground-truth image
    (ultralytics' predictions.json names images by ``int(stem)``) and names another image that way. Results
    by detkit's own numbering whose ids are not all stems (``detkit yolo eval``'s predictions.json on
    coco128: ids 1..128, stems 9, 25, ...) get no note. None for a COCO ground truth or another format."""
    if preds.format != "coco" or gt.format == "coco" or not len(preds):
        return None
    stems = [Path(str(f)).stem for f in gt.file_name.tolist()]
    by_stem = {int(s): i for i, s in zip(gt.image_id.tolist(), stems) if s.isascii() and s.isdigit()}
    ids = np.unique(preds.image_id).tolist()
    if not all(i in by_stem for i in ids) or all(by_stem[i] == i for i in ids):
        return None
    row = int(index_of(gt.image_id, preds.image_id[:1])[0])  # checked predictions: a known image
    return {
        "code": "pred.ids_by_numbering",
        "count": len(preds),
        "share": 1.0,
        "message": f"COCO results matched by image id, and the ground truth ({gt.format}) has none of "
        "its own: its images are numbered 1..N in file order; every id in the file is also an image's "
        "file stem, which is how ultralytics' predictions.json names images (the 'ultralytics' "
        "predictions format).",
        "example": f"{preds.record(0)}: image_id {int(preds.image_id[0])} is {gt.file_name[row]}",
    }


def images_without_predictions(gt: Dataset, preds: Predictions, share: float = 0.5) -> dict[str, Any] | None:
    """A note when more than ``share`` of the images with ground-truth boxes have no prediction at all: their
    boxes all count as misses, the mark of predictions made for a subset (one split of a multi-split set,
    a smoke run). None when there is nothing to say."""
    has_gt, has_pred = np.zeros(gt.num_images, bool), np.zeros(gt.num_images, bool)
    for mask, ids in ((has_gt, gt.ann_image_id[gt.iscrowd == 0]), (has_pred, preds.image_id)):
        rows = index_of(gt.image_id, ids)
        mask[rows[rows >= 0]] = True  # -1: an image the ground truth does not declare
    missing = has_gt & ~has_pred
    if not has_gt.any() or missing.sum() <= share * has_gt.sum():
        return None
    i = int(np.argmax(missing))
    return {
        "code": "pred.images_without_predictions",
        "count": int(missing.sum()),
        "share": round(float(missing.sum() / has_gt.sum()), 4),
        "message": "images with ground-truth boxes but no prediction (all their boxes count as misses): "
        "predictions for a subset of the images?",
        "example": f"image {int(gt.image_id[i])} ({gt.file_name[i]})",
    }


def _index_hint(gt: Dataset, preds: Predictions) -> str:
    """Why category ids may be unknown: a detector's class indexes 0..K-1 (or 1..K) given where the ground
    truth has other ids (COCO's 1..90 with gaps), which would also score the known ones as other classes."""
    ids = np.unique(preds.category_id)
    k, cats = len(gt.cat_id), np.sort(gt.cat_id)
    if not len(ids) or np.array_equal(cats, np.arange(len(cats))):
        return ""
    if ids.min() >= 0 and ids.max() < k:
        return (
            f"; every predicted id is in 0..{k - 1}: class indexes? the ground truth's ids are {_ids(cats)}"
        )
    if ids.min() >= 1 and ids.max() <= k and not np.array_equal(cats, np.arange(1, k + 1)):
        return (
            f"; every predicted id is in 1..{k}: class indexes + 1? the ground truth's ids are {_ids(cats)}"
        )
    return ""


def _ids(cats: np.ndarray) -> str:
    return ", ".join(map(str, cats[:6].tolist())) + (f", ... {int(cats[-1])}" if len(cats) > 6 else "")


def _describe(code: str, p: Predictions, i: int) -> str:
    if code == "pred.unknown_image":
        return f"image_id {int(p.image_id[i])} is not in the ground truth"
    if code == "pred.unknown_category":
        c = int(p.category_id[i])
        return (
            f"category_id {c} is not in the ground truth"
            if c >= 0
            else f"class {-1 - c} is not in the ground truth"
        )
    if code == "pred.bad_score":
        return f"score {float(p.score[i])} is not a finite non-negative number"
    return f"bbox {[float(v) for v in p.bbox[i]]} has a negative or non-finite size or position"
