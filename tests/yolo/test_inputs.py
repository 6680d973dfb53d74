"""Bad input to `detkit yolo`: one line naming what is wrong, exit 2, no traceback; and anchor units."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from detkit.data.synth import write_detection_set
from detkit.datasets.model import make_dataset
from detkit.errors import DetkitError
from detkit.yolo.priors import letterbox_factors, resolve_anchors


@pytest.fixture(scope="module")
def synth4(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth4")
    write_detection_set(out, images=4, size=64, seed=0)
    return out


def _anchors(tmp_path, doc) -> str:
    path = tmp_path / "anchors.json"
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--anchors", {"anchors_normalized": [1, 2]}],
            "'anchors_normalized' must be a list of [w, h] pairs",
        ),
        (["--anchors", {"anchors_normalized": []}], "'anchors_normalized' is empty"),
        (
            ["--anchors", {"anchors_normalized": [[0.1, -0.2]]}],
            "anchor [0.1, -0.2] needs a positive, finite width",
        ),
        (["--anchors", {"anchors_normalized": [[0.1, 0.2]], "norm": "pixels"}], "unknown norm 'pixels'"),
        (["--loss", "foo"], "--loss must be one of modern, darknet, course, got 'foo'"),
        (["--size-loss", "cubic"], "--size-loss must be log or sqrt, got 'cubic'"),
        (["--backbone", "vgg"], "--backbone must be one of darknet19, resnet18, resnet50, got 'vgg'"),
        (["--batch", "0"], "--batch must be at least 1, got 0"),
        (["--epochs", "0"], "--epochs must be at least 1, got 0"),
        (["--lr", "nan"], "--lr must be a positive number, got nan"),
        (["--img-size", "50"], "--img-size must be a multiple of 32 in 32..2048, got 50"),
        (["--ema-decay", "1.5"], "--ema-decay must be in [0, 1), got 1.5"),
        (["--weights", "garbage"], "not a PyTorch weights file"),
    ],
)
def test_bad_training_options_are_one_line(synth4, tmp_path, cli, args, message):
    if args[0] == "--anchors":
        args = ["--anchors", _anchors(tmp_path, args[1])]
    if args[0] == "--weights":
        (tmp_path / "w.pt").write_text("not weights")
        args = ["--weights", tmp_path / "w.pt"]
    code, out, err = cli(
        "yolo",
        "train",
        "--data",
        synth4 / "instances.json",
        "--out",
        tmp_path / "r",
        "--workers",
        "0",
        "--device",
        "cpu",
        *args,
    )
    assert (code, out) == (2, "") and message in err and err.startswith("detkit: error: ")
    assert err.count("\n") == 1, err


@pytest.mark.slow
def test_predict_refuses_a_bad_size_and_undecodable_images(synth4, tmp_path, cli):
    run = tmp_path / "run"
    code, _, err = cli(
        "yolo",
        "train",
        "--data",
        synth4 / "instances.json",
        "--out",
        run,
        "--epochs",
        "1",
        "--batch",
        "4",
        "--img-size",
        "64",
        "--width",
        "0.125",
        "--workers",
        "0",
        "--device",
        "cpu",
    )
    assert code == 0, err
    img = min((synth4 / "images").iterdir())
    code, _, err = cli("yolo", "predict", run / "best.pt", img, "--out", tmp_path / "p", "--img-size", "50")
    assert code == 2 and "--img-size must be a multiple of 32" in err
    assert not (tmp_path / "p" / "run.json").exists()  # nothing recorded for a run that did not happen
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a jpeg")
    code, _, err = cli("yolo", "predict", run / "best.pt", junk, "--out", tmp_path / "p")
    assert code == 2 and err.splitlines() == [
        f"warning: {junk}: cannot decode the image; skipped",
        "detkit: error: none of the 1 images could be decoded (see the warnings above)",
    ]
    # two inputs with one name, one of them a BMP: distinct outputs, each in a format its name says
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    import cv2

    cv2.imwrite(str(tmp_path / "a" / "x.bmp"), cv2.imread(str(img)))
    cv2.imwrite(str(tmp_path / "b" / "x.bmp"), cv2.imread(str(img)))
    code, _, err = cli(
        "yolo", "predict", run / "best.pt", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "p2"
    )
    assert code == 0, err
    det = json.loads((tmp_path / "p2" / "detections.json").read_text())
    assert [r["output"] for r in det["images"]] == ["x.jpg", "x_2.jpg"]
    assert (tmp_path / "p2" / "x_2.jpg").read_bytes()[:2] == b"\xff\xd8"  # a JPEG under a .jpg name


def test_anchors_follow_the_letterbox():
    # 640x480 images: a 64x48 px box is 0.1 x 0.1 of the image but 0.1 x 0.075 of the 640 px letterbox
    ds = make_dataset(
        [(i, f"{i}.jpg", 640, 480) for i in range(1, 7)],
        [(i, i, 1, 0, 0, 64 * (1 + i % 3), 48 * (1 + i % 3)) for i in range(1, 7)],
        [(1, "cell")],
    )
    assert letterbox_factors(ds) == (1.0, 0.75, 0.0)
    anchors, where = resolve_anchors(None, ds, img_size=320, k=3, seed=0)
    assert "k-means" in where
    cells = sorted((round(w, 6), round(h, 6)) for w, h in anchors)  # grid 10 at 320
    assert cells == [(1.0, 0.75), (2.0, 1.5), (3.0, 2.25)]


def test_anchors_file_in_image_norm_is_converted(tmp_path):
    ds = make_dataset([(1, "a.jpg", 640, 480)], [(1, 1, 1, 0, 0, 64, 48)], [(1, "cell")])
    image = _anchors(tmp_path, {"anchors_normalized": [[0.1, 0.1]], "norm": "image"})
    assert np.allclose(resolve_anchors(image, ds, 416)[0], [(1.3, 0.975)])
    letterbox = _anchors(tmp_path, {"anchors_normalized": [[0.1, 0.075]], "norm": "letterbox"})
    assert np.allclose(resolve_anchors(letterbox, ds, 416)[0], [(1.3, 0.975)])
    with pytest.raises(DetkitError, match="cannot read anchors"):
        resolve_anchors(str(tmp_path / "none.json"), ds, 416)


def test_mixed_aspects_warn_in_each_callers_words(tmp_path, capsys):
    from detkit.console import cli_wording

    # 640x480 and 480x640: image-normalised anchors convert exactly for neither
    ds = make_dataset(
        [(1, "a.jpg", 640, 480), (2, "b.jpg", 480, 640)], [(1, 1, 1, 0, 0, 64, 48)], [(1, "cell")]
    )
    image = _anchors(tmp_path, {"anchors_normalized": [[0.1, 0.1]], "norm": "image"})
    resolve_anchors(image, ds, 416)
    with cli_wording():
        resolve_anchors(image, ds, 416)
    lib, cli = capsys.readouterr().err.replace("\n", "").split("warning: ")[1:]  # rich wraps long lines
    head = (
        f"{image}: image-normalised anchors were converted to the letterbox with the images' median aspect; "
    )
    assert lib == head + "anchors made with norm='letterbox' are exact for mixed aspects"
    assert cli == head + "`detkit anchors kmeans --norm letterbox` gives exact ones for mixed aspects"


def test_foreign_checkpoint_is_refused_without_running_it(tmp_path, cli):
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    code, _, err = cli("yolo", "eval", plain, "--data", tmp_path / "x.json")
    assert code == 2 and err == f"detkit: error: {plain}: not a detkit yolo checkpoint (no model_config)\n"
