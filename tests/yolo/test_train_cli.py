"""End to end: overfitting 8 images, `detkit yolo train` + `--resume` exactness, eval, predict, NaN stop,
BCCD."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from detkit.data.synth import write_detection_set
from detkit.yolo.train import resume
from tests.conftest import shared_path

TINY = ["--width", "0.125", "--workers", "0", "--optimizer", "adamw", "--lr", "0.005", "--seed", "0"]


@pytest.fixture(scope="module")
def synth8(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth8")
    write_detection_set(out, images=8, size=128, seed=0)
    return out


@pytest.mark.slow
def test_tiny_model_overfits_8_images(synth8, tmp_path):
    from detkit.yolo.config import TrainConfig
    from detkit.yolo.train import train

    cfg = TrainConfig(
        data=str(synth8 / "instances.json"),
        out=str(tmp_path / "run"),
        epochs=50,
        batch=4,
        img_size=128,
        augment=False,
        lr=0.005,
        optimizer="adamw",
        width=0.125,
        workers=0,
        eval_every=50,
        warmup_epochs=5,
        ema_decay=0.0,
    )
    summary = train(cfg)
    assert summary["metrics"]["best_mAP50"] >= 0.9, summary["metrics"]


def _rows(path):
    with open(path) as f:
        return [{k: v for k, v in r.items() if "per_s" not in k} for r in csv.DictReader(f)]


def _assert_rows_match(a: list[dict[str, str]], b: list[dict[str, str]]) -> None:
    """Same columns and cells; numbers equal to 1e-6 relative (a resumed epoch's means are summed anew)."""
    assert [r.keys() for r in a] == [r.keys() for r in b]
    for ra, rb in zip(a, b, strict=True):
        for k in ra:
            if ra[k] == "" or rb[k] == "":
                assert ra[k] == rb[k], (k, ra, rb)
            else:
                assert float(ra[k]) == pytest.approx(float(rb[k]), rel=1e-6, abs=1e-12), (k, ra, rb)


@pytest.mark.slow
def test_train_resume_eval_predict(synth8, tmp_path, cli, cli_json, capsys):
    data = synth8 / "instances.json"
    common = ["--data", data, "--epochs", "2", "--batch", "4", "--img-size", "64", *TINY]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    code, _, err = cli("yolo", "train", *common, "--out", straight)
    assert code == 0, err
    assert "warning: no --val-data/--val-list: mAP is measured on the training images\n" in err
    assert {p.name for p in straight.iterdir()} >= {
        "run.json",
        "config.json",
        "metrics.csv",
        "last.pt",
        "best.pt",
        "summary.json",
    }

    # interrupted after the first epoch (2 steps of 4 images), then resumed
    code, _, err = cli("yolo", "train", *common, "--out", resumed, "--max-steps", "2")
    assert code == 0, err
    assert torch.load(resumed / "last.pt", weights_only=True)["epoch"] == 1
    code, _, err = cli("yolo", "train", "--resume", resumed)
    assert code == 0, err
    assert "resuming" in err

    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(resumed / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2 and a["seen_images"] == b["seen_images"] == 16
    for part in ("model",):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part])
    assert all(torch.equal(a["ema"]["module"][k], b["ema"]["module"][k]) for k in a["ema"]["module"])
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 4
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)
    assert _rows(straight / "metrics.csv") == _rows(resumed / "metrics.csv")
    assert len(_rows(straight / "metrics.csv")) == 2
    summary = json.loads((resumed / "summary.json").read_text())
    assert summary["kind"] == "yolo.train" and summary["curves"] == "metrics.csv"
    assert [r["name"] for r in summary["tables"]["per_class"]] == ["circle", "rectangle", "triangle"]

    # nothing left to do: said, exit 0, the run untouched (the classifier's rule too)
    before = (resumed / "last.pt").read_bytes()
    code, _, err = cli("yolo", "train", "--resume", resumed)
    assert code == 0 and "already trained 2 of 2 epochs; nothing to do (--epochs N with N > 2 goes on)" in err
    assert (resumed / "last.pt").read_bytes() == before
    capsys.readouterr()
    assert resume(resumed)["status"] == "done"  # from Python: the keyword argument, not the flag
    assert "nothing to do (epochs=N with N > 2 goes on)" in capsys.readouterr().err

    doc = cli_json(
        "yolo", "eval", straight / "best.pt", "--data", data, "--workers", "0", "--out", tmp_path / "ev"
    )
    assert doc["kind"] == "yolo.eval" and doc["metrics"]["images"] == 8
    assert 0.0 <= doc["metrics"]["mAP"] <= doc["metrics"]["mAP50"] <= 1.0
    preds = json.loads((tmp_path / "ev" / "predictions.json").read_text())
    assert len(preds) == doc["metrics"]["detections"] > 0
    assert {p["category_id"] for p in preds} <= {3, 7, 11}  # the dataset's own ids, not class indices
    ev = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert ev["kind"] == "yolo.eval"
    # coco eval's PR / F1 / confusion / reliability figures, for the report
    assert ev["plots"] == {
        "pr_curves": "pr_curves.png",
        "f1_curve": "f1_curve.png",
        "confusion_matrix": "confusion_matrix.png",
        "calibration": "calibration.png",
    }
    assert all((tmp_path / "ev" / f).stat().st_size > 1000 for f in ev["plots"].values())

    imgs = sorted((synth8 / "images").iterdir())[:2]
    code, _, err = cli(
        "yolo", "predict", straight / "best.pt", *imgs, "--out", tmp_path / "pred", "--conf", "0.01"
    )
    assert code == 0, err
    det = json.loads((tmp_path / "pred" / "detections.json").read_text())
    assert [r["output"] for r in det["images"]] == [p.name for p in imgs]
    assert all((tmp_path / "pred" / p.name).is_file() for p in imgs)
    assert json.loads((tmp_path / "pred" / "summary.json").read_text())["kind"] == "yolo.predict"


