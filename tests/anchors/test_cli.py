"""`detkit anchors kmeans` end to end: JSON shape, files written, exit codes, real data sets."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from tests.conftest import shared_path


def test_json_shape_on_the_synthetic_set(cli_json, shapes_dir):
    doc = cli_json("anchors", "kmeans", shapes_dir / "instances.json", "--k", "2,3", "--restarts", "2")
    assert doc["schema_version"] == 1 and doc["ks"] == [2, 3] and doc["chosen_k"] == 3
    assert doc["pick"]["rule"] == "bpr" and doc["pick"]["bpr"] == doc["results"][1]["bpr"]
    assert [r["k"] for r in doc["results"]] == [2, 3]
    for r in doc["results"]:
        assert 0 < r["mean_iou"] <= 1
        assert len(r["anchors"]) == r["k"] and all(len(a) == 2 for a in r["anchors"])
        assert sum(r["counts"]) == doc["boxes"]
    assert set(doc["reference"]) == {"yolov3_coco", "yolov2_voc"}


def test_sample_coco_sweep_rises_with_k_and_writes_plots(cli, tmp_path):
    path = shared_path("sample_coco.txt")
    plots, out = tmp_path / "plots", tmp_path / "anchors.json"
    code, stdout, stderr = cli(
        "anchors", "kmeans", path, "--k", "3-6", "--plots", plots, "--out", out, "--json"
    )
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert doc["boxes"] == 10105 and doc["dropped"] == 0
    ious = [r["mean_iou"] for r in doc["results"]]
    assert [r["k"] for r in doc["results"]] == [3, 4, 5, 6]
    assert all(b > a for a, b in itertools.pairwise(ious)), ious
    assert all(r["mean_iou"] >= r["mean_iou_before_refine"] for r in doc["results"])
    # the files: one scatter and one anchor drawing per k, the elbow, summary.json and run.json
    for k in (3, 4, 5, 6):
        assert (plots / f"scatter_k{k}.png").stat().st_size > 1000
        assert (plots / f"anchors_k{k}.png").stat().st_size > 1000
    assert (plots / "elbow.png").exists() and (plots / "run.json").exists()
    summary = json.loads((plots / "summary.json").read_text())
    assert summary["kind"] == "anchors.kmeans"
    assert summary["mean_iou_curve"] == {"k": [3, 4, 5, 6], "mean_iou": ious}
    assert all((plots / p).exists() for p in summary["plots"].values())
    assert [row["k"] for row in summary["tables"]["mean_iou_by_k"]] == [3, 4, 5, 6]
    # default pick: the smallest k whose BPR reaches 0.98, else 5
    reached = [r["k"] for r in doc["results"] if r["bpr"] >= 0.98]
    assert doc["chosen_k"] == (reached[0] if reached else 5)
    assert summary["metrics"]["k"] == doc["chosen_k"] and summary["pick"]["rule"] == "bpr"
    # the anchors file holds the chosen k and why, in consistent units
    anchors = json.loads(out.read_text())
    assert anchors["k"] == doc["chosen_k"] and anchors["norm"] == "image"
    assert anchors["pick"] == {"rule": "bpr", "reason": doc["pick"]["reason"]}
    assert anchors["mean_iou"] == doc["pick"]["mean_iou"] and anchors["bpr"] == doc["pick"]["bpr"]
    a = np.array(anchors["anchors_normalized"])
    np.testing.assert_allclose(anchors["anchors_grid"], a * 13)
    np.testing.assert_allclose(anchors["anchors_pixels"], a * 416)


def test_text_output_and_pick_k(cli, tmp_path):
    out = tmp_path / "a.json"
    code, stdout, stderr = cli(
        "anchors",
        "kmeans",
        shared_path("sample_coco.txt"),
        "--k",
        "2,4",
        "--pick",
        "2",
        "--out",
        out,
        "--norm",
        "letterbox",
        "--restarts",
        "2",
    )
    assert code == 0, stderr
    assert "mean IoU by k" in stdout and "anchors = " in stdout and "stock yolov3_coco" in stdout
    assert "wrote" in stderr and "wrote" not in stdout  # messages on stderr, data on stdout
    assert f"wrote {out}: k = 2 (asked for): mean IoU" in " ".join(stderr.split())
    doc = json.loads(out.read_text())
    assert (
        doc["k"] == 2
        and doc["pick"]["rule"] == "k"
        and doc["norm"] == "letterbox"
        and len(doc["anchors_normalized"]) == 2
    )


def test_bccd_voc_folder_drops_the_degenerate_boxes(cli_json, capsys):
    doc = cli_json("anchors", "kmeans", shared_path("bccd", "BCCD"), "--k", "5", "--restarts", "2")
    assert doc["format"] == "voc"
    assert doc["boxes"] == 4888 - 2 and doc["dropped"] == 2
    assert 0.6 < doc["results"][0]["mean_iou"] <= 1


def test_dropped_boxes_are_counted_in_a_warning(cli, tmp_path):
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}],
        "annotations": [
            {"id": i, "image_id": 1, "category_id": 1, "bbox": [0, 0, w, h]}
            for i, (w, h) in enumerate([(10, 20), (0, 5), (30, 30), (-2, 4), (50, 10)], start=1)
        ],
        "categories": [{"id": 1, "name": "x"}],
    }
    path = tmp_path / "c.json"
    path.write_text(json.dumps(coco))
    code, stdout, stderr = cli("anchors", "kmeans", path, "--k", "2", "--json")
    assert code == 0
    assert "dropped 2 of 5 boxes" in " ".join(stderr.split())
    assert json.loads(stdout)["boxes"] == 3
    code, stdout, stderr = cli("anchors", "kmeans", path, "--k", "4")
    assert code == 2 and stdout == ""
    assert "only 3 distinct box sizes for k = 4" in stderr and "Traceback" not in stderr


def test_euclidean_method(cli_json, shapes_dir):
    doc = cli_json(
        "anchors",
        "kmeans",
        shapes_dir / "instances.json",
        "--k",
        "3",
        "--method",
        "euclidean",
        "--restarts",
        "2",
    )
    r = doc["results"][0]
    assert doc["method"] == "euclidean" and r["sse"] >= 0 and len(r["anchors"]) == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--k", "x"], "--k 'x'"),
        (["--k", "3", "--update", "mode"], "--update 'mode'"),
        (["--k", "3", "--norm", "stretch"], "--norm 'stretch'"),
        (["--k", "3", "--method", "dbscan"], "--method 'dbscan'"),
        (["--k", "3,4", "--pick", "5"], "--pick '5': is not one of the swept k (3, 4)"),
        (["--k", "3,4", "--pick", "knee"], "--pick 'knee'"),
        (["--k", "3", "--restarts", "0"], "--restarts '0': must be at least 1"),
    ],
)
def test_usage_errors_exit_2(cli, shapes_dir, args, message):
    code, stdout, stderr = cli("anchors", "kmeans", shapes_dir / "instances.json", *args)
    assert code == 2 and stdout == ""
    assert message in stderr and stderr.startswith("detkit: error:")


def test_missing_input_exits_2(cli, tmp_path):
    code, _, stderr = cli("anchors", "kmeans", tmp_path / "nope.json")
    assert code == 2 and "no such file" in stderr


def test_help_has_an_example(cli):
    code, stdout, _ = cli("anchors", "kmeans", "--help")
    assert code == 0 and "Example: detkit anchors kmeans" in " ".join(stdout.split())


def test_pick_rules_on_the_synthetic_set(cli, shapes_dir, tmp_path):
    """The three rules write the k they name, and stderr says which k, why, its mean IoU and BPR."""
    ann = shapes_dir / "instances.json"
    docs = {}
    for pick in ("elbow", "bpr", "4"):
        out = tmp_path / f"{pick}.json"
        code, stdout, stderr = cli(
            "anchors", "kmeans", ann, "--k", "1-6", "--restarts", "2", "--pick", pick, "--out", out, "--json"
        )
        assert code == 0, stderr
        doc, written = json.loads(stdout), json.loads(out.read_text())
        assert written["k"] == doc["chosen_k"] and doc["out"] == str(out)
        row = next(r for r in doc["results"] if r["k"] == doc["chosen_k"])
        line = " ".join(stderr.split())
        assert f"k = {doc['chosen_k']} (" in line and f"mean IoU {100 * row['mean_iou']:.2f}%" in line
        assert f"BPR {100 * row['bpr']:.1f}%" in line
        docs[pick] = doc
    assert docs["elbow"]["chosen_k"] == docs["elbow"]["elbow_k"] and docs["elbow"]["pick"]["rule"] == "elbow"
    assert docs["4"]["chosen_k"] == 4
    reached = [r["k"] for r in docs["bpr"]["results"] if r["bpr"] >= 0.98]
    assert docs["bpr"]["chosen_k"] == (reached[0] if reached else 5)


def test_skipped_files_are_one_warning_line_and_a_json_block(cli, tmp_path):
    from tests.datasets.test_lenient import EXPECTED, messy_set

    messy_set(tmp_path / "set")
    code, stdout, stderr = cli("anchors", "kmeans", tmp_path / "set", "--k", "2", "--json")
    assert code == 0
    warnings = [ln for ln in stderr.splitlines() if "skipped 8 item(s)" in ln]
    assert len(warnings) == 1 and "`detkit coco validate` lists them" in " ".join(stderr.split())
    doc = json.loads(stdout)
    assert doc["boxes"] == 4 and doc["skipped"]["count"] == 8 and doc["skipped"]["by_code"] == EXPECTED
