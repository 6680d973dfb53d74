"""Validation findings: stable codes, severities and an aggregating collector.

A finding is one *kind* of problem (``bbox.out_of_bounds``) with how many records have it and the first
few of them (file, record, id) — never one line per image. The codes below are part of detkit's
interface: CI jobs grep for them, so they never change meaning.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("error", "warning", "info")

# code -> (severity, what it means). Order here is the order of the report within a severity.
# One line per code: the registry reads as a table.
# fmt: off
CODES: dict[str, tuple[str, str]] = {
    "record.unparsable": ("error", "a record (JSON element, text line, XML file) cannot be parsed (skipped)"),
    "record.missing_field": ("error", "a required field is missing (record skipped)"),
    "record.wrong_type": ("error", "a field has the wrong JSON type, e.g. a string (record skipped)"),
    "value.non_finite": ("error", "NaN or infinite number in an image size, box or area"),
    "image.bad_size": ("error", "image width or height is not positive"),
    "image.duplicate_id": ("error", "two images share an id (pycocotools silently keeps the last)"),
    "category.duplicate_id": ("error", "two categories share an id"),
    "annotation.duplicate_id": ("error", "two annotations share an id (pycocotools silently keeps the last)"),
    "annotation.id_zero": ("error", "annotation id 0 silently breaks COCOeval matching"),
    "annotation.dangling_image_id": ("error", "annotation's image_id is not in images"),
    "annotation.dangling_category_id": ("error", "annotation's category_id is not in categories"),
    "bbox.non_positive_size": ("error", "box width or height <= 0 (degenerate box)"),
    "bbox.outside_image": ("error", "box lies wholly outside its image (no overlap)"),
    "segmentation.bad_polygon": ("error", "polygon with fewer than 6 or an odd number of coordinates"),
    "bbox.out_of_bounds": ("warning", "box reaches past an edge of its image (partly or wholly outside)"),
    "bbox.sub_pixel": ("warning", "box width or height is between 0 and 1 pixel"),
    "annotation.duplicate_box": ("warning", "exact duplicate box (same image, category and x, y, w, h)"),
    "annotation.area_inconsistent": ("warning", "area <= 0 or larger than the box's w*h"),
    "annotation.missing_area": ("warning", "annotation has no 'area' (COCOeval needs it; the fix fills w*h)"),
    "annotation.missing_iscrowd": ("warning", "no 'iscrowd' (COCOeval needs it; the fix fills 0)"),
    "annotation.bad_iscrowd": ("warning", "iscrowd is neither 0 nor 1"),
    "image.no_annotations": ("info", "image without any annotation"),
    "category.unused": ("info", "category without any annotation"),
    # appended (codes never move): encodings other commands reject, and record paths convert must not follow
    "file.encoding": ("error", "not plain UTF-8 (BOM, UTF-16/32): others reject it; the fix writes UTF-8"),
    "value.lone_surrogate": ("error", "lone surrogate (\\ud800): others reject it; the fix writes U+FFFD"),
    "path.absolute": ("warning", "file_name is absolute, /x or C:\\x (convert writes a relative name)"),
    "path.climbs_out": ("warning", "file_name climbs out with '..' (convert writes a name inside)"),
    "path.invalid": ("warning", "file_name is no file name: NUL, empty, '.', ends in '/' (convert: safe)"),
    # appended: dataset layouts read leniently (YOLO / ultralytics / Roboflow / VOC splits) and split leakage
    "image.empty": ("error", "image file is empty (0 bytes; skipped)"),
    "image.corrupt": ("error", "image file is unreadable or truncated (header and end marker; skipped)"),
    "image.missing_file": ("error", "image named by the annotations or a split list is not on disk"),
    "image.size_mismatch": ("error", "the image file's header size differs from the declared width x height"),
    "label.orphan": ("warning", "YOLO label file without an image (skipped)"),
    "label.class_out_of_range": ("error", "YOLO class index >= the number of class names (row skipped)"),
    "label.coords_out_of_range": ("error", "YOLO coordinate outside 0..1 by > 0.01 (row skipped)"),
    "label.duplicate_row": ("warning", "YOLO row repeated in its label file (the copy is skipped)"),
    "split.unknown_item": ("warning", "a split list names an image the dataset does not have"),
    "split.leak_exact": ("warning", "the same image (same file or same bytes) is in two splits"),
    "split.leak_near": ("warning", "near-duplicate images (perceptual hash within a few bits) in two splits"),
    "label.polygon": ("info", "YOLO segmentation polygon rows read as their bounding boxes"),
    "image.no_label_file": ("info", "image without a YOLO label file (read as a background image)"),
    "split.unassigned": ("info", "images listed in no split file (split 'unassigned')"),
    # appended: annotation-tool exports (CVAT, Label Studio, LabelMe) and data.yaml splits
    "shape.polygon": ("info", "polygons (or rotated boxes) read as their bounding boxes"),
    "shape.unsupported": ("warning", "shapes other than boxes or polygons (points, lines, masks) skipped"),
    "label.none_found": ("warning", "(almost) no image of a split has its label file, or it was elsewhere"),
}
# fmt: on
# the CLI's words for the registry's (detkit.errors.cli_text): validate's printer names the flag
FIX_FLAGS = {"; the fix ": "; --fix "}


@dataclass
class Finding:
    """One kind of problem, aggregated."""

    code: str
    severity: str
    message: str
    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "count": self.count,
            "message": self.message,
            "examples": self.examples,
            **({"details": self.details} if self.details else {}),
        }


class Findings:
    """Collects findings by code, keeping the first ``max_examples`` offending records of each.

    Args:
        file: the input, named in every example.
        max_examples: how many offending records to keep per code.
    """

    def __init__(self, file: str, max_examples: int = 5):
        self.file, self.max_examples = file, max_examples
        self._by_code: dict[str, Finding] = {}

    def _get(self, code: str) -> Finding:
        if code not in self._by_code:
            severity, message = CODES[code]
            self._by_code[code] = Finding(code, severity, message)
        return self._by_code[code]

    def add(self, code: str, record: str, id: Any = None, note: str | None = None) -> None:
        """Count one offending record."""
        f = self._get(code)
        f.count += 1
        if len(f.examples) < self.max_examples:
            ex: dict[str, Any] = {"file": self.file, "record": record}
            if id is not None:
                ex["id"] = id
            if note:
                ex["note"] = note
            f.examples.append(ex)

    def add_rows(self, code: str, rows: Iterable[int], record_of, id_of, note_of=None, details=None) -> None:
        """Count many offending rows at once; only the first few are turned into examples.

        Args:
            rows: row numbers (e.g. ``np.flatnonzero(mask)``).
            record_of / id_of / note_of: row -> record location / id / short note.
        """
        rows = list(rows) if not hasattr(rows, "__len__") else rows
        if len(rows) == 0:
            return
        f = self._get(code)
        f.count += len(rows)
        for r in rows[: max(0, self.max_examples - len(f.examples))]:
            ex: dict[str, Any] = {"file": self.file, "record": record_of(int(r)), "id": id_of(int(r))}
            if note_of is not None:
                ex["note"] = note_of(int(r))
            f.examples.append(ex)
        if details:
            f.details.update(details)

    def get(self, code: str) -> Finding | None:
        return self._by_code.get(code)

    def as_list(self) -> list[Finding]:
        """Findings sorted by severity, then in the order of :data:`CODES`."""
        order = {c: i for i, c in enumerate(CODES)}
        return sorted(self._by_code.values(), key=lambda f: (SEVERITIES.index(f.severity), order[f.code]))

    def counts(self) -> dict[str, int]:
        """Number of offending records per severity."""
        out = {s: 0 for s in SEVERITIES}
        for f in self._by_code.values():
            out[f.severity] += f.count
        return out