@pytest.mark.slow
def test_resume_inside_an_epoch_skips_the_batches_already_trained(synth8, tmp_path, cli):
    common = [
        "--data",
        synth8 / "instances.json",
        "--epochs",
        "2",
        "--batch",
        "4",
        "--img-size",
        "64",
        "--eval-every",
        "5",
        *TINY,
    ]
    straight, part = tmp_path / "straight", tmp_path / "part"
    assert cli("yolo", "train", *common, "--out", straight)[0] == 0
    code, _, err = cli("yolo", "train", *common, "--out", part, "--max-steps", "1")  # half of epoch 1
    assert code == 0, err
    ckpt = torch.load(part / "last.pt", weights_only=True)
    assert (ckpt["epoch"], ckpt["epoch_step"], ckpt["seen_images"]) == (0, 1, 4)
    code, _, err = cli("yolo", "train", "--resume", part / "last.pt")  # the checkpoint file works as well
    assert code == 0, err
    assert "at epoch 1/2, batch 2 of 2" in err
    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(part / "last.pt", weights_only=True)
    assert (
        (a["epoch"], a["seen_images"], a["scheduler"]["last_epoch"])
        == (b["epoch"], b["seen_images"], b["scheduler"]["last_epoch"])
        == (2, 16, 4)
    )
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert [r["epoch"] for r in _rows(part / "metrics.csv")] == ["1", "2"]  # the part-epoch row was redone
    # and averages both halves of epoch 1 (the first half's sums travel in the checkpoint)
    _assert_rows_match(_rows(straight / "metrics.csv"), _rows(part / "metrics.csv"))
    run = json.loads((part / "run.json").read_text())
    assert len(run["resumed"]) == 1 and run["resumed"][0]["config"]["epochs"] == 2
    assert {"cv2", "pycocotools", "torch"} <= set(run["versions"])
    code, _, err = cli("yolo", "train", "--resume", part, "--lr", "0.1", "--epochs", "3")
    assert (
        code == 2
        and "leave out --lr 0.1 (the run has 0.005)" in err
        and "--epochs 3" not in err.split("(only")[0]
    )


