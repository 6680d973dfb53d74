"""detkit yolo export / classify export and the exported models on onnxruntime and TorchScript: parity with
PyTorch on real images (raw outputs, detections, mAP, top-1), checks that fail on a wrong channel order,
normalisation or letterbox, the torch-free onnxruntime path, and bad model files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx  # onnx and onnxruntime are in the dev extra: a missing one fails, it does not skip the module
import onnxruntime  # noqa: F401
import pytest

from tests.conftest import shared_path

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-4  # the bound on raw outputs, fp32 on the CPU


def _run(argv: list[str]) -> None:
    from detkit.cli import run

    assert run([str(a) for a in argv]) == 0, argv


@pytest.fixture(scope="module")
def det(tmp_path_factory):
    """A tiny detector trained for one epoch on 16 shapes (its first 12 images), and its exports at 128 px."""
    from detkit.data.synth import write_detection_set

    d = tmp_path_factory.mktemp("export")
    write_detection_set(d / "shapes", images=16, size=96, seed=0)
    (d / "train.txt").write_text("\n".join(f"shape_{i:05d}" for i in range(12)))
    (d / "held_out.txt").write_text("\n".join(f"shape_{i:05d}" for i in range(12, 16)))
    ann = d / "shapes" / "instances.json"
    _run(
        ["yolo", "train", "--data", ann, "--train-list", d / "train.txt", "--val-list", d / "held_out.txt"]
        + ["--out", d / "run", "--epochs", "2", "--batch", "4", "--img-size", "128", "--width", "0.125"]
        + ["--workers", "0", "--device", "cpu", "--seed", "0", "--lr", "3e-3", "--optimizer", "adamw"]
    )
    pt = d / "run" / "best.pt"
    _run(["yolo", "export", pt, d / "m.onnx"])
    _run(["yolo", "export", pt, d / "md.onnx", "--dynamic"])
    _run(["yolo", "export", pt, d / "m3.onnx", "--batch", "3"])
    _run(["yolo", "export", pt, d / "m.ts", "--dynamic"])
    return d


def _bccd(n: int = 3) -> list[np.ndarray]:
    import cv2

    folder = shared_path("bccd", "BCCD", "JPEGImages")
    return [cv2.imread(str(p))[:, :, ::-1].copy() for p in sorted(folder.glob("*.jpg"))[:n]]


@pytest.mark.slow
def test_export_metadata_and_checker(det):

    proto = onnx.load(str(det / "m.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["detkit"])
    ckpt_sha = __import__("hashlib").sha256((det / "run" / "best.pt").read_bytes()).hexdigest()
    assert meta["checkpoint_sha256"] == ckpt_sha and meta["task"] == "detect"
    assert meta["img_size"] == 128 and meta["batch"] == 1 and meta["letterbox"]["pad_value"] == 114
    assert meta["names"] == ["circle", "rectangle", "triangle"] and len(meta["anchors"]) == 5
    dims = [d.dim_value or d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 128, 128, 3]
    dyn = onnx.load(str(det / "md.onnx"))
    assert dyn.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


@pytest.mark.slow
def test_raw_outputs_match_pytorch_on_bccd_and_would_fail_on_wrong_input(det):
    """Boxes and scores of ONNX / TorchScript within 1e-4 of PyTorch on real BCCD images; a BGR canvas, a
    2% scale error or a 1-pixel letterbox shift each move them beyond it (the check would fail)."""
    from detkit.deploy.runtime import letterbox, load_onnx
    from detkit.yolo.export import load_torch

    torch_model = load_torch(det / "run" / "best.pt", "cpu", threads=1)
    canvases = np.stack([letterbox(im, 128)[0] for im in _bccd()])
    want = torch_model.run(canvases)
    for path in ("m.onnx", "md.onnx", "m3.onnx"):
        got = load_onnx(det / path, "detect", threads=1).run(canvases)
        for a, b in zip(want, got):
            assert a.shape == b.shape and np.abs(a - b).max() < TOL, path
    got = load_torch(det / "m.ts", "cpu", threads=1).run(canvases)
    assert max(np.abs(a - b).max() for a, b in zip(want, got)) < TOL
    onnx_model = load_onnx(det / "md.onnx", "detect", threads=1)
    wrong = {
        "BGR": canvases[..., ::-1],
        "scale": (canvases * 0.98).astype(np.uint8),
        "shift": np.roll(canvases, 1, axis=2),
    }
    for name, x in wrong.items():
        got = onnx_model.run(np.ascontiguousarray(x))
        assert max(np.abs(a - b).max() for a, b in zip(got, want)) > 3 * TOL, name  # the check above fails


@pytest.mark.slow
def test_detector_backends_give_the_same_detections(det):
    import detkit

    images = _bccd(2)
    ref = detkit.Detector.load(det / "run" / "best.pt", device="cpu", threads=1)
    assert ref.backend == "torch" and ref.threads == 1
    for path in ("m.onnx", "m.ts"):
        other = detkit.Detector.load(det / path, device="cpu", threads=1)
        assert other.names == ref.names and other.img_size == 128
        for im in images:
            a, b = ref.predict(im, conf=0.001), other.predict(im, conf=0.001)
            assert len(a.boxes) == len(b.boxes) > 0
            np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-2)
            np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
            np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(
            other.predict(images[0][:, :, ::-1].copy(), conf=0.001, bgr=True).boxes,
            other.predict(images[0], conf=0.001).boxes,
        )
    with pytest.raises(detkit.DetkitError, match="img_size must be 128 for this exported model, got 64"):
        detkit.Detector.load(det / "m.onnx").predict(images[0], img_size=64)


@pytest.mark.slow
def test_held_out_map_is_the_same_through_torch_torchscript_and_onnx(det, cli_json):
    """yolo eval of the checkpoint, TorchScript and ONNX files (dynamic and fixed batches, the last batch
    padded) on the 4 held-out images: the same mAP (within 0.001) and the same detections."""
    docs = {}
    for path in ("run/best.pt", "m.ts", "m.onnx", "md.onnx", "m3.onnx"):
        args = ["--data", det / "shapes" / "instances.json", "--list", det / "held_out.txt"]
        docs[path] = cli_json(
            "yolo", "eval", det / path, *args, "--workers", "0", "--threads", "1", "--batch", "4"
        )
    ref = docs["run/best.pt"]["metrics"]
    assert ref["images"] == 4 and ref["detections"] > 0
    for path, doc in docs.items():
        m = doc["metrics"]
        assert abs(m["mAP"] - ref["mAP"]) <= 0.001 and abs(m["mAP50"] - ref["mAP50"]) <= 0.001, path
        assert m["detections"] == ref["detections"], path
        assert doc["runtime"]["threads"] == 1
    assert docs["m.onnx"]["runtime"]["backend"] == "onnxruntime"
    assert docs["m.ts"]["runtime"]["backend"] == "torchscript"


@pytest.mark.slow
def test_numpy_postprocess_keeps_what_the_training_evaluation_keeps(det):
    """What the export keeps (its decode in the graph, then the runtime's selection) is what the trainer's
    evaluation keeps (yolo/decode.postprocess on the raw output, with the model's xy_scale), on real
    outputs."""
    import torch

    from detkit.deploy.runtime import letterbox, postprocess
    from detkit.yolo.checkpoint import load_checkpoint, model_from_checkpoint
    from detkit.yolo.decode import postprocess as torch_postprocess
    from detkit.yolo.export import load_torch

    ckpt = load_checkpoint(det / "run" / "best.pt")
    model, _, _ = model_from_checkpoint(ckpt)
    canvases = np.stack([letterbox(im, 128)[0] for im in _bccd(2)])
    boxes, scores = load_torch(det / "run" / "best.pt", "cpu", threads=1).run(canvases)
    with torch.inference_mode():
        raw = model(torch.from_numpy(canvases).permute(0, 3, 1, 2).float() / 255)
    cfg = ckpt["model_config"]
    ref = torch_postprocess(
        raw, cfg["anchors"], conf_thresh=0.001, iou_thresh=0.45, xy_scale=cfg.get("xy_scale", 1.0)
    )
    for b, s, r in zip(boxes, scores, ref):
        kb, ks, kl = postprocess(b, s, conf=0.001, iou=0.45)
        assert len(kb) == len(r["boxes"]) > 10
        np.testing.assert_allclose(kb, r["boxes"].numpy(), atol=1e-5)
        np.testing.assert_allclose(ks, r["scores"].numpy(), atol=1e-6)
        np.testing.assert_array_equal(kl, r["labels"].numpy())


def test_nms_by_hand():
    from detkit.deploy.runtime import nms, postprocess

    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10]], float)
    # IoU(0, 1) = 90 / 110 = 0.818: dropped at 0.5, kept at 0.9; box 3 equals box 0 (IoU 1)
    np.testing.assert_array_equal(nms(boxes, np.array([0.9, 0.8, 0.7, 0.6]), 0.5), [0, 2])
    np.testing.assert_array_equal(nms(boxes, np.array([0.9, 0.8, 0.7, 0.6]), 0.9), [0, 1, 2])
    np.testing.assert_array_equal(nms(boxes, np.array([0.5, 0.8, 0.7, 0.9]), 0.5), [3, 2])
    # per class: the same box in two classes survives in both; conf is strict; max_det keeps the best
    b = np.array([[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.5, 0.5]])
    s = np.array([[0.9, 0.6], [0.8, 0.25]])
    kb, ks, kl = postprocess(b, s, conf=0.25, iou=0.5)
    np.testing.assert_allclose(ks, [0.9, 0.6])
    np.testing.assert_array_equal(kl, [0, 1])
    assert len(postprocess(b, s, conf=0.25, iou=0.5, max_det=1)[0]) == 1


@pytest.mark.slow
def test_onnx_path_does_not_import_torch(det, tmp_path):
    """Detector.load('x.onnx').predict, Classifier and `detkit yolo predict x.onnx` run without torch."""
    img = tmp_path / "a.png"
    import cv2

    cv2.imwrite(str(img), np.full((50, 70, 3), 90, np.uint8))
    code = f"""
import sys, numpy as np, detkit
from detkit.cli import run
det = detkit.Detector.load({str(det / "m.onnx")!r})
r = det.predict(np.zeros((40, 60, 3), np.uint8), conf=0.0001)
assert det.backend == "onnxruntime" and len(r.boxes) > 0
out = {str(tmp_path / "out")!r}
assert run(["yolo", "predict", {str(det / "m.onnx")!r}, {str(img)!r}, "--out", out]) == 0
print("torch" in sys.modules, "torchvision" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1].split() == ["False", "False"]


@pytest.mark.slow
def test_without_onnxruntime_one_line_says_what_to_install(det, monkeypatch, cli):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as when it is not installed
    code, _, err = cli("yolo", "predict", det / "m.onnx", det / "shapes" / "images", "--out", det / "p")
    assert code == 2 and not (det / "p").exists()
    assert (
        err.strip() == "detkit: error: running an .onnx model needs onnxruntime: pip install 'detkit[onnx]'"
    )


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's legacy ONNX exporter (foreign file)
def test_bad_model_files_are_one_line(det, tmp_path, cli):
    import torch

    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 50)
    foreign = tmp_path / "foreign.onnx"  # another model: 3 x 640 x 640 float input, no detkit metadata
    torch.onnx.export(torch.nn.Conv2d(3, 4, 3), (torch.zeros(1, 3, 640, 640),), str(foreign), dynamo=False)
    reshaped = tmp_path / "reshaped.onnx"  # detkit metadata, but not the input it declares
    proto = onnx.load(str(det / "m.onnx"))
    meta = json.loads(proto.metadata_props[0].value)
    proto.metadata_props[0].value = json.dumps({**meta, "img_size": 640})
    onnx.save(proto, str(reshaped))
    truncated = tmp_path / "truncated.ts"
    truncated.write_bytes((det / "m.ts").read_bytes()[:5000])
    cases = {
        corrupt: "not a readable ONNX model",
        foreign: "not a detkit export (no 'detkit' metadata)",
        reshaped: "is not the (batch, 640, 640, 3) uint8 image its metadata declares",
        truncated: "not a readable TorchScript model",
        tmp_path / "missing.onnx": "no such model file",
    }
    for path, what in cases.items():
        out = tmp_path / f"out_{path.stem}"
        code, _, err = cli("yolo", "predict", path, det / "shapes" / "images", "--out", out)
        assert code == 2 and err.count("\n") == 1 and str(path) in err and what in err, err
        assert not out.exists()


# ---- classifier ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clf(tmp_path_factory):
    """A tiny classifier (4 classes, 240 images of 32 px, one epoch) and its ONNX / TorchScript exports."""
    from detkit.data.synth_classify import write_classify_set

    d = tmp_path_factory.mktemp("clf")
    write_classify_set(d / "tiny", classes=4, per_class=60, seed=0, size=32)
    _run(
        ["classify", "train", "--data", d / "tiny", "--out", d / "run", "--epochs", "1", "--width", "0.25"]
        + ["--img-size", "32", "--batch", "32", "--device", "cpu", "--cache-dir", d / "cache"]
    )
    _run(["classify", "export", d / "run" / "best.pt", d / "c.onnx", "--dynamic"])
    _run(["classify", "export", d / "run" / "best.pt", d / "c.ts", "--batch", "8"])
    return d


def _tiny_images(d: Path, n: int = 200) -> np.ndarray:
    from PIL import Image

    files = sorted((d / "tiny").rglob("*.JPEG"))[:n]
    assert len(files) == n
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])


