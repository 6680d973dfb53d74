"""Stratified train/val/test splits for multi-label detection data: ``detkit coco split``.

Each image is an example whose labels are the set of classes it contains (an image without boxes has
the one pseudo-label *background*, so backgrounds are spread in proportion too). Iterative
stratification (Sechidis, Tsoumakas & Vlahavas, ECML PKDD 2011) then deals the examples out:

    desired_j      = round(r_j · N)           examples still wanted by split j (largest remainder, sums to N)
    desired_{l,j}  = r_j · |D_l|              examples with label l still wanted by split j
    repeat: l*  = the label with the fewest examples left (ties: random)
            for each remaining example with l* (random order):
                j* = argmax_j desired_{l*,j}, ties -> argmax desired_j, ties -> random,
                     among the splits with desired_j > 0
                put it in j*; desired_{λ,j*} -= 1 for each of its labels λ; desired_{j*} -= 1

Rare classes go first, while every split still has room for them, so they end within about one image of r_j ·
|D_l| in each split; the most common classes, dealt last, absorb what the exact sizes force (within 1% of
their images on tests/datasets/test_split.py's skewed set). Restricting to splits with room makes the split
sizes exactly round(r_j · N). With ``group`` (a regex whose captured group names a video, a patient...) the
examples are groups of images: a group counts once per image for each label and for the sizes, so it is never
cut, and the sizes hold as nearly as the group sizes allow."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from detkit.datasets.model import SPLIT_NAMES, Dataset
from detkit.datasets.ops.source import Part
from detkit.errors import OptionError


def parse_ratios(text: str) -> list[float]:
    """``"0.8,0.1,0.1"`` -> [0.8, 0.1, 0.1]; two or three non-negative numbers summing to 1."""
    try:
        ratios = [float(v) for v in text.split(",")]
    except ValueError:
        raise OptionError("ratios", f"{text!r}: expected numbers like 0.8,0.1,0.1") from None
    if not 2 <= len(ratios) <= 3 or any(not (r >= 0) for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise OptionError(
            "ratios", f"{text!r}: give 2 or 3 non-negative shares that sum to 1 (train,val[,test])"
        )
    return ratios


def largest_remainder(ratios: list[float], n: int) -> list[int]:
    """Integer sizes ~ r_j · n that sum to n (Hamilton's method; ties to the earlier split)."""
    exact = [r * n for r in ratios]
    sizes = [int(e) for e in exact]
    order = sorted(range(len(ratios)), key=lambda j: (-(exact[j] - sizes[j]), j))
    for j in order[: n - sum(sizes)]:
        sizes[j] += 1
    return sizes


def unique_sorted(a: np.ndarray, counts: bool = False):
    """np.unique by one sort (numpy's hash-based unique is several times slower on ~1M int64)."""
    a = np.sort(a)
    first = np.ones(a.size, dtype=bool)
    first[1:] = a[1:] != a[:-1]
    if not counts:
        return a[first]
    starts = np.flatnonzero(first)
    return a[starts], np.diff(np.append(starts, a.size))


def image_labels(ds: Dataset, img: np.ndarray, cat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image row, label) pairs, one per distinct class in each image; label C is background.

    Args:
        img / cat: each box's image and category row (-1 where dangling).
    """
    C = ds.num_categories
    ok = (img >= 0) & (cat >= 0)
    key = unique_sorted(img[ok] * (C + 1) + cat[ok])
    rows, labels = key // (C + 1), key % (C + 1)
    has = np.zeros(ds.num_images, dtype=bool)
    has[rows] = True
    empty = np.flatnonzero(~has)
    return np.concatenate([rows, empty]), np.concatenate([labels, np.full(empty.size, C)])


def group_keys(file_names: np.ndarray, pattern: str) -> tuple[np.ndarray, int]:
    """Unit index per image (images whose names share the regex's captured group share a unit) and how
    many names did not match (each of those is a unit of its own)."""
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise OptionError("group", f"{pattern!r}: not a regular expression ({exc})") from None
    keys, unmatched = [], 0
    for i, name in enumerate(file_names):
        m = rx.search(str(name))
        if m is None:
            unmatched += 1
            keys.append(("", i))
        else:
            keys.append((m.group(1) if rx.groups else m.group(0), -1))
    _, unit = np.unique(np.array([f"{k}\0{i}" for k, i in keys], dtype=object), return_inverse=True)
    return unit.astype(np.int64), unmatched


def stratify(
    indptr: np.ndarray,
    labels: np.ndarray,
    counts: np.ndarray,
    sizes: np.ndarray,
    ratios: list[float],
    n_labels: int,
    seed: int,
) -> np.ndarray:
    """Iterative stratification (see the module docstring) of weighted examples.

    Args:
        indptr / labels / counts: example u carries ``labels[indptr[u]:indptr[u+1]]``, each on
            ``counts[...]`` of its images (CSR rows).
        sizes: (U,) images per example.
        ratios: the share of images each split should get.
        n_labels: labels are 0..n_labels-1.
        seed: seeds every random choice.

    Returns:
        (U,) split index of each example.
    """
    rng = random.Random(seed)
    K, U = len(ratios), len(sizes)
    desired = [float(s) for s in largest_remainder(ratios, int(sizes.sum()))]
    total = np.bincount(labels, weights=counts, minlength=n_labels).tolist()
    want = [[r * t for r in ratios] for t in total]
    left = list(total)
    unit_of = np.repeat(np.arange(U), np.diff(indptr))
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_labels + 1)).tolist()
    by_label = unit_of[order].tolist()
    ptr, labs, cnts, size = indptr.tolist(), labels.tolist(), counts.tolist(), sizes.tolist()
    assigned = [-1] * U
    splits = range(K)
    while True:
        live = [lab for lab in range(n_labels) if left[lab] > 0]
        if not live:
            break
        fewest = min(left[lab] for lab in live)
        lab = rng.choice([x for x in live if left[x] == fewest])
        todo = [u for u in by_label[bounds[lab] : bounds[lab + 1]] if assigned[u] < 0]
        rng.shuffle(todo)
        w = want[lab]
        for u in todo:
            j = _choose(w, desired, splits, rng)
            assigned[u] = j
            desired[j] -= size[u]
            for k in range(ptr[u], ptr[u + 1]):
                want[labs[k]][j] -= cnts[k]
                left[labs[k]] -= cnts[k]
    return np.asarray(assigned, dtype=np.int64)


def _choose(w: list[float], desired: list[float], splits: range, rng: random.Random) -> int:
    """The split with most room for the label, then most room overall, then at random (see above)."""
    best, cand = None, []
    for j in splits:
        if desired[j] <= 0:
            continue
        key = (w[j], desired[j])
        if best is None or key > best:
            best, cand = key, [j]
        elif key == best:
            cand.append(j)
    if not cand:  # every split full (only groups overshoot): the least over
        return max(splits, key=lambda j: (desired[j], w[j]))
    return cand[0] if len(cand) == 1 else rng.choice(cand)


@dataclass
class SplitResult:
    """The chosen parts and how well they keep each class's share."""

    names: list[str]
    ratios: list[float]
    parts: dict[str, Part]
    split_of_image: np.ndarray  # (I,) split index per image row
    classes: list[dict[str, Any]]
    worst: dict[str, Any]
    backgrounds: list[int]  # images without boxes per split
    groups: int | None = None
    unmatched: int = 0
    dangling: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ratios": dict(zip(self.names, self.ratios)),
            "splits": [
                {"name": n, **p.counts(), "background": b}
                for (n, p), b in zip(self.parts.items(), self.backgrounds)
            ],
            "classes": self.classes,
            "worst_deviation": self.worst,
            "groups": self.groups,
            "unmatched_names": self.unmatched,
            "dangling_boxes": self.dangling,
        }


def split_dataset(ds: Dataset, ratios: list[float], seed: int = 0, group: str | None = None) -> SplitResult:
    """Split ``ds`` into train/val[/test] by iterative stratification over each image's class set.

    Args:
        ds: the dataset (every image and box is placed; boxes whose image is missing are counted).
        ratios: shares of the images, two or three, summing to 1.
        seed: seeds the order of examples and the ties.
        group: a regex; images whose file names share its captured group stay together.
    """
    names = list(SPLIT_NAMES[: len(ratios)])
    C, I = ds.num_categories, ds.num_images  # noqa: E741  (the sizes as the docstring names them)
    img, cat = ds.image_index(), ds.category_index()
    rows, labels = image_labels(ds, img, cat)
    unmatched, n_groups = 0, None
    if group is not None:
        unit, unmatched = group_keys(ds.file_name, group)
        n_groups = int(unit.max()) + 1 if I else 0
    else:
        unit = np.arange(I, dtype=np.int64)
    U = int(unit.max()) + 1 if I else 0
    sizes = np.bincount(unit, minlength=U)
    key, counts = unique_sorted(unit[rows] * (C + 1) + labels, counts=True)  # sorted by unit: CSR rows
    indptr = np.searchsorted(key // (C + 1), np.arange(U + 1))
    which = (
        stratify(indptr, key % (C + 1), counts, sizes, ratios, C + 1, seed)[unit]
        if I
        else np.zeros(0, np.int64)
    )
    parts = {
        n: Part(
            np.flatnonzero(which == j),
            np.flatnonzero(which[img] == j) if I else np.zeros(0, np.int64),
            np.arange(C),
        )
        for j, n in enumerate(names)
    }
    classes, worst = class_shares(ds, which, names, ratios, img, cat)
    has_box = np.zeros(I, dtype=bool)
    has_box[rows[labels < C]] = True
    backgrounds = [int((~has_box & (which == j)).sum()) for j in range(len(names))]
    dangling = int((img < 0).sum())
    return SplitResult(
        names, ratios, parts, which, classes, worst, backgrounds, n_groups, unmatched, dangling
    )


def class_shares(
    ds: Dataset, which: np.ndarray, names: list[str], ratios: list[float], img: np.ndarray, cat: np.ndarray
) -> tuple[list[dict], dict]:
    """Per class: images and boxes in each split as shares of the class's total; the worst deviation.

    Args:
        which: (I,) split index per image row.
        img / cat: each box's image and category row (-1 where dangling).
    """
    C, K = ds.num_categories, len(names)
    ok = (img >= 0) & (cat >= 0)
    box_counts = np.bincount(cat[ok] * K + which[img[ok]], minlength=C * K).reshape(C, K)
    pairs = unique_sorted(img[ok] * max(C, 1) + cat[ok])
    img_counts = np.bincount((pairs % max(C, 1)) * K + which[pairs // max(C, 1)], minlength=C * K).reshape(
        C, K
    )
    r = np.asarray(ratios)
    rows, worst = [], {"images": 0.0, "boxes": 0.0, "class": None, "split": None}
    for c in range(C):
        ni, nb = int(img_counts[c].sum()), int(box_counts[c].sum())
        si = img_counts[c] / ni if ni else np.zeros(K)
        sb = box_counts[c] / nb if nb else np.zeros(K)
        rows.append(
            {
                "id": int(ds.cat_id[c]),
                "name": str(ds.cat_name[c]),
                "images": ni,
                "boxes": nb,
                "image_share": dict(zip(names, si.round(4).tolist())),
                "box_share": dict(zip(names, sb.round(4).tolist())),
            }
        )
        if ni:
            dev = np.abs(si - r)
            if dev.max() > worst["images"]:
                worst.update(
                    images=float(dev.max()),
                    **{"class": str(ds.cat_name[c]), "split": names[int(dev.argmax())]},
                )
            worst["boxes"] = max(worst["boxes"], float(np.abs(sb - r).max()))
    worst["images"], worst["boxes"] = round(worst["images"], 4), round(worst["boxes"], 4)
    return rows, worst
