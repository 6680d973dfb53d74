"""detkit coco eval vs pycocotools vs hotcoco's CLI on a val2017-sized case: load + evaluate + summarize.

    python bench/coco_eval.py [--cache bench_out/coco_eval] [--images 5000] [--boxes 30000] [--dets 500000]

Writes (once, then reuses) a generated ground truth at the scale of COCO val2017 — 5,000 images, ~30k
boxes over COCO's 80 categories (ids with gaps), a few crowd boxes — and 500,000 detections (100 per
image, the size a detector writes at conf 0.001): jittered copies of the ground-truth boxes, some with
the wrong class, and background boxes, with scores that favour the good ones. Then runs, each as a whole
process measured with ``/usr/bin/time -v`` (wall time, peak RSS):

  pycocotools  COCO(gt) + loadRes(dt) + COCOeval evaluate / accumulate / summarize
  hotcoco      hotcoco's own CLI: coco eval --gt GT --dt DT --json
  detkit       detkit coco eval GT DT --json

It checks that all three print the same 12 numbers (to 1e-9 between detkit and pycocotools) and prints
wall time, peak memory and the ratios. Targets: detkit >= 50x faster than pycocotools at <= 1/4 of its
peak memory, and within 2x of hotcoco's CLI.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detkit.coco.model import COCO80_IDS, COCO80_NAMES

PYCOCO_SCRIPT = r"""
import contextlib, json, sys
with contextlib.redirect_stdout(sys.stderr):  # pycocotools prints progress on stdout
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    gt = COCO(sys.argv[1])
    dt = gt.loadRes(sys.argv[2])
    ev = COCOeval(gt, dt, "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
json.dump({"stats": [float(v) for v in ev.stats]}, sys.stdout)
"""


def generate(folder: Path, n_images: int, n_boxes: int, n_dets: int, seed: int = 0) -> tuple[Path, Path]:
    """Write ``gt.json`` and ``dt.json`` into ``folder`` (see the module docstring); returns their paths."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    w = rng.choice([640, 500, 480, 427, 375, 612], size=n_images).astype(float)
    h = rng.choice([480, 427, 640, 375, 333, 500], size=n_images).astype(float)
    img_ids = np.sort(rng.choice(600_000, size=n_images, replace=False)) + 1
    cats = np.asarray(COCO80_IDS)
    # ground truth: boxes spread over images; sizes log-uniform so small / medium / large all occur
    im = np.sort(rng.integers(0, n_images, size=n_boxes))
    frac = np.exp(rng.uniform(np.log(0.01), np.log(0.8), size=(n_boxes, 2)))
    bw, bh = frac[:, 0] * w[im], frac[:, 1] * h[im]
    bx, by = rng.uniform(0, 1, n_boxes) * (w[im] - bw), rng.uniform(0, 1, n_boxes) * (h[im] - bh)
    gbox = np.round(np.c_[bx, by, bw, bh], 2)
    gcat = cats[rng.zipf(1.6, size=n_boxes) % len(cats)]
    crowd = (rng.uniform(size=n_boxes) < 0.01).astype(int)
    images = [{"id": int(i), "file_name": f"{i:012d}.jpg", "width": int(ww), "height": int(hh)}
              for i, ww, hh in zip(img_ids, w, h)]  # fmt: skip
    anns = [{"id": k + 1, "image_id": int(img_ids[i]), "category_id": int(c), "bbox": b.tolist(),
             "area": round(float(b[2] * b[3]), 2), "iscrowd": int(cr)}
            for k, (i, c, b, cr) in enumerate(zip(im, gcat, gbox, crowd))]  # fmt: skip
    categories = [{"id": int(i), "name": n, "supercategory": ""} for i, n in zip(COCO80_IDS, COCO80_NAMES)]
    gt_path = folder / "gt.json"
    gt_path.write_text(
        json.dumps({"info": {}, "images": images, "annotations": anns, "categories": categories})
    )
    # detections: ~3 jittered copies per ground-truth box (10% with another class), the rest background
    n_hit = min(3 * n_boxes, n_dets)
    src = rng.integers(0, n_boxes, size=n_hit)
    jit = rng.normal(0, 0.12, size=(n_hit, 4)) * np.c_[gbox[src, 2:], gbox[src, 2:]]
    hbox = gbox[src] + jit
    hbox[:, 2:] = np.maximum(hbox[:, 2:], 1.0)
    hcat = np.where(rng.uniform(size=n_hit) < 0.1, cats[rng.integers(0, len(cats), n_hit)], gcat[src])
    hscore = rng.beta(5, 2, size=n_hit)
    n_bg = n_dets - n_hit
    bim = rng.integers(0, n_images, size=n_bg)
    bfrac = np.exp(rng.uniform(np.log(0.02), np.log(0.6), size=(n_bg, 2)))
    bbw, bbh = bfrac[:, 0] * w[bim], bfrac[:, 1] * h[bim]
    bbox = np.c_[rng.uniform(0, 1, n_bg) * (w[bim] - bbw), rng.uniform(0, 1, n_bg) * (h[bim] - bbh), bbw, bbh]
    dimg = np.r_[img_ids[im[src]], img_ids[bim]]
    dbox = np.round(np.r_[hbox, bbox], 2)
    dcat = np.r_[hcat, cats[rng.zipf(1.6, size=n_bg) % len(cats)]]
    dscore = np.round(np.r_[hscore, rng.beta(1, 6, size=n_bg)], 5)
    order = np.argsort(dimg, kind="stable")
    rows = [f'{{"image_id":{i},"category_id":{c},"bbox":[{b[0]},{b[1]},{b[2]},{b[3]}],"score":{s}}}'
            for i, c, b, s in zip(dimg[order].tolist(), dcat[order].tolist(), dbox[order].tolist(), dscore[order].tolist())]  # fmt: skip
    dt_path = folder / "dt.json"
    dt_path.write_text("[" + ",".join(rows) + "]")
    return gt_path, dt_path
