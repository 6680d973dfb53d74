"""``detkit coco validate``: every check on a loaded dataset, aggregated into stable finding codes.

The codes and severities are listed in :data:`detkit.datasets.checks.findings.CODES`. COCO json files are read
by :mod:`detkit.datasets.checks.raw` so wrong types, missing fields, NaN and broken polygons are reported
instead of stopping at the first; the text, YOLO and VOC loaders report their bad lines / files / objects
through ``on_error`` and skip them. Input with nothing usable (empty, not the format at all) is exit 2.

Shared with ``--fix`` and ``draw``: :func:`duplicates` (rows equal to an earlier row), :func:`image_record`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detkit.datasets.checks.findings import SEVERITIES, Finding, Findings
from detkit.datasets.checks.raw import load_coco_lenient, load_coco_typed, load_raw_records
from detkit.datasets.formats.layouts import roboflow_coco_files
from detkit.datasets.formats.readers import read_bytes
from detkit.datasets.images import check_sources
from detkit.datasets.load import coco_json_in, detect_format, load_dataset, split_files
from detkit.datasets.model import Dataset
from detkit.datasets.paths import name_problem
from detkit.errors import InputError

OOB_TOL = 0.01  # px: boxes written with 2 decimals may overshoot an edge by rounding alone
AREA_TOL = 1e-3  # relative: area may exceed w*h by this much (float rounding) before it is flagged


@dataclass
class Report:
    """What ``validate`` found in one input."""

    path: str
    format: str
    dataset: Dataset
    findings: list[Finding]
    raw: dict[str, Any] | None = None  # the decoded COCO json (for --fix), None for other formats
    counts: dict[str, int] = field(default_factory=dict)

    def worst(self) -> str | None:
        """The most severe severity present, or None when clean."""
        present = {f.severity for f in self.findings}
        return next((s for s in SEVERITIES if s in present), None)

    def fails(self, fail_on: str) -> bool:
        """True when a finding reaches ``fail_on`` (error | warning | never)."""
        if fail_on == "never":
            return False
        levels = SEVERITIES[: SEVERITIES.index(fail_on) + 1]
        return any(f.severity in levels for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "images": self.dataset.num_images,
            "annotations": self.dataset.num_annotations,
            "categories": self.dataset.num_categories,
            "counts": self.counts,
            "findings": [f.as_dict() for f in self.findings],
        }


def image_record(ds: Dataset, i: int) -> str:
    """Image row ``i`` as its source record: a JSON path when read by :mod:`detkit.datasets.checks.raw`, else
    its name."""
    if ds.raw is None:
        return f"image {ds.file_name[i]}"
    return f"$.images[{int(ds.raw.image_raw_index[i])}]"


def duplicates(values: np.ndarray) -> np.ndarray:
    """Rows equal to an earlier row (the first occurrence is not a duplicate), in row order."""
    n = values.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    cols = values.reshape(n, -1)
    if cols.shape[1] == 1:
        key = cols[:, 0]
    else:  # one 64-bit hash per row: one stable argsort instead of a 6-key lexsort
        bits = np.ascontiguousarray(cols, dtype=np.float64).view(np.uint64)
        key = np.zeros(n, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(bits.shape[1]):
                key = (key ^ bits[:, j]) * np.uint64(0x100000001B3)
    order = np.argsort(key, kind="stable")  # stable: equal rows stay in row order
    same_key = key[order][1:] == key[order][:-1]
    s = cols[order]
    same = np.zeros(n, dtype=bool)
    same[1:] = (s[1:] == s[:-1]).all(axis=1)
    if (same_key & ~same[1:]).any():  # a hash collision: fall back to the exact multi-key sort
        order = np.lexsort(cols.T[::-1])
        s = cols[order]
        same[1:] = (s[1:] == s[:-1]).all(axis=1)
    return np.sort(order[same])


def out_of_bounds(ds: Dataset, idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(reaches past an edge, wholly outside) masks for every box; False where the image dangles."""
    idx = ds.image_index() if idx is None else idx
    ok = idx >= 0
    W = np.where(ok, ds.width[np.maximum(idx, 0)], np.inf) if ds.num_images else np.full(len(idx), np.inf)
    H = np.where(ok, ds.height[np.maximum(idx, 0)], np.inf) if ds.num_images else np.full(len(idx), np.inf)
    x, y, w, h = ds.bbox.T
    with np.errstate(invalid="ignore"):
        past = ok & ((x < -OOB_TOL) | (y < -OOB_TOL) | (x + w > W + OOB_TOL) | (y + h > H + OOB_TOL))
        outside = ok & ((x >= W) | (y >= H) | (x + w <= 0) | (y + h <= 0)) & (w > 0) & (h > 0)
    return past, outside


def _box_note(ds: Dataset):
    return lambda r: "bbox " + ", ".join(f"{v:g}" for v in ds.bbox[r])


