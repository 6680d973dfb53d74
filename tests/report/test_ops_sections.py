"""Every command that writes a data set appears in the report: split, filter, sample, merge and convert
write a summary.json in their output folder (an output that is one file gets none), and
a section with many plots shows the first whole and the others on one sheet."""

from __future__ import annotations

import io
import json
import re

import numpy as np

from detkit.report.sections import KINDS


def test_data_set_commands_write_summaries_the_report_shows(cli, shapes_dir, tmp_path):
    ann = shapes_dir / "instances.json"
    out = tmp_path / "work"
    runs = [
        ("split", ["coco", "split", ann, out / "split", "--ratios", "0.75,0.25", "--seed", "1"]),
        ("filter", ["coco", "filter", ann, out / "circles", "--classes", "circle"]),
        ("sample", ["coco", "sample", ann, out / "sample", "--n", "5", "--seed", "2"]),
        ("merge", ["coco", "merge", ann, out / "circles", out / "merged"]),
        ("filter", ["coco", "filter", ann, out / "one.json", "--classes", "circle"]),
        ("convert", ["coco", "convert", ann, out / "yolo", "--to", "yolo"]),
    ]
    for _, argv in runs:
        code, _, err = cli(*argv)
        assert code == 0, err
    split = json.loads((out / "split" / "summary.json").read_text())
    assert split["kind"] == "coco.split" and [r["name"] for r in split["tables"]["splits"]] == [
        "train",
        "val",
    ]
    assert sum(r["images"] for r in split["tables"]["splits"]) == 16 and split["seed"] == 1
    circles = json.loads((out / "circles" / "summary.json").read_text())
    assert circles["kind"] == "coco.filter" and circles["metrics"]["categories"] == 1
    assert (out / "circles" / "annotations.json").is_file()
    sample = json.loads((out / "sample" / "summary.json").read_text())
    assert sample["kind"] == "coco.sample" and sample["metrics"]["images"] == 5
    assert json.loads((out / "merged" / "summary.json").read_text())["kind"] == "coco.merge"
    # an output that is one file gets no summary: nothing is written beside what the user named
    assert (out / "one.json").is_file() and sorted(p.name for p in out.glob("one*")) == ["one.json"]
    assert json.loads((out / "yolo" / "summary.json").read_text())["metrics"]["images"] == 16
    # the summary is never read as annotations: the sampled folder still holds one COCO json
    code, _, err = cli("coco", "inspect", out / "sample")
    assert code == 0, err
    code, _, err = cli("report", out, "-o", tmp_path / "r.html")
    assert code == 0, err
    headings = re.findall(r'<section id="[^"]+"><h2>([^<]+)<span', (tmp_path / "r.html").read_text())
    assert headings == [KINDS[f"coco.{k}"][0] for k in ("split", "filter", "sample", "merge", "convert")]


def _png(width: int, seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (width // 2, width, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_wide_images_are_scaled_and_many_plots_share_one_sheet(tmp_path):
    from PIL import Image

    from detkit.report.collect import Summary
    from detkit.report.images import MAX_WIDTH, fit
    from detkit.report.sections import build_section

    wide = _png(2400, 0)
    with Image.open(io.BytesIO(fit(wide, ".png"))) as im:
        assert im.size == (MAX_WIDTH, 500)
    small = _png(300, 1)
    assert fit(small, ".png") is small  # narrow enough: embedded as written
    names = ["elbow", *(f"{p}_k{k}" for k in range(3, 7) for p in ("scatter", "anchors"))]
    for i, n in enumerate(names):
        (tmp_path / f"{n}.png").write_bytes(_png(400, i))
    doc = {"kind": "anchors.kmeans", "title": "t", "plots": {n: f"{n}.png" for n in names}}
    s = build_section(Summary(tmp_path / "summary.json", doc), 1)
    assert [f.name for f in s.figures] == [
        "elbow",
        "8 more plots: " + ", ".join(n.replace("_", " ") for n in names[1:]),
    ]
    with Image.open(io.BytesIO(s.figures[1].read())) as im:  # 4 to a row, 340 px each: 2 rows
        assert im.width == 4 * 340 and im.height == 2 * (170 + 22)
    four = {"kind": "x", "plots": {n: f"{n}.png" for n in names[:4]}}
    assert len(build_section(Summary(tmp_path / "summary.json", four), 1).figures) == 4
