"""Merge datasets into one: ``detkit coco merge A B ... OUT``.

Categories are unified by name with case and spacing ignored (``Traffic_Light`` == ``traffic light``), after
the renames given (``motorbike=motorcycle``). Ids are kept where they are free and renumbered past the largest
id used where they collide, so merging disjoint files changes no id. An image is identified by its file: the
same path under the same image folder in two inputs is one image (its boxes from both). File names become
relative to the inputs' common image folder when the inputs live in different folders (``train/x.jpg``,
``valid/x.jpg``), which resolves name collisions and keeps every image reachable. Inputs whose folders share
no parent below ``/`` (``/data/a``, ``/mnt/b``) get ``<input>/<file_name>`` instead, ``<input>`` the input's
stem, or its folder's name where the stem is generic (``data.yaml``, ``_annotations.coco.json``) or shared
(:func:`input_labels`); a folder output then links the images under those names into ``OUT/images`` (a .json
output cannot: it records no image folder). Each image record gets a ``detkit_source`` field naming the input
it came from. COCO records are copied byte for byte and re-encoded only where an id, a name or a file name
changes."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from detkit.datasets.formats import write as w
from detkit.datasets.formats.layouts import ROBOFLOW_COCO, YAML_NAMES
from detkit.datasets.model import Dataset
from detkit.datasets.ops.select import norm_name
from detkit.datasets.ops.source import Source
from detkit.datasets.paths import input_folders
from detkit.errors import DetkitError, OptionError
from detkit.io import staged_folder

SOURCE_FIELD = "detkit_source"
GENERIC_STEMS = {Path(n).stem for n in (*YAML_NAMES, ROBOFLOW_COCO, "annotations.json", "instances.json")}


def parse_renames(items: list[str]) -> dict[str, str]:
    """``["old=new", "a=b,c=d"]`` -> {norm(old): new}."""
    out: dict[str, str] = {}
    for item in items:
        for pair in item.split(","):
            if not pair.strip():
                continue
            old, sep, new = pair.partition("=")
            if not sep or not old.strip() or not new.strip():
                raise OptionError("map", f"{pair!r}: expected old=new")
            out[norm_name(old)] = new.strip()
    return out


@dataclass
class Merged:
    """How every input row maps into the merged output (rows in output order)."""

    sources: list[Source]
    cat_id: np.ndarray  # (C,) output category ids
    cat_name: np.ndarray  # (C,) output names
    cat_origin: list[tuple[int, int]]  # (source, category row) each output category was first seen as
    cat_map: list[np.ndarray]  # per source: output category row of each of its category rows
    image_rows: list[np.ndarray]  # per source: its image rows that are new images, in file order
    image_out: list[np.ndarray]  # per source: output image row of each of its image rows
    image_id: np.ndarray  # (I,) output image ids
    file_name: np.ndarray  # (I,) output file names
    image_source: np.ndarray  # (I,) which source each output image came from
    ann_rows: list[np.ndarray]  # per source: annotation rows kept
    ann_id: list[np.ndarray]  # per source: output ids of those rows
    roots: list[Path | None]
    common_root: Path | None  # None when the inputs share no folder below / (names are <input>/<file_name>)
    stats: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "images": int(self.image_id.size),
            "boxes": int(sum(a.size for a in self.ann_rows)),
            "categories": [
                {"id": int(i), "name": str(n), "from": str(self.sources[s].path)}
                for i, n, (s, _) in zip(self.cat_id, self.cat_name, self.cat_origin)
            ],
            "sources": self.stats,
            "image_source": self.image_source.tolist(),
        }


def _free_ids(ids: np.ndarray, used: set[int]) -> np.ndarray:
    """``ids`` with each one already in ``used`` (or repeated) replaced by ids past every id seen."""
    ids = ids.copy()
    clash = np.isin(ids, np.fromiter(used, np.int64, len(used))) if used else np.zeros(ids.size, bool)
    _, first = np.unique(ids, return_index=True)
    repeat = np.ones(ids.size, dtype=bool)
    repeat[first] = False
    bad = np.flatnonzero(clash | repeat)
    start = max(max(used, default=0), int(ids.max(initial=0))) + 1
    ids[bad] = np.arange(start, start + bad.size)
    return ids


def _root(src: Source) -> Path:
    root = src.image_root or (src.path.parent if src.path.is_file() else src.path)
    return Path(os.path.abspath(root))


def _label(text: str) -> str:
    """``text`` as one safe path component (letters, digits, ``._-``; no leading dot), maybe empty."""
    return re.sub(r"[^\w.\-]+", "_", text).lstrip(".")


def input_labels(paths: list[Path]) -> list[str]:
    """A short, unique folder name per input: its stem (``coco.json`` -> ``coco``), its folder's name when
    the stem is generic (``data.yaml``) or two inputs share it, ``-<k>`` (k = input number) on what still
    clashes; ``input<k>`` when nothing usable is left."""
    is_dir = [p.is_dir() or not p.suffix for p in paths]
    stems = [_label(p.name if d else p.stem) for p, d in zip(paths, is_dir)]
    folders = [_label(p.name if d else p.parent.name) for p, d in zip(paths, is_dir)]
    generic = [s.lower() in GENERIC_STEMS or stems.count(s) > 1 for s in stems]
    out = [f if g and f else s for s, f, g in zip(stems, folders, generic)]
    out = [x or f"input{k + 1}" for k, x in enumerate(out)]
    out = [f"{x}-{k + 1}" if out.count(x) > 1 else x for k, x in enumerate(out)]
    return [x if out.count(x) == 1 else f"input{k + 1}" for k, x in enumerate(out)]


def common_folder(roots: list[Path]) -> Path | None:
    """The deepest folder holding every root; None when that is only ``/`` (or a drive) or there is none."""
    try:
        common = Path(os.path.commonpath([str(r) for r in roots]))
    except ValueError:  # different drives (Windows)
        return None
    return None if common == Path(common.anchor) else common


def _unify_categories(sources: list[Source], renames: dict[str, str]):
    """Output categories (id, name, first seen as (source, row)) and each source's row -> output row."""
    out_key: dict[str, int] = {}
    ids: list[int] = []
    names: list[str] = []
    origin: list[tuple[int, int]] = []
    maps = []
    for s, src in enumerate(sources):
        m = np.empty(src.ds.num_categories, dtype=np.int64)
        for r, (cid, name) in enumerate(zip(src.ds.cat_id.tolist(), src.ds.cat_name)):
            name = renames.get(norm_name(name), str(name))
            key = norm_name(name)
            if key not in out_key:  # a new class keeps its id unless an earlier class holds it
                out_key[key] = len(ids)
                ids.append(cid if cid not in ids else max(ids) + 1)
                names.append(name)
                origin.append((s, r))
            m[r] = out_key[key]
        maps.append(m)
    return np.asarray(ids, dtype=np.int64), np.asarray(names, dtype=object), origin, maps