def _check_images_and_ids(ds: Dataset, fnd: Findings, idx: np.ndarray) -> None:
    """Image sizes, repeated image / category / annotation ids, id 0 and dangling references."""
    rec, aid = ds.record, lambda r: int(ds.ann_id[r])
    iid, irec = lambda r: int(ds.image_id[r]), lambda r: image_record(ds, r)
    wh = np.stack([ds.width, ds.height], axis=1)
    fnd.add_rows(
        "value.non_finite", np.flatnonzero(~np.isfinite(wh).all(axis=1)), irec, iid, lambda r: "image size"
    )
    fnd.add_rows(
        "image.bad_size",
        np.flatnonzero(np.isfinite(wh).all(axis=1) & (wh <= 0).any(axis=1)),
        irec,
        iid,
        lambda r: f"{ds.width[r]:g}x{ds.height[r]:g}",
    )
    fnd.add_rows("image.duplicate_id", duplicates(ds.image_id), irec, iid)
    fnd.add_rows(
        "category.duplicate_id",
        duplicates(ds.cat_id),
        lambda r: f"category {ds.cat_name[r]}",
        lambda r: int(ds.cat_id[r]),
    )
    fnd.add_rows("annotation.duplicate_id", duplicates(ds.ann_id), rec, aid)
    fnd.add_rows("annotation.id_zero", np.flatnonzero(ds.ann_id == 0), rec, aid)
    fnd.add_rows(
        "annotation.dangling_image_id",
        np.flatnonzero(idx < 0),
        rec,
        aid,
        lambda r: f"image_id {ds.ann_image_id[r]}",
    )
    fnd.add_rows(
        "annotation.dangling_category_id",
        np.flatnonzero(ds.category_index() < 0),
        rec,
        aid,
        lambda r: f"category_id {ds.category_id[r]}",
    )


def _check_boxes(ds: Dataset, fnd: Findings, idx: np.ndarray, finite: np.ndarray, nonpos: np.ndarray) -> None:
    """Non-finite, empty, sub-pixel, out-of-bounds and duplicate boxes."""
    rec, aid, box = ds.record, lambda r: int(ds.ann_id[r]), _box_note(ds)
    w, h = ds.bbox[:, 2], ds.bbox[:, 3]
    fnd.add_rows("value.non_finite", np.flatnonzero(~finite), rec, aid, box)
    with np.errstate(invalid="ignore"):
        subpix = finite & ~nonpos & ((w < 1) | (h < 1))
    fnd.add_rows("bbox.non_positive_size", np.flatnonzero(nonpos), rec, aid, box)
    fnd.add_rows("bbox.sub_pixel", np.flatnonzero(subpix), rec, aid, box)
    past, outside = out_of_bounds(ds, idx)
    past &= finite
    if past.any():
        W, H = ds.width[idx[past]], ds.height[idx[past]]
        xp, yp, wp, hp = ds.bbox[past].T
        details = {
            "past_right": int((xp + wp > W + OOB_TOL).sum()),
            "past_bottom": int((yp + hp > H + OOB_TOL).sum()),
            "past_left": int((xp < -OOB_TOL).sum()),
            "past_top": int((yp < -OOB_TOL).sum()),
            "wholly_outside": int(outside.sum()),
            "tolerance_px": OOB_TOL,
        }
        fnd.add_rows(
            "bbox.out_of_bounds",
            np.flatnonzero(past),
            rec,
            aid,
            lambda r: f"{box(r)} in {ds.width[idx[r]]:g}x{ds.height[idx[r]]:g}",
            details,
        )
    fnd.add_rows(
        "bbox.outside_image",
        np.flatnonzero(outside),
        rec,
        aid,
        lambda r: f"{box(r)} in {ds.width[idx[r]]:g}x{ds.height[idx[r]]:g}",
    )
    key = np.concatenate(
        [ds.ann_image_id[:, None].astype(np.float64), ds.category_id[:, None].astype(np.float64), ds.bbox],
        axis=1,
    )
    fnd.add_rows("annotation.duplicate_box", np.flatnonzero(finite)[duplicates(key[finite])], rec, aid, box)


