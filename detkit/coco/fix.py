"""``detkit coco validate --fix OUT.json``: a cleaned COCO file plus the list of every change.

Changes, in order: images without a usable size are dropped with their boxes; boxes are clipped to
their image; boxes that are degenerate (non-finite, or width/height <= 0 after clipping) are dropped;
exact duplicate boxes are dropped (the first is kept); missing ``area`` is filled with w*h, missing
``iscrowd`` with 0, an area larger than its (clipped) box or not positive is set to w*h; records the
lenient pass could not use (wrong types, missing fields) are dropped. For a COCO json source every
untouched record and every other field (segmentations, info, licenses, extra keys) is copied as it was.
The input is never written; the output is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from detkit.coco.model import _num
from detkit.coco.validate import AREA_TOL, Report, _duplicates, _image_record, out_of_bounds
from detkit.io import atomic_write


def _box(b: np.ndarray) -> list[float | int]:
    return [_num(round(float(v), 4)) if np.isfinite(v) else None for v in b]


def plan_fix(report: Report) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The cleaned COCO dict and the list of changes (action, record, id, before, after).

    Args:
        report: the result of :func:`detkit.coco.validate.validate_path` on the input; for a COCO json
            call it with ``keep_raw=True`` so segmentations and extra fields are carried over.
    """
    ds = report.dataset
    changes: list[dict[str, Any]] = []

    touched = np.zeros(ds.num_annotations, dtype=bool)  # rows whose record must be re-written

    def change(action: str, r: int, before: Any = None, after: Any = None) -> None:
        touched[r] |= not action.startswith("drop")
        c = {"action": action, "record": ds.record(r), "id": int(ds.ann_id[r])}
        if before is not None or after is not None:
            c.update(before=before, after=after)
        changes.append(c)

    bbox = ds.bbox.copy()
    area = ds.area.copy()
    crowd = ds.iscrowd.copy()
    keep = np.ones(ds.num_annotations, dtype=bool)
    idx = ds.image_index()

    # images without a usable size cannot hold boxes: drop them and their boxes
    bad_img = ~(np.isfinite(ds.width) & np.isfinite(ds.height) & (ds.width > 0) & (ds.height > 0))
    on_bad = (idx >= 0) & bad_img[np.maximum(idx, 0)] if ds.num_images else np.zeros(len(idx), dtype=bool)
    for r in np.flatnonzero(on_bad):
        change("drop_box_of_bad_image", r, _box(bbox[r]))
        keep[r] = False

    # clip boxes that reach past an edge (beyond the rounding tolerance) to their image
    past, _ = out_of_bounds(ds, idx)
    for r in np.flatnonzero(past & keep & np.isfinite(bbox).all(axis=1)):
        W, H = ds.width[idx[r]], ds.height[idx[r]]
        x, y, w, h = bbox[r]
        x0, y0 = min(max(x, 0.0), W), min(max(y, 0.0), H)
        x1, y1 = max(min(x + w, W), 0.0), max(min(y + h, H), 0.0)
        new = np.array([x0, y0, x1 - x0, y1 - y0])
        change("clip", r, _box(bbox[r]), _box(new))
        bbox[r] = new

    # drop degenerate boxes (after clipping: a box wholly outside its image becomes degenerate)
    with np.errstate(invalid="ignore"):
        degenerate = ~np.isfinite(bbox).all(axis=1) | (bbox[:, 2] <= 0) | (bbox[:, 3] <= 0)
    degenerate &= keep
    for r in np.flatnonzero(degenerate):
        change("drop_degenerate", r, _box(bbox[r]))
    keep &= ~degenerate

    # drop exact duplicates of an earlier kept box (compared on the original boxes)
    rows = np.flatnonzero(keep)
    key = np.concatenate([ds.ann_image_id[rows, None], ds.category_id[rows, None], ds.bbox[rows]], axis=1)
    for r in rows[_duplicates(key)]:
        change("drop_duplicate", r, _box(ds.bbox[r]))
        keep[r] = False

    # fill missing area / iscrowd; repair areas that cannot belong to the box
    box_area = bbox[:, 2] * bbox[:, 3]
    miss_area = ds.missing.get("area", np.zeros(ds.num_annotations, dtype=bool))
    miss_crowd = ds.missing.get("iscrowd", np.zeros(ds.num_annotations, dtype=bool))
    for r in np.flatnonzero(keep):
        if miss_area[r]:
            area[r] = box_area[r]
            change("fill_area", r, None, _num(round(float(area[r]), 4)))
        elif not np.isfinite(area[r]) or area[r] <= 0 or area[r] > box_area[r] * (1 + AREA_TOL) + 1e-6:
            before = float(area[r]) if np.isfinite(area[r]) else None
            area[r] = box_area[r]
            change("set_area", r, before, _num(round(float(area[r]), 4)))
        if miss_crowd[r]:
            crowd[r] = 0
            change("fill_iscrowd", r, None, 0)

    raw = report.raw
    if raw is None:
        doc = ds.to_coco_dict()
        for i in np.flatnonzero(bad_img):
            changes.append({"action": "drop_bad_image", "record": _image_record(ds, i), "id": int(ds.image_id[i])})
        doc["images"] = [im for i, im in enumerate(doc["images"]) if not bad_img[i]]
        doc["annotations"] = [
            {**a, "bbox": _box(bbox[r]), "area": _num(round(float(area[r]), 4)), "iscrowd": int(crowd[r])}
            for r, a in enumerate(doc["annotations"])
            if keep[r]
        ]
        return doc, changes

    # from the source document: untouched records are copied as they are (msgspec.Raw: not even decoded)
    doc = {k: v for k, v in raw.items() if k not in ("images", "annotations", "categories")}
    for key, index in (("images", "image_raw_index"), ("categories", "category_raw_index")):
        items = raw.get(key, [])
        rows = ds.extra[index]
        if key == "images":
            for r in np.flatnonzero(bad_img):
                changes.append({"action": "drop_bad_image", "record": f"$.images[{rows[r]}]", "id": int(ds.image_id[r])})
            rows = rows[~bad_img]
        doc[key] = [items[i] for i in sorted(set(rows.tolist()))]
        for i in sorted(set(range(len(items))) - set(ds.extra[index].tolist())):
            changes.append({"action": "drop_unusable", "record": f"$.{key}[{i}]"})
    ann_raw = raw.get("annotations", [])
    raw_index = ds.extra["raw_index"]
    for i in sorted(set(range(len(ann_raw))) - set(raw_index.tolist())):
        changes.append({"action": "drop_unusable", "record": f"$.annotations[{i}]"})
    anns = []
    for r in np.flatnonzero(keep):
        a = ann_raw[int(raw_index[r])]
        if touched[r]:
            a = msgspec.json.decode(a) if isinstance(a, msgspec.Raw) else dict(a)
            a["bbox"], a["area"], a["iscrowd"] = _box(bbox[r]), _num(round(float(area[r]), 4)), int(crowd[r])
        anns.append(a)
    doc["annotations"] = anns
    return doc, changes


def write_fix(report: Report, out: str | Path) -> list[dict[str, Any]]:
    """Write the cleaned COCO json to ``out`` (atomically; never over the input) and return the changes."""
    out = Path(out)
    if out.exists() and Path(report.path).exists() and out.resolve() == Path(report.path).resolve():
        from detkit.errors import DetkitError

        raise DetkitError(f"{out}: --fix would overwrite the input; choose another file")
    doc, changes = plan_fix(report)
    with atomic_write(out, "wb") as f:  # msgspec writes Raw records back verbatim; NaN would become null
        f.write(msgspec.json.encode(doc))
    return changes

