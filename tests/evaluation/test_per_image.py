"""Per-image errors: hand-counted on a small case, and summing to the confusion matrix on a generated one."""

from __future__ import annotations

import numpy as np
import pytest

from detkit.datasets.model import make_dataset
from detkit.errors import DetkitError
from detkit.evaluation.confusion import confusion_matrix
from detkit.evaluation.per_image import per_image_errors, worst, write_per_image
from tests.evaluation.cases import preds, random_case


def small_case():
    gt = make_dataset(
        [(1, "a.jpg", 400, 400), (2, "b.jpg", 400, 400), (3, "c.jpg", 400, 400)],
        [(1, 1, 1, 0, 0, 10, 10), (2, 1, 2, 100, 100, 10, 10), (3, 2, 1, 0, 0, 10, 10)],
        [(1, "A"), (2, "B")],
    )
    p = preds(
        [
            (1, 1, 0, 0, 10, 10, 0.9),  # tp
            (1, 1, 0, 0, 10, 10, 0.8),  # the same box again: duplicate
            (1, 1, 0, 0, 10, 25, 0.7),  # IoU 100 / 250 = 0.4 with its class's box: localisation
            (1, 1, 100, 100, 10, 10, 0.6),  # class A on the B box: class
            (1, 1, 300, 300, 10, 10, 0.5),  # nothing near: background
            (3, 2, 0, 0, 10, 10, 0.4),  # an image without ground truth: background
        ]
    )
    return gt, p


def test_small_case_counted_by_hand():
    gt, p = small_case()
    e = per_image_errors(gt, p, conf=0.3)
    a, b, c = e["rows"]
    assert {k: a[k] for k in ("gt", "tp", "fp_class", "fp_dup", "fp_loc", "fp_bkg", "fn")} == {
        "gt": 2,
        "tp": 1,
        "fp_class": 1,
        "fp_dup": 1,
        "fp_loc": 1,
        "fp_bkg": 1,
        "fn": 0,
    }
    assert a["score"] == pytest.approx(0.8 + 0.7 + 0.6 + 0.5)
    assert (b["gt"], b["fn"], b["score"]) == (1, 1, 1.0)
    assert (c["gt"], c["fp_bkg"], c["score"]) == (0, 1, 0.4)
    assert [r["file_name"] for r in worst(e["rows"], 2)] == ["a.jpg", "b.jpg"]
    # a higher conf drops the detections below it
    e = per_image_errors(gt, p, conf=0.55)
    assert (e["rows"][0]["fp_bkg"], e["rows"][0]["fp_class"], e["rows"][2]["fp_bkg"]) == (0, 1, 0)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("conf", [0.0, 0.3])
def test_per_image_sums_are_the_confusion_matrix(seed, conf):
    """tp = trace, fp_class = off-diagonal, dup + loc + bkg = background row, fn = background column."""
    gt, p = random_case(seed)
    e = per_image_errors(gt, p, conf=conf, iou=0.5)
    m = np.asarray(confusion_matrix(gt, p, conf=conf, iou=0.5)["matrix"])
    k = len(m) - 1
    t = e["totals"]
    assert t["tp"] == np.trace(m[:k, :k])
    assert t["fp_class"] == m[:k, :k].sum() - np.trace(m[:k, :k])
    assert t["fp_dup"] + t["fp_loc"] + t["fp_bkg"] == m[k, :k].sum()
    assert t["fn"] == m[:k, k].sum()
    assert t["gt"] == int((gt.iscrowd == 0).sum())
    assert min(t["fp_dup"], t["fp_loc"], t["fp_bkg"], t["fp_class"]) > 0
    assert sum(r["fn"] for r in e["rows"]) == t["fn"]


