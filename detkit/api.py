"""Inference that writes nothing: a trained detector or classifier as a Python object.

    det = Detector.load("runs/y1/best.pt")        # or an export: "model.onnx" (onnxruntime), "model.ts"
    boxes, scores, labels = det.predict(rgb)      # (k, 4) xyxy pixels, (k,), (k,) category ids
    clf = Classifier.load("runs/c1/best.pt")      # or "classifier.onnx"
    probs = clf.predict(batch)                    # (N, H, W, 3) uint8 RGB -> (N, C) probabilities

Images are numpy arrays in RGB order (what PIL and matplotlib use; pass ``bgr=True`` for OpenCV's).
The detector letterboxes each image exactly as training did (:func:`letterbox`) and keeps boxes with the
post-processing of ``detkit yolo predict`` and ``detkit yolo eval`` (both built on
:func:`detkit.yolo.predict.load_detector` and :func:`detkit.yolo.predict.detect`, as this class is); the
classifier resizes to its training side and its network normalises with the training mean and std.
An ``.onnx`` model runs on onnxruntime (``pip install 'detkit[onnx]'``) and never imports torch.

Threads: ``threads=None`` applies the trainers' CPU policy (the usable cores less the ones other programs
keep busy; $OMP_NUM_THREADS wins), torch's default of every core is several times slower on a busy machine
(bench/cpu_threads.py). For torch models the count is process-wide (``torch.set_num_threads``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from detkit.classify.checkpoint import load_classifier
from detkit.deploy.runtime import Exported, check_image, letterbox, softmax
from detkit.errors import DetkitError
from detkit.yolo.predict import detect, input_size, load_detector

__all__ = ["Classifier", "Detections", "Detector", "letterbox"]


class Detections(NamedTuple):
    """Detections of one image, best first: ``boxes`` (k, 4) xyxy in original pixels (float64), ``scores``
    (k,) float32 and ``labels`` (k,) int64 category ids (``Detector.names`` names them)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


class Detector:
    """A detector ready to detect: a ``detkit yolo train`` checkpoint (EMA weights, eval mode) or an export
    of ``detkit yolo export``; no files written.

    Args:
        model: the loaded model (:func:`detkit.yolo.predict.load_detector`).
    """

    def __init__(self, model: Exported) -> None:
        self.model = model
        self.img_size = model.img_size
        self.cat_ids: list[int] = [int(c) for c in model.meta["cat_ids"]]
        self.anchors = model.meta.get("anchors")

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", threads: int | None = None) -> Detector:
        """Load a checkpoint (``.pt``, or a run folder meaning its ``last.pt``), a TorchScript (``.ts``) or an
        ONNX (``.onnx``) export.

        Args:
            path: the model file.
            device: auto, cpu or cuda.
            threads: CPU threads (None: the trainers' policy).
        """
        return cls(load_detector(path, device, threads))

    @property
    def names(self) -> dict[int, str]:
        """Category id -> name."""
        return dict(zip(self.cat_ids, self.model.meta["names"]))

    @property
    def backend(self) -> str:
        """``torch``, ``torchscript`` or ``onnxruntime``."""
        return self.model.kind

    @property
    def threads(self) -> int:
        """CPU threads it runs with."""
        return self.model.threads

    @property
    def device(self) -> str:
        """Where it runs: ``cpu`` or ``cuda...``."""
        return self.model.device

    def predict(
        self,
        image: np.ndarray,
        *,
        conf: float = 0.25,
        iou: float = 0.45,
        max_det: int = 100,
        img_size: int | None = None,
        bgr: bool = False,
    ) -> Detections:
        """Objects in one (H, W, 3) uint8 image.

        Args:
            image: the pixels, RGB (``bgr=True``: BGR as OpenCV reads them).
            conf: minimum score (objectness x class probability).
            iou: per-class NMS IoU threshold.
            max_det: most detections returned.
            img_size: input side (default: the training side; a multiple of 32; an export keeps its own).
        """
        img = check_image(image)
        size = input_size(self.model, img_size)
        if bgr:
            img = img[:, :, ::-1]
        boxes, scores, labels = detect(self.model, img, size, conf=conf, iou=iou, max_det=max_det)
        ids = np.array(self.cat_ids, dtype=np.int64)
        return Detections(boxes, scores.astype(np.float32), ids[labels])


class Classifier:
    """A classifier ready to classify: a ``detkit classify train`` checkpoint (EMA weights, eval mode) or an
    export of ``detkit classify export``; no files written.

    Args:
        model: the loaded model (:func:`detkit.classify.checkpoint.load_classifier`).
    """

    def __init__(self, model: Exported) -> None:
        self.model = model
        meta = model.meta
        self.classes, self.names = list(meta["classes"]), list(meta["names"])
        self.mean, self.std, self.img_size = meta["mean"], meta["std"], int(meta["img_size"])

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", threads: int | None = None) -> Classifier:
        """Load a classify checkpoint (``best.pt`` / ``last.pt``), a TorchScript or an ONNX export.

        Args:
            path: the model file.
            device: auto, cpu or cuda.
            threads: CPU threads (None: the trainers' policy).
        """
        return cls(load_classifier(path, device, threads))

    @property
    def backend(self) -> str:
        """``torch``, ``torchscript`` or ``onnxruntime``."""
        return self.model.kind

    @property
    def threads(self) -> int:
        """CPU threads it runs with."""
        return self.model.threads

    def predict(self, batch: Any, *, batch_size: int = 256) -> np.ndarray:
        """Class probabilities of (N, H, W, 3) uint8 RGB images (or one (H, W, 3) image -> (C,)).

        Images of another size are resized (bilinear) to the training side first, as the training cache
        was built.
        """
        a = np.asarray(batch)
        single = a.ndim == 3
        a = a[None] if single else a
        if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8 or len(a) == 0:
            raise DetkitError(f"batch must be (N, H, W, 3) uint8 images, got shape {a.shape} dtype {a.dtype}")
        if a.shape[1:3] != (self.img_size, self.img_size):
            a = np.stack([_resize(im, self.img_size) for im in a])
        logits = [
            self.model.run(np.ascontiguousarray(a[i : i + batch_size]))[0]
            for i in range(0, len(a), batch_size)
        ]
        probs = softmax(np.concatenate(logits))
        return probs[0] if single else probs


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR), dtype=np.uint8)
