"""Every prediction file detkit writes is scored by `coco eval` as it is, without --lenient, on real images:
`yolo eval`'s predictions.json and `yolo predict`'s detections.json of a barely trained model (its boxes at
conf 0.001 include ones clipped to the image edge, of zero width or height). detkit writes no prediction
.txt; the YOLO txt form (ultralytics' save_txt) is read in test_predictions.py."""

from __future__ import annotations

import json

import pytest

from tests.conftest import shared_path


@pytest.fixture(scope="module")
def roadsigns_model(tmp_path_factory):
    from detkit.yolo.config import TrainConfig
    from detkit.yolo.train import train

    y = shared_path("roadsigns", "data.yaml")
    run = tmp_path_factory.mktemp("roadsigns_run")
    cfg = TrainConfig(
        data=str(y),
        out=str(run),
        epochs=1,
        batch=4,
        img_size=64,
        width=0.125,
        workers=0,
        max_steps=1,
        optimizer="adamw",
        augment=False,
        limit=8,
        seed=0,
    )
    train(cfg)
    return y, run / "last.pt"


@pytest.mark.slow
def test_yolo_eval_predictions_json_scored_without_lenient(roadsigns_model, cli, tmp_path):
    y, weights = roadsigns_model
    out = tmp_path / "ev"
    code, _, err = cli(
        "yolo", "eval", weights, "--data", y, "--workers", "0", "--conf", "0.001", "--out", out
    )
    assert code == 0, err
    rows = json.loads((out / "predictions.json").read_text())
    assert len(rows) > 100
    code, outp, err = cli("coco", "eval", y, out / "predictions.json", "--split", "val", "--json")
    assert code == 0, err
    doc = json.loads(outp)
    assert doc["counts"]["predictions"] == len(rows) and doc["counts"]["images"] == 100
    assert "--pred-format ultralytics" not in err and "pred.ids_by_numbering" not in err


@pytest.mark.slow
def test_yolo_predict_detections_json_scored_without_lenient(roadsigns_model, cli, tmp_path):
    y, weights = roadsigns_model
    images = sorted((y.parent / "val" / "images").iterdir())[:6]
    out = tmp_path / "pr"
    code, _, err = cli("yolo", "predict", weights, *images, "--out", out, "--conf", "0.001")
    assert code == 0, err
    n = sum(len(im["detections"]) for im in json.loads((out / "detections.json").read_text())["images"])
    assert n > 10
    # only the 6 images predicted: a note says most images have none, and the rest is scored
    code, outp, err = cli("coco", "eval", y, out / "detections.json", "--split", "val", "--json")
    assert code == 0, err
    assert json.loads(outp)["counts"]["predictions"] == n
