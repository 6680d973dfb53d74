"""``detkit demo``: generate data, run every detkit tool on it through the CLI, write the report.

Each step is a real ``detkit ...`` command line, run in-process by the :class:`Runner` the demo is
given (``detkit/cli.py`` hands it ``detkit.cli.run``; this module never imports the CLI, so there is no
import cycle), so the demo exercises exactly what a user types and its report shows those commands.

Before anything runs, every option of every step is checked against the commands' real signatures: a
renamed or removed option stops the demo with one line naming the step, the option and the command,
instead of running something else. A step that fails at run time is logged (``OUT/logs/NN-step.log``)
and reported, and the demo goes on with the rest; the exit code is 1 when any step failed. The last
steps predict on held-out images and draw the ground truth beside the predictions for the report. The step
machinery (:class:`Runner`, :func:`run_step`, :func:`check_plan`) lives in :mod:`detkit.demo.steps`.

    detkit demo out/ --device cpu      # 1-3 minutes on 2 cores
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from detkit.console import emit_json, esc, info, progress
from detkit.demo.steps import Runner, Step, StepResult, check_plan, problem, run_step
from detkit.report.render import write_report
from detkit.train.runs import write_summary
from detkit.yolo.predict import write_gallery

__all__ = [
    "PRESETS",
    "Runner",
    "Step",
    "StepResult",
    "check_plan",
    "demo_command",
    "plan",
    "problem",
    "run_demo",
    "run_step",
]

# Sizes per mode: "quick" for tests, "cpu" for the 5-minute tour, "cuda" for a real (longer) training.
# fmt: off
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"det_images": 12, "det_val": 6, "det_size": 64, "cls_classes": 3, "cls_per_class": 10,
              "yolo_epochs": 1, "yolo_batch": 4, "yolo_size": 64, "yolo_width": 0.125, "yolo_lr": 3e-3,
              "yolo_eval_every": 1, "cls_epochs": 1, "cls_batch": 8, "cls_width": 0.25, "cls_size": 32,
              "gallery": 4},
    # The detector's training is nearly all of the demo's time (265 of 282 s at width 0.25, 2026-11-30; 323 s
    # in all as the demo grew). Width 0.125 (what teaches least: the user sees the same tools) costs 0.43x
    # the CPU and keeps held-out mAP@.5 (0.831 at 50 epochs against 0.847); 30 epochs at width 0.25 gave
    # 0.49 for 0.6x. 192 px (a 6x6 grid) rather than the images' own 128 (4x4): at 4x4 too many shapes
    # share a cell and held-out mAP@.5 stays near 0.1.
    "cpu": {"det_images": 192, "det_val": 48, "det_size": 128, "cls_classes": 5, "cls_per_class": 60,
            "yolo_epochs": 50, "yolo_batch": 16, "yolo_size": 192, "yolo_width": 0.125, "yolo_lr": 3e-3,
            "yolo_eval_every": 10, "cls_epochs": 8, "cls_batch": 32, "cls_width": 0.5, "cls_size": 32,
            "gallery": 8},
    "cuda": {"det_images": 2048, "det_val": 256, "det_size": 256, "cls_classes": 10, "cls_per_class": 300,
             "yolo_epochs": 60, "yolo_batch": 64, "yolo_size": 256, "yolo_width": 0.5, "yolo_lr": 3e-3,
             "yolo_eval_every": 5, "cls_epochs": 30, "cls_batch": 128, "cls_width": 1.0, "cls_size": 64,
             "gallery": 16},
}
# fmt: on
K_SWEEP = "3-6"
TRAIN_K = 5


def _gallery(pred_dir: Path, gt_json: Path, out: Path) -> None:

    write_gallery(pred_dir, gt_json, out)


def plan(out: Path, device: str, mode: str, seed: int) -> list[Step]:
    """The demo's command lines, in order, writing under ``out``.

    Args:
        out: demo folder (data/, runs/, logs/, report.html are created inside).
        device: cpu or cuda, for the two training steps.
        mode: a key of :data:`PRESETS`.
        seed: passed to every command that samples.
    """
    p = PRESETS[mode]
    data, runs = out / "data", out / "runs"
    shapes, val, tiny = data / "shapes", data / "shapes_val", data / "tiny"
    ann, val_ann = shapes / "instances.json", val / "instances.json"
    anchors_json = runs / "anchors" / f"anchors_k{TRAIN_K}.json"
    s, d = str(seed), device
    workers = "2" if device == "cpu" else "8"  # 2 cores is the CPU target
    # the held-out images predicted at the end (synth names them shape_00000.jpg, ...)
    held_out = [val / "images" / f"shape_{i:05d}.jpg" for i in range(min(p["gallery"], p["det_val"]))]
    # fmt: off
    return [
        Step("synth detection set", ["data", "synth", str(shapes), "--task", "detect", "--images",
                                     str(p["det_images"]), "--size", str(p["det_size"]), "--seed", s],
             expect=[ann]),
        Step("synth held-out detection set", ["data", "synth", str(val), "--task", "detect", "--images",
                                              str(p["det_val"]), "--size", str(p["det_size"]),
                                              "--seed", str(seed + 1)],
             expect=[val_ann]),
        Step("synth classification set", ["data", "synth", str(tiny), "--task", "classify", "--classes",
                                          str(p["cls_classes"]), "--per-class", str(p["cls_per_class"]),
                                          "--seed", s],
             expect=[tiny / "wnids.txt"]),
        Step("coco inspect", ["coco", "inspect", str(ann), "--out", str(runs / "coco_inspect")],
             expect=[runs / "coco_inspect" / "summary.json"]),
        Step("coco validate", ["coco", "validate", str(ann), "--out", str(runs / "coco_validate"),
                               "--fail-on", "never"],
             expect=[runs / "coco_validate" / "summary.json"]),
        Step("coco classes", ["coco", "classes", str(ann), "--out", str(runs / "coco_classes")],
             expect=[runs / "coco_classes" / "summary.json"]),
        Step("coco split", ["coco", "split", str(ann), str(runs / "coco_split"), "--ratios", "0.8,0.2",
                            "--seed", s],
             expect=[runs / "coco_split" / "summary.json"]),
        Step(f"anchors kmeans k={K_SWEEP}", ["anchors", "kmeans", str(ann), "--k", K_SWEEP, "--seed", s,
                                             "--plots", str(runs / "anchors")],
             expect=[runs / "anchors" / "summary.json"]),
        Step(f"anchors kmeans k={TRAIN_K}", ["anchors", "kmeans", str(ann), "--k", str(TRAIN_K), "--seed", s,
                                             "--out", str(anchors_json)],
             expect=[anchors_json]),
        Step("yolo train", ["yolo", "train", "--data", str(ann), "--images", str(shapes / "images"),
                            "--anchors", str(anchors_json), "--epochs", str(p["yolo_epochs"]),
                            "--batch", str(p["yolo_batch"]), "--img-size", str(p["yolo_size"]),
                            "--lr", str(p["yolo_lr"]), "--device", d, "--out", str(runs / "yolo"),
                            "--seed", s,
                            "--width", str(p["yolo_width"]), "--optimizer", "adamw",
                            "--eval-every", str(p["yolo_eval_every"]), "--val-data", str(val_ann),
                            "--val-images", str(val / "images"), "--workers", workers],
             expect=[runs / "yolo" / "summary.json", runs / "yolo" / "best.pt"]),
        Step("yolo eval", ["yolo", "eval", str(runs / "yolo" / "best.pt"), "--data", str(val_ann),
                           "--images", str(val / "images"), "--out", str(runs / "yolo_eval"), "--device", d],
             expect=[runs / "yolo_eval" / "summary.json"]),
        Step("yolo predict", ["yolo", "predict", str(runs / "yolo" / "best.pt"), *map(str, held_out),
                              "--out", str(runs / "yolo_predict"), "--device", d],
             expect=[runs / "yolo_predict" / "detections.json"]),
        Step("predictions beside ground truth", [],
             action=lambda: _gallery(runs / "yolo_predict", val_ann, runs / "yolo_gallery"),
             expect=[runs / "yolo_gallery" / "summary.json"]),
        Step("classify train", ["classify", "train", "--data", str(tiny), "--out", str(runs / "classify"),
                                "--epochs", str(p["cls_epochs"]), "--batch", str(p["cls_batch"]),
                                "--img-size", str(p["cls_size"]), "--device", d, "--seed", s,
                                "--width", str(p["cls_width"]), "--workers", workers],
             expect=[runs / "classify" / "summary.json", runs / "classify" / "best.pt"]),
        Step("classify eval", ["classify", "eval", str(runs / "classify" / "best.pt"), "--data", str(tiny),
                               "--out", str(runs / "classify_eval"), "--gallery", str(p["gallery"]),
                               "--device", d],
             expect=[runs / "classify_eval" / "summary.json"]),
    ]
    # fmt: on


def run_demo(
    out: str | Path, runner: Runner, device: str = "cpu", quick: bool = False, seed: int = 0
) -> dict[str, Any]:
    """Run every step, write ``out/runs/demo/summary.json``, ``out/report.html`` and ``out/report.md``.

    Args:
        out: demo folder.
        runner: runs the command lines (``Runner(detkit.cli.app, detkit.cli.run)``).
        device: cpu or cuda (cuda also uses the larger "cuda" preset).
        quick: the smallest settings (for tests).
        seed: seed for every sampling step.

    Returns:
        {"report", "markdown", "failed": [step names], "steps": [row dicts], "seconds"}
    """
    out = Path(out)
    mode = "quick" if quick else ("cuda" if device == "cuda" else "cpu")
    runs = out / "runs"
    for stale in (
        runs.rglob("summary.json") if runs.exists() else ()
    ):  # a failed step must not show old results
        stale.unlink()
    steps = plan(out, device, mode, seed)
    check_plan(steps, runner)  # before minutes of work: every command and option must exist
    results: list[StepResult] = []
    start = time.perf_counter()
    with progress(transient=True) as bar:
        task = bar.add_task("demo", total=len(steps), info="")
        for i, step in enumerate(steps, 1):
            bar.update(task, description=f"[{i}/{len(steps)}] {step.name}")
            info(f"[bold]\\[{i}/{len(steps)}][/bold] {esc(step.name)} ...", markup=True)
            log = out / "logs" / f"{i:02d}-{step.name.split(' k=')[0].replace(' ', '-')}.log"
            r = run_step(step, log, runner)
            results.append(r)
            if r.ok:
                info(
                    f"  [green]ok[/green] {esc(step.name)} ({r.seconds:.1f} s, {r.cpu_seconds:.1f} s of CPU)",
                    markup=True,
                )
            else:
                info(
                    f"  [red]FAILED[/red] {esc(step.name)} ({r.seconds:.1f} s): {esc(r.message)}\n  "
                    f"log: {esc(str(r.log))}",
                    markup=True,
                )
            bar.advance(task)
            if r.code == 130:
                info("[red]interrupted[/red]: remaining steps skipped", markup=True)
                break
    total = time.perf_counter() - start
    rows = [
        {
            "step": r.name,
            "status": "ok" if r.ok else "FAILED",
            "seconds": round(r.seconds, 1),
            "cpu_seconds": round(r.cpu_seconds, 1),
            "command": r.command,
            "problem": r.message,
            "log": str(Path(r.log).relative_to(out)),
        }
        for r in results
    ]
    failed = [r.name for r in results if not r.ok]
    write_summary(
        runs / "demo",
        "demo",
        f"detkit demo ({mode} settings, device {device}, seed {seed})",
        metrics={
            "steps": len(results),
            "failed": len(failed),
            "seconds": round(total, 1),
            "cpu_seconds": round(sum(r.cpu_seconds for r in results), 1),
        },
        tables={"steps": rows},
        settings=PRESETS[mode],
    )

    report = {"report": None, "markdown": None}
    for key, name in (("report", "report.html"), ("markdown", "report.md")):
        try:
            report[key] = write_report([runs], out / name, title="detkit demo report")["report"]
        except Exception as exc:  # noqa: BLE001 - one report format failing must not lose the other
            failed.append(f"report {name}")
            info(
                f"  [red]FAILED[/red] writing {esc(str(out / name))}: {type(exc).__name__}: {esc(str(exc))}",
                markup=True,
            )
    return {**report, "failed": failed, "steps": rows, "seconds": round(time.perf_counter() - start, 1)}


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


def demo_command(runner: Runner) -> Callable[..., None]:
    """The ``detkit demo`` command, bound to the runner it drives (``detkit/cli.py`` registers it)."""

    def demo(
        out: Annotated[Path, typer.Argument(help="Output folder (data/, runs/, logs/, report.html).")] = Path(
            "detkit-demo"
        ),
        device: Annotated[
            Device, typer.Option(help="cpu: a 1-3 minute tour; cuda: longer, real training.")
        ] = (Device.cpu),
        quick: Annotated[
            bool, typer.Option("--quick", help="Smallest settings (CI smoke test, under a minute).")
        ] = (False),
        seed: Annotated[
            int, typer.Option(help="Seed for every sampling step (same seed, same data and runs).")
        ] = 0,
        json: Annotated[
            bool, typer.Option("--json", help="Print one JSON document with the steps and report paths.")
        ] = False,
    ) -> None:
        """Generate data and run every detkit tool on it, then write OUT/report.html and OUT/report.md.

        Needs no download: it generates a synthetic shapes detection set and a Tiny-ImageNet-layout set.
        Then coco inspect/validate/classes, the anchor sweep k=3..6, a short YOLO training, eval and
        predictions on held-out images (drawn beside their ground truth), a classifier training + eval.
        Every step runs through the CLI; exit 1 if any step failed (the others still run).

        Example: detkit demo out/ --device cpu
        """

        result = run_demo(out, runner, device=device.value, quick=quick, seed=seed)
        if json:
            emit_json(result)
        else:
            failed = result["failed"]
            info(
                f"demo finished in {result['seconds']:.0f} s"
                + (f", [red]{len(failed)} step(s) failed[/red]: {', '.join(failed)}" if failed else ""),
                markup=True,
            )
            for key in ("report", "markdown"):
                if result[key]:
                    print(result[key])
        if result["failed"]:
            raise typer.Exit(1)

    return demo
