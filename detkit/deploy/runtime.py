"""Inference without torch: the letterbox, the post-processing (threshold + per-class NMS), the inference
thread count, and exported models run on onnxruntime.

Every inference path of detkit — a checkpoint in PyTorch, a TorchScript file, an ONNX file on
onnxruntime — is the same three steps, and only the middle one differs:

    canvas, (r, tx, ty) = letterbox(image, S)           # aspect kept, centred, grey 114 border, bilinear
    boxes, scores = network(canvas[None])                # uint8 (B, S, S, 3) RGB in; the graph does / 255,
                                                         # the model and the decode: (B, N, 4) xyxy in 0..1
                                                         # of the input, (B, N, C) objectness x class prob.
    detections = postprocess(boxes[0], scores[0], ...)   # top candidates, score > conf, per-class NMS

so a difference between two backends can only come from the network (parity: tests/yolo/test_export.py).
The classifier's graph takes (B, S, S, 3) uint8 RGB as well and does ``(x / 255 - mean) / std`` itself
(:func:`detkit.classify.augment.normalize`, traced into it); its output is the logits.

An exported file carries what inference needs (:func:`read_metadata`): ONNX in its metadata
(``metadata_props["detkit"]``, a JSON document), TorchScript in an extra file ``detkit.json``.
This module imports numpy, OpenCV and (for ONNX) onnxruntime, never torch (test: tests/yolo/test_export.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detkit.errors import DetkitError, OptionError
from detkit.train.threads import thread_choice

PAD_VALUE = 114  # grey letterbox border (neutral after normalisation)
METADATA_KEY = "detkit"  # ONNX metadata_props key / TorchScript extra file "detkit.json"
EXPORT_SCHEMA = 1
ONNX_HINT = "pip install 'detkit[onnx]'"


# ---- letterbox: the one of training, eval, predict and every backend ----------------------------------


def letterbox_transform(
    w0: float, h0: float, size: int, scale: float = 1.0, shift: tuple[float, float] = (0.0, 0.0)
) -> tuple[float, float, float]:
    """The (r, tx, ty) that maps original pixels to a ``size`` x ``size`` input: p' = r * p + t.

    r fits the whole image (aspect kept) times ``scale``; the image is centred, then moved by ``shift``
    pixels.
    """
    r = min(size / w0, size / h0) * scale
    return r, (size - w0 * r) / 2 + shift[0], (size - h0 * r) / 2 + shift[1]


def warp_letterbox(img: np.ndarray, transform: Sequence[float], size: int) -> np.ndarray:
    """The network input: ``img`` mapped by (r, tx, ty) of :func:`letterbox_transform` in one warp, the
    border ``PAD_VALUE`` grey — the one letterbox of training, eval, predict and :class:`detkit.Detector`."""
    import cv2

    r, tx, ty = transform
    m = np.array([[r, 0, tx], [0, r, ty]], dtype=np.float64)
    # warpAffine has no INTER_AREA; bilinear is what darknet uses
    return cv2.warpAffine(
        img,
        m,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(PAD_VALUE,) * 3,
    )


def unletterbox(
    boxes_xyxy: np.ndarray, size: int, transform: Sequence[float], w0: float, h0: float
) -> np.ndarray:
    """Normalised xyxy boxes on the network input -> original image pixels, clipped to the image.

    Args:
        boxes_xyxy: (k, 4) boxes normalised to the (square) input.
        size: the input side in pixels.
        transform: (r, tx, ty) from :func:`letterbox_transform`.
        w0, h0: original image width and height.
    """
    r, tx, ty = (float(v) for v in transform)
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4) * size
    b[:, [0, 2]] = ((b[:, [0, 2]] - tx) / r).clip(0, w0)
    b[:, [1, 3]] = ((b[:, [1, 3]] - ty) / r).clip(0, h0)
    return b


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, tuple[float, float, float]]:
    """``image`` (H, W, 3) scaled to fit ``size`` x ``size`` with its aspect kept, centred on the training
    border colour; returns the canvas and the (r, tx, ty) of ``p' = r * p + t`` (undo: :func:`unletterbox`).
    """
    h0, w0 = image.shape[:2]
    transform = letterbox_transform(w0, h0, size)
    return warp_letterbox(image, transform, size), transform


# ---- post-processing: the one of Detector, `yolo predict` and `yolo eval` ----------------------------


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, limit: int | None = None) -> np.ndarray:
    """Greedy NMS (torchvision's rule): indices of the kept boxes, best first. A box is dropped when its IoU
    with a better kept box is > ``iou``; equal scores keep their input order. ``limit`` stops after that
    many kept boxes (the same first ones: greedy NMS keeps in score order).

    Args:
        boxes: (n, 4) xyxy.
        scores: (n,).
    """
    b = np.asarray(boxes, dtype=np.float64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    keep: list[int] = []
    while order.size and (limit is None or len(keep) < limit):
        i, rest = order[0], order[1:]
        keep.append(int(i))
        w = (np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0])).clip(min=0)
        h = (np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1])).clip(min=0)
        inter = w * h
        union = area[i] + area[rest] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            overlap = np.where(union > 0, inter / union, 0.0)
        order = rest[~(overlap > iou)]
    return np.asarray(keep, dtype=np.int64)


def postprocess(
    boxes: np.ndarray,
    scores: np.ndarray,
    conf: float = 0.25,
    iou: float = 0.45,
    max_det: int = 100,
    max_candidates: int = 4096,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections of one image from the network's decoded outputs.

    Every (box, class) pair scoring above ``conf`` is a candidate (multi-label, as darknet and COCO
    evaluation want); the best ``max_candidates`` enter NMS, per class; the best ``max_det`` are kept.

    Args:
        boxes: (N, 4) xyxy normalised to the input.
        scores: (N, C) objectness x class probability.

    Returns:
        boxes (k, 4) xyxy normalised, scores (k,) float32, labels (k,) class indices, best first.
    """
    n, c = scores.shape
    flat = np.asarray(scores, dtype=np.float32).reshape(-1)
    k = min(max_candidates, flat.size)
    top = np.argpartition(-flat, k - 1)[:k] if k < flat.size else np.arange(flat.size)
    top = top[flat[top] > conf]
    top = top[np.argsort(-flat[top], kind="stable")]
    box_idx, label = top // c, top % c
    cand = np.asarray(boxes, dtype=np.float64)[box_idx]
    # one NMS for all classes: boxes of class k are moved k * 2 input widths away (they are in 0..1)
    kept = nms(cand + (label * 2.0)[:, None], flat[top], iou, limit=max_det)
    return cand[kept], flat[top][kept], label[kept].astype(np.int64)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, returned as float32."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


# ---- threads ------------------------------------------------------------------------------------------


def inference_threads(threads: int | None) -> int:
    """Intra-op threads for inference: ``threads`` when given, else the trainers' policy with no data
    workers (:func:`detkit.train.threads.thread_choice`: $OMP_NUM_THREADS, else the usable cores less the
    ones other programs keep busy)."""

    return thread_choice(threads, 0)["threads"]


# ---- exported models --------------------------------------------------------------------------------


def read_metadata(path: Path, props: dict[str, str]) -> dict[str, Any]:
    """The detkit metadata of an exported file, checked; ``props`` is its metadata map."""
    text = props.get(METADATA_KEY)
    if text is None:
        raise DetkitError(
            f"{path}: not a detkit export (no '{METADATA_KEY}' metadata); export one with "
            "`detkit yolo export` or `detkit classify export`"
        )
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise DetkitError(f"{path}: its detkit metadata is not JSON ({e.msg})") from None
    schema = meta.get("schema") if isinstance(meta, dict) else None
    if schema != EXPORT_SCHEMA or "task" not in meta:
        raise DetkitError(f"{path}: detkit metadata of an unknown version (schema {schema!r})")
    return meta


@dataclass
class Exported:
    """A loaded model ready to run on uint8 (B, S, S, 3) RGB canvases: ``run`` returns the outputs as numpy
    arrays (detector: boxes, scores; classifier: logits), whatever ``B`` (a fixed-batch export is run in
    chunks of its batch, the last one padded).

    Args:
        meta: the export metadata (:func:`detkit.yolo.export.detector_metadata` /
            :func:`detkit.classify.export.classifier_metadata`).
        fn: the backend call on one batch of the model's own batch size (or any, when ``batch`` is None).
        batch: the fixed batch size of the file, None when dynamic.
        kind: ``torch``, ``torchscript`` or ``onnxruntime``.
        threads: intra-op threads it runs with.
        device: where it runs.
    """

    meta: dict[str, Any]
    fn: Any
    batch: int | None
    kind: str
    threads: int
    device: str = "cpu"

    @property
    def img_size(self) -> int:
        return int(self.meta["img_size"])

    def run(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """Outputs of the network on ``x`` (B, S, S, 3) uint8."""
        if self.batch is None or len(x) == self.batch:
            return tuple(self.fn(x))
        parts = []
        for i in range(0, len(x), self.batch):
            chunk = x[i : i + self.batch]
            n = len(chunk)
            if n < self.batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch - n, axis=0)])
            parts.append([o[:n] for o in self.fn(chunk)])
        return tuple(np.concatenate(cols) for cols in zip(*parts))


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise DetkitError(f"running an .onnx model needs onnxruntime: {ONNX_HINT}") from None
    return onnxruntime