@pytest.mark.slow
def test_nan_loss_stops_with_exit_1_and_keeps_the_checkpoint(synth8, tmp_path, cli, monkeypatch):
    from detkit.yolo.loss import YoloLoss

    real = YoloLoss.forward
    calls = {"n": 0}

    def flaky(self, raw, gt, seen_images=0):
        calls["n"] += 1
        total, parts = real(self, raw, gt, seen_images)
        return (total * float("nan"), parts) if calls["n"] > 2 else (total, parts)

    monkeypatch.setattr(YoloLoss, "forward", flaky)
    run = tmp_path / "nan"
    code, _, err = cli(
        "yolo",
        "train",
        "--data",
        synth8 / "instances.json",
        "--epochs",
        "3",
        "--batch",
        "4",
        "--img-size",
        "64",
        *TINY,
        "--out",
        run,
    )
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        "detkit: error: training stopped in epoch 2: loss is nan at step 1 of the epoch; last good "
        f"checkpoint kept: {run / 'last.pt'}"
    )
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1
    assert json.loads((run / "summary.json").read_text())["status"] == "diverged"  # the one NaN policy


def test_missing_data_is_a_usage_error(cli, tmp_path):
    code, _, err = cli("yolo", "train", "--data", tmp_path / "nope.json", "--out", tmp_path / "r")
    assert code == 2 and "nope.json" in err and "Traceback" not in err


@pytest.mark.slow
def test_bccd_voc_trains_a_few_steps(cli, tmp_path):
    bccd = shared_path("bccd", "BCCD")
    run = tmp_path / "bccd"
    code, _, err = cli(
        "yolo",
        "train",
        "--data",
        bccd,
        "--train-list",
        bccd / "ImageSets/Main/train.txt",
        "--val-list",
        bccd / "ImageSets/Main/test.txt",
        "--limit",
        "8",
        "--max-steps",
        "2",
        "--batch",
        "4",
        "--img-size",
        "128",
        *TINY,
        "--out",
        run,
    )
    assert code == 0, err
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["class_map"]["names"] == ["Platelets", "RBC", "WBC"] and ckpt["seen_images"] == 8
    rows = _rows(run / "metrics.csv")
    assert len(rows) == 1 and float(rows[0]["loss"]) > 0


@pytest.mark.slow
def test_corrupt_image_is_reported_by_path_and_training_goes_on(synth8, tmp_path, cli):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synth8, data)
    bad = data / "images" / "shape_00003.jpg"
    bad.write_bytes(bad.read_bytes()[:40])  # a truncated header: cv2 cannot decode it
    code, _, err = cli(
        "yolo",
        "train",
        "--data",
        data / "instances.json",
        "--epochs",
        "1",
        "--batch",
        "4",
        "--img-size",
        "64",
        *TINY,
        "--out",
        tmp_path / "run",
    )
    assert code == 0, err
    # once, though training and evaluation (on the same images: no validation set) both meet it
    assert err.replace("\n", "").count(f"{bad}: cannot decode the image; skipped") == 1
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt["seen_images"] == 7


