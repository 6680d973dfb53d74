"""Inference that writes nothing: a trained detector or classifier as a Python object.

    det = Detector.load("runs/y1/best.pt")
    boxes, scores, labels = det.predict(rgb)      # (k, 4) xyxy pixels, (k,), (k,) category ids
    clf = Classifier.load("runs/c1/best.pt")
    probs = clf.predict(batch)                    # (N, H, W, 3) uint8 RGB -> (N, C) probabilities

Images are numpy arrays in RGB order (what PIL and matplotlib use; pass ``bgr=True`` for OpenCV's).
The detector letterboxes each image exactly as training did (:func:`letterbox`), so ``detkit yolo
predict`` and ``detkit yolo eval`` see the same input; the classifier resizes to its training side and
normalises with the mean and std stored in the checkpoint (:func:`detkit.classify.augment.normalize`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from detkit.errors import DetkitError

__all__ = ["Classifier", "Detections", "Detector", "letterbox"]


class Detections(NamedTuple):
    """Detections of one image, best first: ``boxes`` (k, 4) xyxy in original pixels (float64), ``scores``
    (k,) float32 and ``labels`` (k,) int64 category ids (``Detector.names`` names them)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


def _check_image(image: Any, what: str = "image") -> np.ndarray:
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or 0 in a.shape:
        raise DetkitError(f"{what} must be an (H, W, 3) uint8 array, got shape {a.shape} dtype {a.dtype}")
    return a


def _tensor(a: np.ndarray):
    """``a`` as a torch tensor sharing its memory when it may: a read-only array (``np.asarray`` of a PIL
    image, a memory map) is copied first, as torch warns on and cannot guard a read-only buffer."""
    import torch

    a = np.ascontiguousarray(a)
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, tuple[float, float, float]]:
    """``image`` (H, W, 3) scaled to fit ``size`` x ``size`` with its aspect kept, centred on the training
    border colour (``detkit.yolo.data.PAD_VALUE``); returns the canvas and the (r, tx, ty) of
    ``p' = r * p + t`` (undo with :func:`detkit.yolo.data.unletterbox`)."""
    from detkit.yolo.data import letterbox_transform, warp_letterbox

    h0, w0 = image.shape[:2]
    transform = letterbox_transform(w0, h0, size)
    return warp_letterbox(image, transform, size), transform


class Detector:
    """A ``detkit yolo train`` checkpoint ready to detect (EMA weights, eval mode, no files written).

    Args:
        model: the YOLOv2 module.
        class_map: category ids and names of the model's classes.
        img_size: input side the model was trained at.
        anchors: (A, 2) anchors in grid cells.
        device: where the model runs.
    """

    def __init__(self, model, class_map, img_size: int, anchors, device) -> None:
        self.model, self.class_map, self.img_size = model, class_map, int(img_size)
        self.anchors, self.device = anchors, device

    @classmethod
    def load(cls, checkpoint: str | Path, device: str = "auto") -> Detector:
        """Load ``checkpoint`` (a ``.pt`` file, or a run folder meaning its ``last.pt``)."""
        from detkit.train.common import resolve_device
        from detkit.yolo.checkpoint import load_checkpoint, model_from_checkpoint

        ckpt = load_checkpoint(checkpoint)
        model, class_map, img_size = model_from_checkpoint(ckpt)
        dev = resolve_device(device)
        return cls(model.to(dev), class_map, img_size, ckpt["model_config"]["anchors"], dev)

    @property
    def names(self) -> dict[int, str]:
        """Category id -> name."""
        return dict(zip(self.class_map.cat_ids, self.class_map.names))

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
            img_size: input side (default: the training side; a multiple of 32).
        """
        import torch

        from detkit.yolo.data import unletterbox
        from detkit.yolo.decode import postprocess
        from detkit.yolo.engine import to_input

        img = _check_image(image)
        size = int(img_size or self.img_size)
        if size % 32 or not 32 <= size <= 2048:
            raise DetkitError(f"input size must be a multiple of 32 in 32..2048, got {size}")
        if bgr:
            img = img[:, :, ::-1]
        canvas, transform = letterbox(np.ascontiguousarray(img), size)
        x = _tensor(canvas.transpose(2, 0, 1))[None]  # (1, 3, S, S) uint8 RGB
        with torch.inference_mode():
            raw = self.model(to_input(x, self.device))
        det = postprocess(raw.float(), self.anchors, conf_thresh=conf, iou_thresh=iou, max_det=max_det)[0]
        h0, w0 = img.shape[:2]
        boxes = unletterbox(det["boxes"].cpu().numpy(), size, transform, w0, h0)
        ids = np.array(self.class_map.cat_ids, dtype=np.int64)
        labels = ids[det["labels"].cpu().numpy().astype(np.int64)]
        return Detections(boxes, det["scores"].float().cpu().numpy(), labels)


class Classifier:
    """A ``detkit classify train`` checkpoint ready to classify (EMA weights, eval mode, no files written).

    Args:
        model: the ResNet.
        classes: class folder names (wnids), in the model's output order; ``names`` their readable names.
        mean, std: (3,) input normalisation in 0..1 units, from the training set.
        img_size: the side images were trained at.
        device: where the model runs.
    """

    def __init__(self, model, classes: list[str], names: list[str], mean, std, img_size: int, device) -> None:
        self.model, self.classes, self.names = model, list(classes), list(names)
        self.mean, self.std, self.img_size, self.device = mean, std, int(img_size), device

    @classmethod
    def load(cls, checkpoint: str | Path, device: str = "auto") -> Classifier:
        """Load a classify checkpoint file (``best.pt`` / ``last.pt``)."""
        import torch

        from detkit.classify.checkpoint import load_checkpoint
        from detkit.classify.models import build_model, checkpoint_weights
        from detkit.train.common import resolve_device

        ckpt = load_checkpoint(Path(checkpoint))
        cfg = ckpt["config"]
        model = build_model(cfg["model"], len(ckpt["classes"]), cfg["stem"], cfg.get("width", 1.0))
        model.load_state_dict(checkpoint_weights(ckpt))
        dev = resolve_device(device)
        mean, std = torch.tensor(ckpt["mean"], device=dev), torch.tensor(ckpt["std"], device=dev)
        return cls(model.to(dev).eval(), ckpt["classes"], ckpt["names"], mean, std, cfg["img_size"], dev)

    def predict(self, batch: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """Class probabilities of (N, H, W, 3) uint8 RGB images (or one (H, W, 3) image -> (C,)).

        Images of another size are resized (bilinear) to the training side first, as the training cache
        was built.
        """
        import torch

        from detkit.classify.augment import normalize

        a = np.asarray(batch)
        single = a.ndim == 3
        a = a[None] if single else a
        if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8 or len(a) == 0:
            raise DetkitError(f"batch must be (N, H, W, 3) uint8 images, got shape {a.shape} dtype {a.dtype}")
        if a.shape[1:3] != (self.img_size, self.img_size):
            a = np.stack([_resize(im, self.img_size) for im in a])
        out = []
        with torch.inference_mode():
            for i in range(0, len(a), batch_size):
                x = _tensor(a[i : i + batch_size]).to(self.device)
                out.append(self.model(normalize(x, self.mean, self.std)).float().softmax(1).cpu())
        probs = torch.cat(out).numpy()
        return probs[0] if single else probs


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR), dtype=np.uint8)
