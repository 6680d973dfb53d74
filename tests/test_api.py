"""The Python API: lazy exports, the README's notebook example, and inference that writes nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_detkit_is_cheap_and_dataset_functions_skip_torch(shapes_dir):
    mods = _modules_after("import detkit")
    assert not {"torch", "numpy", "cv2", "matplotlib"} & mods
    ann = shapes_dir / "instances.json"
    mods = _modules_after(
        f"import detkit; ds = detkit.load_dataset({str(ann)!r}); detkit.class_table(ds); "
        f"detkit.validate({str(ann)!r}); detkit.kmeans_anchors(ds, k=3)"
    )
    assert "detkit.datasets.load" in mods and "detkit.anchors.run" in mods
    assert "torch" not in mods and "cv2" not in mods


def test_exports_resolve_and_unknown_names_fail():
    import detkit

    for name in (
        "load_dataset",
        "Dataset",
        "validate",
        "class_table",
        "kmeans_anchors",
        "Detector",
        "Classifier",
    ):
        assert callable(getattr(detkit, name)), name
    assert set(detkit.__all__) <= set(dir(detkit))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        detkit.nope  # noqa: B018


def test_every_public_name_resolves_to_its_defining_object():
    import importlib

    import detkit

    for name, (module, attr) in detkit._EXPORTS.items():
        assert getattr(detkit, name) is getattr(importlib.import_module(module), attr), name
    import detkit.evaluation.result as result

    assert detkit.evaluate is result.evaluate


# ---- trained models (tiny, on CPU) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """shapes/ (16 images) and runs/yolo (a tiny detector), as in the README."""
    from detkit.data.synth import write_detection_set

    d = tmp_path_factory.mktemp("api")
    write_detection_set(d / "shapes", images=16, size=96, seed=0)
    _train(
        [
            "yolo",
            "train",
            "--data",
            str(d / "shapes" / "instances.json"),
            "--out",
            str(d / "runs" / "yolo"),
            "--epochs",
            "1",
            "--batch",
            "8",
            "--img-size",
            "64",
            "--width",
            "0.125",
            "--workers",
            "0",
            "--device",
            "cpu",
            "--seed",
            "0",
        ]
    )
    return d


@pytest.fixture(scope="module")
def cls_run(workdir):
    """runs/cls: a tiny classifier beside the detector."""
    from detkit.data.synth_classify import write_classify_set

    write_classify_set(workdir / "tiny", classes=3, per_class=12, seed=0)
    _train(
        [
            "classify",
            "train",
            "--data",
            str(workdir / "tiny"),
            "--out",
            str(workdir / "runs" / "cls"),
            "--epochs",
            "1",
            "--width",
            "0.25",
            "--img-size",
            "32",
            "--batch",
            "8",
            "--device",
            "cpu",
        ]
    )
    return workdir / "runs" / "cls"


def _train(argv: list[str]) -> None:
    import torch

    from detkit.cli import run

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert run(argv) == 0
    finally:
        torch.set_num_threads(before)


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


@pytest.mark.slow
def test_readme_example_runs_and_writes_nothing(workdir, cls_run, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    before = sorted(p for p in workdir.rglob("*"))
    exec(compile(_readme_example(), "README.md", "exec"), {})  # noqa: S102  (our own README)
    assert sorted(p for p in workdir.rglob("*")) == before  # nothing written
    out = capsys.readouterr().out
    assert "16 images," in out and "k = " in out and "mean IoU" in out


@pytest.mark.slow
def test_detector_matches_yolo_predict(workdir, tmp_path):
    """Detector.predict is what `detkit yolo predict` writes (it is built on it), on a non-square image."""
    import cv2

    import detkit
    from detkit.yolo.predict import predict_files

    src = workdir / "shapes" / "images" / min(os.listdir(workdir / "shapes" / "images"))
    wide = cv2.resize(cv2.imread(str(src)), (144, 96))
    path = tmp_path / "wide.png"
    cv2.imwrite(str(path), wide)
    det = detkit.Detector.load(workdir / "runs" / "yolo" / "best.pt", device="cpu")
    boxes, scores, labels = det.predict(wide[:, :, ::-1].copy(), conf=0.001)
    weights = workdir / "runs" / "yolo" / "best.pt"
    doc = predict_files(weights, [path], tmp_path / "out", conf=0.001, device="cpu")
    written = doc["images"][0]["detections"]
    assert len(written) == len(boxes) > 0
    assert boxes.shape == (len(scores), 4) and scores.dtype == np.float32 and labels.dtype == np.int64
    assert (boxes[:, 2] <= 144).all() and (boxes[:, 3] <= 96).all() and (boxes[:, :2] >= 0).all()
    assert np.all(np.diff(scores) <= 0)  # best first
    for row, b, s, c in zip(written, boxes, scores, labels):
        assert row["category_id"] == c and row["name"] == det.names[int(c)]
        assert row["score"] == pytest.approx(float(s), abs=1e-5)
        np.testing.assert_allclose(row["bbox"], [b[0], b[1], b[2] - b[0], b[3] - b[1]], atol=0.011)
    # BGR in, same answer
    b2, _, _ = det.predict(wide, conf=0.001, bgr=True)
    np.testing.assert_array_equal(b2, boxes)


@pytest.mark.slow
def test_classifier_probabilities(cls_run):
    import detkit

    clf = detkit.Classifier.load(cls_run / "best.pt", device="cpu")
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    probs = clf.predict(batch)
    assert probs.shape == (5, 3) and np.allclose(probs.sum(1), 1, atol=1e-5) and (probs >= 0).all()
    np.testing.assert_allclose(clf.predict(batch[0]), probs[0], atol=1e-6)  # one image -> (C,)
    np.testing.assert_allclose(clf.predict(batch, batch_size=2), probs, atol=1e-6)  # batching changes nothing
    big = np.repeat(np.repeat(batch, 2, axis=1), 2, axis=2)  # 64 px: resized to the training side
    assert clf.predict(big).shape == (5, 3)


@pytest.mark.slow
def test_bad_arrays_are_described_by_value(workdir, cls_run):
    import detkit
    from detkit.errors import DetkitError

    det = detkit.Detector.load(workdir / "runs" / "yolo" / "best.pt", device="cpu")
    with pytest.raises(
        DetkitError, match=r"image must be an \(H, W, 3\) uint8 array, got shape \(8, 8\) dtype"
    ):
        det.predict(np.zeros((8, 8), np.uint8))
    with pytest.raises(DetkitError, match="img_size must be a multiple of 32 in 32..2048, got 50"):
        det.predict(np.zeros((8, 8, 3), np.uint8), img_size=50)
    clf = detkit.Classifier.load(cls_run / "best.pt", device="cpu")
    with pytest.raises(
        DetkitError, match=r"batch must be \(N, H, W, 3\) uint8 images, got shape \(2, 4, 4, 3\) dtype float"
    ):
        clf.predict(np.zeros((2, 4, 4, 3)))


@pytest.mark.slow
def test_read_only_arrays_predict_without_warnings(workdir, cls_run):
    """The README's pattern ``np.asarray(Image.open(...))`` gives a read-only array; torch warns once per
    process when it wraps one, so this runs in a fresh process with warnings as errors."""
    img = workdir / "shapes" / "images" / min(os.listdir(workdir / "shapes" / "images"))
    code = (
        "import numpy as np, detkit\n"
        "from PIL import Image\n"
        f"a = np.asarray(Image.open({str(img)!r}).convert('RGB'))\n"
        "assert not a.flags.writeable\n"
        f"det = detkit.Detector.load({str(workdir / 'runs' / 'yolo' / 'best.pt')!r}, device='cpu')\n"
        "det.predict(a); det.predict(a, bgr=True)\n"
        f"clf = detkit.Classifier.load({str(cls_run / 'best.pt')!r}, device='cpu')\n"
        "small = np.asarray(Image.fromarray(a).resize((32, 32)))\n"
        "assert not small.flags.writeable\n"
        "print(clf.predict(small).shape, clf.predict(a).shape)\n"
    )
    res = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert res.stdout.strip() == "(3,) (3,)"
