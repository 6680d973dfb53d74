"""detkit vs hotcoco on an instances_train2017-sized COCO file: split, filter, sample and merge.

    python bench/coco_ops.py [--cache bench_out/coco_load] [--out bench_out/coco_ops] [--repeat 1]

Uses the synthetic train2017-scale file of bench/coco_load.py (generated there once and cached: 118,287
images, 860,001 annotations with polygons, ~430 MB) and its two halves (first / second half of the
images with their annotations, cached beside it). Each operation runs as a whole CLI process measured
with ``/usr/bin/time -v`` (wall time, peak RSS), hotcoco's ``coco`` CLI first, then detkit's:

  split   detkit coco split BIG OUT --ratios 0.8,0.1,0.1     coco split BIG -o P --val-frac 0.1 --test-frac
  0.1
  filter  detkit coco filter BIG o.json --classes 1,3,18      coco filter BIG -o o.json --cat-ids 1,3,18
          --empty drop                                        (drops images left empty by default)
  sample  detkit coco sample BIG o.json --n 10000             coco sample BIG -o o.json --n 10000
  merge   detkit coco merge A B o.json                        coco merge A B -o o.json

and checks the outputs: the same image and box counts (split: per split and in total; sample: the same number
of images, each with all its boxes), every box's image present. Targets: >= 10x faster at <= 1/2 the peak
memory."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import msgspec
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from coco_load import generate, measure

CLASSES = "1,3,18"  # person, car, dog (COCO ids): a common "keep a few classes" filter


class _Img(msgspec.Struct, gc=False):
    id: int


class _Ann(msgspec.Struct, gc=False):
    id: int
    image_id: int


class _Counts(msgspec.Struct):
    images: list[_Img]
    annotations: list[_Ann] = []


class _RawDoc(msgspec.Struct):
    images: list[msgspec.Raw]
    annotations: list[msgspec.Raw] = []
    categories: list[msgspec.Raw] = []
    info: msgspec.Raw = msgspec.Raw()
    licenses: msgspec.Raw = msgspec.Raw()


def ids(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(image ids, each annotation's image id) of a COCO file."""
    doc = msgspec.json.decode(path.read_bytes(), type=_Counts)
    return np.array([i.id for i in doc.images]), np.array([a.image_id for a in doc.annotations])


def halves(big: Path, cache: Path) -> tuple[Path, Path]:
    """Write (once) the first and second half of BIG's images, each with its annotations."""
    a, b = cache / f"{big.stem}_half_a.json", cache / f"{big.stem}_half_b.json"
    if a.exists() and b.exists():
        return a, b
    data = big.read_bytes()
    doc = msgspec.json.decode(data, type=_RawDoc)
    img_ids, ann_img = ids(big)
    cut = len(img_ids) // 2
    first = np.isin(ann_img, img_ids[:cut])
    for path, rows, anns in (
        (a, slice(0, cut), np.flatnonzero(first)),
        (b, slice(cut, None), np.flatnonzero(~first)),
    ):
        with open(path.with_suffix(".tmp"), "wb") as f:
            f.write(b'{"info":' + bytes(doc.info) + b',"licenses":' + bytes(doc.licenses) + b',"images":[')
            f.write(b",".join(doc.images[rows]))
            f.write(b'],"annotations":[')
            f.write(b",".join([doc.annotations[i] for i in anns.tolist()]))
            f.write(b'],"categories":[' + b",".join(doc.categories) + b"]}")
        path.with_suffix(".tmp").replace(path)
    return a, b


def counts(files: list[Path]) -> list[tuple[int, int]]:
    """(images, boxes) per output file; every box's image must be in its file."""
    out = []
    for f in files:
        im, ai = ids(f)
        if not np.isin(ai, im).all():
            raise SystemExit(f"{f}: boxes whose image is not in the file")
        out.append((len(im), len(ai)))
    return out


