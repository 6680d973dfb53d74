"""A synthetic shapes detection set in true COCO schema, so every command runs without a download.

Each image is a noisy, shaded background with a few filled shapes (circle/ellipse, rectangle,
triangle) of varied sizes and aspect ratios; ``instances.json`` holds boxes, polygon segmentations,
their areas and categories whose ids are deliberately not 0..N-1 (3, 7, 11), which catches code that
confuses a category id with a class index.

    detkit data synth out/shapes --task detect --images 64 --size 128 --seed 0
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from detkit.io import atomic_write, write_json

SHAPES = {3: "circle", 7: "rectangle", 11: "triangle"}


def _polygon_area(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


def _shape_polygon(
    kind: str, cx: float, cy: float, w: float, h: float, rng: np.random.Generator
) -> np.ndarray:
    """Outline of one shape, (P, 2) float pixels, whose bounding box is about (cx, cy, w, h)."""
    if kind == "circle":
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        return np.stack([cx + w / 2 * np.cos(t), cy + h / 2 * np.sin(t)], axis=1)
    if kind == "rectangle":
        return np.array(
            [
                [cx - w / 2, cy - h / 2],
                [cx + w / 2, cy - h / 2],
                [cx + w / 2, cy + h / 2],
                [cx - w / 2, cy + h / 2],
            ]
        )
    apex = cx + (rng.uniform(-0.5, 0.5) * w)  # triangle: apex somewhere along the top edge
    return np.array([[apex, cy - h / 2], [cx + w / 2, cy + h / 2], [cx - w / 2, cy + h / 2]])


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.uniform(40, 215, size=3)
    grad = np.linspace(-25, 25, size)[None, :, None] * rng.uniform(-1, 1, size=3)
    img = base + grad + rng.normal(0, 12, size=(size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def render_image(
    size: int, rng: np.random.Generator, max_objects: int = 4
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Draw one image; returns (BGR uint8 image, list of objects with category_id, bbox, polygon)."""
    import cv2

    img = _background(size, rng)
    objects: list[dict[str, Any]] = []
    boxes: list[tuple[float, float, float, float]] = []
    n = int(rng.integers(1, max_objects + 1))
    for _ in range(n * 8):  # rejection sampling: few tries per object
        if len(objects) == n:
            break
        cat = int(rng.choice(list(SHAPES)))
        scale = size * float(np.exp(rng.uniform(np.log(0.12), np.log(0.55))))
        aspect = float(np.exp(rng.uniform(np.log(0.45), np.log(2.2))))
        w, h = scale * np.sqrt(aspect), scale / np.sqrt(aspect)
        w, h = min(w, size * 0.9), min(h, size * 0.9)
        cx, cy = rng.uniform(w / 2, size - w / 2), rng.uniform(h / 2, size - h / 2)
        x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        # keep objects apart enough that every one stays visible
        if any(
            max(0.0, min(x1, bx1) - max(x0, bx0)) * max(0.0, min(y1, by1) - max(y0, by0))
            > 0.05 * min(w * h, (bx1 - bx0) * (by1 - by0))
            for bx0, by0, bx1, by1 in boxes
        ):
            continue
        poly = np.round(_shape_polygon(SHAPES[cat], cx, cy, w, h, rng), 2)  # as stored in the json
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        if np.abs(np.array(colour) - img[int(cy), int(cx)]).sum() < 120:  # too close to the background
            colour = tuple(255 - c for c in colour)
        cv2.fillPoly(img, [np.round(poly * 16).astype(np.int32)], colour, lineType=cv2.LINE_AA, shift=4)
        px0, py0 = poly.min(axis=0)
        px1, py1 = poly.max(axis=0)
        bbox = [float(px0), float(py0), round(float(px1 - px0), 2), round(float(py1 - py0), 2)]
        area = min(_polygon_area(poly), bbox[2] * bbox[3])
        objects.append({"category_id": cat, "bbox": bbox, "polygon": poly, "area": area})
        boxes.append((x0, y0, x1, y1))
    return img, objects


def write_detection_set(
    out: str | Path, images: int = 64, size: int = 128, seed: int = 0, max_objects: int = 4
) -> Path:
    """Write ``out/images/*.jpg`` and ``out/instances.json``; returns the json path.

    Args:
        out: output folder (created).
        images: number of images.
        size: side of the square images in pixels.
        seed: the whole set is a function of the seed.
        max_objects: at most this many shapes per image (at least one).
    """
    import cv2

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    coco_images, coco_anns = [], []
    ann_id = 1
    for i in range(images):
        img, objs = render_image(size, rng, max_objects=max_objects)
        name = f"shape_{i:05d}.jpg"
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        assert ok
        with atomic_write(out / "images" / name, "wb") as f:
            f.write(buf.tobytes())
        image_id = 1000 + i  # ids that are not row numbers, like real COCO
        coco_images.append({"id": image_id, "file_name": name, "width": size, "height": size})
        for o in objs:
            seg = [round(float(v), 2) for v in o["polygon"].reshape(-1)]
            coco_anns.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": o["category_id"],
                    "bbox": o["bbox"],
                    "area": float(np.floor(o["area"] * 100) / 100),
                    "iscrowd": 0,
                    "segmentation": [seg],
                }
            )
            ann_id += 1
    doc = {
        "info": {"description": "detkit synthetic shapes", "version": "1.0", "year": 2026, "seed": seed},
        "licenses": [],
        "images": coco_images,
        "annotations": coco_anns,
        "categories": [{"id": k, "name": v, "supercategory": "shape"} for k, v in SHAPES.items()],
    }
    return write_json(out / "instances.json", doc, indent=None)