def test_written_as_csv_and_json(tmp_path):
    import csv
    import json

    gt, p = small_case()
    rows = per_image_errors(gt, p, conf=0.3)["rows"]
    write_per_image(tmp_path / "e.csv", rows)
    write_per_image(tmp_path / "e.json", rows)
    got = list(csv.DictReader(open(tmp_path / "e.csv")))
    assert [r["file_name"] for r in got] == ["a.jpg", "b.jpg", "c.jpg"] and got[0]["fp_loc"] == "1"
    assert json.loads((tmp_path / "e.json").read_text()) == rows
    with pytest.raises(DetkitError) as e:  # the Python API's words; the CLI's (below) name --per-image
        write_per_image(tmp_path / "e.txt", rows)
    assert str(e.value) == f"{tmp_path / 'e.txt'}: the per-image table needs a .csv or .json path"
    assert not (tmp_path / "e.txt").exists()


def test_cli_per_image_and_worst_drawn(tmp_path, cli, cli_json):
    """--per-image writes every image; the default conf is the best-F1 one; --draw writes the worst images
    and a contact sheet with the four colours in it."""
    import csv
    import json

    from PIL import Image

    from detkit.evaluation.per_image import COLOURS

    gt, p = random_case(7, n_images=12, n_boxes=50, n_dets=300)
    (tmp_path / "gt.json").write_text(json.dumps(gt.to_coco_dict()))
    (tmp_path / "pred.json").write_text(json.dumps(p.to_results()))
    doc = cli_json(
        "coco",
        "eval",
        tmp_path / "gt.json",
        tmp_path / "pred.json",
        "--per-image",
        tmp_path / "e.csv",
        "--draw",
        tmp_path / "w",
        "--worst",
        "3",
    )
    rows = list(csv.DictReader(open(tmp_path / "e.csv")))
    assert len(rows) == 12 and doc["per_image"]["conf"] == doc["f1"]["best"]["conf"]
    assert sum(int(r["fn"]) for r in rows) == doc["per_image"]["totals"]["fn"]
    assert len(doc["per_image"]["drawn"]["images"]) == 3
    assert (tmp_path / "w" / doc["per_image"]["drawn"]["images"][0]).exists()
    sheet = np.asarray(Image.open(tmp_path / "w" / "contact_sheet.png").convert("RGB")).reshape(-1, 3)
    colours = set(map(tuple, np.unique(sheet, axis=0).tolist()))  # a PNG: the colours exactly
    assert set(COLOURS.values()) <= colours
    code, _, err = cli("coco", "eval", tmp_path / "gt.json", tmp_path / "pred.json", "--per-image", "x.txt")
    assert code == 2 and err == "detkit: error: x.txt: --per-image needs a .csv or .json path\n"


def test_run_folder_report_shows_the_worst_images(tmp_path, cli):
    """--out with --per-image: the worst images are drawn into the run folder, and `detkit report`'s section
    of it has a "worst images" table and gallery; a size without ground truth is no -1 in the metrics."""
    import json

    from detkit.report.collect import load_summary
    from detkit.report.sections import build_section

    gt, p = random_case(7, n_images=12, n_boxes=50, n_dets=300)
    (tmp_path / "gt.json").write_text(json.dumps(gt.to_coco_dict()))
    (tmp_path / "pred.json").write_text(json.dumps(p.to_results()))
    code, _, err = cli(
        "coco",
        "eval",
        tmp_path / "gt.json",
        tmp_path / "pred.json",
        "--per-image",
        tmp_path / "e.json",
        "--worst",
        "4",
        "--out",
        tmp_path / "run",
    )
    assert code == 0, err
    summary = load_summary(tmp_path / "run" / "summary.json")
    assert len(summary.doc["worst_images"]["images"]) == 4
    assert all(v is None or v >= 0 for v in summary.doc["metrics"].values() if isinstance(v, float))
    s = build_section(summary, 1)
    assert [t.name for t in s.tables if t.name.startswith("worst images")]
    ((name, images),) = [g for g in s.galleries if g[0].startswith("worst images")]
    assert len(images) == 4 and all(f.read() for f in images)
