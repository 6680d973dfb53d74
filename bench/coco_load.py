"""detkit vs pycocotools on an instances_train2017-sized COCO file: load + class distribution.

    python bench/coco_load.py [--cache bench_out/coco_load] [--images 118287] [--annotations 860001] [--repeat
    1]

Writes (once, then reuses) a synthetic COCO file at the scale of ``instances_train2017.json`` — 118,287
images, ~860k annotations with polygon segmentations, ~400 MB — and runs, each in its own process
measured with ``/usr/bin/time -v`` (or ``resource.getrusage`` of the child when that is missing):

  detkit       detkit coco classes BIG.json --json
  pycocotools  COCO(BIG.json) + per-class instance and image counts from its indexes

It checks both give the same counts and prints wall time, peak RSS and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
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
from collections import Counter
with contextlib.redirect_stdout(sys.stderr):  # pycocotools prints progress to stdout
    from pycocotools.coco import COCO
    coco = COCO(sys.argv[1])
inst = Counter(a["category_id"] for a in coco.dataset["annotations"])
rows = [
    {"id": c, "name": coco.cats[c]["name"], "instances": inst.get(c, 0), "images": len({*coco.catToImgs[c]})}
    for c in coco.getCatIds()
]
rows.sort(key=lambda r: (-r["instances"], r["name"]))
json.dump({"classes": rows}, sys.stdout)
"""


def generate(path: Path, n_images: int, n_anns: int, seed: int = 0) -> None:
    """Write a COCO instances file of the given size quickly (numpy + string building, chunked)."""
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    # a pool of polygon strings reused across annotations: realistic bytes without formatting 40M floats
    pool = []
    for _ in range(4096):
        k = int(rng.integers(8, 41))
        pts = rng.uniform(0, 640, size=2 * k)
        pool.append("[[" + ",".join(f"{v:.2f}" for v in pts) + "]]")
    w = rng.choice([640, 500, 480, 427, 375, 612], size=n_images)
    h = rng.choice([480, 427, 640, 375, 333, 500], size=n_images)
    img_ids = np.sort(rng.choice(600_000, size=n_images, replace=False)) + 1
    with open(tmp, "w", encoding="utf-8") as f:
        f.write('{"info":{"description":"detkit bench: COCO 2017 scale","version":"1.0","year":2017},')
        f.write(
            '"licenses":[{"url":"http://creativecommons.org/licenses/by-nc-sa/2.0/",'
            '"id":1,"name":"by-nc-sa"}],'
        )
        f.write('"images":[')
        f.write(
            ",".join(
                f'{{"license":1,"file_name":"{i:012d}.jpg",'
                f'"coco_url":"http://images.cocodataset.org/train2017/{i:012d}.jpg",'
                f'"height":{hh},"width":{ww},"date_captured":"2013-11-14 16:28:13",'
                f'"flickr_url":"http://farm4.staticflickr.com/3153/{i}_a0f9dd1c57_z.jpg","id":{i}}}'
                for i, ww, hh in zip(img_ids.tolist(), w.tolist(), h.tolist())
            )
        )
        f.write('],"annotations":[')
        chunk = 100_000
        for start in range(0, n_anns, chunk):
            m = min(chunk, n_anns - start)
            im = rng.integers(0, n_images, size=m)
            iw, ih = w[im], h[im]
            bw = rng.uniform(0.02, 0.6, size=m) * iw
            bh = rng.uniform(0.02, 0.6, size=m) * ih
            bx = rng.uniform(0, 1, size=m) * (iw - bw)
            by = rng.uniform(0, 1, size=m) * (ih - bh)
            area = bw * bh * rng.uniform(0.4, 0.95, size=m)
            cat = np.asarray(COCO80_IDS)[np.minimum(rng.geometric(0.08, size=m) - 1, 79)]
            poly = rng.integers(0, len(pool), size=m)
            crowd = (rng.uniform(size=m) < 0.01).astype(int)
            if start:
                f.write(",")
            f.write(
                ",".join(
                    f'{{"segmentation":{pool[p]},"area":{a:.4f},"iscrowd":{c},"image_id":{img_ids[i]},'
                    f'"bbox":[{x:.2f},{y:.2f},{ww:.2f},{hh:.2f}],"category_id":{k},"id":{start + j + 1}}}'
                    for j, (p, a, c, i, x, y, ww, hh, k) in enumerate(
                        zip(
                            poly.tolist(),
                            area.tolist(),
                            crowd.tolist(),
                            im.tolist(),
                            bx.tolist(),
                            by.tolist(),
                            bw.tolist(),
                            bh.tolist(),
                            cat.tolist(),
                        )
                    )
                )
            )
        f.write('],"categories":[')
        f.write(
            ",".join(
                f'{{"supercategory":"thing","id":{i},"name":"{n}"}}' for i, n in zip(COCO80_IDS, COCO80_NAMES)
            )
        )
        f.write("]}")
    os.replace(tmp, path)