@pytest.mark.slow
def test_a_run_folder_is_refused_resumed_or_started_over_and_rebuilt_from_last_pt(synth8, tmp_path, cli):
    run = tmp_path / "run"
    # evaluated after epoch 2 only, so the last epoch is the best whatever the mAP: best.pt is last.pt's
    common = ["--data", synth8 / "instances.json", "--epochs", "2", "--batch", "4", "--img-size", "64", *TINY]
    common += ["--eval-every", "2"]
    code, _, err = cli("yolo", "train", *common, "--out", run, "--log-every", "0")
    assert code == 0, err
    assert "epoch 2/2 step 2/2: loss" in err  # a progress line per step off a terminal with --log-every 0
    # where it wrote is the last line; curves.png drawn
    files = "last.pt, best.pt, metrics.csv, curves.png, summary.json"
    assert err.splitlines()[-1].startswith(f"run folder {run} (done): {files}; best: epoch 2, mAP ")
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    policy = json.loads((run / "run.json").read_text())["config"]["thread_policy"]
    assert policy["workers"] == 0 and policy["threads"] >= 1  # detkit.train.threads' choice, on record
    assert (
        json.loads((run / "config.json").read_text())["threads"] == policy["threads"]
    )  # what --resume keeps
    before = (run / "metrics.csv").read_text()
    code, _, err = cli("yolo", "train", *common, "--out", run, "--epochs", "1")
    assert code == 2 and err.strip() == (
        f"detkit: error: {run}: already holds a run (last.pt); continue it with --resume {run}, "
        "start over with --exist-ok, or pick another --out"
    )
    assert (run / "metrics.csv").read_text() == before
    # a kill after the last commit: the side files are rebuilt from last.pt, exit 0
    for name in ("summary.json", "metrics.csv", "best.pt"):
        (run / name).unlink()
    code, _, err = cli("yolo", "train", "--resume", run)
    assert code == 0, err
    assert "rebuilt best.pt, metrics.csv, summary.json from last.pt (epoch 2)" in err
    assert (run / "metrics.csv").read_text().splitlines() == before.splitlines()
    assert json.loads((run / "summary.json").read_text())["status"] == "done"
    assert torch.load(run / "best.pt", weights_only=True)["epoch"] == 2
    # more epochs: the schedule rule is said (old schedule's end value -> the new schedule's at step 5)
    from detkit.yolo.config import TrainConfig
    from detkit.yolo.setup import lr_factor

    cfg = TrainConfig(data="", out="")
    warmup = min(round(cfg.warmup_epochs * 2), 6 // 3)
    before = 0.005 * lr_factor(4, min(round(cfg.warmup_epochs * 2), 4 // 3), 4, cfg.final_lr_ratio)
    after = 0.005 * lr_factor(5, warmup, 6, cfg.final_lr_ratio)
    code, _, err = cli("yolo", "train", "--resume", run, "--epochs", "3")
    assert code == 0, err
    assert (
        f"epochs 2 -> 3: the cosine schedule is recomputed over 3 epochs, so the learning rate moves from "
        f"{before:.3g} to {after:.3g} (the new schedule's value at this step; no new warm-up)" in err
    )
    code, _, err = cli("yolo", "train", *common, "--out", run, "--epochs", "1", "--exist-ok")
    assert code == 0, err
    assert (
        "--exist-ok: deleted the previous run's run.json, config.json, metrics.csv, last.pt, best.pt, "
        "curves.png, summary.json" in err
    )
    assert (
        torch.load(run / "last.pt", weights_only=True)["epoch"] == 1 and not (run / ".detkit.lock").exists()
    )


@pytest.mark.slow
def test_more_workers_than_cpus_is_said_once(synth8, tmp_path, cli):
    """torch warns when the loader is built and again when it is iterated; the trainer says it once."""
    import os
    import warnings

    cpus = len(os.sched_getaffinity(0))
    args = ["--data", synth8 / "instances.json", "--epochs", "1", "--batch", "4", "--img-size", "64", *TINY]
    args += ["--workers", str(cpus + 1), "--max-steps", "1", "--out", tmp_path / "run"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = cli("yolo", "train", *args)
    assert code == 0, err
    assert err.count(f"warning: {cpus + 1} data-loading workers on {cpus} usable CPUs") == 1
    assert not [w for w in caught if "DataLoader will create" in str(w.message)]