def _place_images(sources: list[Source], roots: list[Path], common: Path | None, same_root: bool):
    """Per source: its rows that are new images, every row's output image, the new rows' ids and names.

    Names get each input's folder relative to ``common``, or its :func:`input_labels` label when None.
    """
    seen: dict[tuple[str, str], int] = {}
    used: set[int] = set()
    rows_new, out_rows, ids, names = [], [], [], []
    labels = input_labels([src.path for src in sources]) if common is None else []
    for s, src in enumerate(sources):
        ds = src.ds
        if common is None:
            prefix = labels[s]
        else:
            prefix = "." if same_root else Path(os.path.relpath(roots[s], common)).as_posix()
        out = np.empty(ds.num_images, dtype=np.int64)
        new = []
        for r, f in enumerate(ds.file_name.tolist()):
            key = (str(roots[s]), os.path.normpath(str(f)))  # the same file: one image
            if key not in seen:
                seen[key] = len(seen)
                new.append(r)
            out[r] = seen[key]
        rows = np.asarray(new, dtype=np.int64)
        new_ids = _free_ids(ds.image_id[rows], used)
        used.update(new_ids.tolist())
        fn = ds.file_name[rows]
        rows_new.append(rows)
        out_rows.append(out)
        ids.append(new_ids)
        names.append(fn if prefix == "." else np.array([f"{prefix}/{f}" for f in fn], dtype=object))
    return rows_new, out_rows, ids, names


