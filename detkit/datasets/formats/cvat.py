"""CVAT for images 1.1 XML -> :class:`~detkit.datasets.model.Dataset`.

The export is one ``annotations.xml`` (beside an ``images/`` folder when exported with images)::

    <annotations><version>1.1</version>
      <meta><task>...<labels><label><name>car</name>...</label></labels></task></meta>
      <image id="0" name="a.jpg" width="640" height="480" subset="Train">
        <box label="car" xtl="10" ytl="20" xbr="110" ybr="70" rotation="0"/>
        <polygon label="car" points="1,2;30,4;15,40"/>
      </image>
    </annotations>

    box (pixels)   x = xtl,  y = ytl,  w = xbr - xtl,  h = ybr - ytl
    polygon        its bounding box (a note, ``shape.polygon``); a rotated box likewise

Categories are the labels ``<meta>`` declares, in its order (ids 1..C), then any other label used. The
``subset`` attribute becomes the ``split`` column when an image has one other than ``default``. Points,
polylines, masks, ellipses and tags are skipped and counted (``shape.unsupported``). A bad image or shape
is skipped and listed in ``Dataset.skipped`` (``strict``: raised; ``on_error``: reported to it).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

from detkit.datasets.formats.layouts import normalize_split
from detkit.datasets.formats.readers import (
    OnError,
    named_boxes_dataset,
    number,
    points_box,
    problem,
    read_bytes,
    shape_notes,
)
from detkit.datasets.formats.voc import parse_xml
from detkit.datasets.formats.yolo import Reporter
from detkit.datasets.model import Dataset
from detkit.errors import InputError

CVAT_FILE = "annotations.xml"


def cvat_file(path: Path) -> Path:
    """The XML of a CVAT export: the file itself, or ``annotations.xml`` (or the one .xml) of a folder."""
    if path.is_file():
        return path
    if (path / CVAT_FILE).is_file():
        return path / CVAT_FILE
    xmls = sorted(path.glob("*.xml"))
    if len(xmls) == 1:
        return xmls[0]
    raise InputError(path, None, f"no {CVAT_FILE} (CVAT for images 1.1) in this folder")


def _xml_root(f: Path) -> ET.Element:
    try:
        root = parse_xml(f, read_bytes(f))
    except ET.ParseError as exc:
        raise problem(
            f, f"line {exc.position[0]}", f"malformed XML ({getattr(exc, 'msg', exc)})", "record.unparsable"
        ) from None
    if root.tag != "annotations":
        raise InputError(f, f"<{root.tag}>", "root element is not <annotations> (CVAT for images 1.1)")
    return root


def _points(f: Path, where: str, text: str | None) -> list[tuple[float, float]]:
    """``x1,y1;x2,y2;...`` as (x, y) pairs."""
    if not text:
        raise problem(f, where, "missing points", "record.missing_field")
    pts = []
    for pair in text.strip().split(";"):
        xy = pair.split(",")
        if len(xy) != 2:
            raise problem(f, where, f"points must be 'x,y;x,y;...', got {pair[:30]!r}", "record.wrong_type")
        pts.append((number(f, where, xy[0], "x"), number(f, where, xy[1], "y")))
    if len(pts) < 3:
        raise problem(f, where, f"a polygon needs 3 points or more, got {len(pts)}", "record.wrong_type")
    return pts


def rotated_box(
    cx: float, cy: float, w: float, h: float, degrees: float
) -> tuple[float, float, float, float]:
    """The axis-aligned bounding box (x, y, w, h) of a w x h rectangle centred on (cx, cy), turned by
    ``degrees``: half-extents ``(|w cos| + |h sin|) / 2`` and ``(|w sin| + |h cos|) / 2``."""
    t = math.radians(degrees)
    c, s = abs(math.cos(t)), abs(math.sin(t))
    bw, bh = w * c + h * s, w * s + h * c
    return cx - bw / 2, cy - bh / 2, bw, bh


def _shape(f: Path, el: ET.Element, where: str) -> tuple[str, tuple[float, float, float, float], bool]:
    """(label, box, read as its box) of one <box> or <polygon>."""
    label = (el.get("label") or "").strip()
    if not label:
        raise problem(f, where, "missing label attribute", "record.missing_field")
    if el.tag == "polygon":
        return label, points_box(_points(f, where, el.get("points"))), True
    x0, y0, x1, y1 = (number(f, where, el.get(k), k) for k in ("xtl", "ytl", "xbr", "ybr"))
    rot = number(f, where, el.get("rotation") or 0, "rotation")
    if rot % 180:
        return label, rotated_box((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, rot), True
    return label, (x0, y0, x1 - x0, y1 - y0), False


def load_cvat(
    path: str | Path,
    on_error: OnError | None = None,
    strict: bool = False,
    split: str | None = None,
    image_root: str | None = None,
) -> Dataset:
    """Load a CVAT for images 1.1 export (``annotations.xml`` or its folder); see the module docstring.

    Args:
        path: the XML, or the export folder holding ``annotations.xml``.
        on_error: when given (``validate``), problems are reported to it and the rest is loaded.
        strict: raise the first problem instead of skipping it.
        split: keep only the images of this subset (``train``, ``val``, ``test``).
        image_root: the images' folder (default: ``images/`` beside the XML, else the XML's folder).
    """
    path = Path(path)
    f = cvat_file(path)
    root = _xml_root(f)
    images = root.findall("image")
    if not images and root.find("track") is not None:
        raise InputError(f, "<track>", "CVAT for video 1.1 (tracks); export as 'CVAT for images 1.1'")
    meta = root.find("meta")
    declared = [
        (n.text or "").strip()
        for n in (meta.iterfind(".//labels/label/name") if meta is not None else [])
        if (n.text or "").strip()
    ]
    report = Reporter(on_error, strict)
    img_rows, ann_rows, names, records, subsets = [], [], [], [], []
    polygons, other = 0, {}
    for k, im in enumerate(images):
        name = (im.get("name") or "").strip()
        where = f'<image name="{name}">' if name else f"<image> #{k + 1}"
        try:
            if not name:
                raise problem(f, where, "missing name attribute", "record.missing_field")
            w, h = (number(f, where, im.get(a), a) for a in ("width", "height"))
            if w <= 0 or h <= 0:
                raise problem(f, where, f"image size {w:g}x{h:g} must be positive", "image.bad_size")
        except InputError as err:
            report(err)
            continue
        img_id = len(img_rows) + 1
        img_rows.append((img_id, name, w, h))
        subsets.append(im.get("subset"))
        for j, el in enumerate(im):
            swhere = f"{where} <{el.tag}> #{j + 1}"
            if el.tag not in ("box", "polygon"):
                other[el.tag] = other.get(el.tag, 0) + 1
                continue
            try:
                label, box, boxed = _shape(f, el, swhere)
            except InputError as err:
                report(err)
                continue
            polygons += boxed
            ann_rows.append((img_id, *box))
            names.append(label)
            records.append(f"{f.name} {swhere}")
    shape_notes(report, f, polygons, other, "polygon or rotated box")
    if not img_rows and on_error is None:
        raise report.first or InputError(f, None, "no <image> elements (CVAT for images 1.1)")
    ds = named_boxes_dataset(
        img_rows,
        ann_rows,
        names,
        records,
        classes=declared,
        source=str(path),
        format="cvat",
        image_root=image_root or str(f.parent / "images" if (f.parent / "images").is_dir() else f.parent),
        skipped=report.items,
    )
    return _subsets(ds, subsets, f, split)


def _subsets(ds: Dataset, subsets: list[str | None], f: Path, split: str | None) -> Dataset:
    """The ``subset`` attributes as the ``split`` column (none when every image is in ``default``)."""
    import numpy as np

    named = [normalize_split(s) or s if s and s.lower() != "default" else "" for s in subsets]
    if any(named):
        ds.split = np.array(named, dtype=object)
    if split is None:
        return ds
    if not any(named):
        raise InputError(f, None, f"no split '{split}': no image has a subset attribute")
    if split not in set(named):
        raise InputError(f, None, f"no split '{split}' (subsets: {', '.join(sorted(set(named) - {''}))})")
    return ds.select_split(split)
