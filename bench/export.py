"""Exported models side by side: CPU batch-1 latency (p50, p95) and batch-16 throughput of the detector at
416 px and the classifier at 64 px through torch eager, TorchScript and onnxruntime, in one run.

The models are real ``detkit ... train`` checkpoints (one optimizer step on generated data: latency does not
depend on the weights) exported with ``detkit yolo export`` / ``detkit classify export --dynamic``, and each
backend is timed through the very call ``yolo predict`` / ``Detector`` / ``Classifier`` make
(:meth:`detkit.deploy.runtime.Exported.run`: uint8 canvases in, numpy arrays out). Backends are interleaved
call by call, so a burst of load from elsewhere hits all of them alike. The baseline is torch eager measured
in the same run; goal: onnxruntime batch-1 p50 <= 2/3 of torch eager's (``ok`` in the output). All backends
run with the same thread count (``--threads``, default 1: the figure a busy 2-core machine gives). Where a GPU
is present, torch bf16 and onnxruntime's CUDA provider are timed too; where none is, the output says so.

    python bench/export.py                  # ~2-3 minutes on 2 cores
    python bench/export.py --json --threads 2 --repeats 30
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

GOAL = 2 / 3
DETKIT = [sys.executable, "-m", "detkit"]


def _detkit(args: list[str]) -> None:
    env = {**os.environ, "DETKIT_NO_PROGRESS": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [*DETKIT, *map(str, args)], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if r.returncode != 0:
        raise SystemExit(f"detkit {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr[-2000:]}")


def _models(work: Path, width: float) -> dict[str, Path]:
    """Checkpoints (one step) and their exports: detector at 416, classifier at 64."""
    _detkit(["data", "synth", work / "shapes", "--images", "8", "--size", "128", "--seed", "0"])
    _detkit(
        [
            "yolo",
            "train",
            "--data",
            work / "shapes" / "instances.json",
            "--out",
            work / "det",
            "--epochs",
            "1",
        ]
        + ["--batch", "2", "--max-steps", "1", "--img-size", "416", "--width", width, "--workers", "0"]
        + ["--device", "cpu", "--no-augment"]
    )
    _detkit(["data", "synth", work / "tiny", "--task", "classify", "--classes", "5", "--per-class", "6"])
    _detkit(
        ["classify", "train", "--data", work / "tiny", "--out", work / "cls", "--epochs", "1", "--batch", "8"]
        + ["--img-size", "64", "--device", "cpu", "--cache-dir", work / "cache"]
    )
    paths = {"det.pt": work / "det" / "last.pt", "cls.pt": work / "cls" / "last.pt"}
    for task, cmd in (("det", "yolo"), ("cls", "classify")):
        for suffix in ("onnx", "ts"):
            paths[f"{task}.{suffix}"] = work / f"{task}.{suffix}"
            _detkit([cmd, "export", paths[f"{task}.pt"], paths[f"{task}.{suffix}"], "--dynamic"])
    return paths


def _backends(paths: dict[str, Path], task: str, threads: int, gpu: bool) -> dict:
    from detkit.classify.checkpoint import load_classifier
    from detkit.yolo.predict import load_detector

    load = load_detector if task == "det" else load_classifier
    out = {
        "torch eager": load(paths[f"{task}.pt"], "cpu", threads),
        "TorchScript": load(paths[f"{task}.ts"], "cpu", threads),
        "onnxruntime": load(paths[f"{task}.onnx"], "cpu", threads),
    }
    if gpu:
        import onnxruntime as ort

        out["torch eager (cuda, fp32)"] = load(paths[f"{task}.pt"], "cuda", threads)
        if "CUDAExecutionProvider" in ort.get_available_providers():
            out["onnxruntime (cuda)"] = load(paths[f"{task}.onnx"], "cuda", threads)
    return out


def _time(fn, x) -> float:
    t = time.perf_counter()
    fn(x)
    return time.perf_counter() - t


def _measure(models: dict, size: int, repeats: int, batches: int) -> list[dict]:
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    sixteen = rng.integers(0, 256, (16, size, size, 3), dtype=np.uint8)
    lat: dict[str, list[float]] = {k: [] for k in models}
    thr: dict[str, list[float]] = {k: [] for k in models}
    for m in models.values():  # warm-up: first calls allocate and (onnxruntime) plan
        m.run(one)
        m.run(sixteen)
    for rep in range(repeats):
        for k in models if rep % 2 == 0 else list(models)[::-1]:
            lat[k].append(_time(models[k].run, one))
    for rep in range(batches):
        for k in models if rep % 2 == 0 else list(models)[::-1]:
            thr[k].append(_time(models[k].run, sixteen))
    rows = []
    for k, m in models.items():
        ms = np.array(lat[k]) * 1000
        rows.append(
            {
                "backend": k,
                "threads": m.threads,
                "p50_ms": round(float(np.percentile(ms, 50)), 2),
                "p95_ms": round(float(np.percentile(ms, 95)), 2),
                "batch16_img_per_s": round(16 / float(np.median(thr[k])), 1),
            }
        )
    base = rows[0]["p50_ms"]
    for r in rows:
        r["p50_vs_torch"] = round(r["p50_ms"] / base, 3)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads of every backend")
    ap.add_argument("--repeats", type=int, default=20, help="batch-1 calls per backend")
    ap.add_argument("--batches", type=int, default=3, help="batch-16 calls per backend")
    ap.add_argument("--width", type=float, default=0.5, help="detector channel multiplier")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args()
    import torch

    gpu = torch.cuda.is_available()
    load = {"start": Path("/proc/loadavg").read_text().split()[:3]}
    with tempfile.TemporaryDirectory(prefix="detkit-export-bench-") as tmp:
        paths = _models(Path(tmp), args.width)
        results = {}
        for task, size, name in (
            ("det", 416, f"detector darknet19 x{args.width} @416"),
            ("cls", 64, "classifier @64"),
        ):
            rows = _measure(_backends(paths, task, args.threads, gpu), size, args.repeats, args.batches)
            ort_row = next(r for r in rows if r["backend"] == "onnxruntime")
            results[name] = {"rows": rows, "onnxruntime_ok": ort_row["p50_vs_torch"] <= GOAL}
    load["end"] = Path("/proc/loadavg").read_text().split()[:3]
    doc = {
        "goal": "onnxruntime batch-1 p50 <= 2/3 of torch eager (CPU)",
        "threads": args.threads,
        "gpu": torch.cuda.get_device_name(0) if gpu else None,
        "loadavg": load,
        "results": results,
    }
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        start, end = " ".join(load["start"]), " ".join(load["end"])
        print(f"threads {args.threads}, load average at start {start}, end {end}")
        print("GPU: " + (doc["gpu"] or "none on this machine: no GPU figures"))
        for name, res in results.items():
            print(f"\n{name}  (onnxruntime goal met: {'yes' if res['onnxruntime_ok'] else 'NO'})")
            print(f"{'backend':<22} {'p50 ms':>8} {'p95 ms':>8} {'x torch':>8} {'b16 img/s':>10}")
            for r in res["rows"]:
                print(
                    f"{r['backend']:<22} {r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} {r['p50_vs_torch']:>8.2f} "
                    f"{r['batch16_img_per_s']:>10.1f}"
                )
    return 0 if all(r["onnxruntime_ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