def merge_sources(sources: list[Source], renames: dict[str, str] | None = None) -> Merged:
    """Map every input's categories, images and boxes into one output (see the module docstring)."""
    if len(sources) < 2:
        raise DetkitError("merge needs at least two inputs")
    cat_id, cat_name, cat_origin, cat_map = _unify_categories(sources, renames or {})
    roots = [_root(src) for src in sources]
    same_root = len({str(r) for r in roots}) == 1
    common = roots[0] if same_root else common_folder(roots)
    image_rows, image_out, ids, names = _place_images(sources, roots, common, same_root)
    ann_rows, ann_ids, stats = [], [], []
    used: set[int] = set()
    for s, src in enumerate(sources):
        ds = src.ds
        ok = (ds.image_index() >= 0) & (ds.category_index() >= 0)
        rows = np.flatnonzero(ok)
        new_ids = _free_ids(ds.ann_id[rows], used)
        used.update(new_ids.tolist())
        ann_rows.append(rows)
        ann_ids.append(new_ids)
        stats.append(
            {
                "path": str(src.path),
                "format": src.format,
                "images": int(image_rows[s].size),
                "shared_images": int(ds.num_images - image_rows[s].size),
                "images_renumbered": int((ids[s] != ds.image_id[image_rows[s]]).sum()),
                "boxes": int(rows.size),
                "boxes_renumbered": int((new_ids != ds.ann_id[rows]).sum()),
                "dangling_boxes_dropped": int((~ok).sum()),
            }
        )
    origin = np.concatenate([np.full(r.size, s) for s, r in enumerate(image_rows)]).astype(np.int64)
    return Merged(
        sources,
        cat_id,
        cat_name,
        cat_origin,
        cat_map,
        image_rows,
        image_out,
        np.concatenate(ids).astype(np.int64),
        np.concatenate(names).astype(object),
        origin,
        ann_rows,
        ann_ids,
        roots,
        common,
        stats,
    )


def merged_dataset(m: Merged) -> Dataset:
    """The merged columns (for YOLO / VOC output and for counting)."""
    parts = []
    for s, src in enumerate(m.sources):
        ds, a = src.ds, m.ann_rows[s]
        img_row = m.image_out[s][ds.image_index()[a]]
        parts.append(
            (
                m.ann_id[s],
                m.image_id[img_row],
                m.cat_id[m.cat_map[s][ds.category_index()[a]]],
                ds.bbox[a],
                ds.area[a],
                ds.iscrowd[a],
            )
        )
    col = lambda k: np.concatenate([p[k] for p in parts])
    widths = np.concatenate([m.sources[s].ds.width[r] for s, r in enumerate(m.image_rows)])
    heights = np.concatenate([m.sources[s].ds.height[r] for s, r in enumerate(m.image_rows)])
    return Dataset(
        image_id=m.image_id,
        file_name=m.file_name,
        width=widths,
        height=heights,
        ann_id=col(0),
        ann_image_id=col(1),
        category_id=col(2),
        bbox=col(3).reshape(-1, 4),
        area=col(4),
        iscrowd=col(5),
        cat_id=m.cat_id,
        cat_name=m.cat_name,
        source=", ".join(str(s.path) for s in m.sources),
        format=m.sources[0].format,
        image_root=str(m.common_root) if m.common_root else None,
    )


# ---- COCO records -------------------------------------------------------------------------------------
def _encode_record(raw: Any, changes: dict[str, Any], first: dict[str, Any] | None = None) -> bytes:
    """``raw`` with ``changes`` applied: decoded, updated and re-encoded (``first`` keys go in front)."""
    d = msgspec.json.decode(raw)
    d.update(changes)
    if first:
        d = {**first, **{k: v for k, v in d.items() if k not in first}}
    return msgspec.json.encode(d)


def _with_source(raw: Any, label: bytes) -> Any:
    """Prepend ``"detkit_source": label`` to a raw image record without decoding it."""
    mv = memoryview(raw)
    if bytes(mv[:1]) != b"{" or SOURCE_FIELD.encode() in bytes(mv):
        return _encode_record(raw, {}, {SOURCE_FIELD: msgspec.json.decode(label)})
    return b"".join(
        (b'{"' + SOURCE_FIELD.encode() + b'":', label, b"," if bytes(mv[1:2]) != b"}" else b"", mv[1:])
    )


def source_records(src: Source) -> tuple[list[Any], list[Any], list[Any]]:
    """Raw image, annotation and category records of one input (encoded from the columns when the
    input is not a COCO json)."""
    if src.raw is not None:
        return src.raw.images, src.raw.annotations, src.raw.categories
    doc = src.ds.to_coco_dict()
    enc = msgspec.json.encode
    return (
        [enc(r) for r in doc["images"]],
        [enc(r) for r in doc["annotations"]],
        [enc(r) for r in doc["categories"]],
    )


