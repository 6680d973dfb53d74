"""Why the model misses, at val2017 scale: `coco compare`'s bootstrap, `--per-image` and `coco suspects`.

    python bench/coco_compare.py [--cache bench_out/coco_eval] [--samples 1000]

On bench/coco_eval.py's generated case (5,000 images, ~30k boxes, 500,000 detections; written once and
reused from ``--cache``), B = A with every score multiplied by a random factor in 0.9..1.1 (a slightly
different model). Wall and CPU (all threads) seconds, in this process (loading excluded, the same for
every line):

  evaluate            detkit.evaluation.result.evaluate (what plain `coco eval` computes), the baseline
  per_image           evaluate with per_image=True, minus the baseline        target <= 0.5 s
  suspects            find_suspects                                           target <= 1 s
  bootstrap           paired_bootstrap(A, B, samples): matches at 10 IoUs for both sets once, then the
                      samples                                                 target <= 30 s for 1,000

and checks that the bootstrap's point estimates equal COCOeval's AP / AP50 / AP75 for A (to 1e-12).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", default="bench_out/coco_eval")
    ap.add_argument("--samples", type=int, default=1000)
    args = ap.parse_args()
    from coco_eval import generate

    from detkit.datasets.load import load_dataset
    from detkit.evaluation.compare import paired_bootstrap
    from detkit.evaluation.predictions import load_predictions
    from detkit.evaluation.result import evaluate
    from detkit.evaluation.suspects import find_suspects

    cache = Path(args.cache)
    gt_path, dt_path = cache / "gt.json", cache / "dt.json"
    if not (gt_path.exists() and dt_path.exists()):
        generate(cache, 5000, 30000, 500000)
    gt = load_dataset(gt_path)
    a, _ = load_predictions(dt_path, gt)
    rng = np.random.default_rng(0)
    b = a.take(np.arange(len(a)))
    b.score = a.score * rng.uniform(0.9, 1.1, len(a))
    times: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def timed(name: str, f):
        t, c = time.perf_counter(), time.process_time()
        out = f()
        times[name], cpu[name] = time.perf_counter() - t, time.process_time() - c
        return out

    base = timed("evaluate", lambda: evaluate(gt, a, tide=False))
    timed("evaluate_per_image", lambda: evaluate(gt, a, tide=False, per_image=True))
    s = timed("suspects", lambda: find_suspects(gt, a))
    r = timed("bootstrap", lambda: paired_bootstrap(gt, a, b, samples=args.samples, seed=0))
    times["per_image_added"] = times["evaluate_per_image"] - times["evaluate"]
    cpu["per_image_added"] = cpu["evaluate_per_image"] - cpu["evaluate"]
    exact = {k: abs(r["a"][k] - base.summary[k]) for k in ("AP", "AP50", "AP75")}
    print(
        json.dumps(
            {
                "images": gt.num_images,
                "boxes": gt.num_annotations,
                "detections": len(a),
                "samples": args.samples,
                "wall_s": {k: round(v, 3) for k, v in times.items()},
                "cpu_s (all threads)": {k: round(v, 3) for k, v in cpu.items()},
                "point_estimate_vs_cocoeval": exact,
                "delta": r["delta"],
                "interval": r["interval"],
                "suspects": len(s["suspects"]),
            },
            indent=2,
        )
    )
    assert max(exact.values()) < 1e-12, exact


if __name__ == "__main__":
    main()
