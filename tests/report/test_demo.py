"""detkit demo: step mechanics with fake runners, then the real end-to-end demo (run last, --quick)."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

from detkit.demo.run import plan
from detkit.demo.steps import Runner, Step, check_plan, problem, run_step
from detkit.errors import DetkitError
from detkit.report.sections import KINDS

# command -> (report heading, the commands it needs to have run before it)
SECTIONS = {
    ("coco", "inspect"): ("coco.inspect", []),
    ("coco", "validate"): ("coco.validate", []),
    ("coco", "classes"): ("coco.classes", []),
    ("coco", "split"): ("coco.split", []),
    ("anchors", "kmeans"): ("anchors.kmeans", []),
    ("yolo", "train"): ("yolo.train", [("anchors", "kmeans")]),
    ("yolo", "eval"): ("yolo.eval", [("anchors", "kmeans"), ("yolo", "train")]),
    ("classify", "train"): ("classify.train", []),
    ("classify", "eval"): ("classify.eval", [("classify", "train")]),
}


def _runner() -> Runner:
    from detkit.cli import full_app, run

    return Runner(full_app(), run)


def command_options(argv):
    return _runner().options(argv)


def test_command_options_reads_the_real_cli():
    opts = command_options(["data", "synth", "out/"])
    assert {"--task", "--images", "--size", "--seed", "--per-class", "--json"} <= opts
    assert command_options(["data", "nosuch"]) is None


def test_a_missing_option_stops_the_demo_before_it_runs(tmp_path):
    """A renamed option must not be dropped silently: the whole plan is checked first, one line names it."""
    ran = []
    runner = Runner(_runner().app, lambda argv: ran.append(argv) or 0)
    check_plan(plan(tmp_path, "cpu", "quick", seed=0), runner)  # today's plan matches today's CLI
    steps = [
        Step("synth", ["data", "synth", "x", "--seed", "3"]),
        Step("bad", ["data", "synth", "x", "--widht", "1"]),
    ]
    with pytest.raises(DetkitError) as exc:
        check_plan(steps, runner)
    assert str(exc.value) == (
        "demo step 'bad' passes --widht, which `detkit data synth` does not have (renamed or removed?): "
        "update detkit/demo/run.py"
    )
    with pytest.raises(DetkitError, match="`detkit data nosuch` is not a detkit command"):
        check_plan([Step("x", ["data", "nosuch"])], runner)
    assert ran == []


def test_demo_fails_cleanly_when_a_flag_is_gone(tmp_path, cli, monkeypatch):
    from detkit.demo import run as demo

    real = demo.plan
    monkeypatch.setattr(
        demo, "plan", lambda *a: [*real(*a)[:1], Step("bad", ["coco", "inspect", "x", "--nope"])]
    )
    code, out, err = cli("demo", tmp_path / "d", "--quick")
    assert code == 2 and out == "" and "demo step 'bad' passes --nope" in err
    assert not (tmp_path / "d" / "data").exists()  # nothing ran


def test_problem_picks_the_useful_line():
    assert problem("wrote a\ndetkit: error: x.json:3: bad bbox\n") == "detkit: error: x.json:3: bad bbox"
    usage = (
        "Usage: detkit yolo [OPTIONS]\nTry 'detkit yolo --help' for help.\n"
        "╭─ Error ─╮\n│ No such command 'train'. │\n╰───╯\n"
    )
    assert problem(usage) == "No such command 'train'."
    assert problem("") == ""


def test_step_failure_crash_and_missing_output(tmp_path, capsys):
    def runner(argv):
        print("stdout data")
        import sys

        print("detkit: error: boom.json: unreadable", file=sys.stderr)
        return int(argv[-1])

    step = Step("s", ["data", "synth", "0"], expect=[tmp_path / "made.txt"])
    r = run_step(step, tmp_path / "logs" / "s.log", runner)
    assert (r.ok, r.code, r.message) == (False, 0, f"exit 0 but did not write {tmp_path / 'made.txt'}")
    log = (tmp_path / "logs" / "s.log").read_text()
    assert log.startswith("$ detkit data synth 0\n") and "## stdout\nstdout data\n" in log

    r = run_step(Step("s", ["data", "synth", "2"]), tmp_path / "s2.log", runner)
    assert r.message == "exit 2: detkit: error: boom.json: unreadable"

    def crash(argv):
        raise ZeroDivisionError("division by zero")

    r = run_step(Step("s", ["data", "synth"]), tmp_path / "s3.log", crash)
    assert r.message == "crashed: ZeroDivisionError: division by zero"
    assert "Traceback" in (tmp_path / "s3.log").read_text()
    assert "stdout data" not in capsys.readouterr().out  # a step's stdout goes to its log, not the demo's


def test_step_under_a_live_progress_bar_does_not_loop(tmp_path, monkeypatch):
    """rich's Live swaps sys.stderr for a proxy that prints through the console; the tee must not wrap it."""
    import io

    from rich.file_proxy import FileProxy

    from detkit.console import err

    real = io.StringIO()
    monkeypatch.setattr("sys.stderr", FileProxy(err, real))

    def runner(argv):
        err.print("hello from the step")
        return 0

    results = []  # in a daemon thread, so a regression fails the test instead of hanging the suite
    t = threading.Thread(
        target=lambda: results.append(run_step(Step("s", ["data"]), tmp_path / "s.log", runner)), daemon=True
    )
    t.start()
    t.join(timeout=30)
    assert results and results[0].ok, "run_step looped writing stderr under a live progress bar"
    assert real.getvalue() == "hello from the step\n"
    assert "## stderr\nhello from the step\n" in (tmp_path / "s.log").read_text()


