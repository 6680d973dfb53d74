"""Pascal VOC XML folders -> :class:`~detkit.datasets.model.Dataset`.

A bad VOC file or object is skipped and listed in ``Dataset.skipped`` (``strict``: raised). Suspicious but
loadable content (degenerate or out-of-image boxes) is loaded as is, for ``validate``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from detkit.datasets.formats.layouts import voc_image_sets
from detkit.datasets.formats.readers import OnError, image_size, named_boxes_dataset, problem, read_bytes
from detkit.datasets.formats.yolo import Reporter
from detkit.datasets.model import MEMBER_SEP, Dataset
from detkit.errors import InputError


def _voc_files(path: Path) -> tuple[list[Path], Path | None, Path]:
    """The .xml files, the JPEGImages folder (None when absent) and the folder the files' ids are relative
    to (``Annotations/``, the folder given, or a single file's folder)."""
    if path.is_file():
        files, root = [path], path.parent
    else:
        root = path / "Annotations" if (path / "Annotations").is_dir() else path
        files = sorted(root.rglob("*.xml"))
    images = root.parent / "JPEGImages"
    return files, images if images.is_dir() else None, root


def _voc_num(f: Path, node: ET.Element | None, tag: str, where: str) -> float:
    el = node.find(tag) if node is not None else None
    if el is None or el.text is None:
        raise problem(f, where, f"missing <{tag}>", "record.missing_field")
    try:
        v = float(el.text)
    except ValueError:
        raise problem(
            f, where, f"<{tag}> is not a number: '{el.text.strip()[:30]}'", "record.wrong_type"
        ) from None
    return v


_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")


def parse_xml(f: Path, data: bytes) -> ET.Element:
    """Parse VOC XML; encodings expat cannot read itself (Shift-JIS, GBK...) are decoded by Python first."""
    try:
        return ET.fromstring(data)
    except (ValueError, LookupError):  # "multi-byte encodings are not supported", an unknown encoding
        m = _XML_ENCODING.match(data)
        name = m.group(1).decode() if m else "?"
        try:
            text = data.decode(name)
        except LookupError:
            raise problem(
                f, "line 1", f"unknown encoding '{name}' in the XML declaration", "record.unparsable"
            ) from None
        except UnicodeDecodeError as err:
            raise problem(f, None, f"not {name} text (byte {err.start})", "record.unparsable") from None
        return ET.fromstring(text)


def _voc_image(f: Path, images: Path | None) -> tuple[ET.Element, str, float, float]:
    """(root, file name, width, height) of one VOC file; image sizes fall back to the image header."""
    try:
        root = parse_xml(f, read_bytes(f))
    except ET.ParseError as exc:
        raise problem(
            f, f"line {exc.position[0]}", f"malformed XML ({getattr(exc, 'msg', exc)})", "record.unparsable"
        ) from None
    if root.tag != "annotation":
        raise problem(
            f, "<annotation>", f"root element is <{root.tag}>, not <annotation>", "record.unparsable"
        )
    fname_el = root.find("filename")
    fname = fname_el.text.strip() if fname_el is not None and fname_el.text else f.with_suffix(".jpg").name
    size = root.find("size")
    w = _voc_num(f, size, "width", "<size>") if size is not None else 0.0
    h = _voc_num(f, size, "height", "<size>") if size is not None else 0.0
    if (w <= 0 or h <= 0) and images is not None and (images / fname).is_file():
        w, h = (float(v) for v in image_size(images / fname))
    if not (np.isfinite(w) and np.isfinite(h) and w > 0 and h > 0):
        code = "image.bad_size" if np.isfinite(w) and np.isfinite(h) else "value.non_finite"
        raise problem(f, "<size>", f"image size {w}x{h} must be positive", code)
    return root, fname, w, h


def _voc_object(f: Path, obj: ET.Element, where: str) -> tuple[str, tuple[float, float, float, float]]:
    name_el = obj.find("name")
    if name_el is None or not (name_el.text or "").strip():
        raise problem(f, where, "missing <name>", "record.missing_field")
    bb = obj.find("bndbox")
    if bb is None:
        raise problem(f, where, "missing <bndbox>", "record.missing_field")
    x0, y0, x1, y1 = (_voc_num(f, bb, t, where) for t in ("xmin", "ymin", "xmax", "ymax"))
    return name_el.text.strip(), (x0, y0, x1 - x0, y1 - y0)


def load_voc(
    path: str | Path, on_error: OnError | None = None, strict: bool = False, split: str | None = None
) -> Dataset:
    """Load Pascal VOC XML (a folder with ``Annotations/``, a folder of .xml, or one .xml).

    Boxes become x = xmin, y = ymin, w = xmax - xmin, h = ymax - ymin; categories are the object names in
    sorted order with ids 1..C. Degenerate boxes are kept for ``validate`` to report. Unreadable files and
    objects are skipped and listed in ``Dataset.skipped`` (``on_error``: reported to it; ``strict``: raised).
    ``ImageSets/Main/{train,val,test}.txt`` become the ``split`` column (``split``: keep only that one)."""
    path = Path(path)
    files, images, ann_root = _voc_files(path)
    if not files:
        raise InputError(path, None, "no Pascal VOC .xml files found")
    report = Reporter(on_error, strict)
    img_rows, ann_rows, names, records, stems = [], [], [], [], []
    for img_id, f in enumerate(files, start=1):
        try:
            root, fname, w, h = _voc_image(f, images)
        except InputError as err:
            report(err)
            continue
        img_rows.append((img_id, fname, w, h))
        stems.append(f.relative_to(ann_root).with_suffix("").as_posix())  # what ImageSets lists name: sub/a
        for k, obj in enumerate(root.iter("object")):
            where = f"<object> #{k + 1}"
            try:
                name, box = _voc_object(f, obj, where)
            except InputError as err:
                report(err)
                continue
            ann_rows.append((img_id, *box))
            names.append(name)
            records.append(f"{f.name} {where}")
    if not img_rows and on_error is None:
        raise report.first or InputError(path, None, "no usable Pascal VOC .xml files")
    ds = named_boxes_dataset(
        img_rows,
        ann_rows,
        names,
        records,
        source=str(path),
        format="voc",
        image_root=str(images) if images is not None else None,
        skipped=report.items,
    )
    return _voc_splits(ds, stems, path, split, report)


def _voc_splits(ds: Dataset, stems: list[str], path: Path, split: str | None, report: Reporter) -> Dataset:
    """Attach ``ImageSets/Main`` splits: one row per image, its lists joined by ``+`` when several name it
    (``train+val``); unlisted images are ``unassigned``.

    ``stems``: each image row's .xml path under ``Annotations/`` without suffix (what the lists name).
    """
    root = path if (path / "Annotations").is_dir() else path.parent
    sets = voc_image_sets(root) if path.is_dir() else {}
    if not sets:
        if split is not None:
            raise InputError(path, None, f"no split '{split}': this VOC folder has no ImageSets/Main lists")
        return ds
    if split is not None and split not in sets:
        raise InputError(path, None, f"no split '{split}' (ImageSets/Main has {', '.join(sets)})")
    row_of = {str(s): i for i, s in enumerate(stems)}
    for i, s in enumerate(stems):  # lists that name nested files by their base name
        row_of.setdefault(Path(s).name, i)
    for i, f in enumerate(ds.file_name):
        row_of.setdefault(Path(str(f)).stem, i)
    member: dict[int, list[str]] = {}  # image row -> the lists that name it (train+val: one image, once)
    lists = root / "ImageSets" / "Main"
    for name, ids in sets.items():
        for k, sid in enumerate(ids):
            if sid not in row_of:
                report(
                    problem(
                        lists / f"{name}.txt",
                        f"line {k + 1}",
                        f"'{sid}' has no annotation file",
                        "split.unknown_item",
                    )
                )
                continue
            names = member.setdefault(row_of[sid], [])
            if name not in names:
                names.append(name)
    unlisted = [i for i in range(ds.num_images) if i not in member]
    if unlisted:
        report(
            problem(
                lists,
                None,
                f"{len(unlisted)} images are in no split list (first: {ds.file_name[unlisted[0]]}); "
                "split 'unassigned'",
                "split.unassigned",
            ),
            kept=True,
        )
        for i in unlisted:
            member[i] = ["unassigned"]
    rows = [i for i in sorted(member) if split is None or split in member[i]]
    names_a = np.array([MEMBER_SEP.join(member[i]) for i in rows], dtype=object)
    return _rows_as_images(ds, np.array(rows, dtype=np.int64), names_a)


def _rows_as_images(ds: Dataset, rows: np.ndarray, split: np.ndarray) -> Dataset:
    """A dataset whose image table is ``ds``'s rows ``rows`` (ascending), with ``split``.

    Image and annotation ids stay those of the whole folder, so predictions made on the whole folder (or a
    list of its images) and scored on one split land on the same images."""
    out = ds if len(rows) == ds.num_images else ds.subset_images(ds.image_id[rows])
    out.split = split
    return out
