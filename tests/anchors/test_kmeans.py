"""IoU k-means: planted clusters, median vs mean on heavy tails, refinement, seeds and errors."""

from __future__ import annotations

import numpy as np
import pytest

from detkit.anchors.kmeans import _update, euclidean_kmeans, iou_kmeans, lloyd, refine_anchors
from detkit.anchors.metrics import best_iou, mean_iou
from detkit.errors import DetkitError


def heavy_tailed(n: int, seed: int = 0) -> np.ndarray:
    """COCO-like sizes: log-normal scale over ~3 decades, log-normal aspect ratio."""
    rng = np.random.default_rng(seed)
    s = np.exp(rng.normal(np.log(0.08), 1.0, n))
    r = np.exp(rng.normal(0.0, 0.5, n))
    return np.clip(np.stack([s * np.sqrt(r), s / np.sqrt(r)], 1), 1e-3, 1.0)


PLANTED = np.array([[0.05, 0.08], [0.2, 0.1], [0.15, 0.4], [0.6, 0.5]])


def test_planted_clusters_are_recovered_within_one_percent():
    rng = np.random.default_rng(1)
    wh = np.concatenate([c * np.exp(rng.normal(0, 0.01, (250, 2))) for c in PLANTED])
    res = iou_kmeans(wh, 4, seed=0)
    np.testing.assert_allclose(res.anchors, PLANTED, rtol=0.01)  # PLANTED is already sorted by area
    np.testing.assert_array_equal(res.counts, [250, 250, 250, 250])
    assert res.mean_iou > 0.97


def test_result_is_sorted_by_area_and_consistent():
    wh = heavy_tailed(3000)
    res = iou_kmeans(wh, 6, seed=0)
    area = res.anchors.prod(1)
    assert np.all(np.diff(area) >= 0)
    best, arg = best_iou(wh, res.anchors)
    np.testing.assert_array_equal(res.assignments, arg)
    np.testing.assert_array_equal(res.counts, np.bincount(arg, minlength=6))
    assert res.mean_iou == pytest.approx(best.mean(), rel=1e-12)
    assert res.k == 6 and res.counts.sum() == 3000 and len(res.restart_mean_ious) == res.restarts


def test_median_beats_mean_on_heavy_tails_and_refinement_never_lowers():
    wh = heavy_tailed(5000, seed=2)
    med = iou_kmeans(wh, 9, seed=0, update="median")
    mean = iou_kmeans(wh, 9, seed=0, update="mean")
    assert med.mean_iou_before_refine >= mean.mean_iou_before_refine
    for res in (med, mean):
        assert res.mean_iou >= res.mean_iou_before_refine
    assert med.mean_iou >= mean.mean_iou
    # and IoU k-means beats Euclidean k-means on the metric users judge anchors by
    assert med.mean_iou > euclidean_kmeans(wh, 9, seed=0, restarts=2).mean_iou


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_refine_never_lowers_mean_iou_even_from_bad_anchors(seed):
    wh = heavy_tailed(2000, seed=seed)
    rng = np.random.default_rng(seed)
    start = rng.uniform(0.01, 0.9, (5, 2))  # arbitrary anchors, some fitting nothing
    before = mean_iou(wh, start)
    after = mean_iou(wh, refine_anchors(wh, start))
    assert after >= before
    assert after > before + 0.01  # it actually does something from a bad start


def test_refine_flag_off_keeps_the_kmeans_anchors():
    wh = heavy_tailed(2000)
    res = iou_kmeans(wh, 5, seed=0, refine=False)
    assert res.mean_iou == pytest.approx(res.mean_iou_before_refine, rel=1e-12)


def test_same_seed_same_anchors():
    wh = heavy_tailed(4000, seed=5)
    a = iou_kmeans(wh, 7, seed=11)
    b = iou_kmeans(wh, 7, seed=11)
    np.testing.assert_array_equal(a.anchors, b.anchors)
    np.testing.assert_array_equal(a.assignments, b.assignments)


def test_subsampled_run_is_scored_on_every_box():
    wh = heavy_tailed(6000, seed=4)
    res = iou_kmeans(wh, 5, seed=0, sample_size=1000)
    assert len(res.assignments) == 6000
    assert res.mean_iou == pytest.approx(mean_iou(wh, res.anchors), rel=1e-12)
    assert res.mean_iou >= res.mean_iou_before_refine
    # close to the run on every box
    assert res.mean_iou == pytest.approx(iou_kmeans(wh, 5, seed=0).mean_iou, abs=0.005)


def test_lloyd_converges_to_a_fixed_point_of_the_median_update():
    wh = heavy_tailed(1500, seed=6)
    anchors, lab, _, _ = lloyd(wh, wh[:4], "median")
    np.testing.assert_array_equal(lab, best_iou(wh, anchors)[1])
    for j in range(4):
        np.testing.assert_allclose(anchors[j], np.median(wh[lab == j], axis=0))


def test_empty_cluster_takes_the_worst_fitting_box():
    x = np.array([[1.0, 1.0], [1.1, 1.0], [5.0, 0.2]])
    lab = np.array([0, 0, 0])
    iou = np.array([1.0, 0.9, 0.05])
    new = _update(x, lab, iou, np.array([[1.0, 1.0], [9.0, 9.0]]), "mean")
    np.testing.assert_allclose(new[0], x.mean(0))
    np.testing.assert_allclose(new[1], [5.0, 0.2])


def test_fewer_distinct_boxes_than_k_is_a_clear_error():
    wh = np.array([[0.1, 0.2]] * 50 + [[0.3, 0.3]] * 50)
    with pytest.raises(DetkitError, match="only 2 distinct box sizes for k = 3") as exc:
        iou_kmeans(wh, 3)
    assert exc.value.exit_code == 2
    assert iou_kmeans(wh, 2).mean_iou == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [np.array([[0.1, 0.0]]), np.array([[np.nan, 0.1]]), np.array([[-0.1, 0.2]])])
def test_non_positive_sizes_are_rejected(bad):
    wh = np.concatenate([heavy_tailed(20), bad])
    with pytest.raises(DetkitError, match="positive and finite"):
        iou_kmeans(wh, 3)


def test_unknown_update_and_bad_k():
    with pytest.raises(DetkitError, match="unknown update"):
        iou_kmeans(heavy_tailed(20), 3, update="mode")
    with pytest.raises(DetkitError, match="at least 1"):
        iou_kmeans(heavy_tailed(20), 0)