def _check_area_and_coverage(ds: Dataset, fnd: Findings, finite: np.ndarray, nonpos: np.ndarray) -> None:
    """Area and iscrowd values, images without boxes and categories without boxes."""
    rec, aid = ds.record, lambda r: int(ds.ann_id[r])
    iid, irec = lambda r: int(ds.image_id[r]), lambda r: image_record(ds, r)
    w, h = ds.bbox[:, 2], ds.bbox[:, 3]
    # area and iscrowd ----------------------------------------------------------------------
    fnd.add_rows(
        "value.non_finite", np.flatnonzero(finite & ~np.isfinite(ds.area)), rec, aid, lambda r: "area"
    )
    with np.errstate(invalid="ignore"):
        bad_area = (
            finite
            & np.isfinite(ds.area)
            & ((ds.area <= 0) | (ds.area > w * h * (1 + AREA_TOL) + 1e-6))
            & ~nonpos
        )
    fnd.add_rows(
        "annotation.area_inconsistent",
        np.flatnonzero(bad_area),
        rec,
        aid,
        lambda r: f"area {ds.area[r]:g} vs w*h {w[r] * h[r]:g}",
    )
    if "area" in ds.missing:
        fnd.add_rows("annotation.missing_area", np.flatnonzero(ds.missing["area"]), rec, aid)
    if "iscrowd" in ds.missing:
        fnd.add_rows("annotation.missing_iscrowd", np.flatnonzero(ds.missing["iscrowd"]), rec, aid)
    fnd.add_rows(
        "annotation.bad_iscrowd",
        np.flatnonzero((ds.iscrowd != 0) & (ds.iscrowd != 1)),
        rec,
        aid,
        lambda r: f"iscrowd {ds.iscrowd[r]}",
    )

    # coverage --------------------------------------------------------------------------------
    has_ann = np.isin(ds.image_id, ds.ann_image_id)
    fnd.add_rows("image.no_annotations", np.flatnonzero(~has_ann), irec, iid)
    used = np.isin(ds.cat_id, ds.category_id)
    fnd.add_rows(
        "category.unused",
        np.flatnonzero(~used),
        lambda r: f"category {ds.cat_name[r]}",
        lambda r: int(ds.cat_id[r]),
    )


def check_dataset(ds: Dataset, fnd: Findings) -> None:
    """Run every format-independent check on ``ds``, adding to ``fnd``."""
    idx = ds.image_index()
    _check_images_and_ids(ds, fnd, idx)
    finite = np.isfinite(ds.bbox).all(axis=1)
    with np.errstate(invalid="ignore"):
        nonpos = finite & ((ds.bbox[:, 2] <= 0) | (ds.bbox[:, 3] <= 0))
    _check_boxes(ds, fnd, idx, finite, nonpos)
    _check_area_and_coverage(ds, fnd, finite, nonpos)


def check_paths(ds: Dataset, fnd: Findings) -> None:
    """Report image file names that are absolute, climb out with '..' or name no file (``path.*``)."""
    irec = lambda r: image_record(ds, r)
    by_code: dict[str, list[int]] = {}
    for r, name in enumerate(ds.file_name.tolist()):
        code = name_problem(str(name))
        if code is not None:
            by_code.setdefault(code, []).append(r)
    for code, rows in by_code.items():
        fnd.add_rows(
            code,
            rows,
            irec,
            lambda r: int(ds.image_id[r]),
            lambda r: f"file_name {str(ds.file_name[r])[:60]!r}",
        )


def validate_path(
    path: str | Path,
    format: str | None = None,
    max_examples: int = 5,
    keep_raw: bool = False,
    images: str | Path | None = None,
) -> Report:
    """Load ``path`` (leniently for COCO json) and run every check.

    Args:
        path: annotation file or folder (any format :func:`load_dataset` reads).
        format: force a format instead of detecting it.
        max_examples: offending records kept per finding.
        keep_raw: for a COCO json, keep the source records in ``Report.raw`` (``--fix`` writes from them).
        images: the image folder, for the image-file checks (found beside the json when None).
    """
    path = Path(path)
    fmt = format or detect_format(path)
    fnd = Findings(str(path), max_examples=max_examples)
    raw = None
    # one json per split: a Roboflow export, or coco convert's OUT/<split>.json
    multi = fmt == "coco" and path.is_dir() and bool(roboflow_coco_files(path) or split_files(path))
    if fmt == "coco" and path.is_dir() and not multi:
        path = coco_json_in(path)
    if fmt == "coco" and not multi:  # a file, a pipe or /dev/null: read leniently
        data = None if path.is_file() else read_bytes(path)  # a pipe can be read only once
        ds = load_coco_typed(path, fnd, data)
        if ds is not None and keep_raw:
            raw = load_raw_records(path, data)
        elif ds is None:  # wrong types, NaN, missing fields...: the lenient pass reports them all
            fnd = Findings(str(path), max_examples=max_examples)
            ds, raw = load_coco_lenient(path, fnd, data)
    else:

        def on_error(code: str, err: InputError) -> None:
            where = (
                (err.where or "whole file")
                if Path(err.path) == path
                else f"{Path(err.path).name} {err.where or ''}".strip()
            )
            fnd.add(code, str(where), note=err.what)

        ds = load_dataset(path, format=fmt, on_error=on_error)
    check_dataset(ds, fnd)
    check_paths(ds, fnd)
    check_sources(ds, fnd, images=images)  # image files vs the json, and leakage between splits
    return Report(str(path), fmt, ds, fnd.as_list(), raw=raw, counts=fnd.counts())
