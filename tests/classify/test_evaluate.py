from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.mark.slow
def test_eval_writes_gallery_gradcam_and_confusion(trained_run, tmp_path, cli_json):
    out = tmp_path / "eval"
    doc = cli_json(
        "classify", "eval", trained_run / "best.pt", "--out", out, "--gallery", "3", "--device", "cpu"
    )
    train = json.loads((trained_run / "summary.json").read_text())
    # best.pt on the run's own validation split reproduces the training-time figure
    assert doc["top1"] == pytest.approx(train["metrics"]["best_val_top1"], abs=1e-6)
    assert doc["images"] == 90 and doc["misclassified"] == round(90 * (1 - doc["top1"]))
    s = json.loads((out / "summary.json").read_text())
    assert s["kind"] == "classify.eval" and s["subset"] == "val" and s["cam_layer"] == "layer3"
    assert s["plots"] == {"confusion": "confusion.png"} and (out / "confusion.png").stat().st_size > 0
    per_class = s["tables"]["per_class"]
    assert len(per_class) == 5 and sum(r["images"] for r in per_class) == 90
    assert sum(r["correct"] for r in per_class) == 90 - doc["misclassified"]
    n = min(3, doc["misclassified"])
    assert n > 0, "the tiny run should make at least one mistake to draw"
    assert s["galleries"]["misclassified"] == [f"gallery/{i:03d}.png" for i in range(n)]
    assert s["galleries"]["gradcam"] == [f"gradcam/{i:03d}.png" for i in range(n)]
    rows = s["tables"]["misclassified"]
    assert [r["confidence"] for r in rows] == sorted((r["confidence"] for r in rows), reverse=True)
    assert all(r["true"] != r["pred"] for r in rows)
    for rel in s["galleries"]["misclassified"] + s["galleries"]["gradcam"]:
        with Image.open(out / rel) as im:
            assert im.mode == "RGB" and im.width == 256 and im.height > 256


@pytest.mark.slow
def test_eval_official_subset_and_threshold(trained_run, tmp_path, cli):
    code, out, err = cli(
        "classify",
        "eval",
        trained_run / "best.pt",
        "--out",
        tmp_path / "e",
        "--subset",
        "official",
        "--gallery",
        "0",
        "--device",
        "cpu",
        "--min-top1",
        "1.01",
        "--json",
    )
    assert code == 1 and json.loads(out)["images"] == 50
    code, _, err = cli(
        "classify",
        "eval",
        trained_run / "best.pt",
        "--out",
        tmp_path / "e2",
        "--gallery",
        "2",
        "--cam-layer",
        "nope",
        "--device",
        "cpu",
    )
    assert code == 2 and "cam_layer 'nope' is not a layer of this model" in err


@pytest.mark.slow
def test_official_subset_of_a_pooled_split_warns(trained_run, tmp_path, cli):
    code, _, err = cli(
        "classify",
        "eval",
        trained_run / "best.pt",
        "--out",
        tmp_path / "e",
        "--subset",
        "official",
        "--gallery",
        "0",
        "--device",
        "cpu",
    )
    assert code == 0 and "official-val figure is optimistic" in err


@pytest.mark.slow
def test_eval_limit_decodes_only_what_is_scored(trained_run, tmp_path, cli):
    """--limit 7 of the 90 validation images: 7 decoded and cached (size said), the same 7 read back on a
    second run; --no-cache writes nothing; the training set's cache, when there, is read instead."""
    cache = tmp_path / "cache"
    common = ["classify", "eval", trained_run / "best.pt", "--gallery", "0", "--device", "cpu", "--json"]
    common += ["--limit", "7", "--seed", "3", "--workers", "1", "--cache-dir", cache]
    code, out, err = cli(*common, "--out", tmp_path / "e1")
    doc = json.loads(out)
    assert code == 0 and doc["images"] == 7 and doc["cache"]["reused"] is False
    files = list(cache.iterdir())
    assert [f.name for f in files] == [Path(doc["cache"]["path"]).name]
    assert files[0].name.startswith("classify-eval-") and files[0].name.endswith("-32px.npy")
    assert np.load(files[0], mmap_mode="r").shape == (7, 32, 32, 3)  # 7 images decoded, not 300
    size = files[0].stat().st_size
    assert doc["cache"]["bytes"] == size and f"decoded 7 images into {files[0]} ({size / 1e6:.1f} MB)" in err
    code, out2, err = cli(*common, "--out", tmp_path / "e2")
    doc2 = json.loads(out2)
    assert doc2["cache"]["reused"] is True and "decoded 7" not in err
    assert doc2["top1"] == doc["top1"] and list(cache.iterdir()) == files
    s = json.loads((tmp_path / "e2" / "summary.json").read_text())
    assert s["limit"] == 7 and s["metrics"]["images"] == 7
    picked = json.loads((tmp_path / "e1" / "run.json").read_text())
    assert picked["config"]["seed"] == 3 and picked["config"]["limit"] == 7
    nocache = tmp_path / "nocache"
    code, out3, _ = cli(*common[:-2], "--cache-dir", nocache, "--no-cache", "--out", tmp_path / "e3")
    assert code == 0 and json.loads(out3)["cache"] is None and not nocache.exists()
    assert json.loads(out3)["top1"] == doc["top1"]
    # the run's own cache folder holds the whole training set: read, nothing decoded
    code, out4, err = cli(*common[:-2], "--out", tmp_path / "e4")
    assert code == 0 and json.loads(out4)["cache"]["reused"] is True and "decoded" not in err.split("read")[0]
    assert json.loads(out4)["top1"] == doc["top1"]
