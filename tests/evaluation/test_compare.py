"""`coco compare`: the re-weighted AP is COCOeval's, and the paired bootstrap's exit codes and determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detkit.errors import DetkitError
from detkit.evaluation.compare import paired_bootstrap, parse_fail_if_drop, prepare, summarize, weighted_ap
from detkit.evaluation.engine import coco_evaluate
from detkit.evaluation.matching import coco_matches
from tests.evaluation.cases import gt_with_crowd, preds, random_case


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_point_estimate_is_cocoeval(seed):
    """All weights 1: AP, AP50, AP75 and every class's AP equal pycocotools' (crowd regions, ties, more than
    100 detections on an image, a class without ground truth)."""
    gt, p = random_case(seed)
    core = coco_evaluate(gt, p, "pycocotools")
    ap = weighted_ap(prepare(gt, p), np.ones(gt.num_images))
    s = summarize(ap)
    assert [s["AP"], s["AP50"], s["AP75"]] == pytest.approx(core.stats[:3].tolist(), abs=1e-12)
    prec = core.precision[:, :, :, 0, -1]  # (T, R, K)
    for k in range(len(core.cat_ids)):
        if (prec[:, :, k] > -1).any():
            assert ap[:, k] == pytest.approx(prec[:, :, k].mean(axis=1), abs=1e-12)
        else:
            assert np.isnan(ap[:, k]).all()


def test_weights_are_images_drawn_twice():
    """Weight 2 on every image is the data set written twice: the same AP (precision and recall are
    ratios)."""
    gt, p = random_case(3, n_images=20, n_boxes=80, n_dets=500)
    m = prepare(gt, p)
    assert summarize(weighted_ap(m, np.full(gt.num_images, 2.0))) == pytest.approx(
        summarize(weighted_ap(m, np.ones(gt.num_images))), abs=1e-12
    )


def test_small_case_with_a_crowd_region():
    gt = gt_with_crowd()
    p = preds([(1, 1, 10, 10, 100, 100, 0.9), (2, 5, 10, 10, 5, 5, 0.3), (2, 1, 52, 50, 300, 200, 0.8)])
    core = coco_evaluate(gt, p, "pycocotools")
    s = summarize(weighted_ap(prepare(gt, p), np.ones(gt.num_images)))
    assert [s["AP"], s["AP50"], s["AP75"]] == pytest.approx(core.stats[:3].tolist(), abs=1e-12)


def _drop_true_positives(gt, p, share: float, seed: int = 0):
    flag, _ = coco_matches(gt, p, 0.5)
    tp = np.flatnonzero(flag == 1)
    drop = np.random.default_rng(seed).choice(tp, int(len(tp) * share), replace=False)
    keep = np.ones(len(p), bool)
    keep[drop] = False
    return p.take(keep)


def test_same_seed_same_intervals_bit_for_bit():
    gt, p = random_case(4, n_images=40, n_boxes=200, n_dets=2000)
    b = _drop_true_positives(gt, p, 0.1)
    r1 = paired_bootstrap(gt, p, b, samples=100, seed=3)
    r2 = paired_bootstrap(gt, p, b, samples=100, seed=3)
    assert json.dumps(r1) == json.dumps(r2)
    assert paired_bootstrap(gt, p, b, samples=100, seed=4)["interval"] != r1["interval"]


@pytest.fixture
def three(tmp_path):
    gt, p = random_case(5, n_images=150, n_boxes=1000, n_dets=8000)
    (tmp_path / "gt.json").write_text(json.dumps(gt.to_coco_dict()))
    (tmp_path / "a.json").write_text(json.dumps(p.to_results()))
    (tmp_path / "b.json").write_text(json.dumps(_drop_true_positives(gt, p, 0.1).to_results()))
    return tmp_path


def test_identical_files_all_deltas_zero_exit_0(three, cli_json):
    doc = cli_json(
        "coco",
        "compare",
        three / "gt.json",
        three / "a.json",
        three / "a.json",
        "--samples",
        "50",
        "--fail-if-drop",
        "AP=0.0,AP50=0.0",
    )
    assert set(doc["delta"].values()) == {0.0} and doc["fail_if_drop"]["failed"] == []
    assert all(v == [0.0, 0.0] for v in doc["interval"].values())
    assert {r["delta"] for r in doc["per_class"]} == {0.0}


def test_ten_percent_of_true_positives_removed_exit_1(three, cli, cli_json):
    args = ("coco", "compare", three / "gt.json", three / "a.json", three / "b.json", "--samples", "200")
    doc = cli_json(*args, "--fail-if-drop", "AP50=0.01", expect=1)
    f = doc["fail_if_drop"]["failed"]
    assert [x["metric"] for x in f] == ["AP50"] and f[0]["delta"] < -0.01 and f[0]["interval"][1] < 0
    code, _, err = cli(*args, "--fail-if-drop", "AP50=0.01")
    assert code == 1 and "FAIL --fail-if-drop AP50" in err and "below 0" in err
    # a drop smaller than the threshold passes; B better than A never fails
    assert cli(*args, "--fail-if-drop", "AP50=0.2")[0] == 0
    swapped = ("coco", "compare", three / "gt.json", three / "b.json", three / "a.json", "--samples", "50")
    assert cli(*swapped, "--fail-if-drop", "AP50=0.0")[0] == 0
    code, _, err = cli(*args, "--fail-if-drop", "AR=0.1")
    assert code == 2 and err.startswith("detkit: error: --fail-if-drop: 'AR=0.1' is not NAME=VALUE with NAME")
    with pytest.raises(DetkitError) as e:  # the Python API's words name the keyword argument
        parse_fail_if_drop("AP50=0.01,AR=0.1")
    assert str(e.value) == (
        "fail_if_drop: 'AR=0.1' is not NAME=VALUE with NAME one of AP, AP50, AP75 and VALUE in 0..1"
    )


def test_whole_weights_path_equals_the_float_path():
    """Bootstrap counts take the integer path; the same counts halved (not whole: the float path) give the
    same APs exactly, as halving changes no ratio."""
    gt, p = random_case(1)
    m = prepare(gt, p)
    rng = np.random.default_rng(0)
    n = gt.num_images
    for _ in range(10):
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        x, y = weighted_ap(m, w), weighted_ap(m, w * 0.5)
        assert np.array_equal(x, y, equal_nan=True)
