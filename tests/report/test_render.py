"""detkit report: sections from hand-made summary.json folders, HTML self-containment, Markdown twin."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from detkit.errors import DetkitError
from detkit.report.collect import KIND_ORDER, find_summaries
from detkit.report.render import write_report
from detkit.report.sections import KINDS, fmt
from tests.report.conftest import ALL_KINDS, IMAGES, make_run


def _headings(html: str) -> list[str]:
    return re.findall(r'<section id="[^"]+"><h2>([^<]+)<span', html)


@pytest.fixture(scope="module")
def full_html(fake_runs, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("html") / "report.html"
    write_report([fake_runs], out)
    return out.read_text()


def test_every_section_in_kind_order(full_html):
    expected = [KINDS[k][0] for k in KIND_ORDER if k in ALL_KINDS]
    assert _headings(full_html) == expected
    for kind in ALL_KINDS:  # the exact command of each section and its versions
        assert f"detkit {kind.replace('.', ' ')} --fixture {kind.replace('.', '_')}" in full_html
    assert full_html.count("python 3.11.9 &middot; detkit 0.1.0 &middot; torch 2.14.1") == len(ALL_KINDS)


def test_section_contents(full_html):
    assert '<div class="v">0.2512</div><div class="k">mAP</div>' in full_html  # metric card
    assert '<div class="v">0.7123</div><div class="k">mean iou k4</div>' in full_html  # 0.71234 -> 4 digits
    assert "<td>annotations[3]</td><td>box | outside image</td>" in full_html  # findings table
    assert "<dt>format</dt><dd>coco</dd>" in full_html  # kind-specific scalar key
    assert "<td>max_w</td><td>60.5</td>" in full_html  # kind-specific dict key -> name/value table
    assert "<h3>misclassified <small>(3)</small></h3>" in full_html
    assert "<h3>gradcam <small>(2)</small></h3>" in full_html
    assert full_html.count("<h3>Training curves</h3>") == 2


def test_html_is_self_contained(full_html):
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]*)"', full_html)
    assert len(srcs) == sum(IMAGES.values()) == 15
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', full_html)
    assert "<script" not in full_html and "<link" not in full_html and "@import" not in full_html
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', full_html))


def test_partial_run_renders_only_its_section(tmp_path, cli):
    make_run(tmp_path / "runs", "anchors.kmeans")
    code, out, err = cli("report", tmp_path / "runs", "-o", tmp_path / "r.html")
    assert code == 0, err
    assert out.strip() == str(tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert _headings(html) == ["Anchor boxes"]
    assert html.count("<nav>") == 1 and len(re.findall(r'<a href="#', html)) == 1
    assert len(re.findall(r"<img ", html)) == IMAGES["anchors.kmeans"]
    assert "Training curves" not in html and "warning" not in err


def test_markdown_twin_images_beside_it(fake_runs, tmp_path):
    result = write_report([fake_runs], tmp_path / "report.md")
    md = (tmp_path / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == 15
    assert all(link.startswith("report_files/") and (tmp_path / link).is_file() for link in links)
    assert len(list((tmp_path / "report_files").iterdir())) == 15
    assert result["assets"] == str(tmp_path / "report_files")
    for kind in ALL_KINDS:
        assert f"## {KINDS[kind][0]}" in md
    assert "| class | AP |\n|---|---|\n| circle | 0.3 |\n| triangle | 0.2 |" in md
    assert "| error | bbox-outside | annotations[3] | box \\| outside image |" in md  # pipe escaped
    assert "```sh\ndetkit yolo eval --fixture yolo_eval\n```" in md


def test_missing_image_is_a_note_not_an_error(tmp_path, cli):
    run = make_run(tmp_path, "coco.classes")
    (run / "classes.png").unlink()
    code, _, err = cli("report", tmp_path, "-o", tmp_path / "r.html")
    assert code == 0
    assert "classes: image classes.png is missing" in (tmp_path / "r.html").read_text()
    assert "classes: image classes.png is missing" in err.replace("\n", "")


def test_unknown_kind_and_new_keys_render_generically(tmp_path):
    (tmp_path / "x").mkdir()
    doc = {
        "kind": "tracks.stats",
        "title": "Track statistics",
        "command": "detkit tracks stats v.json",
        "metrics": {"tracks": 7},
        "fragmentation": 0.125,
        "per_video": [{"video": "a", "tracks": 7}],
    }
    (tmp_path / "x" / "summary.json").write_text(json.dumps(doc))
    html = (write_report([tmp_path], tmp_path / "r.html"), (tmp_path / "r.html").read_text())[1]
    assert _headings(html) == ["Track statistics"]
    assert "<dt>fragmentation</dt><dd>0.125</dd>" in html
    assert "<h3>per video</h3>" in html and "<td>a</td><td>7</td>" in html


def test_bad_summary_is_skipped_with_a_warning(tmp_path, capsys):
    make_run(tmp_path, "yolo.eval")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "summary.json").write_text("{not json")
    assert [s.kind for s in find_summaries([tmp_path])] == ["yolo.eval"]
    err = capsys.readouterr().err.replace("\n", "")  # rich wraps long lines when stderr is not a terminal
    assert "broken/summary.json: skipped, not readable JSON" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["report", "{tmp}", "-o", "{tmp}/r.pdf"], "r.pdf: report must end in .html or .md (got '.pdf')"),
        (
            ["report", "{tmp}", "-o", "{tmp}/r.html"],
            "no summary.json found (run a detkit command with --out/--plots",
        ),
        (["report", "{tmp}/nope", "-o", "{tmp}/r.html"], "nope: no such file or folder"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path, cli, args, message):
    code, out, err = cli(*[a.format(tmp=tmp_path) for a in args])
    assert code == 2 and out == ""
    assert err.startswith("detkit: error: ") and message in err and len(err.strip().splitlines()) == 1


def test_no_summary_names_the_output_folder_and_the_cli_its_flags(tmp_path):
    with pytest.raises(DetkitError) as e:
        find_summaries([tmp_path])
    assert str(e.value) == (
        f"{tmp_path}: no summary.json found (a command writes one into the output folder it is given)"
    )
    assert (
        e.value.cli_message()
        == f"{tmp_path}: no summary.json found (run a detkit command with --out/--plots first)"
    )


def test_json_describes_the_report(fake_runs, tmp_path, cli_json):
    doc = cli_json("report", fake_runs, "-o", tmp_path / "r.html")
    assert doc["format"] == "html" and doc["report"] == str(tmp_path / "r.html")
    assert [s["kind"] for s in doc["sections"]] == [k for k in KIND_ORDER if k in ALL_KINDS]


@pytest.mark.parametrize(
    "value, text",
    [
        (0.71234, "0.7123"),
        (3.0, "3"),
        (12345.678, "12345.7"),
        (123456.0, "123456"),
        (None, ""),
        (True, "yes"),
        (7, "7"),
        ("a", "a"),
        (1e-5, "1e-05"),
        ([1, 2], "[1, 2]"),
    ],
)
def test_fmt(value, text):
    assert fmt(value) == text


def test_report_files_are_readable_by_others(fake_runs, tmp_path):
    write_report([fake_runs], tmp_path / "r.html")
    assert (
        tmp_path / "r.html"
    ).stat().st_mode & 0o044 == 0o044  # mkstemp's 0600 would hide it from a web server


def test_paths_shown_relative_to_the_report(fake_runs):
    out = Path(fake_runs).parent / "report.html"
    sections = write_report([fake_runs], out)["sections"]
    assert sections[0]["folder"] == f"{Path(fake_runs).name}/coco_inspect"


def _fake(folder: Path, kind: str, **fields) -> Path:
    from detkit.io import write_json

    folder.mkdir(parents=True, exist_ok=True)
    write_json(
        folder / "summary.json",
        {"schema_version": 1, "kind": kind, "title": kind, "command": "detkit x", **fields},
    )
    return folder


def test_navigation_names_each_run_folder(tmp_path):
    for name in ("yolo_a", "yolo_b", "yolo_c"):
        _fake(tmp_path / "runs" / name, "yolo.train", metrics={"mAP50": 0.5})
    write_report([tmp_path / "runs"], tmp_path / "r.html")
    nav = re.search(r"<nav>(.*?)</nav>", (tmp_path / "r.html").read_text()).group(1)
    entries = re.findall(r">([^<]+)</a>", nav)
    assert entries == [f"Detector training · runs/yolo_{x}" for x in "abc"]
    write_report([tmp_path / "runs"], tmp_path / "r.md")
    md = (tmp_path / "r.md").read_text()
    assert "- [Detector training · runs/yolo_b](#s2-yolo-train)" in md


def test_runs_without_a_summary_are_listed_with_the_reason(tmp_path, cli):
    from detkit.io import write_json

    _fake(tmp_path / "runs" / "done", "yolo.train")
    stopped = tmp_path / "runs" / "stopped"
    write_json(stopped / "run.json", {"command": "detkit yolo train --epochs 50", "config": {"epochs": 50}})
    (stopped / "metrics.csv").write_text("epoch,loss\n1,3.0\n2,2.5\n3,2.1\n")
    (stopped / "last.pt").write_bytes(b"x")
    write_json(tmp_path / "runs" / "bare" / "run.json", {"command": "detkit classify train"})
    code, _, err = cli("report", tmp_path / "runs", "-o", tmp_path / "r.html")
    assert code == 0, err
    html = (tmp_path / "r.html").read_text()
    assert ">Incomplete runs (2)</a>" in html
    rows = [
        re.findall(r"<td[^>]*>([^<]*)</td>", r)
        for r in re.findall(r"<tr>(.*?)</tr>", html.split('-incomplete"><h2>')[1])
        if "<td" in r
    ]
    assert rows == [
        ["runs/bare", "detkit classify train", "no summary.json: the command stopped before its end"],
        [
            "runs/stopped",
            "detkit yolo train --epochs 50",
            (
                "no summary.json: the command stopped before its end; "
                f"metrics.csv has 3 epoch(s) of 50; last.pt is kept (resuming {stopped} continues the run)"
            ),
        ],
    ]
    # a folder holding only an interrupted run still gets a report that says so
    code, _, err = cli("report", stopped, "-o", tmp_path / "only.md")
    assert code == 0, err
    assert "## Incomplete runs" in (tmp_path / "only.md").read_text()


@pytest.mark.parametrize(("classes", "shown"), [(5, False), (6, True)])
def test_top5_is_hidden_with_five_classes_or_fewer(tmp_path, classes, shown):
    f = _fake(
        tmp_path / "runs" / "cls",
        "classify.train",
        num_classes=classes,
        curves="metrics.csv",
        metrics={"val_top1": 0.8, "val_top5": 1.0},
        tables={"epochs": [{"epoch": 1, "val_top1": 0.8, "val_top5": 1.0}]},
    )
    (f / "metrics.csv").write_text("epoch,val_top1,val_top5\n1,0.5,1.0\n2,0.8,1.0\n")
    write_report([tmp_path / "runs"], tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert ("val top5" in html) is shown and ("<th>val_top5</th>" in html) is shown
    assert "val top1" in html and "<th>val_top1</th>" in html
    assert ("every image is in the top 5" in html) is not shown
    from detkit.report.curves import plot_curves
    from detkit.report.sections import _TOP5

    assert len(plot_curves(f / "metrics.csv", skip=_TOP5)) == 1  # the metric figure keeps top-1


def test_report_modules_import_one_way():
    """render -> html | markdown -> sections -> collect, with output.py a leaf: no cycles."""
    import ast

    root = Path(__file__).resolve().parents[2] / "detkit"
    graph = {}
    for mod in ("render", "html", "markdown", "sections", "collect", "output", "curves", "cli"):
        tree = ast.parse((root / "report" / f"{mod}.py").read_text())
        graph[mod] = {
            n.module.rsplit(".", 1)[-1]
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("detkit.report.")
        }
    assert "render" not in graph["markdown"] | graph["html"] | graph["sections"] | graph["collect"]
    assert graph["output"] == set() and graph["collect"] == set()
    tree = ast.parse((root / "demo" / "run.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "detkit.cli" not in imported and "detkit.report.demo" not in imported  # the runner is handed in
