"""What ``detkit coco inspect`` and ``detkit coco classes`` compute: plain dicts and row lists.

Everything here is vectorised numpy over the :class:`~detkit.datasets.model.Dataset` columns, so the
counts on an ``instances_train2017``-sized file take well under a second once it is loaded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detkit.datasets.model import Dataset, Labels

# COCO's object-size split (COCOeval's areaRng): small < 32², medium < 96², large >= 96² (on `area`).
SMALL_MAX, MEDIUM_MAX = 32**2, 96**2

# (table, field, type, meaning): what each column of the model means, shown by `inspect`.
SCHEMA: tuple[tuple[str, str, str, str], ...] = (
    ("images", "id", "int", "unique image id; annotations point to it with image_id"),
    ("images", "file_name", "str", "image file, relative to the image folder"),
    ("images", "width", "number", "image width in pixels"),
    ("images", "height", "number", "image height in pixels"),
    ("annotations", "id", "int", "unique annotation id (COCOeval needs ids > 0)"),
    ("annotations", "image_id", "int", "the image this box belongs to"),
    ("annotations", "category_id", "int", "the class (an id in categories, not a 0..N-1 index)"),
    ("annotations", "bbox", "[x, y, w, h]", "box in pixels: top-left corner x, y, then width, height"),
    (
        "annotations",
        "area",
        "number",
        (
            "object area in px² (segmentation area in COCO, else w*h); COCOeval's small/medium/large split "
            "uses it"
        ),
    ),
    ("annotations", "iscrowd", "0 | 1", "1 = a crowd region (RLE), ignored as ground truth by COCOeval"),
    (
        "annotations",
        "segmentation",
        "polygons | RLE",
        "object outline (not loaded by detkit; checked by validate)",
    ),
    ("categories", "id", "int", "class id used by annotations' category_id"),
    ("categories", "name", "str", "class name"),
)

SOURCE_NOTES = {
    "coco": "COCO instances json, read as is.",
    "text": "course text format: one box per line = one image per line; id indexes COCO's 80 names "
    "(mapped to their official category ids); area = w*h.",
    "yolo": "YOLO labels: normalised cx cy w h converted to pixel x y w h with the image-header sizes; "
    "class k -> category id k; area = w*h.",
    "voc": "Pascal VOC XML: x = xmin, y = ymin, w = xmax - xmin, h = ymax - ymin; categories are the sorted "
    "object names with ids 1..C; area = w*h.",
    "cvat": "CVAT for images 1.1 XML: x = xtl, y = ytl, w = xbr - xtl, h = ybr - ytl; polygons and rotated "
    "boxes as their bounding boxes; categories are the labels <meta> declares, then any other, ids 1..C; "
    "area = w*h.",
    "labelstudio": "Label Studio JSON: x, y, width, height are percentages of the image size "
    "(x = x% W / 100...); polygons and rotated boxes as their bounding boxes; categories are the sorted "
    "labels, ids 1..C; area = w*h.",
    "labelme": "LabelMe JSON: rectangle points (x1, y1), (x2, y2) -> x = min(x1, x2), w = |x2 - x1|...; "
    "polygons as their bounding boxes; categories are the sorted labels, ids 1..C; area = w*h.",
}


def describe(values: np.ndarray) -> dict[str, float | None]:
    """min / p5 / p25 / median / p75 / p95 / max / mean of the finite values (None when there are none)."""
    v = values[np.isfinite(values)]
    keys = ("min", "p5", "p25", "median", "p75", "p95", "max")
    if v.size == 0:
        return {k: None for k in (*keys, "mean")}
    q = np.percentile(v, [0, 5, 25, 50, 75, 95, 100])
    out = {k: round(float(x), 3) for k, x in zip(keys, q)}
    out["mean"] = round(float(v.mean()), 3)
    return out


def _histogram(counts: np.ndarray, edges: tuple[int, ...]) -> list[dict[str, Any]]:
    """Rows {bucket, images} for integer buckets [edges[i], edges[i+1]) (last bucket open)."""
    rows = []
    for lo, hi in zip(edges, (*edges[1:], None)):
        mask = counts >= lo if hi is None else (counts >= lo) & (counts < hi)
        label = f"{lo}+" if hi is None else (str(lo) if hi == lo + 1 else f"{lo}-{hi - 1}")
        rows.append({"boxes": label, "images": int(mask.sum())})
    return rows


def inspect_dataset(ds: Dataset, top_sizes: int = 10) -> dict[str, Any]:
    """Counts and distributions for a newcomer: sizes, boxes per image, box sizes, crowd, schema.

    Args:
        ds: the loaded dataset.
        top_sizes: how many of the most common image sizes to list.
    """
    n_img, n_ann = ds.num_images, ds.num_annotations
    sizes, size_counts = (
        np.unique(np.stack([ds.width, ds.height], 1), axis=0, return_counts=True)
        if n_img
        else (np.zeros((0, 2)), np.zeros(0, dtype=np.int64))
    )
    order = np.lexsort((sizes[:, 1], sizes[:, 0], -size_counts))[:top_sizes]
    idx = ds.image_index()
    per_image = np.bincount(idx[idx >= 0], minlength=n_img) if n_img else np.zeros(0, dtype=np.int64)
    w, h = ds.bbox[:, 2], ds.bbox[:, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = w / h
    area = ds.area
    split = {
        "small": int((area < SMALL_MAX).sum()),
        "medium": int(((area >= SMALL_MAX) & (area < MEDIUM_MAX)).sum()),
        "large": int((area >= MEDIUM_MAX).sum()),
    }
    return {
        "path": ds.source,
        "format": ds.format,
        "source_note": SOURCE_NOTES.get(ds.format, ""),
        "counts": {
            "images": n_img,
            "annotations": n_ann,
            "categories": ds.num_categories,
            "crowd": int((ds.iscrowd == 1).sum()),
            "images_without_annotations": int((per_image == 0).sum()),
            "categories_used": int(np.isin(ds.cat_id, ds.category_id).sum()),
        },
        "schema": [{"table": t, "field": f, "type": ty, "meaning": m} for t, f, ty, m in SCHEMA],
        "bbox_convention": "x, y, w, h in pixels; (x, y) is the top-left corner",
        "image_sizes": {
            "distinct": len(sizes),
            "width": describe(ds.width),
            "height": describe(ds.height),
            "most_common": [
                {"width": _n(sizes[i, 0]), "height": _n(sizes[i, 1]), "images": int(size_counts[i])}
                for i in order
            ],
        },
        "boxes_per_image": {
            **describe(per_image.astype(np.float64)),
            "histogram": _histogram(per_image, (0, 1, 2, 6, 11, 21, 51)),
        },
        "box_width": describe(w),
        "box_height": describe(h),
        "box_area": describe(w * h),
        "box_aspect_w_over_h": describe(aspect),
        "size_split": {
            **split,
            "by": "annotation area field, as COCOeval (small < 32², medium < 96², large >= 96²)",
            "share": {k: (round(v / n_ann, 4) if n_ann else 0.0) for k, v in split.items()},
        },
        "area_in_source": "area" not in ds.missing,
        "splits": split_counts(ds),
        **({"split_overlaps": ds.split_overlaps()} if ds.split is not None else {}),
    }


def _n(v: float) -> float | int:
    f = float(v)
    return int(f) if f.is_integer() else f


def class_table(ds: Dataset | Labels) -> list[dict[str, Any]]:
    """Per category: id, name, instances, images containing it, share of all instances; most frequent first.

    Unused categories are listed with 0; annotations whose category_id dangles get a ``<unknown id>`` row.
    """
    n = ds.num_annotations
    pos, unknown = _category_rows(ds)
    ids = np.concatenate([ds.cat_id, unknown])
    names = [str(x) for x in ds.cat_name] + [f"<unknown id {int(i)}>" for i in unknown]
    instances = np.bincount(pos, minlength=len(ids))
    images = _images_per_row(pos, ds.ann_image_id, len(ids))
    rows = [
        {
            "id": int(ids[k]),
            "name": names[k],
            "instances": int(instances[k]),
            "images": int(images[k]),
            "share": round(float(instances[k]) / n, 6) if n else 0.0,
        }
        for k in range(len(ids))
    ]
    rows.sort(key=lambda r: (-r["instances"], r["name"]))
    return rows


def _category_rows(ds: Dataset | Labels) -> tuple[np.ndarray, np.ndarray]:
    """Each annotation's row in ``cat_id`` then the unknown ids, and those unknown ids (used by boxes but
    absent from categories), sorted."""
    n, k = ds.num_annotations, ds.num_categories
    cid = ds.category_id
    # sort-based joins throughout: numpy's hash-based unique is several times slower at 1M rows
    order = np.argsort(ds.cat_id, kind="stable")
    srt = ds.cat_id[order]
    if k and (np.diff(srt) == 1).all():  # ids lo, lo+1, ... (YOLO's 0..k-1): a box's id gives its row
        lo = srt[0]
        if n and lo <= cid.min() and cid.max() < lo + k:  # (every box's id among them: no search, no copy)
            pos = cid - lo if lo else cid
            return (pos if (order == np.arange(k)).all() else order[pos]), cid[:0]
        pos = np.clip(cid - srt[0], 0, k - 1)
    else:
        pos = np.minimum(np.searchsorted(srt, cid), max(k - 1, 0)) if k else 0
    known = (srt[pos] == cid) if k else np.zeros(n, dtype=bool)
    unknown = np.unique(cid[~known])
    pos = order[pos] if k else np.zeros(n, dtype=np.int64)
    if unknown.size:
        pos = np.where(known, pos, k + np.searchsorted(unknown, cid))
    return pos, unknown


_BOXES = 1 << 16  # boxes in image order counted at once (_images_per_row_in_order)


def _images_per_row(pos: np.ndarray, im: np.ndarray, rows: int) -> np.ndarray:
    """Per row of the class table: the distinct images among the annotations ``pos`` points to it (``im``:
    each annotation's image id)."""
    n = len(pos)
    if n > _BOXES and bool((im[1:] >= im[:-1]).all()):  # boxes in image order (a YOLO read, most COCO files)
        return _images_per_row_in_order(pos, im, rows)
    lo = int(im.min()) if n else 0
    hi = int(im.max()) if n else 0
    if 0 <= lo and rows * (hi + 1) <= 8 * n + (1 << 16):  # a flag per (row, image id): 8 bytes a box at most
        seen = np.zeros((rows, hi + 1), dtype=bool)
        seen[pos, im] = True
        return np.count_nonzero(seen, axis=1)
    span = hi - lo + 1
    if rows * span < 2**62:  # one int64 key per pair, row * span + image: a plain sort
        return _distinct_per_row(pos * span + (im - lo), span, rows)
    o = np.lexsort((im, pos))  # ids too far apart for one key: a lexsort
    p, im = pos[o], im[o]
    first = np.ones(n, dtype=bool)
    first[1:] = (p[1:] != p[:-1]) | (im[1:] != im[:-1])
    return np.bincount(p[first], minlength=rows)


def _distinct_per_row(key: np.ndarray, span: int, rows: int) -> np.ndarray:
    """Per row, the distinct keys ``row * span + image`` among ``key`` (a sort: numpy's unique hashes, and
    is slower)."""
    key = np.sort(key)
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    return np.bincount(key[first] // span, minlength=rows)


def _images_per_row_in_order(pos: np.ndarray, im: np.ndarray, rows: int) -> np.ndarray:
    """:func:`_images_per_row` of boxes in image order (``im`` nondecreasing), about ``_BOXES`` at a time,
    each block ending where an image does (an image's boxes in one block): the distinct (row, image)
    pairs of each block are those of the whole, and no temporary is larger than a block."""
    out = np.zeros(rows, dtype=np.int64)
    n, s = len(pos), 0
    while s < n:
        e = min(s + _BOXES, n)
        if e < n:
            e = int(np.searchsorted(im, im[e], side="left"))  # (the first box of that image)
            if e <= s:  # one image with more boxes than a block: all of them
                e = int(np.searchsorted(im, im[s], side="right"))
        lo = int(im[s])
        span = int(im[e - 1]) - lo + 1
        out += _distinct_per_row(pos[s:e] * span + (im[s:e] - lo), span, rows)
        s = e
    return out


def split_counts(ds: Dataset) -> list[dict[str, Any]]:
    """Per split: images, boxes, images without boxes and the split's share of the images ([]
    without splits). An image in two splits counts in each (the shares then add up to more than 1)."""
    names = ds.split_names() if isinstance(ds, Dataset) else []
    rows = []
    for name in names:
        keep = ds.split_mask(name)
        ids = ds.image_id[keep]
        in_split = np.isin(ds.ann_image_id, ids)
        with_boxes = np.isin(ids, ds.ann_image_id[in_split])
        rows.append(
            {
                "split": name,
                "images": int(keep.sum()),
                "annotations": int(in_split.sum()),
                "images_without_annotations": int((~with_boxes).sum()),
                "share": round(float(keep.sum()) / ds.num_images, 6) if ds.num_images else 0.0,
            }
        )
    return rows


def class_table_by_split(ds: Dataset | Labels) -> tuple[list[str], list[dict[str, Any]]]:
    """:func:`class_table` plus, per row, ``splits``: {split: {instances, images, share}} (share of that
    split's instances) — the splits side by side. ``([], rows)`` when the dataset has no splits."""
    rows = class_table(ds)
    names = ds.split_names() if isinstance(ds, Dataset) else []
    if not names:
        return [], rows
    per = {}
    for name in names:
        part = rows if ds.split_mask(name).all() else class_table(ds.select_split(name))  # (all: as counted)
        per[name] = {(r["id"], r["name"]): dict(r) for r in part}
    for r in rows:
        r["splits"] = {
            n: {k: per[n][(r["id"], r["name"])][k] for k in ("instances", "images", "share")}
            if (r["id"], r["name"]) in per[n]
            else {"instances": 0, "images": 0, "share": 0.0}
            for n in names
        }
    return names, rows
