"""Reading predictions in each form and refusing (or, lenient, counting) the ones that would
change the mAP."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detkit.datasets.load import load_dataset
from detkit.errors import InputError
from detkit.evaluation.predictions import check_predictions, load_predictions
from detkit.evaluation.result import evaluate
from tests.evaluation.cases import gt_with_crowd, preds, random_case


def _yolo_gt(tmp_path, gt):
    """Write ``gt`` as a YOLO folder (tiny PNGs of the right size) and load it back."""
    import cv2

    (tmp_path / "gt" / "images").mkdir(parents=True)
    (tmp_path / "gt" / "labels").mkdir()
    cats = np.sort(gt.cat_id).tolist()
    for i, f, w, h in zip(gt.image_id, gt.file_name, gt.width, gt.height):
        cv2.imwrite(
            str(tmp_path / "gt" / "images" / f.replace(".jpg", ".png")),
            np.zeros((int(h), int(w), 3), np.uint8),
        )
        m = (gt.ann_image_id == i) & (gt.iscrowd == 0)
        lines = [
            f"{cats.index(c)} {(x + bw / 2) / w:.10f} {(y + bh / 2) / h:.10f} {bw / w:.10f} {bh / h:.10f}"
            for c, (x, y, bw, bh) in zip(gt.category_id[m], gt.bbox[m])
        ]
        (tmp_path / "gt" / "labels" / f.replace(".jpg", ".txt")).write_text("\n".join(lines))
    (tmp_path / "gt" / "classes.txt").write_text("\n".join(str(n) for n in gt.cat_name))
    return load_dataset(tmp_path / "gt", format="yolo")


def test_yolo_txt_predictions_score_as_the_coco_json_form(tmp_path):
    gt0, p = random_case(5, n_images=12, n_boxes=60, n_dets=400)
    gt0.iscrowd[:] = 0
    ygt = _yolo_gt(tmp_path, gt0)
    # the same predictions as ultralytics save_txt + save_conf files and as a COCO results json
    (tmp_path / "pred").mkdir()
    by_stem = {int(i): f.split(".")[0] for i, f in zip(gt0.image_id, gt0.file_name)}
    cats = np.sort(gt0.cat_id).tolist()
    lines: dict[str, list[str]] = {}
    for i, c, (x, y, w, h), s in zip(p.image_id, p.category_id, p.bbox, p.score):
        lines.setdefault(by_stem[int(i)], []).append(
            f"{cats.index(c)} {(x + w / 2) / 640:.12f} {(y + h / 2) / 640:.12f} {w / 640:.12f} "
            f"{h / 640:.12f} {s}"
        )
    for stem, ls in lines.items():
        (tmp_path / "pred" / f"{stem}.txt").write_text("\n".join(ls) + "\n")
    yp, unmatched = load_predictions(tmp_path / "pred", ygt)
    assert unmatched == [] and len(yp) == len(p) and yp.format == "yolo"
    stem_to_yolo_id = {f.split(".")[0]: int(i) for i, f in zip(ygt.image_id, ygt.file_name)}
    rows = [
        {
            "image_id": stem_to_yolo_id[by_stem[int(i)]],
            "category_id": cats.index(int(c)),
            "bbox": b,
            "score": s,
        }
        for i, c, b, s in zip(p.image_id, p.category_id, p.bbox.tolist(), p.score.tolist())
    ]
    (tmp_path / "pred.json").write_text(json.dumps(rows))
    jp, _ = load_predictions(tmp_path / "pred.json", ygt)
    a, b = evaluate(ygt, yp, tide=False, conf=None), evaluate(ygt, jp, tide=False, conf=None)
    ref = evaluate(gt0, p, tide=False, conf=None, curves=False)
    assert a.summary == pytest.approx(b.summary, abs=1e-9)
    assert a.summary == pytest.approx(ref.summary, abs=1e-6)  # the same boxes through normalised text
    assert 0.05 < a.summary["AP50"] < 0.95


def test_ultralytics_predictions_json_scores_as_the_coco_json_form(tmp_path, cli, cli_json):
    """ultralytics' save_json form of a non-COCO dataset: image_id the file stem (an int when all digits,
    a string otherwise), category_id the class index + 1. Read with --pred-format ultralytics it scores
    exactly as the same boxes given by the ground truth's own ids; read as COCO results it is one line
    naming the fix."""
    gt0, p = random_case(7, n_images=12, n_boxes=60, n_dets=400)
    gt0.iscrowd[:] = 0
    gt0.file_name = np.array(
        [f"{i:04d}.jpg" if i % 2 else f"img_{i}.jpg" for i in gt0.image_id], dtype=object
    )
    ygt = _yolo_gt(tmp_path, gt0)
    stem_of = {int(i): f.split(".")[0] for i, f in zip(gt0.image_id, gt0.file_name)}
    yolo_id = {f.split(".")[0]: int(i) for i, f in zip(ygt.image_id, ygt.file_name)}
    cats = np.sort(gt0.cat_id).tolist()
    ultra, by_id = [], []
    for i, c, b, s in zip(p.image_id.tolist(), p.category_id.tolist(), p.bbox.tolist(), p.score.tolist()):
        stem = stem_of[i]
        ultra.append(
            {
                "image_id": int(stem) if stem.isdigit() else stem,
                "category_id": cats.index(c) + 1,
                "bbox": b,
                "score": s,
            }
        )
        by_id.append({"image_id": yolo_id[stem], "category_id": cats.index(c), "bbox": b, "score": s})
    assert {type(r["image_id"]) for r in ultra} == {int, str}
    (tmp_path / "predictions.json").write_text(json.dumps(ultra))
    (tmp_path / "by_id.json").write_text(json.dumps(by_id))
    up, unmatched = load_predictions(tmp_path / "predictions.json", ygt, "ultralytics")
    assert unmatched == [] and len(up) == len(p) and up.format == "ultralytics"
    ref, _ = load_predictions(tmp_path / "by_id.json", ygt)
    a, b = evaluate(ygt, up, tide=False), evaluate(ygt, ref, tide=False)
    assert a.summary == pytest.approx(b.summary, abs=1e-12) and 0.05 < a.summary["AP50"] < 0.95
    doc = cli_json(
        "coco", "eval", tmp_path / "gt", tmp_path / "predictions.json", "--pred-format", "ultralytics"
    )
    assert doc["summary"]["AP"] == pytest.approx(a.summary["AP"], abs=1e-12) and doc["notes"] == []
    code, _, err = cli("coco", "eval", tmp_path / "gt", tmp_path / "predictions.json")
    assert code == 2 and "image_id" in err and "'ultralytics' predictions format" in err
    # COCO results by id against a YOLO folder, by detkit's numbering (what `detkit yolo eval` writes): some
    # ids name no numeric file stem, so the file cannot be ultralytics': scored, no hint
    code, _, err = cli("coco", "eval", tmp_path / "gt", tmp_path / "by_id.json")
    assert code == 0 and "numbered 1..N" not in err and "--pred-format ultralytics" not in err
    assert cli_json("coco", "eval", tmp_path / "gt", tmp_path / "by_id.json")["notes"] == []
    # a stem the ground truth lacks: one line naming the record, or with --lenient a counted finding
    (tmp_path / "predictions.json").write_text(json.dumps([*ultra, {**ultra[0], "image_id": "nosuch"}]))
    code, _, err = cli(
        "coco", "eval", tmp_path / "gt", tmp_path / "predictions.json", "--pred-format", "ultralytics"
    )
    assert code == 2 and f"$[{len(ultra)}] (file stem 'nosuch')" in err
    doc = cli_json(
        "coco",
        "eval",
        tmp_path / "gt",
        tmp_path / "predictions.json",
        "--pred-format",
        "ultralytics",
        "--lenient",
    )
    assert {f["code"]: f["count"] for f in doc["findings"]} == {"pred.unknown_image": 1}
    assert doc["summary"]["AP"] == pytest.approx(a.summary["AP"], abs=1e-12)


def test_detkit_predict_output_matched_by_stem(tmp_path):
    gt = gt_with_crowd()
    doc = {
        "weights": "w.pt",
        "images": [
            {
                "file": "/somewhere/a.png",
                "output": "a.png",
                "width": 640,
                "height": 480,
                "detections": [{"category_id": 1, "name": "cat", "score": 0.9, "bbox": [10, 10, 100, 100]}],
            },
            {"file": "c.jpg", "output": "c.jpg", "width": 640, "height": 480, "detections": []},
        ],
    }
    (tmp_path / "detections.json").write_text(json.dumps(doc))
    p, unmatched = load_predictions(tmp_path / "detections.json", gt)
    assert p.format == "detkit" and unmatched == []
    assert p.image_id.tolist() == [1] and p.bbox.tolist() == [[10, 10, 100, 100]]
    assert p.record(0) == "$.images[0].detections[0]"


BAD = {
    "pred.unknown_image": (7, 1, 10, 10, 5, 5, 0.5),
    "pred.unknown_category": (1, 2, 10, 10, 5, 5, 0.5),
    "pred.bad_score": (1, 1, 10, 10, 5, 5, float("nan")),
    "pred.bad_box": (1, 1, 10, 10, -2, 5, 0.5),
}


def test_bad_boxes_are_every_non_finite_or_empty_box():
    """Each column NaN or infinite, a negative width or height: bad; a box at negative x, y or of zero width
    or height (scored as pycocotools does): good."""
    from detkit.evaluation.predictions import _good_boxes

    nan, inf = float("nan"), float("inf")
    boxes = [
        [1, 2, 3, 4],
        [-5, -5, 3, 4],
        [nan, 2, 3, 4],
        [1, inf, 3, 4],
        [1, 2, -inf, 4],
        [1, 2, 3, nan],
        [1, 2, 0, 4],
        [1, 2, 3, 0],
        [1, 2, -3, 4],
        [1, 2, 3, -4],
        [1, 2, 1e-300, 1e300],
    ]
    expected = [True, True] + [False] * 4 + [True, True, False, False, True]
    assert _good_boxes(np.array(boxes, dtype=np.float64)).tolist() == expected
    assert _good_boxes(np.array(boxes, dtype=np.float64)[::-1]).tolist() == expected[::-1]  # a strided view


@pytest.mark.parametrize("code", sorted(BAD))
def test_bad_prediction_is_one_line_error_or_counted(code):
    gt = gt_with_crowd()
    good = [(1, 1, 10, 10, 100, 100, 0.9), (2, 5, 10, 10, 5, 5, 0.3)]
    p = preds([*good, BAD[code], BAD[code]])
    with pytest.raises(InputError) as e:
        check_predictions(gt, p)
    assert "$[2]" in str(e.value) and "2 predictions" in str(e.value) and "\n" not in str(e.value)
    kept, findings = check_predictions(gt, p, lenient=True)
    assert len(kept) == 2 and findings == [
        {"code": code, "count": 2, "message": findings[0]["message"], "example": findings[0]["example"]}
    ]


def test_unknown_category_error_names_class_indexes_plus_one():
    """Ground truth ids 1, 5, 9; predictions numbered 1..3 (class index + 1): the error says so."""
    gt = gt_with_crowd()
    p = preds([[1, 1, 10, 10, 5, 5, 0.9], [1, 2, 10, 10, 5, 5, 0.8], [2, 3, 1, 1, 5, 5, 0.7]])
    with pytest.raises(InputError) as e:
        check_predictions(gt, p)
    assert str(e.value).endswith(
        "$[1]: category_id 2 is not in the ground truth; every predicted id is in 1..3: class indexes + 1? "
        "the ground truth's ids are 1, 5, 9 (2 predictions like this; lenient=True drops them)"
    )


def test_predictions_for_a_subset_of_the_images_get_a_note():
    """Predictions for images 1-4 of 12: the 12 numbers are COCO's (the other images' boxes are misses), and
    a note counts the images with ground truth but no prediction; all images predicted: no note."""
    gt, p = random_case(3, n_images=12, n_boxes=80, n_dets=600)
    with_gt = set(gt.ann_image_id[gt.iscrowd == 0].tolist())
    sub = p.take(p.image_id <= 4)
    res = evaluate(gt, sub, tide=False)
    assert [(n["code"], n["count"]) for n in res.notes] == [
        ("pred.images_without_predictions", len(with_gt - set(sub.image_id.tolist())))
    ]
    assert len(with_gt - {1, 2, 3, 4}) > len(with_gt) / 2
    assert evaluate(gt, p, tide=False).notes == []


def test_negative_score_and_yolo_without_conf(tmp_path):
    gt = gt_with_crowd()
    with pytest.raises(InputError, match="score -0.1"):
        check_predictions(gt, preds([(1, 1, 10, 10, 5, 5, -0.1)]))
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(InputError, match="a.txt:line 1: .*save_conf"):
        load_predictions(tmp_path / "p", gt)


def test_yolo_file_without_image_is_an_error_or_a_finding(tmp_path):
    gt = gt_with_crowd()
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.txt").write_text("0 0.5 0.5 0.1 0.1 0.9\n")
    (tmp_path / "p" / "zz.txt").write_text("0 0.5 0.5 0.1 0.1 0.9\n")
    p, unmatched = load_predictions(tmp_path / "p", gt)
    assert len(p) == 1 and len(unmatched) == 1 and "zz.txt (file stem 'zz')" in unmatched[0]
    with pytest.raises(InputError, match="file stem 'zz'.* names no ground-truth image"):
        check_predictions(gt, p, unmatched=unmatched)
    kept, findings = check_predictions(gt, p, lenient=True, unmatched=unmatched)
    assert len(kept) == 1 and findings[0]["code"] == "pred.unknown_image" and findings[0]["count"] == 1
    # class 0 is the first ground-truth category in id order (cat, id 1), in pixels of a.jpg (640 x 480)
    assert p.category_id.tolist() == [1] and p.bbox[0].tolist() == pytest.approx([288.0, 216.0, 64.0, 48.0])


def test_index_of_equals_lookup():
    """The dense-table lookup gives lookup's answer: absent, negative and out-of-range queries -1, and
    sparse ids (the binary-search fallback)."""
    from detkit.datasets.model import lookup
    from detkit.evaluation.predictions import index_of

    rng = np.random.default_rng(0)
    for keys in (rng.choice(1000, 50, replace=False) + 7, np.array([5, 10**12]), np.array([3])):
        queries = np.concatenate([rng.integers(-20, 1100, 500), keys, [-(10**13), 10**13]])
        assert (index_of(keys, queries) == lookup(keys, queries)).all()
    assert index_of(np.array([4, 9]), np.zeros(0, np.int64)).shape == (0,)


@pytest.mark.parametrize("indent", [None, 1])
def test_chunked_results_decode_equals_whole_file(tmp_path, indent):
    """Cut every few bytes, records whose extra keys hold '},{', '{' and nested objects decode to the same
    columns as one decode of the whole file; a bad record still names its index."""
    from detkit.evaluation.predictions import load_coco_results

    rng = np.random.default_rng(0)
    rows = [
        {
            "image_id": int(i),
            "category_id": int(c),
            "bbox": [float(v) for v in rng.uniform(1, 50, 4)],
            "score": float(s),
            "note": ["x},{y", "a,{b", "{", "]"][k % 4],
            "extra": {"k": [1, {"z": 2}]},
        }
        for k, (i, c, s) in enumerate(
            zip(rng.integers(1, 9, 60), rng.integers(1, 4, 60), rng.uniform(size=60))
        )
    ]
    path = tmp_path / "dt.json"
    path.write_text(json.dumps(rows, indent=indent))
    for chunk in (1, 7, 64, 1 << 18):
        p = load_coco_results(path, chunk=chunk)
        assert p.image_id.tolist() == [r["image_id"] for r in rows]
        assert p.category_id.tolist() == [r["category_id"] for r in rows]
        assert p.bbox.tolist() == [r["bbox"] for r in rows]
        assert p.score.tolist() == [r["score"] for r in rows]
    rows[41]["score"] = "high"
    path.write_text(json.dumps(rows, indent=indent))
    with pytest.raises(InputError, match=r"\$\[41\]"):
        load_coco_results(path, chunk=64)
    path.write_text("[]")
    assert len(load_coco_results(path, chunk=1)) == 0


def test_ids_by_numbering_note_only_when_every_id_is_another_images_stem():
    """A YOLO-like ground truth whose files are 0010.jpg, 0020.jpg, 0030.jpg (numbered 1, 2, 3): results with
    ids 10, 30 (stems: ultralytics' naming) get the note; ids 1, 3 (detkit's numbering) do not."""
    from detkit.datasets.model import make_dataset
    from detkit.evaluation.predictions import ids_by_numbering

    ds = make_dataset(
        [(1, "0010.jpg", 64, 64), (2, "0020.jpg", 64, 64), (3, "0030.jpg", 64, 64)],
        [(1, 1, 1, 0, 0, 10, 10)],
        [(1, "a")],
    )
    ds.format = "yolo"
    p = preds([(10, 1, 0, 0, 5, 5, 0.5), (30, 1, 0, 0, 5, 5, 0.5)])
    assert ids_by_numbering(ds, p)["code"] == "pred.ids_by_numbering"
    assert ids_by_numbering(ds, preds([(1, 1, 0, 0, 5, 5, 0.5), (3, 1, 0, 0, 5, 5, 0.5)])) is None


def test_zero_size_boxes_are_scored_as_pycocotools_does_and_noted():
    """A box clipped to the image edge (height 0) is a false positive that matches nothing: both backends give
    the same 12 numbers as without it but for the extra false positive, and one note counts it; a negative
    size is still an error."""
    gt = gt_with_crowd()
    rows = [(1, 1, 10, 10, 100, 100, 0.9), (2, 5, 10, 10, 5, 5, 0.3), (1, 1, 73.68, 426.0, 10.59, 0.0, 0.95)]
    kept, findings = check_predictions(gt, preds(rows))
    assert len(kept) == 3 and findings == []
    a = evaluate(gt, preds(rows), tide=False)
    b = evaluate(gt, preds(rows), tide=False, backend="pycocotools")
    assert a.summary == pytest.approx(b.summary, abs=1e-12)
    # the zero-height box, best-scoring, is a false positive ranked ahead of cat's true positive
    ref = evaluate(gt, preds(rows[:2]), tide=False)
    assert a.summary["AP50"] < ref.summary["AP50"]
    assert [(n["code"], n["count"]) for n in a.notes] == [("pred.empty_boxes", 1)]
    assert ref.notes == []
    with pytest.raises(InputError, match="negative or non-finite"):
        check_predictions(gt, preds([(1, 1, 10, 10, 5, -1, 0.5)]))
