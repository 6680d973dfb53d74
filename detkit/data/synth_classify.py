"""Synthetic classification set in Tiny ImageNet's exact on-disk layout.

Each class has its own shape, hue and stripe texture, drawn at a random position and scale over a noisy
background, so a small CNN separates the classes but random crops and flips still matter. About one image
in fifteen is saved as a single-channel JPEG, as ~2% of Tiny ImageNet is, to exercise the RGB conversion::

    OUT/wnids.txt                          class ids, one a line, NOT sorted
    OUT/words.txt                          "<wnid>\\t<names>" for these and a few unrelated ids
    OUT/train/<wnid>/images/<wnid>_<i>.JPEG
    OUT/train/<wnid>/<wnid>_boxes.txt      "<file>\\tx0\\ty0\\tx1\\ty1"
    OUT/val/images/val_<i>.JPEG
    OUT/val/val_annotations.txt            "<file>\\t<wnid>\\tx0\\ty0\\tx1\\ty1"
    OUT/test/images/test_<i>.JPEG          no labels
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np

SHAPES = ("disk", "square", "triangle", "cross", "ring", "diamond", "bar", "star")
NAMES = (
    "goldfish",
    "salamander",
    "bullfrog",
    "tailed frog",
    "alligator",
    "boa constrictor",
    "trilobite",
    "scorpion",
    "black widow",
    "tarantula",
    "centipede",
    "goose",
    "koala",
    "jellyfish",
    "brain coral",
)


def _class_style(k: int) -> dict:
    """Shape, colour (RGB 0-255) and stripe texture of class ``k``: all three differ between classes."""
    hue = (k * 0.618034) % 1.0
    rgb = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.85, 0.95))
    return {
        "shape": SHAPES[k % len(SHAPES)],
        "rgb": rgb,
        "angle": (k * 37) % 180,  # stripe orientation, degrees
        "period": 3 + (k // len(SHAPES)) % 4 * 2,  # stripe period, pixels
    }


def _shape_mask(shape: str, size: int, cx: float, cy: float, r: float) -> np.ndarray:
    """Boolean mask of ``shape`` centred at (cx, cy) with half-size ``r``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    ax, ay = np.abs(dx), np.abs(dy)
    if shape == "disk":
        return dx**2 + dy**2 <= r**2
    if shape == "square":
        return (ax <= r) & (ay <= r)
    if shape == "triangle":
        return (dy <= r) & (dy >= -r) & (ax <= (dy + r) / 2)
    if shape == "cross":
        return ((ax <= r / 3) & (ay <= r)) | ((ay <= r / 3) & (ax <= r))
    if shape == "ring":
        d2 = dx**2 + dy**2
        return (d2 <= r**2) & (d2 >= (0.55 * r) ** 2)
    if shape == "diamond":
        return ax + ay <= r
    if shape == "bar":
        return (ax <= r) & (ay <= r / 3)
    # star: a disk with four spikes
    return (dx**2 + dy**2 <= (0.5 * r) ** 2) | ((ax <= r / 6) & (ay <= r)) | ((ay <= r / 6) & (ax <= r))


def _draw(k: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """One RGB uint8 image of class ``k`` and the shape's box (x0, y0, x1, y1)."""
    style = _class_style(k)
    bg = rng.integers(50, 180) + rng.integers(-20, 21, size=3)  # greyish, so the class colour stands out
    img = np.clip(bg + rng.normal(0, 20, size=(size, size, 3)), 0, 255)
    r = size * rng.uniform(0.22, 0.34)
    cx, cy = rng.uniform(r, size - r, size=2)
    mask = _shape_mask(style["shape"], size, cx, cy, r)
    yy, xx = np.mgrid[0:size, 0:size]
    theta = np.deg2rad(style["angle"])
    stripes = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / style["period"]) > 0
    fg = np.array(style["rgb"], np.float32) * np.where(stripes, 1.0, 0.45)[..., None]
    fg = fg + rng.normal(0, 12, size=fg.shape)
    img[mask] = fg[mask]
    box = (max(0, int(cx - r)), max(0, int(cy - r)), min(size - 1, int(cx + r)), min(size - 1, int(cy + r)))
    return np.clip(img, 0, 255).astype(np.uint8), box


def _save_jpeg(path: Path, rgb: np.ndarray, gray: bool) -> None:
    import cv2

    data = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if gray else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", data, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    path.write_bytes(buf.tobytes())


def write_classify_set(
    out: str | Path, classes: int = 5, per_class: int = 60, seed: int = 0, size: int = 64
) -> Path:
    """Write a synthetic set in Tiny ImageNet's layout and return its root.

    Args:
        out: output folder (created).
        classes: number of classes.
        per_class: labelled images per class; one sixth (at least one) go to val/, the rest to train/.
        seed: same seed, same bytes.
        size: image side in pixels (Tiny ImageNet: 64).
    """
    out = Path(out)
    rng = np.random.default_rng(seed)
    ids = rng.choice(10**8, size=classes + 3, replace=False)
    wnids = [f"n{i:08d}" for i in ids]
    order = list(range(classes))
    while classes > 1 and sorted(wnids[:classes]) == [wnids[i] for i in order]:
        rng.shuffle(order)  # Tiny ImageNet's wnids.txt is not sorted; make sure ours is not either
    listed = [wnids[i] for i in order]
    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "wnids.txt").write_text("".join(w + "\n" for w in listed))
    words = [
        f"{w}\t{NAMES[i % len(NAMES)]}{'' if i < len(NAMES) else f' {i // len(NAMES)}'}, synthetic {i}"
        for i, w in enumerate(wnids)
    ]  # includes ids that are not classes, as the real file does
    (out / "words.txt").write_text("\n".join(words) + "\n")

    n_val = max(1, per_class // 6)
    val_rows = []
    for k, wnid in enumerate(wnids[:classes]):
        img_dir = out / "train" / wnid / "images"
        img_dir.mkdir(parents=True, exist_ok=True)
        boxes = []
        for i in range(per_class):
            img, box = _draw(k, size, rng)
            gray = rng.random() < 1 / 15
            if i < per_class - n_val:
                name = f"{wnid}_{i}.JPEG"
                _save_jpeg(img_dir / name, img, gray)
                boxes.append(f"{name}\t" + "\t".join(map(str, box)))
            else:
                val_rows.append((img, gray, wnid, box))
        (out / "train" / wnid / f"{wnid}_boxes.txt").write_text("\n".join(boxes) + "\n")

    (out / "val" / "images").mkdir(parents=True, exist_ok=True)
    ann = []
    for j, vi in enumerate(rng.permutation(len(val_rows))):
        img, gray, wnid, box = val_rows[vi]
        _save_jpeg(out / "val" / "images" / f"val_{j}.JPEG", img, gray)
        ann.append(f"val_{j}.JPEG\t{wnid}\t" + "\t".join(map(str, box)))
    (out / "val" / "val_annotations.txt").write_text("\n".join(ann) + "\n")

    (out / "test" / "images").mkdir(parents=True, exist_ok=True)
    for j in range(max(2, classes)):
        img, _ = _draw(int(rng.integers(classes)), size, rng)
        _save_jpeg(out / "test" / "images" / f"test_{j}.JPEG", img, False)
    return out