def measure(cmd: list[str], out_file: Path) -> dict[str, float]:
    """Run ``cmd`` once (stdout to ``out_file``); wall seconds and peak RSS in MB of the process."""
    time_bin = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    with open(out_file, "w") as out:
        if time_bin:
            t0 = time.perf_counter()
            p = subprocess.run(
                [time_bin, "-v", *cmd], check=False, stdout=out, stderr=subprocess.PIPE, text=True
            )
            wall = time.perf_counter() - t0
            if p.returncode != 0:
                raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
            rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
            return {"wall_s": wall, "peak_rss_mb": rss_kb / 1024, "via": "/usr/bin/time -v"}
        import resource

        t0 = time.perf_counter()
        p = subprocess.run(cmd, check=False, stdout=out, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
        rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # max over children so far
        return {"wall_s": wall, "peak_rss_mb": rss_kb / 1024, "via": "getrusage(RUSAGE_CHILDREN)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--cache", type=Path, default=ROOT / "bench_out" / "coco_load", help="where BIG.json is kept"
    )
    ap.add_argument("--images", type=int, default=118_287)
    ap.add_argument("--annotations", type=int, default=860_001)
    ap.add_argument(
        "--repeat", type=int, default=1, help="runs of each; the fastest run (and its memory) counts"
    )
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    big = args.cache / f"instances_bench_{args.images}_{args.annotations}.json"
    if not big.exists():
        t0 = time.perf_counter()
        generate(big, args.images, args.annotations)
        print(f"generated {big} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    print(
        f"file: {big} ({big.stat().st_size / 1e6:.0f} MB, {args.images:,} images, {args.annotations:,} "
        "annotations)"
    )

    env_py = sys.executable
    # pycocotools first (the run that also warms the page cache for the file is then the baseline's)
    py_cmd = [env_py, "-c", PYCOCO_SCRIPT, str(big)]
    dk_cmd = [env_py, "-m", "detkit", "coco", "classes", str(big), "--json"]
    py = min(
        (measure(py_cmd, args.cache / "pycocotools.json") for _ in range(args.repeat)),
        key=lambda m: m["wall_s"],
    )
    dk = min(
        (measure(dk_cmd, args.cache / "detkit.json") for _ in range(args.repeat)), key=lambda m: m["wall_s"]
    )
    a = json.loads((args.cache / "pycocotools.json").read_text())["classes"]
    b = json.loads((args.cache / "detkit.json").read_text())["classes"]
    same = [(r["id"], r["instances"], r["images"]) for r in a] == [
        (r["id"], r["instances"], r["images"]) for r in b
    ]
    print(f"{'':12} {'wall s':>8} {'peak RSS MB':>12}")
    for name, m in (("pycocotools", py), ("detkit", dk)):
        print(f"{name:12} {m['wall_s']:8.2f} {m['peak_rss_mb']:12.0f}")
    print(
        f"speed-up {py['wall_s'] / dk['wall_s']:.1f}x (target >= 10x), memory "
        f"{dk['peak_rss_mb'] / py['peak_rss_mb']:.2f} "
        f"of pycocotools (target <= 0.5); same counts: {same}; measured with {dk['via']}"
    )
    if not same:
        raise SystemExit("detkit and pycocotools disagree on the class counts")


if __name__ == "__main__":
    main()
