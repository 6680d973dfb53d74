"""detkit report: sections from hand-made summary.json folders, HTML self-containment, Markdown twin."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

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
        (["report", "{tmp}", "-o", "{tmp}/r.html"], "no summary.json found"),
        (["report", "{tmp}/nope", "-o", "{tmp}/r.html"], "nope: no such file or folder"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path, cli, args, message):
    code, out, err = cli(*[a.format(tmp=tmp_path) for a in args])
    assert code == 2 and out == ""
    assert err.startswith("detkit: error: ") and message in err and len(err.strip().splitlines()) == 1


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
