"""detkit coco eval vs pycocotools vs hotcoco's CLI on a val2017-sized case: load + evaluate + summarize.

    python bench/coco_eval.py [--cache bench_out/coco_eval] [--images 5000] [--boxes 30000] [--dets 500000]

Writes (once, then reuses) a generated ground truth at the scale of COCO val2017 — 5,000 images, ~30k boxes
over COCO's 80 categories (ids with gaps), a few crowd boxes — and 500,000 detections (100 per image, the size
a detector with max_det 100 writes at conf 0.001), clustered as a detector's are: jittered copies of the
ground-truth boxes, some with the wrong class, and background boxes, with scores that favour the good ones
(see ``generate``). Then runs, each as a whole process measured with ``/usr/bin/time -v`` (wall time, peak
RSS):

  pycocotools  COCO(gt) + loadRes(dt) + COCOeval evaluate / accumulate / summarize
  hotcoco      hotcoco's own CLI: coco eval --gt GT --dt DT --json
  detkit       detkit coco eval GT DT --json

detkit and hotcoco's CLI run ``--repeats`` times (default 5) and pycocotools ``--pycoco-repeats`` times
(default 1: ~55 s a run, so its noise is a small part of it); each prints its median wall and CPU time and
its largest peak memory. detkit's bytecode is compiled first, as ``pip install`` does: this machine sets
PYTHONDONTWRITEBYTECODE=1, which otherwise has every run compile detkit's sources (~0.05 s); the two
baselines are installed packages, compiled already.

It checks that all three print the same 12 numbers (to 1e-9 between detkit and pycocotools) and prints wall
time, peak memory and the ratios. Targets: detkit >= 50x faster than pycocotools at <= 1/4 of its peak memory,
and within 2x of hotcoco's CLI."""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detkit.datasets.model import COCO80_IDS, COCO80_NAMES

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
    """Write ``gt.json`` and ``dt.json`` into ``folder`` (see the module docstring); returns their paths.

    Detections are what a detector writes at a low confidence threshold: the same number on every image
    (its max_det), clustered on the image's boxes (see the comments below).
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    w = rng.choice([640, 500, 480, 427, 375, 612], size=n_images).astype(float)
    h = rng.choice([480, 427, 640, 375, 333, 500], size=n_images).astype(float)
    img_ids = np.sort(rng.choice(600_000, size=n_images, replace=False)) + 1
    cats = np.asarray(COCO80_IDS)
    # ground truth: sizes log-uniform so small / medium / large all occur; a skewed class distribution
    im = np.sort(rng.integers(0, n_images, size=n_boxes))
    frac = np.exp(rng.uniform(np.log(0.01), np.log(0.8), size=(n_boxes, 2)))
    bw, bh = frac[:, 0] * w[im], frac[:, 1] * h[im]
    bx, by = rng.uniform(0, 1, n_boxes) * (w[im] - bw), rng.uniform(0, 1, n_boxes) * (h[im] - bh)
    gbox = np.round(np.c_[bx, by, bw, bh], 2)
    gcat = cats[np.minimum(rng.geometric(0.08, size=n_boxes) - 1, 79)]
    crowd = (rng.uniform(size=n_boxes) < 0.01).astype(int)
    images = [
        {"id": int(i), "file_name": f"{i:012d}.jpg", "width": int(ww), "height": int(hh)}
        for i, ww, hh in zip(img_ids, w, h)
    ]
    anns = [
        {
            "id": k + 1,
            "image_id": int(img_ids[i]),
            "category_id": int(c),
            "bbox": b.tolist(),
            "area": round(float(b[2] * b[3]), 2),
            "iscrowd": int(cr),
        }
        for k, (i, c, b, cr) in enumerate(zip(im, gcat, gbox, crowd))
    ]
    categories = [{"id": int(i), "name": n, "supercategory": ""} for i, n in zip(COCO80_IDS, COCO80_NAMES)]
    gt_path = folder / "gt.json"
    gt_path.write_text(
        json.dumps({"info": {}, "images": images, "annotations": anns, "categories": categories})
    )
    # detections: the same number on every image (100 for val2017: a detector's max_det at conf 0.001). On an
    # image with boxes, 80% are jittered copies of them (by N(0, s) of the box size, s per detection): half
    # with the box's class and a score falling with s, half with another class at a low score (the class
    # hypotheses a multi-label head keeps above 0.001); the rest are background boxes of any class.
    per = n_dets // n_images
    dim = np.repeat(np.arange(n_images), per)
    counts = np.bincount(im, minlength=n_images)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    hit = (rng.uniform(size=len(dim)) < 0.8) & (counts[dim] > 0)
    src = (starts[dim] + np.floor(rng.uniform(size=len(dim)) * counts[dim]).astype(int))[hit]
    n_hit = len(src)
    spread = rng.uniform(0.02, 0.35, size=n_hit)
    hbox = (
        gbox[src] + rng.normal(0, 1, size=(n_hit, 4)) * spread[:, None] * np.c_[gbox[src, 2:], gbox[src, 2:]]
    )
    hbox[:, 2:] = np.maximum(hbox[:, 2:], 1.0)
    wrong = rng.uniform(size=n_hit) < 0.5
    hcat = np.where(wrong, cats[rng.integers(0, len(cats), n_hit)], gcat[src])
    hscore = np.where(
        wrong, rng.beta(1, 10, n_hit), np.clip(1.0 - spread * 2.5 + rng.normal(0, 0.15, n_hit), 0.001, 1.0)
    )
    bim = dim[~hit]
    n_bg = len(bim)
    bfrac = np.exp(rng.uniform(np.log(0.02), np.log(0.6), size=(n_bg, 2)))
    bbw, bbh = bfrac[:, 0] * w[bim], bfrac[:, 1] * h[bim]
    bbox = np.c_[rng.uniform(0, 1, n_bg) * (w[bim] - bbw), rng.uniform(0, 1, n_bg) * (h[bim] - bbh), bbw, bbh]
    bcat = cats[rng.integers(0, len(cats), n_bg)]
    dimg = np.r_[img_ids[dim[hit]], img_ids[bim]]
    dbox = np.round(np.r_[hbox, bbox], 2)
    dcat = np.r_[hcat, bcat]
    dscore = np.maximum(np.round(np.r_[hscore, rng.beta(1, 8, size=n_bg)], 5), 0.001)
    order = np.argsort(dimg, kind="stable")
    rows = [
        f'{{"image_id":{i},"category_id":{c},"bbox":[{b[0]},{b[1]},{b[2]},{b[3]}],"score":{s}}}'
        for i, c, b, s in zip(
            dimg[order].tolist(), dcat[order].tolist(), dbox[order].tolist(), dscore[order].tolist()
        )
    ]
    dt_path = folder / "dt.json"
    dt_path.write_text("[" + ",".join(rows) + "]")
    return gt_path, dt_path


def measure_median(cmd: list[str], out_file: Path, repeats: int) -> dict[str, float]:
    """:func:`measure` ``repeats`` times: the median wall and CPU time, the largest peak memory."""
    runs = [measure(cmd, out_file) for _ in range(max(repeats, 1))]
    return {
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "walls": [round(r["wall_s"], 3) for r in runs],
    }


def measure(cmd: list[str], out_file: Path) -> dict[str, float]:
    """Run ``cmd`` once under ``/usr/bin/time -v`` (stdout to ``out_file``): wall and CPU (user + system)
    seconds, peak RSS in MB. On a shared machine the CPU time is the figure other jobs disturb least."""
    with open(out_file, "w") as out:
        t0 = time.perf_counter()
        p = subprocess.run(
            ["/usr/bin/time", "-v", *cmd], check=False, stdout=out, stderr=subprocess.PIPE, text=True
        )
        wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    cpu = sum(
        float(re.search(rf"{k} time \(seconds\): ([\d.]+)", p.stderr).group(1)) for k in ("User", "System")
    )
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss_kb / 1024}


KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--cache",
        type=Path,
        default=ROOT / "bench_out" / "coco_eval",
        help="where gt.json / dt.json are kept",
    )
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--boxes", type=int, default=30_000)
    ap.add_argument("--dets", type=int, default=500_000)
    ap.add_argument("--repeats", type=int, default=5, help="runs of detkit and of hotcoco's CLI (median)")
    ap.add_argument("--pycoco-repeats", type=int, default=1, help="runs of pycocotools (median)")
    ap.add_argument("--detkit-args", default="", help="extra options for detkit coco eval (e.g. --no-tide)")
    args = ap.parse_args()
    folder = args.cache / f"{args.images}_{args.boxes}_{args.dets}"
    gt, dt = folder / "gt.json", folder / "dt.json"
    if not dt.exists():
        t0 = time.perf_counter()
        generate(folder, args.images, args.boxes, args.dets)
        print(f"generated {folder} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    n_dt = len(json.loads(dt.read_text()))
    print(
        f"case: {gt} ({args.images:,} images, {args.boxes:,} boxes), {dt} ({n_dt:,} detections, "
        f"{dt.stat().st_size / 1e6:.0f} MB)"
    )
    py = sys.executable
    runs = {
        "pycocotools": [py, "-c", PYCOCO_SCRIPT, str(gt), str(dt)],
        "hotcoco CLI": [str(Path(py).parent / "coco"), "eval", "--gt", str(gt), "--dt", str(dt), "--json"],
        "detkit": [py, "-m", "detkit", "coco", "eval", str(gt), str(dt), "--json", *args.detkit_args.split()],
    }
    env_note = os.environ.get("OMP_NUM_THREADS", "unset")
    compileall.compile_dir(ROOT / "detkit", quiet=1)
    res, stats = {}, {}
    for name, cmd in runs.items():
        out = folder / f"{name.split()[0]}.out.json"
        res[name] = measure_median(cmd, out, args.pycoco_repeats if name == "pycocotools" else args.repeats)
        doc = json.loads(out.read_text())
        stats[name] = (
            doc["stats"]
            if name == "pycocotools"
            else [doc["metrics"][k] for k in KEYS]
            if name == "hotcoco CLI"
            else [doc["summary"][k] for k in KEYS]
        )
        print(
            f"{name:12} {res[name]['wall_s']:8.2f} s {res[name]['peak_rss_mb']:8.0f} MB  (runs: "
            f"{res[name]['walls']})",
            file=sys.stderr,
        )
    ref = np.asarray(stats["pycocotools"])
    print(
        f"\n{'(median)':12} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12}   12 numbers (max |diff| vs "
        "pycocotools)"
    )
    for name, m in res.items():
        diff = float(np.abs(np.asarray(stats[name]) - ref).max())
        print(f"{name:12} {m['wall_s']:8.2f} {m['cpu_s']:8.2f} {m['peak_rss_mb']:12.0f}   {diff:.1e}")
    dk, pc, hc = res["detkit"], res["pycocotools"], res["hotcoco CLI"]
    print(
        f"\ndetkit vs pycocotools: {pc['wall_s'] / dk['wall_s']:.1f}x faster by wall time, "
        f"{pc['cpu_s'] / dk['cpu_s']:.1f}x "
        f"by CPU time (target >= 50x), {dk['peak_rss_mb'] / pc['peak_rss_mb']:.2f} of its peak memory "
        "(target <= 0.25)"
    )
    print(
        f"detkit vs hotcoco CLI: {dk['wall_s'] / hc['wall_s']:.2f}x its wall time, "
        f"{dk['cpu_s'] / hc['cpu_s']:.2f}x its CPU "
        f"time (target <= 2x), {dk['peak_rss_mb'] / hc['peak_rss_mb']:.2f} of its memory"
    )
    same = all(np.allclose(stats[n], ref, rtol=0, atol=1e-9) for n in stats)
    print(
        f"same 12 numbers (1e-9): {same}; AP {ref[0]:.6f}  AP50 {ref[1]:.6f}; OMP_NUM_THREADS={env_note}; "
        f"load average {Path('/proc/loadavg').read_text().split()[:3]}"
    )
    if not same:
        raise SystemExit("the three disagree on the 12 numbers")


if __name__ == "__main__":
    main()
