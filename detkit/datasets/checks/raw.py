"""How ``detkit coco validate`` reads a COCO json: a fast typed pass, else a lenient one.

The strict loader (:func:`detkit.datasets.load.load_coco`) stops at the first wrong type, which is right
for commands that need clean data. ``validate`` instead wants *every* problem. It first tries the typed
decoder (plus each segmentation kept as raw bytes for the polygon checks): on a well-typed file, the
usual case, that is all it needs, and a train2017-sized file validates in seconds. When that decode
fails, or the raw document is needed (``--fix``), the lenient pass decodes the file generically
(:mod:`detkit.datasets.checks.tolerant_json`: NaN/Infinity tolerated), reports records with missing fields,
wrong types or unreadable shapes as
findings, skips them, and builds a :class:`Dataset` from the rest for the shared checks. Only input that
has no usable structure at all (empty, not JSON, root not an object, no image list) raises
:class:`InputError` (exit 2).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from detkit.datasets.checks.findings import Findings
from detkit.datasets.checks.tolerant_json import HugeNumber, decode_json, encode_hook, show
from detkit.datasets.formats.coco import (
    CocoAnn,
    CocoFile,
    check_utf8,
    coco_from_doc,
    decode_bytes,
    decode_file,
    recorded_image_root,
)
from detkit.datasets.formats.readers import read_bytes
from detkit.datasets.model import Dataset, RawProvenance, default_image_root, image_columns
from detkit.errors import InputError

MAX_FLOAT_INT_BITS = 1023  # an integer with more bits overflows a float (400-digit widths)

__all__ = [
    "HugeNumber",
    "decode_json",
    "encode_hook",
    "load_coco_lenient",
    "load_coco_typed",
    "load_raw_records",
    "show",
]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63


def _is_num(v: Any) -> bool:
    if isinstance(v, int) and not isinstance(v, bool):
        return v.bit_length() <= MAX_FLOAT_INT_BITS
    return isinstance(v, float)


def _check_fields(obj: Any, where: str, spec: dict[str, Any], fnd: Findings) -> bool:
    """Check required fields of one record; report the first problem and return False when unusable."""
    if not isinstance(obj, dict):
        fnd.add("record.unparsable", where, note=f"expected an object, got {type(obj).__name__}")
        return False
    rid = obj.get("id") if _is_int(obj.get("id")) else None
    for name, ok in spec.items():
        if name not in obj:
            fnd.add("record.missing_field", where, rid, note=f"'{name}' missing")
            return False
        if not ok(obj[name]):
            fnd.add("record.wrong_type", f"{where}.{name}", rid, note=f"got {show(obj[name])}")
            return False
    return True


def _bbox_ok(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 4 and all(_is_num(x) for x in v)


_IMAGE = {"id": _is_int, "width": _is_num, "height": _is_num}
_ANN = {"id": _is_int, "image_id": _is_int, "category_id": _is_int, "bbox": _bbox_ok}
_CAT = {"id": _is_int, "name": lambda v: isinstance(v, str)}


def _polygon_problems(seg: Any) -> str | None:
    """Why a polygon segmentation is broken, or None (RLE dicts and absent segmentations are fine)."""
    if seg is None or isinstance(seg, dict):
        return None
    if not isinstance(seg, list):
        return f"segmentation is a {type(seg).__name__}"
    for k, poly in enumerate(seg):
        if not isinstance(poly, list):
            return f"polygon {k} is not a list of numbers"
        if len(poly) < 6 or len(poly) % 2:
            return f"polygon {k} has {len(poly)} coordinates"
    return None


class _CheckedAnn(CocoAnn, kw_only=True, gc=False):
    segmentation: msgspec.Raw = msgspec.Raw(b"")


class _CheckedFile(CocoFile, kw_only=True):
    annotations: list[_CheckedAnn] = msgspec.field(default_factory=list)


_CHECKED_DECODER = msgspec.json.Decoder(_CheckedFile)


def _raw_polygon_problem(raw: bytes) -> str | None:
    """:func:`_polygon_problems` on the undecoded JSON bytes of a segmentation (no float objects built)."""
    s = raw.strip()
    if not s.startswith(b"["):
        return None  # RLE dict, null or absent
    inner = s[1:-1].strip()
    if not inner:
        return None
    if not inner.startswith(b"["):
        return "polygon 0 is not a list of numbers"
    for k, part in enumerate(inner.split(b"]")[:-1]):
        body = part.lstrip(b", \t\r\n[").strip()
        n = body.count(b",") + 1 if body else 0
        if n < 6 or n % 2:
            return f"polygon {k} has {n} coordinates"
    return None


_NOT_SPECIAL = bytes(b for b in range(256) if b not in b"[],\0")  # bytes.translate deletes these


def _suspect_segmentations(raws: list) -> np.ndarray:
    """Indices of raw segmentations that may hold a bad polygon — vectorised over one joined buffer.

    Only the bytes ``[ ] ,`` and the NUL separator (which JSON text cannot contain) are looked at: the
    bracket depth tells polygon lists (depth 2) from the outer list, and the commas inside a polygon
    count its coordinates. No false negatives; every suspect is re-checked exactly by
    :func:`_raw_polygon_problem`, so odd cases (``[]``, deeper nesting) cost nothing in correctness.
    """
    n = len(raws)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    # Raw values join without per-value copies; translate keeps only [ ] , and NUL at C speed
    ch = np.frombuffer((b"\0".join(raws) + b"\0").translate(None, _NOT_SPECIAL), dtype=np.uint8)
    sep, comma = ch == 0, ch == ord(",")
    seg = np.cumsum(sep, dtype=np.int32) - sep  # which segmentation each special byte belongs to
    depth = np.cumsum((ch == ord("[")).view(np.int8) - (ch == ord("]")).view(np.int8), dtype=np.int32)
    # depth relative to each segmentation's start: brackets inside RLE strings cannot leak into the next
    depth -= np.concatenate([[0], depth[sep][:-1]]).astype(np.int32)[seg]
    opens = (ch == ord("[")) & (depth == 2)  # a polygon starts
    poly = np.cumsum(opens, dtype=np.int32) - 1  # polygon index of every byte from its '[' on
    n_poly = int(poly[-1]) + 1
    coords = np.bincount(poly[comma & (depth == 2)], minlength=n_poly) + 1
    bad_poly = (coords < 6) | (coords % 2 == 1)
    suspects = np.zeros(n, dtype=bool)
    suspects[seg[opens][bad_poly]] = True
    # outer shape: K polygons need K-1 commas at depth 1; anything else (RLE, flat lists, []) is re-checked
    suspects |= (
        np.bincount(seg[opens], minlength=n) != np.bincount(seg[comma & (depth == 1)], minlength=n) + 1
    )
    suspects |= np.bincount(seg[depth > 2], minlength=n) > 0
    return np.flatnonzero(suspects)


def load_coco_typed(path: str | Path, fnd: Findings, data: bytes | None = None) -> Dataset | None:
    """The fast path: typed decode + raw-bytes polygon checks; None when the file needs the lenient pass.

    ``data``: the file's bytes when already read (a pipe can be read only once).
    """
    path = Path(path)
    try:
        if data is None:
            doc = decode_file(path, _CHECKED_DECODER, map_large=False)
        else:
            check_utf8(path, data)
            doc = decode_bytes(path, data, _CHECKED_DECODER)
        ds = coco_from_doc(path, doc)
    except InputError:
        return None
    anns = doc.annotations
    bad_rows: list[int] = []
    for start in range(0, len(anns), 65536):  # chunks keep the joined buffer small
        raws = [a.segmentation for a in anns[start : start + 65536]]
        for k in _suspect_segmentations(raws).tolist():
            bad = _raw_polygon_problem(bytes(raws[k]))
            if bad:
                bad_rows.append(start + k)
                fnd.add(
                    "segmentation.bad_polygon",
                    f"$.annotations[{start + k}].segmentation",
                    anns[start + k].id,
                    note=bad,
                )
    # every record was usable: rows are the JSON indices; the bad polygons are what --fix repairs
    ds.raw = RawProvenance(
        np.arange(ds.num_annotations), np.arange(ds.num_images), np.arange(ds.num_categories), bad_rows
    )
    return ds


def load_raw_records(path: str | Path, data: bytes | None = None) -> dict[str, Any]:
    """The top-level keys of a (well-typed) COCO json as ``msgspec.Raw``, with ``images``,
    ``annotations`` and ``categories`` split into lists of raw records: what ``--fix`` copies verbatim."""
    path = Path(path)
    doc = msgspec.json.decode(read_bytes(path) if data is None else data, type=dict[str, msgspec.Raw])
    for key in ("images", "annotations", "categories"):
        if key in doc:
            doc[key] = msgspec.json.decode(doc[key], type=list[msgspec.Raw])
    return doc


def _top_level(path: Path, doc: Any, fnd: Findings) -> list[str]:
    """Raise when ``doc`` has no COCO structure at all; report (and return) top-level keys of a wrong type."""
    if not isinstance(doc, dict):
        raise InputError(path, "$", f"expected a COCO object with 'images', got a JSON {type(doc).__name__}")
    for key in ("images", "annotations", "categories"):
        if key in doc and not isinstance(doc[key], list):
            raise InputError(path, f"$.{key}", f"expected an array, got {type(doc[key]).__name__}")
    if "images" not in doc:
        raise InputError(path, "$", "missing 'images' (not a COCO instances file)")
    bad_keys = [
        k
        for k, ok in (("info", dict), ("licenses", list))
        if doc.get(k) is not None and not isinstance(doc[k], ok)
    ]
    for k in bad_keys:  # the loaders read these typed: another type stops them
        fnd.add("record.wrong_type", f"$.{k}", note=f"got {show(doc[k])}")
    return bad_keys


def _usable_images(images: list, fnd: Findings) -> tuple[list[tuple], list[int]]:
    """(id, file_name, width, height) of each usable image record, and its index in ``images``."""
    img_rows, img_raw = [], []
    for i, im in enumerate(images):
        if _check_fields(im, f"$.images[{i}]", _IMAGE, fnd):
            name = im.get("file_name", "")
            if not isinstance(name, str):  # the loaders read file_name as a string or not at all
                fnd.add("record.wrong_type", f"$.images[{i}].file_name", im["id"], note=f"got {show(name)}")
                continue
            img_rows.append((im["id"], name, float(im["width"]), float(im["height"])))
            img_raw.append(i)
    return img_rows, img_raw


def _ann_problem(a: dict[str, Any], where: str, fnd: Findings) -> bool:
    """Report an ``area`` / ``iscrowd`` of the wrong type; True when the record is unusable."""
    if "area" in a and not _is_num(a["area"]):
        fnd.add("record.wrong_type", f"{where}.area", a["id"], note=f"got {show(a['area'])}")
        return True
    if "iscrowd" in a and not _is_int(a["iscrowd"]):  # true/false too: the loaders read an integer
        fnd.add("record.wrong_type", f"{where}.iscrowd", a["id"], note=f"got {show(a['iscrowd'])}")
        return True
    return False


def _usable_annotations(anns: list, fnd: Findings) -> dict[str, list]:
    """The columns of the usable annotation records (``raw_index``: each row's index in ``anns``)."""
    cols: dict[str, list] = {
        k: []
        for k in (
            "rows",
            "records",
            "raw_index",
            "area",
            "crowd",
            "area_missing",
            "crowd_missing",
            "bad_rows",
        )
    }
    for i, a in enumerate(anns):
        where = f"$.annotations[{i}]"
        if not _check_fields(a, where, _ANN, fnd) or _ann_problem(a, where, fnd):
            continue
        a_area, a_crowd = a.get("area", None), a.get("iscrowd", None)
        bad_poly = _polygon_problems(a.get("segmentation"))
        if bad_poly:
            fnd.add("segmentation.bad_polygon", f"{where}.segmentation", a["id"], note=bad_poly)
            cols["bad_rows"].append(len(cols["rows"]))
        cols["rows"].append((a["id"], a["image_id"], a["category_id"], *(float(v) for v in a["bbox"])))
        cols["records"].append(where)
        cols["raw_index"].append(i)
        cols["area_missing"].append("area" not in a)
        cols["crowd_missing"].append("iscrowd" not in a)
        cols["area"].append(float(a_area) if a_area is not None else math.nan)
        cols["crowd"].append(int(a_crowd) if a_crowd is not None else 0)
    return cols


def load_coco_lenient(
    path: str | Path, fnd: Findings, data: bytes | None = None
) -> tuple[Dataset, dict[str, Any]]:
    """Decode a COCO json, reporting broken records into ``fnd`` and building a Dataset from the rest.

    Returns:
        (dataset, raw document). ``dataset.raw`` (:class:`~detkit.datasets.model.RawProvenance`) maps each
        annotation, image and category row to its index in ``raw["annotations"]``, ``raw["images"]``...
    """
    path = Path(path)
    decode_changes: list[dict[str, Any]] = []
    doc = decode_json(path, fnd, data, decode_changes)
    bad_keys = _top_level(path, doc, fnd)
    img_rows, img_raw = _usable_images(doc["images"], fnd)
    cats = doc.get("categories", [])
    cat_raw = [i for i, c in enumerate(cats) if _check_fields(c, f"$.categories[{i}]", _CAT, fnd)]
    cat_rows = [(cats[i]["id"], cats[i]["name"]) for i in cat_raw]
    a = _usable_annotations(doc.get("annotations", []), fnd)

    rows = a["rows"]
    arr = np.array(rows, dtype=np.float64).reshape(len(rows), 7)
    ids = np.array([r[:3] for r in rows], dtype=np.int64).reshape(len(rows), 3)  # exact, not via float
    bbox = arr[:, 3:7].copy()
    area_a = np.array(a["area"], dtype=np.float64)
    miss_a = np.array(a["area_missing"], dtype=bool)
    area_a[miss_a] = bbox[miss_a, 2] * bbox[miss_a, 3]
    missing = {
        k: v for k, v in (("area", miss_a), ("iscrowd", np.array(a["crowd_missing"], dtype=bool))) if v.any()
    }
    ds = Dataset(
        **image_columns(img_rows),
        ann_id=ids[:, 0].copy(),
        ann_image_id=ids[:, 1].copy(),
        category_id=ids[:, 2].copy(),
        bbox=bbox,
        area=area_a,
        iscrowd=np.array(a["crowd"], dtype=np.int64),
        cat_id=np.array([c[0] for c in cat_rows], dtype=np.int64),
        cat_name=np.array([c[1] for c in cat_rows], dtype=object),
        source=str(path),
        format="coco",
        image_root=recorded_image_root(path, doc.get("detkit")) or default_image_root(path),
        ann_record=np.array(a["records"], dtype=object),
        missing=missing,
        raw=RawProvenance(
            raw_index=np.array(a["raw_index"], dtype=np.int64),
            image_raw_index=np.array(img_raw, dtype=np.int64),
            category_raw_index=np.array(cat_raw, dtype=np.int64),
            bad_polygon_rows=a["bad_rows"],
            decode_changes=decode_changes,
            bad_top_keys=bad_keys,
        ),
    )
    return ds, doc
