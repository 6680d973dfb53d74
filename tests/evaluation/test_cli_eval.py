"""`detkit coco eval`: --json, --fail-under exit codes, --out for the report, slices, anchors, plots, the
fixture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import shared_path
from tests.evaluation.cases import random_case


@pytest.fixture
def files(tmp_path):
    gt, p = random_case(7, n_images=20, n_boxes=80, n_dets=600)
    (tmp_path / "gt.json").write_text(json.dumps(gt.to_coco_dict()))
    (tmp_path / "pred.json").write_text(json.dumps(p.to_results()))
    return tmp_path / "gt.json", tmp_path / "pred.json"


def test_json_has_every_number(cli_json, files):
    doc = cli_json("coco", "eval", *files, "--tide")
    assert set(doc["summary"]) == {
        "AP",
        "AP50",
        "AP75",
        "APs",
        "APm",
        "APl",
        "AR1",
        "AR10",
        "AR100",
        "ARs",
        "ARm",
        "ARl",
    }
    assert {r["name"] for r in doc["per_class"]} == {"a", "b", "c", "d", "e"}
    assert [r["type"] for r in doc["tide"]["errors"]] == ["Cls", "Loc", "Both", "Dupe", "Bkg", "Miss"]
    assert len(doc["pr_curves"]["iou50"]["recall"]) == 101 and 0 <= doc["f1"]["best"]["conf"] <= 1
    assert len(doc["confusion"]["matrix"]) == 6
    pc = cli_json("coco", "eval", *files, "--backend", "pycocotools")
    assert pc["summary"] == pytest.approx(doc["summary"], abs=1e-9)


def test_fail_under_exit_codes(cli, cli_json, files):
    ap50 = cli_json("coco", "eval", *files)["summary"]["AP50"]
    code, _, err = cli("coco", "eval", *files, "--fail-under", f"mAP50={ap50 - 0.01:.4f},mAP=0")
    assert code == 0, err
    code, _, err = cli("coco", "eval", *files, "--fail-under", f"mAP50={ap50 + 0.01:.4f}")
    assert code == 1 and "FAIL --fail-under mAP50" in err
    doc = cli_json("coco", "eval", *files, "--fail-under", f"mAP50={ap50 + 0.01:.4f}", expect=1)
    assert doc["fail_under"]["failed"][0]["metric"] == "mAP50"
    code, _, err = cli("coco", "eval", *files, "--fail-under", "mAP5=0.3")
    assert code == 2 and "--fail-under" in err and "Traceback" not in err


def test_bad_prediction_exit_2_or_lenient(cli, cli_json, files, tmp_path):
    rows = json.loads(files[1].read_text())
    rows[3]["image_id"] = 99999
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(rows))
    code, _, err = cli("coco", "eval", files[0], bad)
    assert (
        code == 2
        and "bad.json:$[3]: image_id 99999 is not in the ground truth" in err
        and "(1 prediction like this; --lenient drops them)" in err  # the library says lenient=True
        and len(err.strip().splitlines()) == 1
    )
    doc = cli_json("coco", "eval", files[0], bad, "--lenient")
    assert doc["findings"][0]["code"] == "pred.unknown_image" and doc["findings"][0]["count"] == 1
    assert doc["counts"]["predictions"] == len(rows) - 1


def test_out_plots_slices_anchors(cli, files, tmp_path):
    (tmp_path / "slices.json").write_text(json.dumps({"first": [1, 2, 3], "by_name": ["0004.jpg", "0005"]}))
    (tmp_path / "anchors.json").write_text(
        json.dumps({"anchors_normalized": [[0.05, 0.05], [0.2, 0.3]], "norm": "image"})
    )
    code, out, err = cli(
        "coco",
        "eval",
        *files,
        "--slices",
        tmp_path / "slices.json",
        "--anchors",
        tmp_path / "anchors.json",
        "--out",
        tmp_path / "run",
        "--tide",
    )
    assert code == 0, err
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["kind"] == "coco.eval" and {"mAP", "mAP50", "best_f1_conf"} <= set(s["metrics"])
    assert [r["slice"] for r in s["tables"]["slices"]] == ["first", "by_name"]
    assert sum(r["gt"] for r in s["tables"]["anchor_coverage"]) > 0
    for f in s["plots"].values():
        assert (tmp_path / "run" / f).stat().st_size > 1000
    assert set(s["plots"]) == {"pr_curves", "f1_curve", "confusion_matrix", "tide", "calibration"}
    assert "TIDE errors" in out and "By slice" in out


def test_slice_equals_evaluating_its_images_alone():
    from detkit.evaluation.result import evaluate

    gt, p = random_case(8)
    ids = gt.image_id[:25]
    full = evaluate(gt, p, slices={"s": ids}, tide=False, conf=None, curves=False)
    alone = evaluate(
        gt.subset_images(ids),
        p.take(np.isin(p.image_id, ids)),
        tide=False,
        conf=None,
        curves=False,
    )
    assert full.slices["s"] == pytest.approx(alone.summary, abs=1e-12)
    py = evaluate(gt, p, slices={"s": ids}, tide=False, conf=None, curves=False, backend="pycocotools")
    assert py.slices["s"] == pytest.approx(alone.summary, abs=1e-9)


def test_fixture_scored_with_its_own_boxes_is_perfect(cli, cli_json, tmp_path):
    path = shared_path("coco-fixture", "coco", "annotations", "instances_val2017.json")
    doc = json.loads(path.read_text())
    rows = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
        for a in doc["annotations"]
        if not a.get("iscrowd")
    ]
    (tmp_path / "own.json").write_text(json.dumps(rows))
    for backend in ("hotcoco", "pycocotools"):
        out = cli_json("coco", "eval", path, tmp_path / "own.json", "--backend", backend, "--tide")
        assert (
            out["summary"]["AP"] == 1.0 and out["summary"]["AP50"] == 1.0 and out["summary"]["AR100"] == 1.0
        )
        assert all(e["count"] == 0 for e in out["tide"]["errors"])
    # the terminal table: the 11 classes with ground truth, the other 69 of 80 said and left out
    code, text, err = cli("coco", "eval", path, tmp_path / "own.json")
    assert code == 0 and "69 classes without ground truth left out" in text
    assert "numbered 1..N" not in err  # a COCO json has image ids of its own: no warning
    assert "│ 44 │" in text and "bicycle" not in text  # bottle (id 44) has a box; bicycle has none
    assert "IoU >= 0.45: no confusions, misses or false positives" in text  # not an empty table


def test_xyxy_boxes_given_as_xywh_get_a_note(cli, cli_json, tmp_path):
    """The fixture's own boxes as x1, y1, x2, y2 (a common slip): still scored as given, but the JSON's
    ``notes`` and one stderr line say how many boxes reach past their image (640x427) and why; its own
    x, y, w, h boxes get no note."""
    path = shared_path("coco-fixture", "coco", "annotations", "instances_val2017.json")
    anns = [a for a in json.loads(path.read_text())["annotations"] if not a.get("iscrowd")]
    xyxy = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]
    # by hand: read as x, y, w, h, a box ends at x + (x + w) and y + (y + h)
    past = sum(x + x2 > 641 or y + y2 > 428 for x, y, x2, y2 in xyxy)
    assert past > len(anns) / 4
    for boxes, name in ((xyxy, "xyxy.json"), ([a["bbox"] for a in anns], "xywh.json")):
        rows = [
            {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": b, "score": 0.9}
            for a, b in zip(anns, boxes)
        ]
        (tmp_path / name).write_text(json.dumps(rows))
    doc = cli_json("coco", "eval", path, tmp_path / "xyxy.json")
    assert [(n["code"], n["count"]) for n in doc["notes"]] == [("pred.boxes_past_image", past)]
    code, _, err = cli("coco", "eval", path, tmp_path / "xyxy.json")
    assert code == 0 and "is bbox x1, y1, x2, y2 instead of COCO's x, y, w, h?" in err and "640x427" in err
    assert cli_json("coco", "eval", path, tmp_path / "xywh.json")["notes"] == []


def test_class_indexes_given_as_coco_ids_are_named(cli, tmp_path):
    """A detector's class indexes (0..79) given against COCO's ids (1..90 with gaps): most of them are ids
    too, so the error line says what the whole set looks like, not only that one id is unknown."""
    path = shared_path("coco-fixture", "coco", "annotations", "instances_val2017.json")
    doc = json.loads(path.read_text())
    cats = sorted(c["id"] for c in doc["categories"])
    rows = [
        {
            "image_id": a["image_id"],
            "category_id": cats.index(a["category_id"]),
            "bbox": a["bbox"],
            "score": 0.9,
        }
        for a in doc["annotations"]
        if not a.get("iscrowd")
    ]
    (tmp_path / "idx.json").write_text(json.dumps(rows))
    code, _, err = cli("coco", "eval", path, tmp_path / "idx.json")
    assert code == 2 and "category_id 0 is not in the ground truth" in err
    assert (
        "every predicted id is in 0..79: class indexes? the ground truth's ids are 1, 2, 3, 4, 5, 6, ... 90"
        in err
    )


def test_coco_eval_does_not_import_torch_or_pydantic(tmp_path):
    """A real eval (options parsed and checked) imports neither torch, the other sub-commands, nor pydantic
    (typer 0.29 imports it to check every option: +0.13 s per command; pyproject keeps typer < 0.29)."""
    import subprocess
    import sys

    gt = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 30], "area": 600, "iscrowd": 0}
        ],
        "categories": [{"id": 1, "name": "cat"}],
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(
        json.dumps([{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 30], "score": 0.9}])
    )
    code = (
        f"import sys; from detkit.cli import run; assert run(['coco', 'eval', {str(tmp_path / 'gt.json')!r}, "
        f"{str(tmp_path / 'dt.json')!r}, '--json', '--conf', '0.3']) == 0; print(); print([m for m in "
        "('torch', "
        "'detkit.yolo.cli', 'detkit.classify.cli', 'detkit.demo.run', 'pydantic') if m in sys.modules])"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    doc, modules = res.stdout.rsplit("\n\n", 1)
    assert json.loads(doc)["summary"]["AP50"] == pytest.approx(1.0)
    assert modules.strip() == "[]"


def test_voc_split_scored_with_its_own_boxes_by_file_stem(cli_json, tmp_path):
    """BCCD (Pascal VOC with ImageSets splits): `detkit yolo predict`-style detections matched by
    file stem."""
    from detkit.datasets.load import load_dataset

    root = shared_path("bccd", "BCCD")
    gt = load_dataset(root, split="test")
    images = []
    for i, f in zip(gt.image_id.tolist(), gt.file_name.tolist()):
        m = gt.ann_image_id == i
        dets = [
            {"category_id": int(c), "score": 0.9, "bbox": b}
            for c, b in zip(gt.category_id[m], gt.bbox[m].tolist())
        ]
        images.append({"file": f"/elsewhere/{Path(f).name}", "detections": dets})
    (tmp_path / "detections.json").write_text(json.dumps({"images": images}))
    doc = cli_json("coco", "eval", root, tmp_path / "detections.json", "--split", "test")
    assert doc["counts"]["images"] == gt.num_images and doc["counts"]["predictions"] == gt.num_annotations > 0
    assert doc["summary"]["AP"] == 1.0


def test_same_inputs_same_json(cli, files):
    a, b = cli("coco", "eval", *files, "--json"), cli("coco", "eval", *files, "--json")
    assert a[0] == 0 and a[1] == b[1]


def test_ground_truth_without_boxes_is_exit_2(cli, files, tmp_path):
    doc = json.loads(files[0].read_text())
    doc["annotations"] = []
    (tmp_path / "empty_gt.json").write_text(json.dumps(doc))
    code, _, err = cli("coco", "eval", tmp_path / "empty_gt.json", files[1])
    assert code == 2 and "has no boxes to score the predictions against" in err


def test_no_raw_minus_one_and_no_best_conf_for_a_class_never_predicted(tmp_path, cli, cli_json):
    """Only medium boxes: APs and APl are COCO's -1, shown as a dash in the terminal and null in the run
    folder's metrics; a class with ground truth but no prediction has no best-F1 confidence (not 1.0)."""
    from detkit.datasets.model import make_dataset
    from tests.evaluation.cases import preds

    gt = make_dataset(
        [(1, "a.jpg", 640, 480), (2, "b.jpg", 640, 480)],
        [(1, 1, 1, 10, 10, 50, 50), (2, 2, 1, 100, 100, 60, 40), (3, 2, 2, 300, 300, 50, 50)],
        [(1, "cat"), (2, "dog")],
    )
    (tmp_path / "gt.json").write_text(json.dumps(gt.to_coco_dict()))
    p = preds([(1, 1, 10, 10, 50, 50, 0.9), (2, 1, 100, 100, 60, 40, 0.6)])
    (tmp_path / "pred.json").write_text(json.dumps(p.to_results()))
    files = (tmp_path / "gt.json", tmp_path / "pred.json")
    code, out, err = cli("coco", "eval", *files, "--out", tmp_path / "r")
    assert code == 0, err
    assert "-1.000" not in out and "—" in out
    metrics = json.loads((tmp_path / "r" / "summary.json").read_text())["metrics"]
    assert metrics["APs"] is None and metrics["APl"] is None and metrics["APm"] > 0
    doc = cli_json("coco", "eval", tmp_path / "gt.json", tmp_path / "pred.json")
    assert doc["f1"]["per_class"]["2"]["best"] is None
    assert doc["f1"]["per_class"]["1"]["best"]["conf"] == 0.6
