"""detkit's YOLO label reader at COCO train2017 scale, cold and cached, against a plain per-line reader.

    python bench/yolo_load.py [--folder /tmp/detkit-yolo-bench] [--files 118287] [--rows 860001]
        [--big-rows 5800000]

Writes (once, then reuses) under ``--folder`` (never inside the repository):

  train2017/  an ultralytics layout of ``--files`` label files (``--rows`` rows, about 1% of the images
              without a label file, as COCO has) and as many tiny valid JPEG headers (631 bytes each, the
              SOF patched to COCO's sizes), with a data.yaml naming the 80 COCO classes;
  big/        one image and one label file of ``--big-rows`` rows (222 MB at 6 decimals; the issue's
              file of as many rows was 100 MB);
  big-g/      the same rows with 6 significant digits (``%g``, fields of differing length, as
              ultralytics' own COCO labels are written: also 222 MB).

and runs, each in its own process (wall time, CPU seconds, peak RSS and page faults by ``/usr/bin/time -v``):

  baseline  ultralytics' label scan when ultralytics is installed here or ``--ultralytics-python``
            names a Python that has it (``YOLODataset(...)``: a first scan, its labels.cache removed
            before and after, then ``get_labels()`` from that cache; its own timings printed too), else a
            plain reader: per image PIL's header size, per label line ``line.split()`` and ``float()``;
  cold      ``detkit coco classes data.yaml --json`` with the label cache removed first;
  cached    the same command three times (the cache the cold run wrote is read): the median run;
  big       ``detkit coco classes big/data.yaml --json`` with the cache folder emptied first (a first
            read, which writes the cache); ``big %g`` the same on ``big-g/``.

It checks detkit's image and box counts equal the baseline's and prints the figures against the targets
(targets: cold <= 10 s, cached <= 1 s on 2 cores, <= 150 bytes per box, the big file <= 5 s); exit 1 when
one is missed (wall times depend on the machine's load: the load average is printed with them).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
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

from detkit.datasets.model import COCO80_NAMES

SIZES = ((640, 480), (640, 427), (500, 375), (480, 640), (427, 640), (612, 612), (640, 360))


def tiny_jpeg(width: int, height: int) -> bytes:
    """A valid 8x8 JPEG whose SOF0 header claims ``width`` x ``height`` (PIL reads the header only)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG", quality=50)
    data = bytearray(buf.getvalue())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 7] = height.to_bytes(2, "big")
    data[sof + 7 : sof + 9] = width.to_bytes(2, "big")
    return bytes(data)


def label_text(rng: np.random.Generator, n: int, fmt: str = ".6f") -> str:
    """``n`` rows ``class cx cy w h``, boxes inside the image, each number formatted by ``fmt``: ``.6f``,
    6 decimals, or ``g``, 6 significant digits (``0.5955 0.479492 0.0415603``: ultralytics' own COCO
    labels, whose fields differ in length)."""
    cls = np.minimum(rng.geometric(0.08, size=n) - 1, 79)
    w, h = rng.uniform(0.01, 0.6, n), rng.uniform(0.01, 0.6, n)
    cx, cy = w / 2 + rng.uniform(0, 1, n) * (1 - w), h / 2 + rng.uniform(0, 1, n) * (1 - h)
    return "".join(
        f"{c} {a:{fmt}} {b:{fmt}} {d:{fmt}} {e:{fmt}}\n"
        for c, a, b, d, e in zip(cls.tolist(), cx.tolist(), cy.tolist(), w.tolist(), h.tolist())
    )


def _yaml(root: Path, split: str) -> None:
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(COCO80_NAMES))
    (root / "data.yaml").write_text(f"train: images/{split}\nnames:\n{names}\n")  # relative to the yaml


def generate(root: Path, n_files: int, n_rows: int, seed: int = 0) -> None:
    """The train2017-sized layout (module docstring); written to ``root.tmp`` and renamed."""
    rng = np.random.default_rng(seed)
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    img_dir, lbl_dir = tmp / "images" / "train2017", tmp / "labels" / "train2017"
    img_dir.mkdir(parents=True)
    lbl_dir.mkdir(parents=True)
    heads = [tiny_jpeg(w, h) for w, h in SIZES]
    has_label = rng.uniform(size=n_files) >= 0.01
    counts = np.zeros(n_files, dtype=np.int64)
    k = int(has_label.sum())
    counts[has_label] = 1 + rng.multinomial(n_rows - k, np.full(k, 1 / k))  # each label file >= 1 row
    sizes = rng.integers(0, len(SIZES), n_files)
    for i in range(n_files):
        stem = f"{i + 1:012d}"
        (img_dir / f"{stem}.jpg").write_bytes(heads[sizes[i]])
        if has_label[i]:
            (lbl_dir / f"{stem}.txt").write_text(label_text(rng, int(counts[i])))
    _yaml(tmp, "train2017")
    os.replace(tmp, root)


