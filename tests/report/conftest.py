"""Hand-made run folders, one per summary kind, shaped like what each detkit command writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detkit.io import write_json

VERSIONS = {"python": "3.11.9", "detkit": "0.1.0", "torch": "2.14.1"}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "run_last: moved to the end of the whole session (the demo end-to-end)"
    )


def pytest_collection_modifyitems(session, config, items):
    """Run ``run_last`` tests after everything else, so the demo meets every area's finished code."""
    items.sort(key=lambda item: item.get_closest_marker("run_last") is not None)


def _png(path: Path, seed: int, kind: str = "plot") -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if kind == "image":
        plt.imsave(path, rng.uniform(size=(24, 24, 3)))
    else:
        fig, ax = plt.subplots(figsize=(3, 2), dpi=60)
        ax.bar(["a", "b", "c"], rng.uniform(1, 5, 3))
        fig.savefig(path)
        plt.close(fig)
    return path.name if path.parent.name != "gallery" else f"gallery/{path.name}"


def _summary(folder: Path, kind: str, title: str, **fields) -> None:
    doc = {
        "schema_version": 1,
        "kind": kind,
        "title": title,
        "created": "2026-11-23T10:00:00+00:00",
        "command": f"detkit {kind.replace('.', ' ')} --fixture {folder.name}",
        "versions": VERSIONS,
        **fields,
    }
    write_json(folder / "summary.json", doc)


def make_run(root: Path, kind: str) -> Path:
    """Write one fake run folder of ``kind`` under ``root``; returns the folder."""
    f = root / kind.replace(".", "_")
    f.mkdir(parents=True, exist_ok=True)
    if kind == "coco.inspect":
        _summary(
            f,
            kind,
            "instances.json: 16 images, 40 boxes",
            metrics={"images": 16, "annotations": 40},
            tables={
                "per_category": [
                    {"id": 3, "name": "circle", "boxes": 12},
                    {"id": 7, "name": "rectangle", "boxes": 28},
                ]
            },
            format="coco",
            box_size={"min_w": 4.0, "max_w": 60.5},
        )
    elif kind == "coco.validate":
        _summary(
            f,
            kind,
            "validation",
            metrics={"errors": 1, "warnings": 2, "status": "errors"},
            tables={
                "findings": [
                    {
                        "severity": "error",
                        "rule": "bbox-outside",
                        "record": "annotations[3]",
                        "message": "box | outside image",
                    }
                ]
            },
        )
    elif kind == "coco.classes":
        _summary(
            f,
            kind,
            "boxes per class",
            plots={"classes": _png(f / "classes.png", 1)},
            tables={"classes": [{"name": "circle", "boxes": 12, "share": 0.3}]},
        )
    elif kind == "anchors.kmeans":
        _summary(
            f,
            kind,
            "anchor sweep k=3..4",
            metrics={"best_k": 4, "mean_iou_k4": 0.71234},
            plots={"mean_iou_vs_k": _png(f / "mean_iou.png", 2), "anchors_k3": _png(f / "k3.png", 3)},
            tables={"sweep": [{"k": 3, "mean_iou": 0.65}, {"k": 4, "mean_iou": 0.71234}]},
            anchors={"3": [[0.1, 0.2], [0.3, 0.3], [0.6, 0.5]]},
        )
    elif kind in ("yolo.train", "classify.train"):
        epochs = np.arange(1, 5)
        if kind == "yolo.train":
            header = "epoch,loss,loss_xy,loss_wh,loss_obj,loss_cls,val_mAP50,lr"
            rows = [f"{e},{4 / e},{1 / e},{1 / e},{1.5 / e},{0.5 / e},{0.1 * e},{1e-3 / e}" for e in epochs]
        else:
            header = "epoch,train_loss,val_loss,val_acc,lr"
            rows = [f"{e},{2 / e},{2.2 / e},{0.2 * e},{0.01}" for e in epochs]
        (f / "metrics.csv").write_text("\n".join([header, *rows]) + "\n")
        _summary(
            f,
            kind,
            f"{kind} 4 epochs",
            metrics={"epochs": 4, "best": 0.4},
            curves="metrics.csv",
            best_checkpoint="best.pt",
        )
    elif kind == "yolo.eval":
        _summary(
            f,
            kind,
            "COCO mAP",
            metrics={"mAP": 0.2512, "mAP50": 0.5},
            tables={"per_class": [{"class": "circle", "AP": 0.3}, {"class": "triangle", "AP": 0.2}]},
        )
    elif kind == "classify.eval":
        gal = f / "gallery"
        _summary(
            f,
            kind,
            "val accuracy",
            metrics={"top1": 0.8, "top5": 1.0},
            plots={"confusion": _png(f / "confusion.png", 4)},
            tables={"confusion": [{"true": "a", "a": 5, "b": 1}, {"true": "b", "a": 0, "b": 6}]},
            galleries={
                "misclassified": [_png(gal / f"mis{i}.png", 10 + i, "image") for i in range(3)],
                "gradcam": [_png(gal / f"cam{i}.png", 20 + i, "image") for i in range(2)],
            },
        )
    return f


ALL_KINDS = (
    "classify.eval",
    "yolo.train",
    "coco.inspect",
    "anchors.kmeans",
    "coco.validate",
    "coco.classes",
    "yolo.eval",
    "classify.train",
)  # deliberately not in report order
# <img> per kind: plots + curve figures (loss, metric, lr) + gallery images.
IMAGES = {"coco.classes": 1, "anchors.kmeans": 2, "yolo.train": 3, "classify.train": 3, "classify.eval": 6}


@pytest.fixture(scope="session")
def fake_runs(tmp_path_factory) -> Path:
    """A folder holding one fake run of every kind."""
    root = tmp_path_factory.mktemp("runs")
    for kind in ALL_KINDS:
        make_run(root, kind)
    return root
