"""Small datasets the tests of ``detkit coco split / merge / filter / sample / draw`` build on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from detkit.datasets.model import make_dataset


def write_coco(path: Path, images: list[tuple], anns: list[tuple], cats: list[tuple], **top) -> Path:
    """A COCO json: images (id, file, w, h), anns (id, image_id, category_id, x, y, w, h), cats (id, name).

    Every annotation carries a polygon and an extra field, so a lossless writer can be checked.
    """
    doc = {
        **top,
        "images": [{"id": i, "file_name": f, "width": w, "height": h, "license": 1} for i, f, w, h in images],
        "annotations": [
            {
                "id": a,
                "image_id": im,
                "category_id": c,
                "bbox": [x, y, w, h],
                "area": w * h,
                "iscrowd": 0,
                "segmentation": [[x, y, x + w, y, x + w, y + h]],
                "note": f"ann{a}",
            }
            for a, im, c, x, y, w, h in anns
        ],
        "categories": [{"id": i, "name": n, "supercategory": "thing"} for i, n in cats],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def write_images(folder: Path, names: list[str], size: tuple[int, int] = (64, 48)) -> None:
    """White PNG/JPEG files (the format follows the suffix)."""
    from PIL import Image

    for n in names:
        p = folder / n
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (255, 255, 255)).save(p)


def skewed(n_images: int = 2000, seed: int = 0):
    """A multi-label set with class image frequencies 60%, 30%, 10%, 3%, 1%, 0.5% and ~10% background;
    file names vid{k}_f{j}.jpg put ten frames in each of n_images / 10 videos."""
    rng = np.random.default_rng(seed)
    freq = (0.6, 0.3, 0.1, 0.03, 0.01, 0.005)
    images = [(i + 1, f"vid{i // 10:03d}_f{i % 10}.jpg", 640.0, 480.0) for i in range(n_images)]
    anns, aid = [], 1
    for i in range(n_images):
        if rng.random() < 0.1:
            continue
        for c, p in enumerate(freq):
            if rng.random() < p:
                for _ in range(int(rng.integers(1, 4))):
                    anns.append((aid, i + 1, c + 1, 10.0, 10.0, 20.0, 20.0))
                    aid += 1
    return make_dataset(images, anns, [(c + 1, f"c{c}") for c in range(len(freq))]), images, anns
