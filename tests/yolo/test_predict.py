"""detkit.yolo.predict: `detkit yolo eval` evaluates on the val split of a data.yaml / Roboflow export."""

from __future__ import annotations

import json
from pathlib import Path

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


@pytest.mark.slow
def test_eval_split_option_picks_a_declared_split_and_refuses_others(yaml_run, cli, cli_json):
    y, weights = yaml_run
    doc = cli_json(
        "yolo", "eval", weights, "--data", y, "--split", "train", "--workers", "0", "--threads", "1"
    )
    assert doc["metrics"]["images"] == 3  # a, b and the background c
    assert doc["runtime"] == {"backend": "torch", "threads": 1, "device": "cpu"}
    code, _, err = cli("yolo", "eval", weights, "--data", y, "--split", "nope", "--workers", "0")
    assert code == 2 and "declares no split 'nope' (it has: train, val)" in err


@pytest.mark.slow
def test_predict_on_a_split_is_read_back_by_coco_eval_with_no_flags(yaml_run, cli, cli_json, tmp_path):
    """predict on data.yaml's val: predictions.json carries the data set's image ids and labels/ the
    ultralytics txt; `detkit coco eval GT PRED` reads both with no --pred-format and finds what yolo eval
    finds."""
    y, weights = yaml_run
    out = tmp_path / "p"
    code, _, err = cli(
        "yolo", "predict", weights, y, "--out", out, "--conf", "0.001", "--save-txt", "--threads", "1"
    )
    assert code == 0, err
    doc = json.loads((out / "detections.json").read_text())
    assert [Path(r["file"]).name for r in doc["images"]] == ["d.jpg", "e.jpg"]
    ref = cli_json("yolo", "eval", weights, "--data", y, "--workers", "0", "--conf", "0.001")["metrics"]
    rows = json.loads((out / "predictions.json").read_text())
    assert len(rows) == ref["detections"] > 0
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["d.txt", "e.txt"]
    for pred in (out / "predictions.json", out / "labels"):
        got = cli_json("coco", "eval", y, pred, "--split", "val")["summary"]
        assert abs(got["AP"] - ref["mAP"]) < 1e-3 and abs(got["AP50"] - ref["mAP50"]) < 1e-3, pred


def _clip(path: Path, frames: list[Path], size=(64, 48)) -> Path:
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, size)
    for f in frames:
        w.write(cv2.resize(cv2.imread(str(f)), size))
    w.release()
    return path


@pytest.mark.slow
def test_predict_inputs_folder_glob_list_and_video(yaml_run, cli, tmp_path):
    y, weights = yaml_run
    images = y.parent / "ds" / "images" / "train"
    listed = tmp_path / "list.txt"
    listed.write_text(f"# two of them\n{images / 'a.jpg'}\n\n{images / 'b.jpg'}\n")
    video = _clip(tmp_path / "clip.avi", [images / f"{n}.jpg" for n in "abcab"])
    out = tmp_path / "out"
    glob = str(images / "[ab].jpg")
    args = [images, glob, listed, video, "--out", out, "--conf", "0.001", "--save-txt", "--threads", "1"]
    code, stdout, err = cli("yolo", "predict", weights, *args)
    assert code == 0, err
    assert "on 7 images and 5 video frames" in stdout
    doc = json.loads((out / "detections.json").read_text())
    assert [Path(r["file"]).name for r in doc["images"]] == ["a.jpg", "b.jpg", "c.jpg"] + [
        "a.jpg",
        "b.jpg",
    ] * 2
    assert [r["output"] for r in doc["images"]][3:] == ["a_2.jpg", "b_2.jpg", "a_3.jpg", "b_3.jpg"]
    (clip,) = doc["videos"]
    assert clip["output"] == "clip.mp4" and [f["frame"] for f in clip["frames"]] == [0, 1, 2, 3, 4]
    assert [f["image_id"] for f in clip["frames"]] == [8, 9, 10, 11, 12]  # images 1..7 first
    import cv2

    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5 and cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 64
    cap.release()
    rows = json.loads((out / "predictions.json").read_text())
    assert {r["image_id"] for r in rows} == set(range(1, 13))
    txt = sorted(p.name for p in (out / "labels").iterdir())
    assert txt == sorted(
        ["a.txt", "b.txt", "c.txt", "a_2.txt", "b_2.txt", "a_3.txt", "b_3.txt"]
        + [f"clip_{k}.txt" for k in range(5)]
    )
    first = (out / "labels" / "clip_0.txt").read_text().splitlines()[0].split()
    assert len(first) == 6 and first[0] in ("0", "1") and 0 < float(first[5]) <= 1