def generate_big(root: Path, n_rows: int, seed: int = 1, fmt: str = ".6f") -> None:
    """One image and one label file of ``n_rows`` rows (numbers formatted by ``fmt``, as
    :func:`label_text`)."""
    rng = np.random.default_rng(seed)
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images" / "train").mkdir(parents=True)
    (tmp / "labels" / "train").mkdir(parents=True)
    (tmp / "images" / "train" / "big.jpg").write_bytes(tiny_jpeg(640, 480))
    with open(tmp / "labels" / "train" / "big.txt", "w") as f:
        for s in range(0, n_rows, 500_000):
            f.write(label_text(rng, min(500_000, n_rows - s), fmt))
    _yaml(tmp, "train")
    os.replace(tmp, root)


PLAIN_SCRIPT = r"""
import json, sys
from pathlib import Path
from PIL import Image
root = Path(sys.argv[1])
exts = (".jpg", ".png")
images = sorted(p for p in (root / "images").rglob("*") if p.suffix.lower() in exts and p.is_file())
n_img = n_box = 0
for img in images:
    with Image.open(img) as im:
        w, h = im.size
    n_img += 1
    lf = Path(str(img).replace("/images/", "/labels/")).with_suffix(".txt")
    if not lf.is_file():
        continue
    for line in lf.read_text().splitlines():
        parts = line.split()
        if len(parts) == 5:
            c, cx, cy, bw, bh = int(parts[0]), *map(float, parts[1:])
            n_box += 1
json.dump({"images": n_img, "annotations": n_box}, sys.stdout)
"""

ULTRA_SCRIPT = r"""
import json, sys, time
from pathlib import Path
out, sys.stdout = sys.stdout, sys.stderr  # its log and progress lines to stderr, the JSON alone to stdout
root = Path(sys.argv[1])
for c in (root / "labels").glob("*.cache"):  # its own cache from an earlier run: a first scan each time
    c.unlink()
t0 = time.perf_counter()
from ultralytics.data.dataset import YOLODataset
t1 = time.perf_counter()
names = {i: f"c{i}" for i in range(80)}
data = {"names": names, "channels": 3}
ds = YOLODataset(img_path=str(root / "images"), data=data, task="detect", cache=False)
t2 = time.perf_counter()
labels = ds.get_labels()  # read back from the labels.cache the first scan wrote
t3 = time.perf_counter()
for c in (root / "labels").glob("*.cache"):  # the generated folder as it was
    c.unlink()
doc = {"images": len(labels), "annotations": int(sum(len(l["cls"]) for l in labels))}
doc.update(import_s=t1 - t0, scan_s=t2 - t1, cached_s=t3 - t2)
json.dump(doc, out)
"""