def coco_records(m: Merged) -> tuple[list[Any], list[Any], list[Any]]:
    """The merged images, annotations and categories as raw records, in output order."""
    images, anns, cats = [], [], []
    recs = [source_records(src) for src in m.sources]
    for s, src in enumerate(m.sources):
        ds, (ri, ra, _) = src.ds, recs[s]
        label = msgspec.json.encode(str(src.path))
        out_rows = m.image_out[s][m.image_rows[s]]
        for r, o in zip(m.image_rows[s].tolist(), out_rows.tolist()):
            changes = {}
            if int(m.image_id[o]) != int(ds.image_id[r]):
                changes["id"] = int(m.image_id[o])
            if m.file_name[o] != ds.file_name[r]:
                changes["file_name"] = str(m.file_name[o])
            images.append(
                _encode_record(ri[r], changes, {SOURCE_FIELD: str(src.path)})
                if changes
                else _with_source(ri[r], label)
            )
        a = m.ann_rows[s]
        new_img = m.image_id[m.image_out[s][ds.image_index()[a]]]
        new_cat = m.cat_id[m.cat_map[s][ds.category_index()[a]]]
        changed = (
            (new_img != ds.ann_image_id[a]) | (new_cat != ds.category_id[a]) | (m.ann_id[s] != ds.ann_id[a])
        )
        if not changed.any():
            anns.extend([ra[r] for r in a.tolist()])
            continue
        for j, r in enumerate(a.tolist()):
            if changed[j]:
                anns.append(
                    _encode_record(
                        ra[r],
                        {
                            "id": int(m.ann_id[s][j]),
                            "image_id": int(new_img[j]),
                            "category_id": int(new_cat[j]),
                        },
                    )
                )
            else:
                anns.append(ra[r])
    for k, (s, r) in enumerate(m.cat_origin):
        ds, rc = m.sources[s].ds, recs[s][2]
        same = int(ds.cat_id[r]) == int(m.cat_id[k]) and str(ds.cat_name[r]) == str(m.cat_name[k])
        cats.append(
            rc[r] if same else _encode_record(rc[r], {"id": int(m.cat_id[k]), "name": str(m.cat_name[k])})
        )
    return images, anns, cats


# ---- output ---------------------------------------------------------------------------------------------
def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


def write_merged(m: Merged, out: Path, to: str, copy_images: bool = False) -> dict[str, Any]:
    """Write the merge: ``OUT.json`` or ``OUT/annotations.json`` (coco), or a YOLO / VOC folder."""

    single_json = to == "coco" and out.suffix.lower() == ".json"
    if single_json and copy_images:
        raise w.copy_into_json(out)
    inputs = [p for s in m.sources for p in (s.path, *input_folders(s.ds, s.path))]
    w.check_out(out, inputs, single_json)
    counts = {
        "images": int(m.image_id.size),
        "boxes": int(sum(a.size for a in m.ann_rows)),
        "categories": int(m.cat_id.size),
    }

    def coco(path: Path, root: Path | None) -> None:
        images, anns, cats = coco_records(m)
        first = m.sources[0]
        top = (
            first.raw.top
            if first.raw is not None
            else {
                k: msgspec.json.encode(first.ds.extra[k]) for k in ("info", "licenses") if k in first.ds.extra
            }
        )
        w.write_coco_records(
            path,
            top,
            {"images": (images, None), "annotations": (anns, None), "categories": (cats, None)},
            w.root_key(path, root),
        )

    if single_json:
        coco(out, m.common_root)
        return {"out": str(out), "to": to, "files": [str(out)], **counts, "image_root": _str(m.common_root)}
    pairs = [
        (w.image_source(m.roots[s], str(f)), str(g))
        for s, src in enumerate(m.sources)
        for f, g in zip(src.ds.file_name[m.image_rows[s]], m.file_name[m.image_out[s][m.image_rows[s]]])
    ]
    with staged_folder(out) as tmp:
        if to == "coco":  # no common folder: links under the short names are what reaches the images
            link = copy_images or m.common_root is None
            links = w.link_images(pairs, tmp / "images", copy_images) if link else {}
            coco(tmp / "annotations.json", tmp / "images" if link else m.common_root)
        else:
            links = w.write_folder_part(merged_dataset(m), tmp, to, pairs, copy_images)
            if to == "yolo":
                names = [str(n) for n in m.cat_name[np.argsort(m.cat_id, kind="stable")]]
                w.write_data_yaml(tmp / "data.yaml", names, {"train": "images", "val": "images"})
        files = sorted(p.name for p in tmp.iterdir())
    return {"out": str(out), "to": to, "files": files, **counts, **links}