def boxes_of(big_ann_img: np.ndarray, f: Path) -> bool:
    """True when every image of ``f`` kept all of its boxes from BIG."""
    im, ai = ids(f)
    return int(np.isin(big_ann_img, im).sum()) == len(ai)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--cache", type=Path, default=ROOT / "bench_out" / "coco_load", help="where BIG.json is kept"
    )
    ap.add_argument(
        "--out", type=Path, default=ROOT / "bench_out" / "coco_ops", help="outputs (replaced each run)"
    )
    ap.add_argument("--images", type=int, default=118_287)
    ap.add_argument("--annotations", type=int, default=860_001)
    ap.add_argument(
        "--repeat", type=int, default=1, help="runs of each; the fastest run (and its memory) counts"
    )
    ap.add_argument("--only", default="split,filter,sample,merge", help="comma-separated operations to run")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    big = args.cache / f"instances_bench_{args.images}_{args.annotations}.json"
    if not big.exists():
        generate(big, args.images, args.annotations)
    a, b = halves(big, args.cache)
    print(f"file: {big} ({big.stat().st_size / 1e6:.0f} MB); halves {a.name}, {b.name}")
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}")
    o = args.out
    py, coco = sys.executable, shutil.which("coco") or str(Path(sys.executable).parent / "coco")
    dk = [py, "-m", "detkit", "coco"]
    ops = {
        "split": (
            [
                coco,
                "split",
                str(big),
                "-o",
                str(o / "hc_split"),
                "--val-frac",
                "0.1",
                "--test-frac",
                "0.1",
                "--seed",
                "0",
            ],
            [*dk, "split", str(big), str(o / "dk_split"), "--ratios", "0.8,0.1,0.1", "--seed", "0"],
            [o / f"hc_split_{s}.json" for s in ("train", "val", "test")],
            [o / "dk_split" / f"{s}.json" for s in ("train", "val", "test")],
        ),
        "filter": (
            [coco, "filter", str(big), "-o", str(o / "hc_filter.json"), "--cat-ids", CLASSES],
            [*dk, "filter", str(big), str(o / "dk_filter.json"), "--classes", CLASSES, "--empty", "drop"],
            [o / "hc_filter.json"],
            [o / "dk_filter.json"],
        ),
        "sample": (
            [coco, "sample", str(big), "-o", str(o / "hc_sample.json"), "--n", "10000", "--seed", "0"],
            [*dk, "sample", str(big), str(o / "dk_sample.json"), "--n", "10000", "--seed", "0"],
            [o / "hc_sample.json"],
            [o / "dk_sample.json"],
        ),
        "merge": (
            [coco, "merge", str(a), str(b), "-o", str(o / "hc_merge.json")],
            [*dk, "merge", str(a), str(b), str(o / "dk_merge.json")],
            [o / "hc_merge.json"],
            [o / "dk_merge.json"],
        ),
    }
    _, big_ann_img = ids(big)
    rows, ok = [], True
    for name in args.only.split(","):
        hc_cmd, dk_cmd, hc_files, dk_files = ops[name]
        best = {}
        for who, cmd in (("hotcoco", hc_cmd), ("detkit", dk_cmd)):
            runs = []
            for _ in range(args.repeat):
                shutil.rmtree(o, ignore_errors=True)
                o.mkdir(parents=True)
                runs.append(measure(cmd, o.parent / f"coco_ops_{who}_{name}.stdout"))
            best[who] = min(runs, key=lambda m: m["wall_s"])
            best[who + "_counts"] = counts(hc_files if who == "hotcoco" else dk_files)
            if name == "sample":
                best[who + "_whole"] = boxes_of(big_ann_img, (hc_files if who == "hotcoco" else dk_files)[0])
        h, d = best["hotcoco_counts"], best["detkit_counts"]
        if name == "split":
            same = [x[0] for x in h] == [x[0] for x in d] and sum(x[1] for x in d) == sum(
                x[1] for x in h
            ) == len(big_ann_img)
        elif name == "sample":
            same = h[0][0] == d[0][0] and best["hotcoco_whole"] and best["detkit_whole"]
        else:
            same = h == d
        ok &= same
        rows.append((name, best["hotcoco"], best["detkit"], h, d, same))
    print(f"load average after:  {Path('/proc/loadavg').read_text().strip()}")
    print(
        f"{'':7} {'hotcoco s':>9} {'MB':>6} {'detkit s':>9} {'MB':>6} {'speed-up':>9} {'memory':>7}  "
        "counts (images, boxes)"
    )
    for name, h, d, hc, dc, same in rows:
        print(
            f"{name:7} {h['wall_s']:9.2f} {h['peak_rss_mb']:6.0f} {d['wall_s']:9.2f} {d['peak_rss_mb']:6.0f} "
            f"{h['wall_s'] / d['wall_s']:8.1f}x {d['peak_rss_mb'] / h['peak_rss_mb']:7.2f}  "
            f"{'same' if same else 'DIFFERENT'}: detkit {dc} hotcoco {hc}"
        )
    print("targets: speed-up >= 10x, memory <= 0.50 of hotcoco's peak RSS; measured with /usr/bin/time -v")
    if not ok:
        raise SystemExit("detkit and hotcoco disagree on the counts")


if __name__ == "__main__":
    main()
