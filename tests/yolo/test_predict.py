"""detkit.yolo.predict: `detkit yolo eval` evaluates on the val split of a data.yaml / Roboflow export."""

from __future__ import annotations

import pytest

from tests.datasets.test_layouts import roboflow_yolo, ultralytics_set

TINY = ["--width", "0.125", "--workers", "0", "--optimizer", "adamw", "--seed", "0"]


@pytest.fixture(scope="module")
def yaml_run(tmp_path_factory):
    """An ultralytics set (train a, b, c; val d, e, whose one label row is unparsable) and a model trained
    on it for one step."""
    from detkit.yolo.config import TrainConfig
    from detkit.yolo.train import train

    root = tmp_path_factory.mktemp("yaml_set")
    y = ultralytics_set(root)
    (root / "ds" / "labels" / "val" / "e.txt").write_text("0 0.5 0.5\n")  # 3 fields: skipped, and said
    run = root / "run"
    cfg = TrainConfig(
        data=str(y),
        out=str(run),
        epochs=1,
        batch=2,
        img_size=64,
        width=0.125,
        workers=0,
        max_steps=1,
        optimizer="adamw",
        augment=False,
    )
    train(cfg)
    return y, run / "last.pt"


@pytest.mark.slow
def test_eval_on_a_data_yaml_takes_its_val_split_and_says_what_it_skipped(yaml_run, cli, tmp_path):
    import json

    y, weights = yaml_run
    code, out, err = cli("yolo", "eval", weights, "--data", y, "--workers", "0", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["metrics"]["images"] == 2  # d and e of val, not the 5 images of train + val
    gt = {r["name"]: r["gt"] for r in doc["per_class"]}
    assert gt == {"cat": 1, "dog": 0}  # d's cat; train's boxes (a: cat + dog, b: dog) are not counted
    assert err.count("warning: skipped 1 item(s): 1 record.unparsable") == 1
    assert "labels/val/e.txt:line 1" in err

    # an explicit image list wins over the declared split
    only_d = tmp_path / "only_d.txt"
    only_d.write_text("d\n")
    code, out, err = cli("yolo", "eval", weights, "--data", y, "--list", only_d, "--workers", "0", "--json")
    assert code == 0, err
    assert json.loads(out)["metrics"]["images"] == 1


@pytest.mark.slow
def test_eval_on_a_roboflow_export_takes_valid(yaml_run, cli_json, tmp_path):
    _, weights = yaml_run
    root = roboflow_yolo(tmp_path / "rf")  # train 2, valid 1 (v1: one "head", class 1), test 1
    doc = cli_json("yolo", "eval", weights, "--data", root, "--workers", "0")
    assert doc["metrics"]["images"] == 1
    assert {r["name"]: r["gt"] for r in doc["per_class"]} == {
        "helmet": 0,
        "head": 1,
    }  # the data set's names