@pytest.mark.slow
def test_classifier_top1_identical_on_200_images(clf):
    import detkit

    images = _tiny_images(clf)
    ref = detkit.Classifier.load(clf / "run" / "best.pt", device="cpu", threads=1).predict(images)
    for path in ("c.onnx", "c.ts"):
        model = detkit.Classifier.load(clf / path, device="cpu", threads=1)
        probs = model.predict(images, batch_size=64)
        np.testing.assert_array_equal(probs.argmax(1), ref.argmax(1))
        assert np.abs(probs - ref).max() < TOL, path
    # the check is sensitive: BGR images change the probabilities far beyond the bound
    bgr = detkit.Classifier.load(clf / "c.onnx", threads=1).predict(np.ascontiguousarray(images[..., ::-1]))
    assert np.abs(bgr - ref).max() > 100 * TOL


@pytest.mark.slow
def test_classify_eval_of_an_export_matches_the_checkpoint(clf, cli_json, tmp_path):
    docs = {
        p: cli_json(
            "classify",
            "eval",
            clf / p,
            "--out",
            tmp_path / p.replace("/", "_"),
            "--threads",
            "1",
            "--subset",
            "all",
        )
        for p in ("run/best.pt", "c.onnx", "c.ts")
    }
    ref = docs["run/best.pt"]
    assert ref["images"] > 0
    for p, doc in docs.items():
        assert doc["top1"] == ref["top1"] and abs(doc["loss"] - ref["loss"]) < 1e-4, p
    run = json.loads((tmp_path / "c.onnx" / "run.json").read_text())
    assert run["config"]["thread_policy"] == {"backend": "onnxruntime", "threads": 1}


