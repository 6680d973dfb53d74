"""Normalisations, unit conversions, the darknet line and the anchors file."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from detkit.anchors.config import parse_ks
from detkit.anchors.sweep import anchors_file, pick_k, run_sweep
from detkit.anchors.units import anchor_units, clean_wh, darknet_line, dataset_wh, to_grid, to_pixels
from detkit.datasets.model import make_dataset
from detkit.errors import DetkitError


def _ds():
    return make_dataset(
        images=[(1, "a.jpg", 200, 100), (2, "b.jpg", 300, 600)],
        annotations=[
            (1, 1, 1, 0, 0, 50, 20),
            (2, 2, 1, 10, 10, 30, 60),
            (3, 9, 1, 0, 0, 5, 5),
        ],  # 3: dangling image
        categories=[(1, "thing")],
    )


def test_image_and_letterbox_normalisation_by_hand():
    ds = _ds()
    img = dataset_wh(ds, "image")
    np.testing.assert_allclose(img[:2], [[50 / 200, 20 / 100], [30 / 300, 60 / 600]])
    box = dataset_wh(ds, "letterbox")  # divided by the long side: the aspect ratio of the box is kept
    np.testing.assert_allclose(box[:2], [[50 / 200, 20 / 200], [30 / 600, 60 / 600]])
    assert np.isnan(img[2]).all() and np.isnan(box[2]).all()
    with pytest.raises(DetkitError, match="norm 'stretch': choose from image, letterbox"):
        dataset_wh(ds, "stretch")


def test_clean_wh_drops_zero_negative_and_nan():
    kept, dropped = clean_wh(
        np.array([[0.1, 0.2], [0.0, 0.3], [-1, 0.2], [np.nan, 0.1], [0.3, np.inf], [0.5, 0.5]])
    )
    np.testing.assert_array_equal(dropped, [False, True, True, True, True, False])
    np.testing.assert_array_equal(kept, [[0.1, 0.2], [0.5, 0.5]])


def test_units_are_consistent():
    a = np.array([[0.1, 0.2], [0.5, 0.25]])
    np.testing.assert_allclose(to_grid(a, 13), [[1.3, 2.6], [6.5, 3.25]])
    np.testing.assert_allclose(to_pixels(a, 416), [[41.6, 83.2], [208, 104]])
    u = anchor_units(a, grid=13, img_size=416)
    np.testing.assert_allclose(np.array(u["anchors_grid"]), a * 13)
    np.testing.assert_allclose(np.array(u["anchors_pixels"]), a * 416)
    assert u["darknet"] == "anchors = 1.3000,2.6000,  6.5000,3.2500"
    assert u["darknet_yolov3"] == "anchors = 42,83,  208,104"
    assert darknet_line(np.array([[10, 13], [16, 30]]), 0) == "anchors = 10,13,  16,30"


@pytest.mark.parametrize(
    "text, ks", [("5", [5]), ("3,4,6", [3, 4, 6]), ("1-4", [1, 2, 3, 4]), ("6, 2-3", [2, 3, 6])]
)
def test_parse_ks(text, ks):
    assert parse_ks(text) == ks


@pytest.mark.parametrize("text", ["0", "five", "5-3", "1-100", ""])
def test_parse_ks_rejects(text):
    with pytest.raises(DetkitError, match=f"^k '{text}': "):
        parse_ks(text)


def test_anchors_file_units_and_choice():
    rng = np.random.default_rng(0)
    wh = np.exp(rng.normal(-2, 0.7, (800, 2)))
    sweep = run_sweep(wh, [2, 3, 4], seed=0, restarts=2, grid=19, img_size=608)
    assert pick_k(sweep, "elbow").k == sweep.elbow_k
    assert pick_k(sweep, 4).k == 4
    with pytest.raises(DetkitError, match="pick '7': is not one of the swept k"):
        pick_k(sweep, 7)
    doc = anchors_file(
        sweep, pick_k(sweep, 3), norm="letterbox", grid=19, img_size=608, seed=0, method="iou", source="x"
    )
    a = np.array(doc["anchors_normalized"])
    assert doc["pick"] == {"rule": "k", "reason": "asked for"}
    assert a.shape == (3, 2) and doc["k"] == 3 and doc["grid"] == 19 and doc["img_size"] == 608
    np.testing.assert_allclose(doc["anchors_grid"], a * 19)
    np.testing.assert_allclose(doc["anchors_pixels"], a * 608)
    assert doc["mean_iou"] == pytest.approx(sweep.result(3).mean_iou)
    assert doc["darknet"].startswith("anchors = ") and doc["darknet"].count(",  ") == 2


def test_scatter_style_scales_with_the_number_of_boxes():
    from detkit.anchors.plots import scatter_style

    assert scatter_style(50) == pytest.approx((40.0, 0.9)) and scatter_style(100) == pytest.approx(
        (40.0, 0.9)
    )
    assert scatter_style(20_000) == pytest.approx((2.0, 0.25)) and scatter_style(10**6) == pytest.approx(
        (2.0, 0.25)
    )
    sizes = [scatter_style(n) for n in (100, 500, 2_000, 8_000, 20_000)]
    assert all(
        a[0] > b[0] and a[1] > b[1] for a, b in itertools.pairwise(sizes)
    )  # fewer boxes: bigger, bolder
