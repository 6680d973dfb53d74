"""detkit: a command-line toolkit for object-detection datasets, anchor boxes and training.

The Python API, for notebooks and scripts (see the README's "Python API" section)::

    import detkit

    ds = detkit.load_dataset("instances.json")            # COCO json, YOLO/VOC folder, course text
    report = detkit.validate("instances.json")             # the findings of `detkit coco validate`
    rows = detkit.class_table(ds)                          # per-class image and box counts
    res = detkit.kmeans_anchors(ds, k="1-9")               # res.pick.k, res.anchors
    det = detkit.Detector.load("runs/y1/best.pt")          # boxes, scores, labels = det.predict(rgb)
    clf = detkit.Classifier.load("runs/c1/best.pt")        # probs = clf.predict(batch)

Names are imported on first use (PEP 562), so ``import detkit`` stays cheap and the dataset functions never
import torch."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute)
_EXPORTS: dict[str, tuple[str, str]] = {
    "load_dataset": ("detkit.datasets.load", "load_dataset"),
    "Dataset": ("detkit.datasets.model", "Dataset"),
    "validate": ("detkit.datasets.checks.validate", "validate_path"),
    "class_table": ("detkit.datasets.stats", "class_table"),
    "kmeans_anchors": ("detkit.anchors.run", "kmeans_anchors"),
    "KMeansConfig": ("detkit.anchors.config", "KMeansConfig"),
    "evaluate": ("detkit.evaluation.result", "evaluate"),
    "Detector": ("detkit.api", "Detector"),
    "Classifier": ("detkit.api", "Classifier"),
    "DetkitError": ("detkit.errors", "DetkitError"),
}

__all__ = [
    "Classifier",
    "Dataset",
    "Detector",
    "DetkitError",
    "KMeansConfig",
    "__version__",
    "class_table",
    "evaluate",
    "kmeans_anchors",
    "load_dataset",
    "validate",
]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'detkit' has no attribute {name!r}") from None
    try:
        value = getattr(importlib.import_module(module), attr)
    except AttributeError:
        raise AttributeError(f"detkit.{name} is not available yet ({module}.{attr} is missing)") from None
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
