"""Loaders from COCO json, the course's text format, YOLO label folders and Pascal VOC XML into
one :class:`~detkit.coco.model.Dataset`.

Every malformed input raises :class:`~detkit.errors.InputError` naming the file, the record (line
number, JSON path or file) and what is wrong; the CLI prints it as one line and exits 2. Suspicious but
loadable content (degenerate or out-of-image boxes, dangling ids, duplicates) is loaded as is, for
``detkit coco validate`` to report.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any

import msgspec
import numpy as np

from detkit.coco.model import COCO80_IDS, COCO80_NAMES, Dataset, Labels, default_image_root
from detkit.errors import InputError

FORMATS = ("coco", "text", "yolo", "voc")
MMAP_MIN_BYTES = 1 << 24  # json files at least this big are memory-mapped, not read into the heap
MAX_YOLO_CLASSES = 100_000  # a larger class index is a corrupt line, not a real class
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


# ---- COCO json (msgspec typed decoding; segmentations are skipped, never built as lists) -------------
# ids must fit the int64 columns; msgspec reports the JSON path of any that do not
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


_UNSET_INT = -(2**63)  # iscrowd absent (an explicit value this small is impossible in a real file)


# gc=False: these structs hold no reference cycles, and keeping ~1M of them out of the garbage
# collector's sight makes decoding an instances_train2017-sized file markedly faster.
class _CocoImage(msgspec.Struct, kw_only=True, gc=False):
    id: Int64
    width: float
    height: float
    file_name: str = ""


class _CocoAnn(msgspec.Struct, kw_only=True, gc=False):
    id: Int64
    image_id: Int64
    category_id: Int64
    bbox: tuple[float, float, float, float]
    area: float = math.nan  # NaN = absent (JSON cannot hold NaN, so it never collides with a value)
    iscrowd: Int64 = _UNSET_INT


class _CocoCat(msgspec.Struct, kw_only=True, gc=False):
    id: Int64
    name: str


class _CocoFile(msgspec.Struct, kw_only=True):
    images: list[_CocoImage]
    annotations: list[_CocoAnn] = []
    categories: list[_CocoCat] = []
    info: dict[str, Any] | None = None
    licenses: list[Any] | None = None


# the labels-only view used by `detkit coco classes`: ids and names, nothing else is built
class _LabelImage(msgspec.Struct, gc=False):
    id: Int64
    width: float
    height: float


class _LabelAnn(msgspec.Struct, gc=False):
    image_id: Int64
    category_id: Int64


class _LabelFile(msgspec.Struct):
    images: list[_LabelImage]
    annotations: list[_LabelAnn] = []
    categories: list[_CocoCat] = []


_DECODER = msgspec.json.Decoder(_CocoFile)
_LABEL_DECODER = msgspec.json.Decoder(_LabelFile)
_MSGSPEC_AT = re.compile(r"^(.*?)(?: - at `(\$[^`]*)`)?$", re.DOTALL)


NEWLINE = b"\n"
_MSGSPEC_BYTE = re.compile(r"\(byte (\d+)\)")


def _msgspec_error(path: Path, exc: Exception, data: bytes = b"") -> InputError:
    if isinstance(exc, UnicodeDecodeError):
        line = data[: exc.start].count(b"\n") + 1
        return InputError(path, f"line {line}", f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})")
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    m = _MSGSPEC_AT.match(text)
    what, where = (m.group(1), m.group(2)) if m else (text, None)
    if where is None and isinstance(exc, msgspec.ValidationError):
        where = "$"  # msgspec leaves out the path when the root itself is wrong
    b = _MSGSPEC_BYTE.search(what)
    if where is None and b:  # malformed JSON: name the line, not just the byte offset
        at = int(b.group(1))
        where = f"line {data[:at].count(NEWLINE) + 1}"
        if bytes(data[at : at + 9]).lstrip(b"-").startswith((b"NaN", b"Infinity", b"nan", b"inf")):
            what = f"NaN/Infinity is not a JSON number (byte {at}); run `detkit coco validate` to list them all"
    return InputError(path, where, what)


def _decode(path: Path, data: bytes, decoder: msgspec.json.Decoder) -> Any:
    if not data or data.isspace():  # (not data.strip(): that copies a 400 MB file)
        raise InputError(path, None, "file is empty")
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise _msgspec_error(path, exc, data) from None


def _check_utf8(path: Path, data: Any, step: int = 1 << 24) -> None:
    """Reject non-UTF-8 bytes anywhere in ``data`` — msgspec never looks inside the values it skips.

    Nearly every COCO file is pure ASCII, which a vectorised max over the bytes confirms in a few ms;
    only from the first chunk with a high byte on is the text run through a UTF-8 decoder.
    """
    arr = np.frombuffer(data, dtype=np.uint8)
    first = next((i for i in range(0, arr.size, step) if arr[i : i + step].max(initial=0) >= 128), None)
    del arr  # release the buffer export (an mmap cannot close while one is alive)
    if first is None:
        return
    import codecs

    dec = codecs.getincrementaldecoder("utf-8")()
    for i in range(first, len(data), step):
        try:
            dec.decode(bytes(data[i : i + step]), final=i + step >= len(data))
        except UnicodeDecodeError as exc:
            at = i + exc.start
            line = data[:at].count(b"\n") + 1
            raise InputError(path, f"line {line}", f"not UTF-8 text (byte 0x{data[at]:02x} at offset {at})") from None


def _decode_file(path: Path, decoder: msgspec.json.Decoder, map_large: bool = True) -> Any:
    """Decode a json file; large files are memory-mapped (no 400 MB copy into the heap).

    ``map_large=False`` for decoders with ``msgspec.Raw`` fields, which keep pointers into the buffer.
    """
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    if size < MMAP_MIN_BYTES or not map_large or not path.is_file():
        data = _read_bytes(path)
        _check_utf8(path, data)
        return _decode(path, data, decoder)
    import mmap

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        _check_utf8(path, mm)
        try:
            return decoder.decode(mm)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            raise _msgspec_error(path, exc, mm) from None


def load_coco(path: str | Path, image_root: str | None = None) -> Dataset:
    """Load a COCO instances json (only the fields detkit needs are decoded)."""
    path = Path(path)
    return _coco_from_doc(path, _decode_file(path, _DECODER), image_root)


def _coco_from_doc(path: Path, doc: _CocoFile, image_root: str | None = None) -> Dataset:
    """Columns from decoded structs (one C-level pass per column)."""
    imgs, anns, cats = doc.images, doc.annotations, doc.categories
    n = len(anns)
    col = lambda items, name, dtype: np.fromiter(map(attrgetter(name), items), dtype, len(items))
    bbox = np.fromiter(chain.from_iterable(map(attrgetter("bbox"), anns)), np.float64, 4 * n).reshape(n, 4)
    width, height = col(imgs, "width", np.float64), col(imgs, "height", np.float64)
    _check_image_sizes(path, width, height, lambda i: f"$.images[{i}]")
    area, iscrowd = col(anns, "area", np.float64), col(anns, "iscrowd", np.int64)
    area_missing, crowd_missing = np.isnan(area), iscrowd == _UNSET_INT
    area[area_missing] = bbox[area_missing, 2] * bbox[area_missing, 3]
    iscrowd[crowd_missing] = 0
    missing = {}
    if area_missing.any():
        missing["area"] = area_missing
    if crowd_missing.any():
        missing["iscrowd"] = crowd_missing
    extra: dict[str, Any] = {}
    if doc.info is not None:
        extra["info"] = doc.info
    if doc.licenses is not None:
        extra["licenses"] = doc.licenses
    return Dataset(
        image_id=col(imgs, "id", np.int64),
        file_name=np.array(list(map(attrgetter("file_name"), imgs)), dtype=object),
        width=width,
        height=height,
        ann_id=col(anns, "id", np.int64),
        ann_image_id=col(anns, "image_id", np.int64),
        category_id=col(anns, "category_id", np.int64),
        bbox=bbox,
        area=area,
        iscrowd=iscrowd,
        cat_id=col(cats, "id", np.int64),
        cat_name=np.array([c.name for c in cats], dtype=object),
        source=str(path),
        format="coco",
        image_root=image_root or default_image_root(path),
        ann_record=None,  # record(i) -> $.annotations[i], the JSON path
        missing=missing,
        extra=extra,
    )


def load_coco_labels(path: str | Path) -> Labels:
    """Only the ids and names of a COCO json (no boxes): what a class distribution needs, decoded fast.

    Image sizes are decoded and checked too, so a file ``inspect`` rejects for its images fails here alike.
    """
    path = Path(path)
    doc = _decode_file(path, _LABEL_DECODER)
    col = lambda items, name, dtype=np.int64: np.fromiter(map(attrgetter(name), items), dtype, len(items))
    width, height = col(doc.images, "width", np.float64), col(doc.images, "height", np.float64)
    _check_image_sizes(path, width, height, lambda i: f"$.images[{i}]")
    return Labels(
        image_id=col(doc.images, "id"),
        ann_image_id=col(doc.annotations, "image_id"),
        category_id=col(doc.annotations, "category_id"),
        cat_id=col(doc.categories, "id"),
        cat_name=np.array([c.name for c in doc.categories], dtype=object),
        source=str(path),
        format="coco",
    )


def load_labels(path: str | Path, format: str | None = None) -> Labels | Dataset:
    """Image ids, each box's image and category, and the categories — the fast path for class counts.

    A COCO json is decoded without boxes, areas or file names (several times faster on large files);
    other formats are loaded in full. Both results have the columns :func:`class_table` reads.
    """
    p = Path(path)
    fmt = format or detect_format(p)
    if fmt == "coco" and p.is_file():
        return load_coco_labels(p)
    return load_dataset(p, format=fmt)


# ---- record-level problems: raise (loaders) or report and skip (validate) --------------------------
OnError = Callable[[str, InputError], None]


def _problem(path: Path, where: str | None, what: str, code: str) -> InputError:
    """An InputError tagged with the validate finding code it becomes when reported instead of raised."""
    err = InputError(path, where, what)
    err.code = code
    return err


def _skip_or_raise(on_error: OnError | None, err: InputError) -> None:
    """Raise ``err`` — or, when validating (``on_error`` given), report it so the record is skipped."""
    if on_error is None:
        raise err
    on_error(getattr(err, "code", "record.unparsable"), err)


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
    text = _read_text(path)
    rows: list[tuple[float, ...]] = []
    lines: list[int] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _TEXT_LINE.match(line)
        if m is None:
            shown = line.strip()
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            _skip_or_raise(on_error, _problem(path, f"line {lineno}", f"expected '{TEXT_EXAMPLE}', got '{shown}'",
                                              "record.unparsable"))  # fmt: skip
            continue
        vals = tuple(float(v) for v in m.groups())
        cls = vals[0]
        if not cls.is_integer() or not 0 <= cls < len(COCO80_NAMES):
            _skip_or_raise(on_error, _problem(path, f"line {lineno}", f"class id {m.group(1)} is not an integer in 0..79",
                                              "record.wrong_type"))  # fmt: skip
            continue
        if not (np.isfinite(vals[1]) and np.isfinite(vals[2]) and vals[1] > 0 and vals[2] > 0):
            code = "image.bad_size" if np.isfinite(vals[1]) and np.isfinite(vals[2]) else "value.non_finite"
            _skip_or_raise(on_error, _problem(path, f"line {lineno}", f"image size {m.group(3)}x{m.group(2)} must be positive",
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
                return [ln.strip() for ln in _read_text(f).splitlines() if ln.strip()]
        for fname in ("data.yaml", "dataset.yaml"):
            f = folder / fname
            if f.is_file():
                got = _yaml_names(f)
                if got:
                    return got
    return None


def _yaml_names(f: Path) -> list[str] | None:
    """The ``names:`` of an ultralytics data.yaml (inline list, list items, or ``i: name`` map)."""
    text = _read_text(f)
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


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header only (PIL opens lazily, no decode)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(path, None, f"cannot read image header ({exc.__class__.__name__})") from None


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
        for lineno, line in enumerate(_read_text(lf).splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 5:
                _skip_or_raise(on_error, _problem(lf, f"line {lineno}", f"expected 'class cx cy w h', got {len(parts)} fields",
                                                  "record.unparsable"))  # fmt: skip
                continue
            try:
                c = int(parts[0])
                cx, cy, bw, bh = (float(v) for v in parts[1:])
            except ValueError:
                _skip_or_raise(on_error, _problem(lf, f"line {lineno}", f"not numbers: '{line.strip()[:60]}'", "record.wrong_type"))
                continue
            top = max(len(class_names or ()), MAX_YOLO_CLASSES)
            if c < 0 or c >= top:
                _skip_or_raise(on_error, _problem(lf, f"line {lineno}", f"class id {c} is outside 0..{top - 1}", "record.wrong_type"))
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
        raise _problem(f, where, f"missing <{tag}>", "record.missing_field")
    try:
        v = float(el.text)
    except ValueError:
        raise _problem(f, where, f"<{tag}> is not a number: '{el.text.strip()[:30]}'", "record.wrong_type") from None
    return v


def _voc_image(f: Path, images: Path | None) -> tuple[ET.Element, str, float, float]:
    """(root, file name, width, height) of one VOC file; image sizes fall back to the image header."""
    try:
        root = ET.fromstring(_read_bytes(f))
    except ET.ParseError as exc:
        raise _problem(f, f"line {exc.position[0]}", f"malformed XML ({getattr(exc, 'msg', exc)})", "record.unparsable") from None
    if root.tag != "annotation":
        raise _problem(f, "<annotation>", f"root element is <{root.tag}>, not <annotation>", "record.unparsable")
    fname_el = root.find("filename")
    fname = fname_el.text.strip() if fname_el is not None and fname_el.text else f.with_suffix(".jpg").name
    size = root.find("size")
    w = _voc_num(f, size, "width", "<size>") if size is not None else 0.0
    h = _voc_num(f, size, "height", "<size>") if size is not None else 0.0
    if (w <= 0 or h <= 0) and images is not None and (images / fname).is_file():
        w, h = (float(v) for v in image_size(images / fname))
    if not (np.isfinite(w) and np.isfinite(h) and w > 0 and h > 0):
        code = "image.bad_size" if np.isfinite(w) and np.isfinite(h) else "value.non_finite"
        raise _problem(f, "<size>", f"image size {w}x{h} must be positive", code)
    return root, fname, w, h


def _voc_object(f: Path, obj: ET.Element, where: str) -> tuple[str, tuple[float, float, float, float]]:
    name_el = obj.find("name")
    if name_el is None or not (name_el.text or "").strip():
        raise _problem(f, where, "missing <name>", "record.missing_field")
    bb = obj.find("bndbox")
    if bb is None:
        raise _problem(f, where, "missing <bndbox>", "record.missing_field")
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
            _skip_or_raise(on_error, err)
            continue
        img_rows.append((img_id, fname, w, h))
        for k, obj in enumerate(root.iter("object")):
            where = f"<object> #{k + 1}"
            try:
                name, box = _voc_object(f, obj, where)
            except InputError as err:
                _skip_or_raise(on_error, err)
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


# ---- entry point ------------------------------------------------------------------------------------
def detect_format(path: str | Path) -> str:
    """Guess the format from the path: .json -> coco, .txt -> text, .xml or Annotations/ -> voc, labels/ -> yolo."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, None, "no such file or folder")
    if p.is_file():
        suffix = p.suffix.lower()
        if suffix == ".json":
            return "coco"
        if suffix == ".xml":
            return "voc"
        return "text"
    if (p / "Annotations").is_dir() or next(p.glob("*.xml"), None) is not None:
        return "voc"
    if (p / "labels").is_dir() or next(p.rglob("*.txt"), None) is not None:
        return "yolo"
    jsons = sorted(p.glob("*.json")) + sorted(p.glob("annotations/instances_*.json"))
    if len(jsons) == 1:
        return "coco"
    raise InputError(p, None, "cannot tell the annotation format of this folder; pass --format")


