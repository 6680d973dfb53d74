"""detkit's detector (its defaults) against ultralytics YOLO11n (from scratch), same data, epochs, size,
batch and threads, both scored by ``detkit coco eval`` on the test split.

    python bench/peer_detect.py ../shared/data/roadsigns/data.yaml --epochs 20 --img-size 320
    python bench/peer_detect.py BCCD_yolo/data.yaml --epochs 30 --img-size 416 --only detkit

The data folder (the data.yaml's folder) is copied into ``--work`` first: ultralytics writes
``labels.cache`` beside the labels, and the source must stay untouched. YOLO11n runs through the ``yolo``
CLI of a separate environment (``--yolo``, default: ``yolo`` on PATH, else /work/ultra-venv/bin/yolo);
ultralytics is AGPL-3.0 and never imported here, by detkit or by its tests. When no CLI is found the
YOLO11n column is skipped. No weights are downloaded: YOLO11n is built from ``yolo11n.yaml``.

Per side: train (wall time, per epoch), predict the test split (detkit: ``detkit yolo eval`` on the
test split converted to COCO json; YOLO11n: ``yolo val split=test save_json=True``), then
``detkit coco eval test.json PRED --json`` (``--pred-format ultralytics`` for YOLO11n's file). Prints one
table (and ``--json``: one document).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def _run(cmd: list[str], log: Path, env: dict[str, str]) -> float:
    """Run ``cmd`` with its output in ``log``; returns the wall time; exits with the log's tail on failure."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    dt = time.perf_counter() - t0
    if rc != 0:
        sys.exit(f"{' '.join(cmd)} failed (exit {rc}); see {log}:\n" + log.read_text()[-2000:])
    return dt


def _score(test_json: Path, pred: Path, log: Path, env: dict[str, str], pred_format: str) -> dict[str, float]:
    cmd = ["detkit", "coco", "eval", str(test_json), str(pred), "--json", "--pred-format", pred_format]
    with open(log, "w") as f:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        f.write(out.stderr)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {out.stderr[-2000:]}")
    s = json.loads(out.stdout)["summary"]
    return {"mAP": float(s["AP"]), "mAP50": float(s["AP50"]), "mAP75": float(s["AP75"])}


def _yolo_cli(given: str | None) -> str | None:
    for c in (given, shutil.which("yolo"), "/work/ultra-venv/bin/yolo"):
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    return None


def run_detkit(a: argparse.Namespace, data: Path, work: Path, env: dict[str, str]) -> dict[str, float]:
    run = work / "detkit"
    shutil.rmtree(run, ignore_errors=True)
    cmd = ["detkit", "yolo", "train", "--data", str(data), "--epochs", str(a.epochs)]
    cmd += ["--img-size", str(a.img_size), "--batch", str(a.batch), "--threads", str(a.threads)]
    cmd += ["--workers", str(a.workers), "--seed", str(a.seed), "--out", str(run), *a.detkit_args]
    train_s = _run(cmd, work / "detkit_train.log", env)
    test_json = work / "test.json"
    ev = work / "detkit_eval"
    shutil.rmtree(ev, ignore_errors=True)
    cmd = ["detkit", "yolo", "eval", str(run / "best.pt"), "--data", str(test_json), "--out", str(ev)]
    cmd += ["--img-size", str(a.img_size), "--device", "cpu"]
    _run(cmd, work / "detkit_eval.log", env)
    scores = _score(test_json, ev / "predictions.json", work / "detkit_score.log", env, "coco")
    return {**scores, "train_s": train_s, "s_per_epoch": train_s / a.epochs}


def run_yolo11n(
    a: argparse.Namespace, yolo: str, data: Path, work: Path, env: dict[str, str]
) -> dict[str, float]:
    project = work / "ultra"
    shutil.rmtree(project, ignore_errors=True)
    common = [f"imgsz={a.img_size}", f"batch={a.batch}", "device=cpu", "plots=False", f"project={project}"]
    cmd = [yolo, "detect", "train", "model=yolo11n.yaml", f"data={data}", f"epochs={a.epochs}"]
    cmd += ["pretrained=False", "amp=False", f"seed={a.seed}", f"workers={a.workers}", "name=train", *common]
    train_s = _run(cmd, work / "yolo11n_train.log", env)
    best = project / "train" / "weights" / "best.pt"
    cmd = [yolo, "detect", "val", f"model={best}", f"data={data}", "split=test", "save_json=True"]
    cmd += ["conf=0.001", "name=test", *common]
    _run(cmd, work / "yolo11n_val.log", env)
    scores = _score(
        work / "test.json",
        project / "test" / "predictions.json",
        work / "yolo11n_score.log",
        env,
        "ultralytics",
    )
    return {**scores, "train_s": train_s, "s_per_epoch": train_s / a.epochs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="data.yaml (ultralytics layout with a test split)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--img-size", type=int, default=320)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each trainer")
    ap.add_argument("--workers", type=int, default=2, help="data-loading processes of each trainer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/detkit-peer"), help="scratch folder")
    ap.add_argument("--yolo", help="the ultralytics `yolo` CLI (default: on PATH, or /work/ultra-venv)")
    ap.add_argument("--only", choices=("detkit", "yolo11n"), help="run one side only")
    ap.add_argument("--detkit-args", nargs=argparse.REMAINDER, default=[], help="extra `yolo train` flags")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    a = ap.parse_args()

    if not a.data.is_file():
        sys.exit(f"{a.data}: no such file")
    a.work.mkdir(parents=True, exist_ok=True)
    copy = a.work / "data"
    if not copy.exists():  # a copy: ultralytics writes labels.cache beside the labels
        shutil.copytree(a.data.parent, copy, symlinks=False)
    data = copy / a.data.name
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads)}
    env["YOLO_OFFLINE"] = "1"
    # the ground truth both sides are scored on: the test split as COCO json (it names its image folder)
    cmd = [
        "detkit",
        "coco",
        "convert",
        str(data),
        str(a.work / "test.json"),
        "--to",
        "coco",
        "--split",
        "test",
    ]
    _run(cmd, a.work / "gt.log", env)
    rows: dict[str, dict[str, float] | str] = {}
    if a.only in (None, "detkit"):
        rows["detkit"] = run_detkit(a, data, a.work, env)
    if a.only in (None, "yolo11n"):
        yolo = _yolo_cli(a.yolo)
        rows["yolo11n"] = (
            run_yolo11n(a, yolo, data, a.work, env) if yolo else "skipped: no ultralytics `yolo` CLI found"
        )
    if a.json:
        print(json.dumps({"data": str(a.data), "epochs": a.epochs, "img_size": a.img_size, "runs": rows}))
        return
    print(
        f"{a.data} ({a.epochs} epochs, {a.img_size} px, batch {a.batch}, {a.threads} thread(s)), test split:"
    )
    print(f"{'':10} {'mAP':>7} {'AP50':>7} {'AP75':>7} {'train s':>9} {'s/epoch':>8}")
    for name, r in rows.items():
        if isinstance(r, str):
            print(f"{name:10} {r}")
        else:
            print(
                f"{name:10} {r['mAP']:7.3f} {r['mAP50']:7.3f} {r['mAP75']:7.3f} "
                f"{r['train_s']:9.0f} {r['s_per_epoch']:8.1f}"
            )


if __name__ == "__main__":
    main()
