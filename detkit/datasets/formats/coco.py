"""COCO instances json -> :class:`~detkit.datasets.model.Dataset`, decoded with msgspec into typed structs.

Only the fields detkit needs are decoded: segmentations and every other field are skipped by the parser,
never built as Python lists. ``load_coco_labels`` decodes even less (ids and names) for class counts.
Large files are memory-mapped. Every malformed input raises :class:`~detkit.errors.InputError` with the
JSON path (``$.annotations[12].bbox``) or line of the problem.

Shared with the other typed readers (:mod:`detkit.datasets.checks.raw`, :mod:`detkit.datasets.ops.source`,
:mod:`detkit.evaluation.predictions`): the structs :class:`CocoFile`, :class:`CocoAnn`, :class:`CocoCat`;
:func:`decode_file` / :func:`decode_bytes` (UTF-8 checked by :func:`check_utf8`, errors from
:func:`msgspec_error`); :func:`coco_from_doc`, the decoded document as a Dataset.
"""

from __future__ import annotations

import math
import re
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any

import msgspec
import numpy as np

from detkit.datasets.formats.readers import check_image_sizes, read_bytes
from detkit.datasets.model import Dataset, Labels, default_image_root
from detkit.errors import InputError

MMAP_MIN_BYTES = 1 << 24  # json files at least this big are memory-mapped, not read into the heap


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


class CocoAnn(msgspec.Struct, kw_only=True, gc=False):
    id: Int64
    image_id: Int64
    category_id: Int64
    bbox: tuple[float, float, float, float]
    area: float = math.nan  # NaN = absent (JSON cannot hold NaN, so it never collides with a value)
    iscrowd: Int64 = _UNSET_INT


class CocoCat(msgspec.Struct, kw_only=True, gc=False):
    id: Int64
    name: str


class CocoFile(msgspec.Struct, kw_only=True):
    images: list[_CocoImage]
    annotations: list[CocoAnn] = []
    categories: list[CocoCat] = []
    info: dict[str, Any] | None = None
    licenses: list[Any] | None = None
    detkit: Any = None  # what `detkit coco convert` recorded: {"image_root": "../images"} (see DETKIT_KEY)


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
    categories: list[CocoCat] = []


# A top-level key COCO readers ignore (pycocotools, hotcoco and torchvision read only the keys they know):
# ``convert`` records there the image folder relative to the written json, and load_coco uses it.
DETKIT_KEY = "detkit"


def recorded_image_root(path: Path, meta: Any) -> str | None:
    """The image folder recorded under :data:`DETKIT_KEY` (relative to the json's folder) when it exists."""
    root = meta.get("image_root") if isinstance(meta, dict) else None
    if not isinstance(root, str) or not root or "\0" in root:
        return None
    folder = path.parent / root
    try:
        return str(folder) if folder.is_dir() else None
    except (OSError, ValueError):  # a name the file system cannot hold
        return None


_DECODER = msgspec.json.Decoder(CocoFile)
_LABEL_DECODER = msgspec.json.Decoder(_LabelFile)
_MSGSPEC_AT = re.compile(r"^(.*?)(?: - at `(\$[^`]*)`)?$", re.DOTALL)


NEWLINE = b"\n"
BOM = b"\xef\xbb\xbf"
_MSGSPEC_BYTE = re.compile(r"\(byte (\d+)\)")


def msgspec_error(path: Path, exc: Exception, data: bytes = b"") -> InputError:
    if isinstance(exc, UnicodeDecodeError):
        line = data[: exc.start].count(b"\n") + 1
        return InputError(
            path, f"line {line}", f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        )
    if isinstance(exc, msgspec.DecodeError) and bytes(data[:3]) == BOM:
        return InputError(
            path,
            None,
            "starts with a UTF-8 byte-order mark (BOM), which JSON does not allow (Python's json and "
            "pycocotools refuse it too): save it as UTF-8 without a BOM",
        )
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
            what = (
                f"NaN/Infinity is not a JSON number (byte {at}); run `detkit coco validate` to list them all"
            )
    return InputError(path, where, what)


def decode_bytes(path: Path, data: bytes, decoder: msgspec.json.Decoder) -> Any:
    if not data or data.isspace():  # (not data.strip(): that copies a 400 MB file)
        raise InputError(path, None, "file is empty")
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise msgspec_error(path, exc, data) from None
    except RecursionError:  # even a skipped field is walked: [[[[...]]]] 100,000 deep
        raise InputError(path, None, "malformed JSON (nested too deeply)") from None


def check_utf8(path: Path, data: Any, step: int = 1 << 24) -> None:
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
            raise InputError(
                path, f"line {line}", f"not UTF-8 text (byte 0x{data[at]:02x} at offset {at})"
            ) from None


def decode_file(path: Path, decoder: msgspec.json.Decoder, map_large: bool = True) -> Any:
    """Decode a json file; large files are memory-mapped (no 400 MB copy into the heap).

    ``map_large=False`` for decoders with ``msgspec.Raw`` fields, which keep pointers into the buffer.
    """
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    if size < MMAP_MIN_BYTES or not map_large or not path.is_file():
        data = read_bytes(path)
        check_utf8(path, data)
        return decode_bytes(path, data, decoder)
    import mmap

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        check_utf8(path, mm)
        try:
            return decoder.decode(mm)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            raise msgspec_error(path, exc, mm) from None
        except RecursionError:
            raise InputError(path, None, "malformed JSON (nested too deeply)") from None


def load_coco(path: str | Path, image_root: str | None = None) -> Dataset:
    """Load a COCO instances json (only the fields detkit needs are decoded)."""
    path = Path(path)
    return coco_from_doc(path, decode_file(path, _DECODER), image_root)


def coco_from_doc(path: Path, doc: CocoFile, image_root: str | None = None) -> Dataset:
    """Columns from decoded structs (one C-level pass per column)."""
    imgs, anns, cats = doc.images, doc.annotations, doc.categories
    n = len(anns)
    col = lambda items, name, dtype: np.fromiter(map(attrgetter(name), items), dtype, len(items))
    bbox = np.fromiter(chain.from_iterable(map(attrgetter("bbox"), anns)), np.float64, 4 * n).reshape(n, 4)
    width, height = col(imgs, "width", np.float64), col(imgs, "height", np.float64)
    check_image_sizes(path, width, height, lambda i: f"$.images[{i}]")
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
        image_root=image_root or recorded_image_root(path, doc.detkit) or default_image_root(path),
        ann_record=None,  # record(i) -> $.annotations[i], the JSON path
        missing=missing,
        extra=extra,
    )


def load_coco_labels(path: str | Path) -> Labels:
    """Only the ids and names of a COCO json (no boxes): what a class distribution needs, decoded fast.

    Image sizes are decoded and checked too, so a file ``inspect`` rejects for its images fails here alike.
    """
    path = Path(path)
    doc = decode_file(path, _LABEL_DECODER)
    col = lambda items, name, dtype=np.int64: np.fromiter(map(attrgetter(name), items), dtype, len(items))
    width, height = col(doc.images, "width", np.float64), col(doc.images, "height", np.float64)
    check_image_sizes(path, width, height, lambda i: f"$.images[{i}]")
    return Labels(
        image_id=col(doc.images, "id"),
        ann_image_id=col(doc.annotations, "image_id"),
        category_id=col(doc.annotations, "category_id"),
        cat_id=col(doc.categories, "id"),
        cat_name=np.array([c.name for c in doc.categories], dtype=object),
        source=str(path),
        format="coco",
    )