@pytest.mark.slow
def test_bad_videos_are_one_line_and_leave_nothing(yaml_run, cli, tmp_path):
    y, weights = yaml_run
    images = y.parent / "ds" / "images" / "train"
    good = _clip(tmp_path / "good.avi", [images / f"{n}.jpg" for n in "abcabcabca"])
    data = good.read_bytes()
    truncated = tmp_path / "truncated.avi"  # the header declares 10 frames; the data stops in the middle
    truncated.write_bytes(data[: len(data) // 2])
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 20)
    cases = {truncated: "truncated.avi: frame ", junk: "junk.mp4: cannot open the video"}
    for video, what in cases.items():
        out = tmp_path / f"out_{video.stem}"
        code, _, err = cli("yolo", "predict", weights, images / "a.jpg", video, "--out", out)
        assert code == 2 and what in err and err.count("\n") == 1, err
        assert not out.exists()  # the image predicted before the video is not left behind
    assert (
        "of 10 fails to decode (truncated or corrupt video)"
        in cli("yolo", "predict", weights, truncated, "--out", tmp_path / "o")[2]
    )


def test_progress_on_a_log_is_a_line_every_tenth(capsys, monkeypatch):
    """stderr not a terminal: one line per 10% of a long input (none for a short one)."""
    from detkit.yolo.predict import _Progress

    monkeypatch.setattr("detkit.yolo.predict.progress_enabled", lambda: False)
    with _Progress("predicting", 200) as bar:
        for _ in range(200):
            bar.advance()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "predicting: 20/200 (10%)" and lines[-1] == "predicting: 200/200 (100%)"
    assert len(lines) == 10
    with _Progress("predicting", 20) as bar:
        bar.advance(20)
    assert capsys.readouterr().err == ""


def test_an_out_that_is_a_file_names_the_value_in_the_library_and_the_flag_on_the_cli(cli, tmp_path):
    from detkit.errors import OptionError
    from detkit.yolo.predict import predict_files

    f = tmp_path / "afile"
    f.write_text("")
    with pytest.raises(OptionError) as exc:
        predict_files(tmp_path / "best.pt", [tmp_path], f)
    assert str(exc.value) == f"out must be a folder: {f} is a file"
    code, _, err = cli("yolo", "predict", tmp_path / "best.pt", tmp_path, "--out", f)
    assert code == 2 and err == f"detkit: error: --out must be a folder: {f} is a file\n"
    assert f.read_text() == ""


@pytest.mark.slow
def test_frame_labels_never_overwrite_an_image_or_another_video(yaml_run, cli, tmp_path):
    """clip_2.jpg beside clip.avi: frame 2's <stem>_<frame>.txt must not be the image's labels/clip_2.txt,
    in either order; a second clip.avi gets its own stem."""
    import shutil

    y, weights = yaml_run
    images = y.parent / "ds" / "images" / "train"
    (tmp_path / "v2").mkdir()
    shutil.copy(images / "a.jpg", tmp_path / "clip_2.jpg")
    one = _clip(tmp_path / "clip.avi", [images / f"{n}.jpg" for n in "abc"])
    two = _clip(tmp_path / "v2" / "clip.avi", [images / f"{n}.jpg" for n in "ab"])
    want = [  # the image first: the videos move past clip_2; a video first: the image moves on to _2
        ["clip_2", "clip_2_0", "clip_2_1", "clip_2_2", "clip_3_0", "clip_3_1"],
        ["clip_0", "clip_1", "clip_2", "clip_2_2", "clip_3_0", "clip_3_1"],
    ]
    for k, order in enumerate([[tmp_path / "clip_2.jpg", one, two], [one, tmp_path / "clip_2.jpg", two]]):
        out = tmp_path / f"out{k}"
        code, _, err = cli("yolo", "predict", weights, *order, "--out", out, "--save-txt", "--conf", "0.001")
        assert code == 0, err
        assert sorted(p.stem for p in (out / "labels").iterdir()) == want[k]  # one per image and frame