@pytest.mark.slow
def test_a_classifier_export_is_not_a_detector(clf, det, cli):
    code, _, err = cli("yolo", "predict", clf / "c.onnx", det / "shapes" / "images", "--out", det / "x")
    assert code == 2 and "this is a classifier export, not a detector" in err


def test_metadata_is_checked():
    from detkit.deploy.runtime import read_metadata
    from detkit.errors import DetkitError

    p = Path("m.onnx")
    for text, what in (
        ("{oops", "m.onnx: its detkit metadata is not JSON"),
        ("[1, 2]", "m.onnx: detkit metadata of an unknown version (schema None)"),
        ('{"schema": 99, "task": "detect"}', "m.onnx: detkit metadata of an unknown version (schema 99)"),
    ):
        with pytest.raises(DetkitError, match=what.replace("(", r"\(").replace(")", r"\)")):
            read_metadata(p, {"detkit": text})
    assert read_metadata(p, {"detkit": '{"schema": 1, "task": "classify"}'})["task"] == "classify"


def test_a_format_that_contradicts_the_suffix_is_refused():
    from detkit.deploy.formats import format_of
    from detkit.errors import OptionError

    assert format_of("m.onnx", None) == "onnx" and format_of("m.jit", None) == "torchscript"
    assert format_of("m.bin", "torchscript") == "torchscript"  # a suffix of neither: the option decides
    with pytest.raises(OptionError, match=r"torchscript contradicts m\.onnx: the suffix \.onnx is for onnx"):
        format_of("m.onnx", "torchscript")
    with pytest.raises(OptionError, match=r"onnx contradicts m\.ts"):
        format_of("m.ts", "onnx")


