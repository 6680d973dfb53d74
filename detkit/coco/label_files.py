"""The line- and file-based formats -> :class:`~detkit.coco.model.Dataset`: the course's text format,
YOLO label folders and Pascal VOC XML.

Every malformed record raises :class:`~detkit.errors.InputError` naming the file, the line or object and
what is wrong — or, with ``on_error`` (``detkit coco validate``), is reported to it and skipped.
Suspicious but loadable content (degenerate or out-of-image boxes) is loaded as is, for ``validate``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from detkit.coco.model import COCO80_IDS, COCO80_NAMES, Dataset
from detkit.coco.readers import OnError, image_size, problem, read_bytes, read_text, skip_or_raise
from detkit.errors import InputError

MAX_YOLO_CLASSES = 100_000  # a larger class index is a corrupt line, not a real class
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


# ---- the course's text format ---------------------------------------------------------------------
_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|NaN|inf|-inf)"
_TEXT_LINE = re.compile(
    rf"^\s*id\s*:\s*{_NUM}\s*,\s*height\s*:\s*{_NUM}\s*,\s*width\s*:\s*{_NUM}\s*,\s*"
    rf"bbox\s*:\s*\[\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*\]\s*,?\s*$"
)
TEXT_EXAMPLE = "id: 0, height: 330, width: 1093, bbox:[69, 464, 312, 175],"


def load_text(path: str | Path, on_error: OnError | None = None) -> Dataset:
    """Load the course's ``id: C, height: H, width: W, bbox:[x, y, w, h],`` file.

    Each line is one box on its own image (image id = line number); ``id`` indexes COCO's 80 class
    names, mapped to COCO's official category ids so a conversion matches real COCO files.

    Args:
        path: the text file.
        on_error: when given (``validate``), bad lines are reported to it and skipped instead of raised.
    """
    path = Path(path)
    text = read_text(path)
    rows: list[tuple[float, ...]] = []
    lines: list[int] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _TEXT_LINE.match(line)
        if m is None:
            shown = line.strip()
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            skip_or_raise(on_error, problem(path, f"line {lineno}", f"expected '{TEXT_EXAMPLE}', got '{shown}'",
                                              "record.unparsable"))  # fmt: skip
            continue
        vals = tuple(float(v) for v in m.groups())
        cls = vals[0]
        if not cls.is_integer() or not 0 <= cls < len(COCO80_NAMES):
            skip_or_raise(on_error, problem(path, f"line {lineno}", f"class id {m.group(1)} is not an integer in 0..79",
                                              "record.wrong_type"))  # fmt: skip
            continue
        if not (np.isfinite(vals[1]) and np.isfinite(vals[2]) and vals[1] > 0 and vals[2] > 0):
            code = "image.bad_size" if np.isfinite(vals[1]) and np.isfinite(vals[2]) else "value.non_finite"
            skip_or_raise(on_error, problem(path, f"line {lineno}", f"image size {m.group(3)}x{m.group(2)} must be positive",
                                              code))  # fmt: skip
            continue
        rows.append(vals)
        lines.append(lineno)
    if not rows and (on_error is None or not text.strip()):
        raise InputError(path, None, "no annotation lines found" if text.strip() else "file is empty")
    arr = np.array(rows, dtype=np.float64).reshape(len(rows), 7)
    n = len(arr)
    ids = np.arange(1, n + 1, dtype=np.int64)
    coco_ids = np.asarray(COCO80_IDS, dtype=np.int64)
    bbox = arr[:, 3:7].copy()
    return Dataset(
        image_id=ids.copy(),
        file_name=np.array([f"line{ln:06d}" for ln in lines], dtype=object),
        width=arr[:, 2].copy(),
        height=arr[:, 1].copy(),
        ann_id=ids.copy(),
        ann_image_id=ids.copy(),
        category_id=coco_ids[arr[:, 0].astype(np.int64)],
        bbox=bbox,
        area=bbox[:, 2] * bbox[:, 3],
        iscrowd=np.zeros(n, dtype=np.int64),
        cat_id=coco_ids.copy(),
        cat_name=np.array(COCO80_NAMES, dtype=object),
        source=str(path),
        format="text",
        ann_record=np.array([f"line {ln}" for ln in lines], dtype=object),
    )


# ---- YOLO label folders ---------------------------------------------------------------------------
def _yolo_dirs(path: Path) -> tuple[Path, Path | None]:
    """(labels folder, images folder) for a YOLO dataset root or labels folder."""
    if (path / "labels").is_dir():
        return path / "labels", (path / "images") if (path / "images").is_dir() else None
    if path.name == "labels" or "labels" in path.parts:
        parts = list(path.parts)
        i = len(parts) - 1 - parts[::-1].index("labels")
        img = Path(*parts[:i], "images", *parts[i + 1 :])
        return path, img if img.is_dir() else None
    return path, path


def _yolo_names(path: Path, labels: Path, names: list[str] | None) -> list[str] | None:
    if names:
        return names
    for folder in (path, labels, labels.parent, path.parent):
        for fname in ("classes.txt", "obj.names", "names.txt", "coco.names"):
            f = folder / fname
            if f.is_file():
                return [ln.strip() for ln in read_text(f).splitlines() if ln.strip()]
        for fname in ("data.yaml", "dataset.yaml"):
            f = folder / fname
            if f.is_file():
                got = _yaml_names(f)
                if got:
                    return got
    return None


def _yaml_names(f: Path) -> list[str] | None:
    """The ``names:`` of an ultralytics data.yaml (inline list, list items, or ``i: name`` map)."""
    text = read_text(f)
    m = re.search(r"^names\s*:\s*\[(.*?)\]", text, re.MULTILINE | re.DOTALL)
    if m:
        return [s.strip().strip("'\"") for s in m.group(1).split(",") if s.strip()]
    m = re.search(r"^names\s*:\s*\n((?:[ \t]+.*\n?)+)", text, re.MULTILINE)
    if not m:
        return None
    out = []
    for ln in m.group(1).splitlines():
        ln = ln.strip()
        if ln.startswith("-"):
            out.append(ln[1:].strip().strip("'\""))
        elif ":" in ln:
            out.append(ln.split(":", 1)[1].strip().strip("'\""))
    return out or None


def load_yolo(path: str | Path, names: list[str] | None = None, on_error: OnError | None = None) -> Dataset:
    """Load a YOLO label folder: ``class cx cy w h`` (normalised) per line, one .txt per image.

    Image sizes come from the image headers; class k becomes category id k with the name from
    ``classes.txt`` / ``obj.names`` / ``data.yaml`` (or ``class{k}`` when there is no names file).
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, None, "a YOLO dataset is a folder of label .txt files")
    labels, images = _yolo_dirs(path)
    skip = {"classes.txt", "obj.names", "names.txt", "coco.names"}
    label_files = sorted(p for p in labels.rglob("*.txt") if p.name not in skip)
    if not label_files:
        raise InputError(path, None, "no YOLO label .txt files found")
    class_names = _yolo_names(path, labels, names)
    img_rows, ann_rows, records = [], [], []
    for img_id, lf in enumerate(label_files, start=1):
        rel = lf.relative_to(labels).with_suffix("")
        img_path = None
        if images is not None:
            for ext in IMAGE_EXTS + tuple(e.upper() for e in IMAGE_EXTS):
                cand = images / rel.with_suffix(ext)
                if cand.is_file():
                    img_path = cand
                    break
        if img_path is None:
            raise InputError(lf, None, f"no image found for this label file (looked for {rel}.* under {images})")
        w, h = image_size(img_path)
        img_rows.append((img_id, str(img_path.relative_to(images)), float(w), float(h)))
        for lineno, line in enumerate(read_text(lf).splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 5:
                skip_or_raise(on_error, problem(lf, f"line {lineno}", f"expected 'class cx cy w h', got {len(parts)} fields",
                                                  "record.unparsable"))  # fmt: skip
                continue
            try:
                c = int(parts[0])
                cx, cy, bw, bh = (float(v) for v in parts[1:])
            except ValueError:
                skip_or_raise(on_error, problem(lf, f"line {lineno}", f"not numbers: '{line.strip()[:60]}'", "record.wrong_type"))
                continue
            top = max(len(class_names or ()), MAX_YOLO_CLASSES)
            if c < 0 or c >= top:
                skip_or_raise(on_error, problem(lf, f"line {lineno}", f"class id {c} is outside 0..{top - 1}", "record.wrong_type"))
                continue
            ann_rows.append((img_id, c, (cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h))
            records.append(f"{lf.name} line {lineno}")
    n = len(ann_rows)
    arr = np.array(ann_rows, dtype=np.float64).reshape(n, 6)
    used = sorted({int(c) for c in arr[:, 1]})
    ncls = max(len(class_names or []), (max(used) + 1) if used else 0)
    cat_names = [
        (class_names[i] if class_names and i < len(class_names) else f"class{i}") for i in range(ncls)
    ]
    bbox = arr[:, 2:6].copy()
    return Dataset(
        image_id=np.array([r[0] for r in img_rows], dtype=np.int64),
        file_name=np.array([r[1] for r in img_rows], dtype=object),
        width=np.array([r[2] for r in img_rows], dtype=np.float64),
        height=np.array([r[3] for r in img_rows], dtype=np.float64),
        ann_id=np.arange(1, n + 1, dtype=np.int64),
        ann_image_id=arr[:, 0].astype(np.int64),
        category_id=arr[:, 1].astype(np.int64),
        bbox=bbox,
        area=bbox[:, 2] * bbox[:, 3],
        iscrowd=np.zeros(n, dtype=np.int64),
        cat_id=np.arange(ncls, dtype=np.int64),
        cat_name=np.array(cat_names, dtype=object),
        source=str(path),
        format="yolo",
        image_root=str(images) if images is not None else None,
        ann_record=np.array(records, dtype=object),
    )


# ---- Pascal VOC XML -------------------------------------------------------------------------------
def _voc_files(path: Path) -> tuple[list[Path], Path | None]:
    if path.is_file():
        files, root = [path], path.parent
    else:
        root = path / "Annotations" if (path / "Annotations").is_dir() else path
        files = sorted(root.rglob("*.xml"))
    images = root.parent / "JPEGImages"
    return files, images if images.is_dir() else None


def _voc_num(f: Path, node: ET.Element | None, tag: str, where: str) -> float:
    el = node.find(tag) if node is not None else None
    if el is None or el.text is None:
        raise problem(f, where, f"missing <{tag}>", "record.missing_field")
    try:
        v = float(el.text)
    except ValueError:
        raise problem(f, where, f"<{tag}> is not a number: '{el.text.strip()[:30]}'", "record.wrong_type") from None
    return v


def _voc_image(f: Path, images: Path | None) -> tuple[ET.Element, str, float, float]:
    """(root, file name, width, height) of one VOC file; image sizes fall back to the image header."""
    try:
        root = ET.fromstring(read_bytes(f))
    except ET.ParseError as exc:
        raise problem(f, f"line {exc.position[0]}", f"malformed XML ({getattr(exc, 'msg', exc)})", "record.unparsable") from None
    if root.tag != "annotation":
        raise problem(f, "<annotation>", f"root element is <{root.tag}>, not <annotation>", "record.unparsable")
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


def load_voc(path: str | Path, on_error: OnError | None = None) -> Dataset:
    """Load Pascal VOC XML (a folder with ``Annotations/``, a folder of .xml, or one .xml).

    Boxes become x = xmin, y = ymin, w = xmax - xmin, h = ymax - ymin; categories are the object
    names in sorted order with ids 1..C. Degenerate boxes are kept for ``validate`` to report.
    With ``on_error`` (``validate``), unreadable files and objects are reported to it and skipped.
    """
    path = Path(path)
    files, images = _voc_files(path)
    if not files:
        raise InputError(path, None, "no Pascal VOC .xml files found")
    img_rows, ann_rows, names, records = [], [], [], []
    for img_id, f in enumerate(files, start=1):
        try:
            root, fname, w, h = _voc_image(f, images)
        except InputError as err:
            skip_or_raise(on_error, err)
            continue
        img_rows.append((img_id, fname, w, h))
        for k, obj in enumerate(root.iter("object")):
            where = f"<object> #{k + 1}"
            try:
                name, box = _voc_object(f, obj, where)
            except InputError as err:
                skip_or_raise(on_error, err)
                continue
            ann_rows.append((img_id, *box))
            names.append(name)
            records.append(f"{f.name} {where}")
    cats = sorted(set(names))
    cat_of = {n: i + 1 for i, n in enumerate(cats)}
    n = len(ann_rows)
    arr = np.array(ann_rows, dtype=np.float64).reshape(n, 5)
    bbox = arr[:, 1:5].copy()
    return Dataset(
        image_id=np.array([r[0] for r in img_rows], dtype=np.int64),
        file_name=np.array([r[1] for r in img_rows], dtype=object),
        width=np.array([r[2] for r in img_rows], dtype=np.float64),
        height=np.array([r[3] for r in img_rows], dtype=np.float64),
        ann_id=np.arange(1, n + 1, dtype=np.int64),
        ann_image_id=arr[:, 0].astype(np.int64),
        category_id=np.array([cat_of[nm] for nm in names], dtype=np.int64),
        bbox=bbox,
        area=bbox[:, 2] * bbox[:, 3],
        iscrowd=np.zeros(n, dtype=np.int64),
        cat_id=np.arange(1, len(cats) + 1, dtype=np.int64),
        cat_name=np.array(cats, dtype=object),
        source=str(path),
        format="voc",
        image_root=str(images) if images is not None else None,
        ann_record=np.array(records, dtype=object),
    )


