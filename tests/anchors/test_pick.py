"""Which k a sweep hands on: the rules of ``--pick`` on hand-made sweeps, and option checks by value."""

from __future__ import annotations

import pytest

from detkit.anchors.config import KMeansConfig, parse_ks
from detkit.anchors.sweep import Sweep, pick_k
from detkit.errors import OptionError


def _sweep(bprs: dict[int, float], elbow_k: int) -> Sweep:
    ks = sorted(bprs)
    rows = [{"k": k, "mean_iou": 0.4 + 0.05 * k, "bpr": bprs[k]} for k in ks]
    return Sweep(ks, [None] * len(ks), rows, elbow_k)


def test_bpr_picks_the_smallest_k_reaching_098():
    s = _sweep({1: 0.5, 2: 0.9, 3: 0.979, 4: 0.98, 5: 0.99, 6: 1.0}, elbow_k=3)
    p = pick_k(s, "bpr")
    assert (p.k, p.rule, p.bpr) == (4, "bpr", 0.98)
    assert p.mean_iou == pytest.approx(0.6)
    assert p.reason == "the smallest k with BPR@0.5 >= 98%"


def test_bpr_falls_back_to_5_then_to_the_nearest_k():
    p = pick_k(_sweep({k: 0.9 for k in range(1, 10)}, elbow_k=3), "bpr")
    assert p.k == 5 and p.reason == "no k reaches BPR@0.5 >= 98%; YOLOv2's 5"
    assert pick_k(_sweep({2: 0.5, 3: 0.6}, elbow_k=2), "bpr").k == 3
    assert pick_k(_sweep({4: 0.5, 6: 0.6}, elbow_k=4), "bpr").k == 6  # a tie goes to the larger k
    assert pick_k(_sweep({7: 0.5, 9: 0.6}, elbow_k=7), "bpr").k == 7


def test_elbow_and_a_number():
    s = _sweep({k: 0.99 for k in range(1, 8)}, elbow_k=3)
    assert pick_k(s, "elbow").k == 3 and pick_k(s, "elbow").rule == "elbow"
    assert pick_k(s, 6).k == 6 and pick_k(s, 6).reason == "asked for"
    with pytest.raises(OptionError, match=r"pick '9': is not one of the swept k \(1, 2, 3, 4, 5, 6, 7\)"):
        pick_k(s, 9)


def test_one_k_is_the_result_whatever_the_rule():
    p = pick_k(_sweep({3: 0.5}, elbow_k=3), "bpr")
    assert (p.k, p.rule, p.reason) == (3, "k", "the only k computed")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"k": "0"}, "k '0': k must be at least 1"),
        ({"k": "1-100"}, "k '1-100': at most 64 values"),
        ({"pick": "knee"}, "pick 'knee': choose bpr, elbow or a k"),
        ({"k": "3,4", "pick": 5}, "pick '5': is not one of the swept k (3, 4)"),
        ({"update": "mode"}, "update 'mode': choose from median, mean"),
        ({"norm": "stretch"}, "norm 'stretch': choose from image, letterbox"),
        ({"restarts": 0}, "restarts '0': must be at least 1"),
        ({"iou_thr": 1.5}, "iou_thr '1.5': must be between 0 and 1"),
    ],
)
def test_config_errors_name_values_not_flags(options, message):
    with pytest.raises(OptionError) as exc:
        KMeansConfig(**options)
    assert str(exc.value).startswith(message) and "--" not in str(exc.value)


def test_config_defaults_and_parsing():
    c = KMeansConfig()
    assert (c.ks, c.pick, c.restarts, c.update, c.norm) == ([5], "bpr", 6, "median", "image")
    assert KMeansConfig(k="1-3", pick="4" if False else "2").pick == 2
    assert parse_ks("3, 1-2,3") == [1, 2, 3] and parse_ks([4, 2]) == [2, 4] and parse_ks(7) == [7]