def test_plan_seeds_and_sizes(tmp_path):
    steps = {s.name: s for s in plan(tmp_path, "cpu", "cpu", seed=7)}
    assert steps["synth detection set"].argv[-6:] == ["--images", "192", "--size", "128", "--seed", "7"]
    assert steps["synth held-out detection set"].argv[-1] == "8"  # a different seed: a real held-out set
    argv = steps["yolo train"].argv
    pairs = dict(zip(argv[2::2], argv[3::2]))
    assert {k: pairs[k] for k in ("--width", "--optimizer", "--eval-every", "--val-data", "--workers")} == {
        "--width": "0.125",
        "--optimizer": "adamw",
        "--eval-every": "10",
        "--val-data": str(tmp_path / "data/shapes_val/instances.json"),
        "--workers": "2",
    }
    predict = steps["yolo predict"].argv
    held_out = [a for a in predict if a.endswith(".jpg")]
    assert len(held_out) == 8 and all("shapes_val/images/shape_" in a for a in held_out)
    names = list(steps)
    assert names.index("predictions beside ground truth") == names.index("yolo predict") + 1
    assert steps["predictions beside ground truth"].action is not None
    assert "--k" in steps["anchors kmeans k=3-6"].argv and "3-6" in steps["anchors kmeans k=3-6"].argv


@pytest.mark.run_last
@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path, cli):
    assert all(command_options(list(cmd)) is not None for cmd in SECTIONS)
    expected = [kind for kind, _needs in SECTIONS.values()]

    code, out, err = cli("demo", tmp_path / "demo", "--quick", "--seed", "0")
    assert code == 0, err
    assert out.split() == [str(tmp_path / "demo" / "report.html"), str(tmp_path / "demo" / "report.md")]
    html = (tmp_path / "demo" / "report.html").read_text()
    headings = re.findall(r'<section id="[^"]+"><h2>([^<]+)<span', html)
    for kind in expected:
        assert KINDS[kind][0] in headings, f"{kind} section missing; stderr:\n{err}"
    assert headings[-1] == "Demo run"
    assert (
        "Predictions beside ground truth" in headings
    )  # yolo predict on held-out images, drawn beside the truth
    gallery = json.loads((tmp_path / "demo" / "runs" / "yolo_gallery" / "summary.json").read_text())
    assert gallery["metrics"]["images"] == 4 and len(gallery["galleries"]["predicted | ground truth"]) == 4
    assert all(p.endswith(".jpg") for p in gallery["galleries"]["predicted | ground truth"])  # photos: JPEG
    assert all(src.startswith("data:") for src in re.findall(r'<img[^>]*\ssrc="([^"]*)"', html))

    demo = json.loads((tmp_path / "demo" / "runs" / "demo" / "summary.json").read_text())
    status = {r["step"]: r["status"] for r in demo["tables"]["steps"]}
    assert len(status) == 15 and all(status[name] == "ok" for name in status if name.startswith("synth"))
    assert all(r["cpu_seconds"] >= 0 for r in demo["tables"]["steps"]) and demo["metrics"]["cpu_seconds"] > 0
    for kind in expected:  # each present command's own summary records its own command line
        folder = {"anchors.kmeans": "anchors"}.get(kind, kind.replace(".", "_").replace("_train", ""))
        doc = json.loads((tmp_path / "demo" / "runs" / folder / "summary.json").read_text())
        assert doc["command"].startswith(f"detkit {kind.replace('.', ' ')} ")
    # yolo eval with coco eval's figures; the anchor sweep's 9 plots as the elbow and one sheet
    yolo_eval = html.split(f"<h2>{KINDS['yolo.eval'][0]}<span")[1].split("</section>")[0]
    assert all(f'title="{t}"' in yolo_eval for t in ("pr curves", "f1 curve", "confusion matrix"))
    anchors = html.split(f"<h2>{KINDS['anchors.kmeans'][0]}<span")[1].split("</section>")[0]
    assert anchors.count("<figure>") == 2 and 'title="8 more plots: scatter k3' in anchors
    assert (tmp_path / "demo" / "report.html").stat().st_size <= 5_000_000
    md = (tmp_path / "demo" / "report.md").read_text()
    assert all((tmp_path / "demo" / link).is_file() for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md))
    assert Path(tmp_path / "demo" / "logs").is_dir()
