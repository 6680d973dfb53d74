"""Options of an anchor k-means run, declared once: field, default, allowed values and check.

Light on purpose (no numpy): the CLI reads its defaults from :class:`KMeansConfig` at start-up, the
library checks the values, and a bad value raises :class:`~detkit.errors.OptionError` naming the field and
the value (the CLI turns the field into its flag).

Which k is written (``pick``) when several are swept:
    bpr     the smallest k whose best-possible recall at ``iou_thr`` reaches 0.98 (YOLOv5's autoanchor
            target), or 5 (YOLOv2's choice) when none does -- the default
    elbow   the knee of the mean-IoU curve (fewest anchors for the shape of the curve; often 3)
    K       that k (an integer among the swept ones)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields

from detkit.errors import OptionError

DEFAULT_RESTARTS = 6
UPDATES = ("median", "mean")
METHODS = ("iou", "euclidean")
NORMS = ("image", "letterbox")
PICK_RULES = ("bpr", "elbow")
BPR_TARGET = 0.98
FALLBACK_K = 5
MAX_KS = 64
_KS = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def option_error(field_name: str, value: object, what: str) -> OptionError:
    """The one :class:`~detkit.errors.OptionError` with the value quoted: ``k 'x': expected ...`` (the CLI
    prints ``--k 'x': expected ...``)."""
    return OptionError(field_name, f"'{value}': {what}")


def parse_ks(text: str | int | list[int]) -> list[int]:
    """``"5"`` -> [5]; ``"3,4,6"`` -> [3, 4, 6]; ``"1-10"`` -> [1..10] (sorted, unique, each >= 1)."""
    if isinstance(text, int):
        text = str(text)
    parts = [str(p) for p in text] if isinstance(text, (list, tuple)) else str(text).split(",")
    ks: set[int] = set()
    for part in parts:
        m = _KS.match(part)
        if m is None:
            raise option_error("k", text, "expected a number, a list (3,4,5) or a range (1-10)")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if lo < 1 or hi < lo:
            raise option_error("k", text, "k must be at least 1 and ranges increasing")
        ks.update(range(lo, hi + 1))
    if len(ks) > MAX_KS:
        raise option_error("k", text, f"at most {MAX_KS} values of k at once")
    return sorted(ks)


def parse_pick(text: str | int) -> str | int:
    """``"bpr"`` / ``"elbow"`` or a k (``"5"`` -> 5)."""
    s = str(text).strip().lower()
    if s in PICK_RULES:
        return s
    if s.isdigit() and int(s) >= 1:
        return int(s)
    raise option_error("pick", text, f"choose {', '.join(PICK_RULES)} or a k among the swept ones")


@dataclass
class KMeansConfig:
    """One anchor k-means run (``detkit anchors kmeans`` and :func:`detkit.kmeans_anchors`).

    Args:
        k: the k values (``"5"``, ``"3,4,5"``, ``"1-10"`` or a list).
        pick: which k is the result when several are swept (see the module docstring).
        seed: seed of every random choice (same seed, same anchors).
        restarts: k-means++ seedings per k; the best mean IoU wins.
        update: centroid update, ``median`` (robust to the heavy tail of box sizes) or ``mean``.
        method: ``iou`` (1 - IoU k-means) or ``euclidean`` (scikit-learn's KMeans, the baseline).
        norm: ``image`` (w/W, h/H) or ``letterbox`` (long side = the input side).
        img_size: network input side in pixels (pixel units of the anchors).
        grid: output grid cells per side (grid units, YOLOv2).
        iou_thr: IoU threshold of best-possible recall.
        refine: run the mean-IoU refinement after k-means.
        format: annotation format (None: guessed from the path).
        split: only the boxes of this split (None: every image once, whatever splits it is in).
    """

    k: str | int | list[int] = "5"
    pick: str | int = "bpr"
    seed: int = 0
    restarts: int = DEFAULT_RESTARTS
    update: str = "median"
    method: str = "iou"
    norm: str = "image"
    img_size: int = 416
    grid: int = 13
    iou_thr: float = 0.5
    refine: bool = True
    format: str | None = None
    split: str | None = None
    ks: list[int] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.ks = parse_ks(self.k)
        self.pick = parse_pick(self.pick)
        for name, allowed in (("update", UPDATES), ("norm", NORMS), ("method", METHODS)):
            value = getattr(self, name)
            if value not in allowed:
                raise option_error(name, value, f"choose from {', '.join(allowed)}")
        for name in ("img_size", "grid", "restarts"):
            if getattr(self, name) < 1:
                raise option_error(name, getattr(self, name), "must be at least 1")
        if not 0 < self.iou_thr < 1:
            raise option_error("iou_thr", self.iou_thr, "must be between 0 and 1")
        if isinstance(self.pick, int) and self.pick not in self.ks:
            raise option_error(
                "pick", self.pick, f"is not one of the swept k ({', '.join(map(str, self.ks))})"
            )

    def to_dict(self) -> dict:
        """The resolved options (for run.json, summary.json and --json)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("k",)}
        return d
