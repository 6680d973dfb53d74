from __future__ import annotations

from detkit.data.synth_classify import write_classify_set
from detkit.io import sha256_file


def test_tiny_imagenet_layout(tmp_path):
    root = write_classify_set(tmp_path / "s", classes=3, per_class=12, seed=2, size=64)
    wnids = (root / "wnids.txt").read_text().split()
    assert (
        len(wnids) == 3 and wnids != sorted(wnids) and all(w.startswith("n") and len(w) == 9 for w in wnids)
    )
    words = dict(line.split("\t") for line in (root / "words.txt").read_text().splitlines())
    assert set(wnids) < set(words)  # words.txt also lists ids that are not classes
    for w in wnids:
        imgs = sorted(p.name for p in (root / "train" / w / "images").iterdir())
        assert imgs == sorted(f"{w}_{i}.JPEG" for i in range(10))  # 12 - 12 // 6 val images
        boxes = [
            line.split("\t") for line in (root / "train" / w / f"{w}_boxes.txt").read_text().splitlines()
        ]
        assert sorted(b[0] for b in boxes) == imgs
        assert all(0 <= int(v) <= 63 for b in boxes for v in b[1:])
    ann = [line.split("\t") for line in (root / "val" / "val_annotations.txt").read_text().splitlines()]
    assert [a[0] for a in ann] == [f"val_{i}.JPEG" for i in range(6)] and len(ann[0]) == 6
    assert sorted(a[1] for a in ann) == sorted(wnids * 2)
    assert sorted(p.name for p in (root / "val" / "images").iterdir()) == sorted(a[0] for a in ann)
    assert len(list((root / "test" / "images").iterdir())) == 3


def test_same_seed_same_bytes(tmp_path, cli_json):
    a = write_classify_set(tmp_path / "a", classes=2, per_class=6, seed=5)
    b = write_classify_set(tmp_path / "b", classes=2, per_class=6, seed=5)
    c = write_classify_set(tmp_path / "c", classes=2, per_class=6, seed=6)
    assert sha256_file(a) == sha256_file(b) != sha256_file(c)
    doc = cli_json(
        "data",
        "synth",
        tmp_path / "d",
        "--task",
        "classify",
        "--classes",
        "2",
        "--per-class",
        "6",
        "--seed",
        "5",
    )
    assert doc["task"] == "classify" and sha256_file(tmp_path / "d") == sha256_file(a)