def load_if_onnx(path: str | Path, task: str, threads: int | None, device: str) -> Exported | None:
    """The first step of both model loaders (:func:`detkit.yolo.predict.load_detector`,
    :func:`detkit.classify.checkpoint.load_classifier`): ``threads`` checked for every kind of model file,
    then an ``.onnx`` file loaded by :func:`load_onnx`; None for any other file, which the caller loads
    on torch."""
    if threads is not None and threads < 1:
        raise OptionError("threads", f"must be at least 1, got {threads}")
    return load_onnx(path, task, threads, device) if Path(path).suffix.lower() == ".onnx" else None


def load_onnx(path: str | Path, task: str, threads: int | None = None, device: str = "cpu") -> Exported:
    """An ONNX file written by ``detkit yolo export`` / ``detkit classify export``, on onnxruntime.

    Args:
        path: the .onnx file.
        task: ``detect`` or ``classify`` (a file of the other kind is refused).
        threads: intra-op threads (None: :func:`inference_threads`).
        device: ``cpu``, ``cuda`` or ``auto`` (CUDA provider when onnxruntime has it).

    Raises:
        DetkitError: one line naming the file: not installed, unreadable, not a detkit export, another
            task, or an input that is not what its metadata says.
    """
    ort = _onnxruntime()
    p = Path(path)
    if not p.is_file():
        raise DetkitError(f"{p}: no such model file")
    n = inference_threads(threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = n
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3  # errors only: its warnings are not the user's business
    providers = ["CPUExecutionProvider"]
    if device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    elif device.startswith("cuda"):
        raise DetkitError(f"device {device!r}: this onnxruntime has no CUDA provider")
    try:
        sess = ort.InferenceSession(str(p), sess_options=opts, providers=providers)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own classes for every unreadable file
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DetkitError(f"{p}: not a readable ONNX model ({msg[:200]})") from None
    meta = read_metadata(p, sess.get_modelmeta().custom_metadata_map)
    check_task(p, meta, task)
    inputs = sess.get_inputs()
    s = int(meta["img_size"])
    shape = list(inputs[0].shape) if len(inputs) == 1 else None
    if shape is None or len(shape) != 4 or shape[1:] != [s, s, 3] or inputs[0].type != "tensor(uint8)":
        got = [(i.name, i.shape, i.type) for i in inputs]
        raise DetkitError(
            f"{p}: input {got} is not the (batch, {s}, {s}, 3) uint8 image its metadata declares"
        )
    batch = shape[0] if isinstance(shape[0], int) else None
    name = inputs[0].name
    outputs = [o.name for o in sess.get_outputs()]
    used = "cuda" if providers[0].startswith("CUDA") else "cpu"
    return Exported(meta, lambda x: sess.run(outputs, {name: x}), batch, "onnxruntime", n, used)


def check_task(path: Path, meta: dict[str, Any], task: str) -> None:
    """Refuse a detector where a classifier is expected, and the reverse."""
    if meta.get("task") != task:
        what = {"detect": "a detector", "classify": "a classifier"}
        raise DetkitError(
            f"{path}: this is {what.get(meta.get('task'), repr(meta.get('task')))} export, "
            f"not {what.get(task, task)}"
        )


def check_image(image: Any, what: str = "image") -> np.ndarray:
    """``image`` as an (H, W, 3) uint8 array, or one line saying what it is instead."""
    if isinstance(image, (str, Path)):  # np.asarray would make it a 0-d string array: "shape ()"
        raise DetkitError(
            f"{what} must be an (H, W, 3) uint8 array, got the path {str(image)!r}; "
            "read it first, e.g. np.asarray(PIL.Image.open(path).convert('RGB'))"
        )
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or 0 in a.shape:
        raise DetkitError(f"{what} must be an (H, W, 3) uint8 array, got shape {a.shape} dtype {a.dtype}")
    return a
