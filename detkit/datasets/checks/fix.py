"""``detkit coco validate --fix OUT.json``: a cleaned COCO file plus the list of every change.

Changes, in order: images without a usable size are dropped with their boxes; boxes are clipped to their
image; boxes that are degenerate (non-finite, or width/height <= 0 after clipping) are dropped; exact
duplicate boxes are dropped (the first is kept); missing ``area`` is filled with w*h, missing ``iscrowd`` with
0, an area larger than its (clipped) box or not positive is set to w*h; records the lenient pass could not use
(wrong types, missing fields) are dropped. For a COCO json source every untouched record and every other field
(segmentations, info, licenses, extra keys) is copied as it was. The input is never written; the output is
written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from detkit.datasets.checks.tolerant_json import encode_hook
from detkit.datasets.checks.validate import AREA_TOL, Report, duplicates, image_record, out_of_bounds
from detkit.datasets.model import json_number
from detkit.errors import DetkitError
from detkit.io import atomic_write


def _box(b: np.ndarray) -> list[float | int]:
    return [json_number(round(float(v), 4)) if np.isfinite(v) else None for v in b]


_DUPLICATE_ACTION = {"images": "drop_duplicate_image_id", "categories": "drop_duplicate_category_id"}


def _valid_polygons(seg: Any) -> list | None:
    """The polygons of a segmentation that are lists of >= 6 (an even number of) numbers; None if none."""
    if not isinstance(seg, list):
        return None
    ok = [
        p
        for p in seg
        if isinstance(p, list)
        and len(p) >= 6
        and len(p) % 2 == 0
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p)
    ]
    return ok or None


def _first_of_each(ids: np.ndarray) -> np.ndarray:
    """Mask of rows that are the first with their id (later rows with a seen id are duplicates)."""
    keep = np.ones(len(ids), dtype=bool)
    keep[duplicates(ids)] = False
    return keep


class _Plan:
    """The working copy of a dataset's annotation columns, the rows kept, and every change listed so far."""

    def __init__(self, report: Report):
        ds = self.ds = report.dataset
        self.changes: list[dict[str, Any]] = list(ds.raw.decode_changes) if ds.raw else []
        self.touched = np.zeros(ds.num_annotations, dtype=bool)  # rows whose record must be re-written
        self.bbox = ds.bbox.copy()
        self.area = ds.area.copy()
        self.crowd = ds.iscrowd.copy()
        self.ann_id = ds.ann_id.copy()
        self.keep = np.ones(ds.num_annotations, dtype=bool)
        self.bad_seg = np.zeros(ds.num_annotations, dtype=bool)
        # images: drop those without a usable size and repeated ids (the first record with an id is kept)
        self.bad_img = ~(np.isfinite(ds.width) & np.isfinite(ds.height) & (ds.width > 0) & (ds.height > 0))
        self.img_keep = ~self.bad_img & _first_of_each(ds.image_id)
        self.cat_keep = _first_of_each(ds.cat_id)

    def change(self, action: str, r: int, before: Any = None, after: Any = None) -> None:
        self.touched[r] |= not action.startswith("drop")
        c = {"action": action, "record": self.ds.record(r), "id": int(self.ds.ann_id[r])}
        if before is not None or after is not None:
            c.update(before=before, after=after)
        self.changes.append(c)

    def drop(self, mask: np.ndarray, action: str, before) -> None:
        """Drop the kept rows in ``mask``, listing each with ``before(r)``."""
        for r in np.flatnonzero(mask & self.keep):
            self.change(action, r, before(r))
        self.keep &= ~mask

    def drop_unlinked(self) -> None:
        """Boxes whose image or category is gone or never was."""
        ds = self.ds
        kept_img_ids = ds.image_id[self.img_keep]
        bad_ids = np.setdiff1d(ds.image_id[self.bad_img], kept_img_ids)  # only usable record was dropped
        self.drop(np.isin(ds.ann_image_id, bad_ids), "drop_box_of_bad_image", lambda r: _box(self.bbox[r]))
        dangling_img = ~np.isin(ds.ann_image_id, kept_img_ids)
        self.drop(dangling_img, "drop_dangling_image_id", lambda r: int(ds.ann_image_id[r]))
        dangling_cat = ~np.isin(ds.category_id, ds.cat_id[self.cat_keep])
        self.drop(dangling_cat, "drop_dangling_category_id", lambda r: int(ds.category_id[r]))

    def clip_and_drop_boxes(self) -> None:
        """Clip boxes that reach past an edge (beyond the rounding tolerance) to their image; then drop
        degenerate boxes (a box wholly outside its image becomes one), boxes wholly outside within the
        rounding tolerance (clipping leaves those untouched) and exact duplicates of an earlier kept box."""
        ds, bbox = self.ds, self.bbox
        idx = ds.image_index()
        past, outside = out_of_bounds(ds, idx)
        for r in np.flatnonzero(past & self.keep & np.isfinite(bbox).all(axis=1)):
            W, H = ds.width[idx[r]], ds.height[idx[r]]
            x, y, w, h = bbox[r]
            x0, y0 = min(max(x, 0.0), W), min(max(y, 0.0), H)
            x1, y1 = max(min(x + w, W), 0.0), max(min(y + h, H), 0.0)
            new = np.array([x0, y0, x1 - x0, y1 - y0])
            self.change("clip", r, _box(bbox[r]), _box(new))
            bbox[r] = new
        with np.errstate(invalid="ignore"):
            degenerate = ~np.isfinite(bbox).all(axis=1) | (bbox[:, 2] <= 0) | (bbox[:, 3] <= 0)
        self.drop(degenerate, "drop_degenerate", lambda r: _box(bbox[r]))
        self.drop(outside, "drop_outside_image", lambda r: _box(bbox[r]))
        rows = np.flatnonzero(self.keep)  # duplicates are compared on the original boxes
        key = np.concatenate([ds.ann_image_id[rows, None], ds.category_id[rows, None], ds.bbox[rows]], axis=1)
        for r in rows[duplicates(key)]:
            self.change("drop_duplicate", r, _box(ds.bbox[r]))
            self.keep[r] = False

    def renumber(self) -> None:
        """Annotation ids 0 and repeats get fresh ids above the largest (COCOeval needs them unique,
        non-zero)."""
        ann_id = self.ann_id
        rows = np.flatnonzero(self.keep)
        next_id = int(ann_id[rows].max(initial=0)) + 1
        for r in rows[(ann_id[rows] == 0) | ~_first_of_each(ann_id[rows])]:
            self.change("set_id", r, int(ann_id[r]), next_id)
            ann_id[r] = next_id
            next_id += 1

    def repair_fields(self) -> None:
        """Fill missing area / iscrowd; repair areas that cannot belong to the box; mark bad polygons."""
        ds, area = self.ds, self.area
        box_area = self.bbox[:, 2] * self.bbox[:, 3]
        miss_area = ds.missing.get("area", np.zeros(ds.num_annotations, dtype=bool))
        miss_crowd = ds.missing.get("iscrowd", np.zeros(ds.num_annotations, dtype=bool))
        for r in np.flatnonzero(self.keep):
            if miss_area[r]:
                area[r] = box_area[r]
                self.change("fill_area", r, None, json_number(round(float(area[r]), 4)))
            elif not np.isfinite(area[r]) or area[r] <= 0 or area[r] > box_area[r] * (1 + AREA_TOL) + 1e-6:
                before = float(area[r]) if np.isfinite(area[r]) else None
                area[r] = box_area[r]
                self.change("set_area", r, before, json_number(round(float(area[r]), 4)))
            if miss_crowd[r]:
                self.crowd[r] = 0
                self.change("fill_iscrowd", r, None, 0)
        if ds.raw is not None:
            self.bad_seg[np.asarray(ds.raw.bad_polygon_rows, dtype=np.int64)] = True
        for r in np.flatnonzero(self.bad_seg & self.keep):
            self.change("drop_bad_polygons", r)
            self.touched[r] = True

    def fixed(self, a: dict[str, Any], r: int) -> dict[str, Any]:
        """Annotation record ``a`` (row ``r``) with the repaired id, bbox, area, iscrowd and polygons."""
        area = json_number(round(float(self.area[r]), 4))
        a.update(id=int(self.ann_id[r]), bbox=_box(self.bbox[r]), area=area, iscrowd=int(self.crowd[r]))
        if self.bad_seg[r]:
            seg = _valid_polygons(a.get("segmentation"))
            if seg is None:
                a.pop("segmentation", None)
            else:
                a["segmentation"] = seg
        return a

    def doc_from_dataset(self) -> dict[str, Any]:
        """The cleaned document built from the dataset (a source that is not COCO json)."""
        ds, changes = self.ds, self.changes
        doc = ds.to_coco_dict()
        for i in np.flatnonzero(~self.img_keep):
            action = "drop_bad_image" if self.bad_img[i] else "drop_duplicate_image_id"
            changes.append({"action": action, "record": image_record(ds, i), "id": int(ds.image_id[i])})
        for i in np.flatnonzero(~self.cat_keep):
            changes.append(
                {
                    "action": "drop_duplicate_category_id",
                    "record": f"category {ds.cat_name[i]}",
                    "id": int(ds.cat_id[i]),
                }
            )
        doc["images"] = [im for i, im in enumerate(doc["images"]) if self.img_keep[i]]
        doc["categories"] = [c for i, c in enumerate(doc["categories"]) if self.cat_keep[i]]
        doc["annotations"] = [
            self.fixed(dict(a), r) for r, a in enumerate(doc["annotations"]) if self.keep[r]
        ]
        return doc

    def doc_from_raw(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The cleaned document from the source's: untouched records are copied as they are
        (``msgspec.Raw``: not even decoded)."""
        ds, changes = self.ds, self.changes
        prov = ds.raw
        assert prov is not None, "doc_from_raw needs a dataset read by detkit.datasets.checks.raw"
        bad_keys = prov.bad_top_keys
        doc = {k: v for k, v in raw.items() if k not in ("images", "annotations", "categories", *bad_keys)}
        changes += [{"action": "drop_unusable", "record": f"$.{k}"} for k in bad_keys]
        for key, rows, mask in (
            ("images", prov.image_raw_index, self.img_keep),
            ("categories", prov.category_raw_index, self.cat_keep),
        ):
            items = raw.get(key, [])
            ids = ds.image_id if key == "images" else ds.cat_id
            for r in np.flatnonzero(~mask):
                action = "drop_bad_image" if key == "images" and self.bad_img[r] else _DUPLICATE_ACTION[key]
                changes.append({"action": action, "record": f"$.{key}[{rows[r]}]", "id": int(ids[r])})
            doc[key] = [items[i] for i in sorted(set(rows[mask].tolist()))]
            for i in sorted(set(range(len(items))) - set(rows.tolist())):
                changes.append({"action": "drop_unusable", "record": f"$.{key}[{i}]"})
        ann_raw = raw.get("annotations", [])
        raw_index = prov.raw_index
        for i in sorted(set(range(len(ann_raw))) - set(raw_index.tolist())):
            changes.append({"action": "drop_unusable", "record": f"$.annotations[{i}]"})
        anns = []
        for r in np.flatnonzero(self.keep):
            a = ann_raw[int(raw_index[r])]
            if self.touched[r]:
                a = self.fixed(msgspec.json.decode(a) if isinstance(a, msgspec.Raw) else dict(a), r)
            anns.append(a)
        doc["annotations"] = anns
        return doc


def plan_fix(report: Report) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The cleaned COCO dict and the list of changes (action, record, id, before, after).

    Whatever goes, what depends on it goes too and is listed: an image dropped (unusable record, bad
    size, a repeated id) takes its boxes; a category dropped takes its boxes. The result has no
    error-severity finding.

    Args:
        report: the result of :func:`detkit.datasets.checks.validate.validate_path` on the input; for a COCO
            json
            call it with ``keep_raw=True`` so segmentations and extra fields are carried over.
    """
    plan = _Plan(report)
    plan.drop_unlinked()
    plan.clip_and_drop_boxes()
    plan.renumber()
    plan.repair_fields()
    doc = plan.doc_from_dataset() if report.raw is None else plan.doc_from_raw(report.raw)
    return doc, plan.changes


def write_fix(report: Report, out: str | Path) -> list[dict[str, Any]]:
    """Write the cleaned COCO json to ``out`` (atomically; never over the input) and return the changes."""
    out = Path(out)
    if out.exists() and Path(report.path).exists() and out.resolve() == Path(report.path).resolve():
        raise DetkitError(f"{out}: the fixed file would overwrite the input; choose another file")
    doc, changes = plan_fix(report)

    with atomic_write(out, "wb") as f:  # msgspec writes Raw records back verbatim; NaN would become null
        f.write(msgspec.json.encode(doc, enc_hook=encode_hook))
    return changes
