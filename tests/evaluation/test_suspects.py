"""Label-error suspects: each kind on a hand-made case, and the recall of injected errors."""

from __future__ import annotations

import json

from detkit.datasets.model import make_dataset
from detkit.evaluation.suspects import find_suspects
from tests.evaluation.cases import injected_label_errors, preds


def test_each_kind_by_hand():
    """Image 1: a box found (no suspect); a detection on nothing (missing label, score .9); a class-b
    detection on a class-a box nobody found as a (wrong class, .8); a detection at IoU 0.4 to its class's
    box (loose box, .7). Image 2: a class-a box nothing touches while a's recall elsewhere is 1/2 (boxes
    1, 2 found: 1): spurious, score half of it, .25."""
    gt = make_dataset(
        [(1, "1.jpg", 640, 640), (2, "2.jpg", 640, 640)],
        [
            (1, 1, 1, 0, 0, 50, 50),
            (2, 1, 1, 200, 0, 50, 50),
            (3, 1, 2, 400, 0, 50, 50),
            (4, 2, 1, 0, 0, 50, 50),
        ],
        [(1, "a"), (2, "b")],
    )
    p = preds(
        [
            (1, 1, 0, 0, 50, 50, 0.95),  # found
            (1, 1, 300, 300, 50, 50, 0.9),  # nothing there
            (1, 1, 300, 310, 50, 50, 0.85),  # the same spot again: one suspect
            (1, 2, 200, 0, 50, 50, 0.8),  # class b on box 2 (class a)
            (1, 2, 400, 0, 50, 20, 0.7),  # IoU 1000 / 2500 = 0.4 with box 3, its class
            (2, 2, 600, 600, 10, 10, 0.3),  # not confident: no suspect
        ]
    )
    s = find_suspects(gt, p)
    got = [(r["kind"], r["ann_id"], r["score"]) for r in s["suspects"]]
    assert got == [
        ("missing_label", None, 0.9),
        ("wrong_class", 2, 0.8),
        ("loose_box", 3, 0.7),
        ("spurious_label", 4, 0.25),
    ]
    assert s["suspects"][1]["gt_class"] == "a" and s["suspects"][1]["pred_class"] == "b"
    assert s["suspects"][2]["iou"] == 0.4 and s["suspects"][0]["record"] == "$[1]"
    assert s["counts"] == {"missing_label": 1, "wrong_class": 1, "loose_box": 1, "spurious_label": 1}


def test_injected_errors_are_in_the_top_100_with_their_kind():
    """60 injected errors (20 deleted, 20 flipped, 20 shifted boxes): at least 80% among the top 100
    suspects, each with the kind injected."""
    gt, p, truth = injected_label_errors(0)
    top = find_suspects(gt, p)["suspects"][:100]
    hits = 0
    for r in top:
        if r["ann_id"] is not None:
            hits += truth.get(r["ann_id"]) == r["kind"]
        else:
            row = int(r["record"][2:-1])
            hits += truth.get(-row - 1) == r["kind"]
    assert hits >= 48, hits
    per_kind = {k: sum(v == k for v in truth.values()) for k in ("missing_label", "wrong_class", "loose_box")}
    assert per_kind == {"missing_label": 20, "wrong_class": 20, "loose_box": 20}


def test_cli_suspects(tmp_path, cli, cli_json):
    gt, p, _ = injected_label_errors(1, n_images=30)
    (tmp_path / "gt.json").write_text(json.dumps(gt.to_coco_dict()))
    (tmp_path / "pred.json").write_text(json.dumps(p.to_results()))
    doc = cli_json("coco", "suspects", tmp_path / "gt.json", tmp_path / "pred.json", "--top", "5")
    assert len(doc["suspects"]) == 5 and [r["rank"] for r in doc["suspects"]] == [1, 2, 3, 4, 5]
    code, out, err = cli("coco", "suspects", tmp_path / "gt.json", tmp_path / "pred.json", "--top", "3")
    assert code == 0 and "Label-error suspects: 3 of" in out
    code, _, err = cli("coco", "suspects", tmp_path / "gt.json", tmp_path / "nosuch.json")
    assert code == 2 and "nosuch.json" in err and "Traceback" not in err