def load_dataset(path: str | Path, format: str | None = None, **kwargs: Any) -> Dataset:
    """Load any supported annotation source into a :class:`Dataset`.

    Args:
        path: a COCO json, a course text file, a YOLO folder or a VOC folder/xml.
        format: ``coco``, ``text``, ``yolo`` or ``voc``; detected from the path when None.
        **kwargs: passed to the loader (``image_root`` for coco, ``names`` for yolo, ``on_error`` for
            text / yolo / voc: report bad records to it and skip them instead of raising).
    """
    p = Path(path)
    fmt = format or detect_format(p)
    if fmt not in FORMATS:
        raise InputError(p, None, f"unknown format '{fmt}' (choose from {', '.join(FORMATS)})")
    if not p.exists():
        raise InputError(p, None, "no such file or folder")
    if fmt == "coco":
        if p.is_dir():
            jsons = sorted(p.glob("*.json")) or sorted(p.glob("annotations/instances_*.json"))
            if len(jsons) != 1:
                raise InputError(p, None, "expected one COCO .json in this folder; pass the file itself")
            p = jsons[0]
        return load_coco(p, **kwargs)
    if fmt == "text":
        return load_text(p, **kwargs)
    if fmt == "yolo":
        return load_yolo(p, **kwargs)
    return load_voc(p, **kwargs)


# ---- shared checks and readers -------------------------------------------------------------------
def _check_image_sizes(path: Path, width: np.ndarray, height: np.ndarray, where) -> None:
    bad = np.flatnonzero(~(np.isfinite(width) & np.isfinite(height) & (width > 0) & (height > 0)))
    if bad.size:
        i = int(bad[0])
        raise InputError(path, where(i), f"image size {width[i]}x{height[i]} must be positive and finite")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise InputError(path, None, "is a folder, expected a file") from None
    except OSError as exc:
        raise InputError(path, None, f"cannot read ({exc.strerror or exc})") from None


def _read_text(path: Path) -> str:
    data = _read_bytes(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(path, f"line {line}", f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