def measure(cmd: list[str], out_file: Path) -> dict[str, float]:
    """Wall seconds, CPU seconds (user + system: what the run cost whatever else the machine ran) and peak
    RSS in MB of one run of ``cmd`` (stdout to ``out_file``), by ``/usr/bin/time -v``."""
    time_bin = shutil.which("time") or "/usr/bin/time"
    with open(out_file, "w") as out:
        t0 = time.perf_counter()
        p = subprocess.run([time_bin, "-v", *cmd], check=False, stdout=out, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")

    def field(name: str) -> float:
        return float(re.search(rf"{name}: ([\d.]+)", p.stderr).group(1))

    cpu = field(r"User time \(seconds\)") + field(r"System time \(seconds\)")
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mb": field(r"Maximum resident set size \(kbytes\)") / 1024,
        "minor_faults": field(r"Minor \(reclaiming a frame\) page faults"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folder", type=Path, default=Path("/tmp/detkit-yolo-bench"))
    ap.add_argument("--files", type=int, default=118_287)
    ap.add_argument("--rows", type=int, default=860_001)
    ap.add_argument("--big-rows", type=int, default=5_800_000)
    ap.add_argument("--skip-baseline", action="store_true", help="measure detkit only")
    ap.add_argument(
        "--ultralytics-python",
        help="a Python with ultralytics installed (its own environment), for the baseline",
    )
    args = ap.parse_args()
    if ROOT in args.folder.resolve().parents:
        raise SystemExit("--folder must be outside the repository")
    train, big, big_g = args.folder / "train2017", args.folder / "big", args.folder / "big-g"
    for path, make in (
        (train, lambda: generate(train, args.files, args.rows)),
        (big, lambda: generate_big(big, args.big_rows)),
        (big_g, lambda: generate_big(big_g, args.big_rows, fmt="g")),
    ):
        if not path.exists():
            t0 = time.perf_counter()
            make()
            print(f"generated {path} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    out = args.folder / "results"
    out.mkdir(exist_ok=True)
    cache = args.folder / "cache"
    env = {**os.environ, "DETKIT_CACHE_DIR": str(cache), "DETKIT_NO_PROGRESS": "1"}
    os.environ.update(env)
    py = sys.executable
    dk = [py, "-m", "detkit", "coco", "classes"]
    ultra = args.ultralytics_python or (py if importlib.util.find_spec("ultralytics") is not None else None)
    if ultra:  # AGPL: run in a child, never imported here
        base_name, base_cmd = "ultralytics", [ultra, "-c", ULTRA_SCRIPT, str(train)]
    else:
        base_name, base_cmd = "plain reader", [py, "-c", PLAIN_SCRIPT, str(train)]
    rows = []
    if not args.skip_baseline:
        rows.append((base_name, measure(base_cmd, out / "baseline.json"), out / "baseline.json"))
    shutil.rmtree(cache, ignore_errors=True)
    rows.append(
        (
            "detkit cold",
            measure([*dk, str(train / "data.yaml"), "--json"], out / "cold.json"),
            out / "cold.json",
        )
    )
    runs = [measure([*dk, str(train / "data.yaml"), "--json"], out / "cached.json") for _ in range(3)]
    cached_median = sorted(runs, key=lambda m: m["wall_s"])[1]
    rows.append(("detkit cached", cached_median, out / "cached.json"))
    for name, folder in (("detkit big file", big), ("detkit big %g", big_g)):
        shutil.rmtree(cache, ignore_errors=True)
        got = out / f"{folder.name}.json"
        rows.append((name, measure([*dk, str(folder / "data.yaml"), "--json"], got), got))
    counts = {}
    print(
        f"{'':16} {'wall s':>8} {'CPU s':>7} {'peak RSS MB':>12} {'page faults':>12} "
        f"{'images':>8} {'boxes':>9}"
    )
    for name, m, f in rows:
        doc = json.loads(f.read_text())
        counts[name] = (doc["images"], doc["annotations"])
        print(
            f"{name:16} {m['wall_s']:8.2f} {m['cpu_s']:7.2f} {m['peak_rss_mb']:12.0f} "
            f"{m['minor_faults']:12.0f} {doc['images']:8} {doc['annotations']:9}"
        )
    n_box = counts["detkit cold"][1]
    tiny = args.folder / "tiny"  # the same command on one box: the interpreter and its imports
    if not tiny.exists():
        generate_big(tiny, 1)
    empty = measure([*dk, str(tiny / "data.yaml"), "--json"], out / "tiny.json")
    cold, cached, bigf, bigg = (m for _, m, _ in rows[-4:])
    cached_walls = ", ".join(f"{m['wall_s']:.2f}" for m in runs)
    per_box = (cold["peak_rss_mb"] - empty["peak_rss_mb"]) * 2**20 / max(n_box, 1)
    per_big = (bigf["peak_rss_mb"] - empty["peak_rss_mb"]) * 2**20 / args.big_rows
    print(
        f"cold {cold['wall_s']:.2f} s / {cold['cpu_s']:.2f} CPU s (target <= 10), "
        f"cached {cached['wall_s']:.2f} s / {cached['cpu_s']:.2f} CPU s (<= 1; median of {cached_walls}), "
        f"{per_box:.0f} bytes per box over the one-box run's "
        f"{empty['peak_rss_mb']:.0f} MB (<= 150; big file {per_big:.0f}), big file {bigf['wall_s']:.2f} s / "
        f"{bigf['cpu_s']:.2f} CPU s (<= 5; %g: {bigg['wall_s']:.2f} s / {bigg['cpu_s']:.2f}); "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    targets = {
        "cold": (cold["wall_s"], 10),
        "cached": (cached["wall_s"], 1),
        "bytes per box": (per_box, 150),
        "big file": (bigf["wall_s"], 5),
    }
    missed = [f"{name} {got:.2f} > {limit}" for name, (got, limit) in targets.items() if got > limit]
    if not args.skip_baseline and base_name == "ultralytics":
        doc = json.loads((out / "baseline.json").read_text())
        print(
            f"ultralytics inside its process: import {doc['import_s']:.2f} s, first scan "
            f"{doc['scan_s']:.2f} s (writes labels.cache), cached read {doc['cached_s']:.2f} s"
        )
    if not args.skip_baseline:
        same = counts[base_name] == counts["detkit cold"] == counts["detkit cached"]
        print(f"{base_name} / detkit cold: {rows[0][1]['wall_s'] / cold['wall_s']:.1f}x; same counts: {same}")
        if not same:
            raise SystemExit("detkit and the baseline disagree on the counts")
    if missed:
        print("missed: " + "; ".join(missed))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