def test_an_exported_model_given_as_the_checkpoint_is_one_line(cli, tmp_path):
    import torch

    ts = tmp_path / "m.ts"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(ts))
    code, _, err = cli("yolo", "export", ts, tmp_path / "m.onnx")
    assert code == 2 and err.count("\n") == 1, err
    assert f"{ts}: a TorchScript model (an export), not a detkit yolo checkpoint" in err
    assert not (tmp_path / "m.onnx").exists()
    code, _, err = cli("yolo", "export", tmp_path / "best.pt", tmp_path / "m.onnx", "--format", "torchscript")
    assert code == 2 and "--format torchscript contradicts" in err and err.count("\n") == 1, err


def test_a_path_given_as_an_image_is_named_as_a_path():
    from detkit.deploy.runtime import check_image
    from detkit.errors import DetkitError

    for p in ("photos/a.jpg", Path("photos/a.jpg")):
        with pytest.raises(DetkitError, match=r"got the path 'photos/a.jpg'; read it first"):
            check_image(p)
    a = np.zeros((4, 5, 3), np.uint8)
    a.setflags(write=False)  # a read-only array (PIL's np.asarray) is an image like any other
    assert check_image(a).shape == (4, 5, 3)


@pytest.mark.parametrize("xy_scale", [1.0, 2.0])
def test_the_exported_decode_keeps_the_models_centre_scale(xy_scale):
    """A modern model (xy_scale 2) places centres up to half a cell past its cell: the module every backend
    runs (checkpoint, TorchScript, ONNX) decodes as training and ``yolo eval`` do, not with YOLOv2's 1."""
    import torch
    from torchvision.ops import box_convert

    from detkit.yolo.decode import decode
    from detkit.yolo.export import Deployable
    from detkit.yolo.model import YoloConfig, YOLOv2

    torch.manual_seed(0)
    anchors = [(1.0, 1.5), (3.0, 2.0)]
    cfg = YoloConfig(num_classes=2, anchors=anchors, width=0.125, head_stride=16, xy_scale=xy_scale)
    model = YOLOv2(cfg).eval()
    images = torch.randint(0, 256, (1, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        boxes, scores = Deployable(model, anchors)(images)
        raw = model(images.permute(0, 3, 1, 2).float() / 255)
        want, obj, cls = decode(raw, torch.tensor(anchors), xy_scale)
    assert raw.shape[2:4] == (4, 4)  # the stride-16 grid at 64 px
    assert torch.allclose(boxes, box_convert(want, "cxcywh", "xyxy").clamp(0, 1), atol=1e-6)
    assert torch.allclose(scores, obj[..., None] * cls, atol=1e-6)
    with torch.no_grad():  # and it differs from YOLOv2's decoding when the scale is not 1
        plain, _, _ = decode(raw, torch.tensor(anchors), 1.0)
    assert torch.allclose(want, plain) == (xy_scale == 1.0)
