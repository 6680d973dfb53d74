"""Evaluation and prediction: ``detkit yolo eval`` and ``detkit yolo predict``, on a checkpoint or an export.

One loader (:func:`load_detector`) takes what a user has — a checkpoint written by ``detkit yolo train``
(model config, class map, input size and anchors travel inside it; EMA weights), a TorchScript or an ONNX file
written by ``detkit yolo export`` — and one path runs it (:func:`detect_canvases`): the letterbox, the
network, the post-processing of :mod:`detkit.deploy.runtime`. :class:`detkit.Detector` is built on the same
two functions, so the Python API, ``predict`` and ``eval`` see the same input and keep the same boxes. An ONNX
model runs on onnxruntime without importing torch.

``predict`` reads image files, folders, globs, ``.txt`` lists of images, a split of a data.yaml (or any
source with declared splits) and videos; it writes drawn pictures (a drawn video per video), the
detections (``detections.json``), a COCO results file (``predictions.json``) and, with ``save_txt``,
ultralytics-style ``labels/<stem>.txt`` (``class cx cy w h conf``), all read back by ``detkit coco eval``.
Outputs are written to a staging folder and moved into place at the end: a failure leaves nothing.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detkit.console import info, progress, progress_enabled, warn
from detkit.datasets.formats.layouts import IMAGE_EXTS
from detkit.datasets.load import declared_splits, load_dataset, warn_skipped
from detkit.datasets.ops.draw import draw_detection
from detkit.datasets.paths import source_path
from detkit.deploy.runtime import Exported, letterbox, load_if_onnx, postprocess, unletterbox
from detkit.errors import DetkitError, OptionError
from detkit.io import atomic_path, atomic_write, write_json
from detkit.train.runs import write_summary
from detkit.yolo.config import check_img_size
from detkit.yolo.splits import has_split, load_split

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".webm")
DATA_EXTS = (".yaml", ".yml")


def load_detector(path: str | Path, device: str = "auto", threads: int | None = None) -> Exported:
    """The one loader of a detector: a checkpoint (``.pt``, or a run folder meaning its ``last.pt``), a
    TorchScript export (``.ts``) or an ONNX export (``.onnx``, on onnxruntime, torch not imported).

    Args:
        path: the model file.
        device: auto, cpu or cuda.
        threads: CPU intra-op threads (None: the trainers' policy,
            :func:`detkit.deploy.runtime.inference_threads`).
    """
    if (onnx := load_if_onnx(path, "detect", threads, device)) is not None:
        return onnx
    from detkit.yolo.export import load_torch  # lazy: torch: an ONNX model runs on onnxruntime alone

    return load_torch(path, device, threads)


def input_size(model: Exported, img_size: int | None) -> int:
    """The side to run ``model`` at: ``img_size`` (checked) or its own; an export runs at its own only."""
    size = check_img_size(int(img_size or model.img_size))
    if model.kind != "torch" and size != model.img_size:
        raise OptionError("img_size", f"must be {model.img_size} for this exported model, got {size}")
    return size


def detect_canvases(
    model: Exported,
    canvases: np.ndarray,
    transforms: list,
    sizes: list,
    *,
    conf: float,
    iou: float,
    max_det: int = 100,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Detections of letterboxed canvases: (boxes (k, 4) xyxy original pixels, scores (k,), class indices
    (k,)) per image.

    Args:
        canvases: (B, S, S, 3) uint8 RGB from :func:`detkit.deploy.runtime.letterbox`.
        transforms: the (r, tx, ty) of each canvas.
        sizes: the original (w, h) of each image.
    """
    boxes, scores = model.run(canvases)
    size = canvases.shape[1]
    out = []
    for b, s, tr, (w0, h0) in zip(boxes, scores, transforms, sizes):
        kb, ks, kl = postprocess(b, s, conf=conf, iou=iou, max_det=max_det)
        out.append((unletterbox(kb, size, tr, w0, h0), ks, kl))
    return out


def detect(
    model: Exported, image: np.ndarray, size: int, *, conf: float, iou: float, max_det: int = 100
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections of one (H, W, 3) uint8 RGB image (see :func:`detect_canvases`)."""
    canvas, tr = letterbox(np.ascontiguousarray(image), size)
    h0, w0 = image.shape[:2]
    return detect_canvases(model, canvas[None], [tr], [(w0, h0)], conf=conf, iou=iou, max_det=max_det)[0]


# ---- eval --------------------------------------------------------------------------------------------


def run_eval(
    weights: str | Path,
    data: str | Path,
    images: str | Path | None = None,
    *,
    conf: float = 0.001,
    iou: float = 0.45,
    img_size: int | None = None,
    batch: int = 16,
    list_file: str | Path | None = None,
    limit: int | None = None,
    device: str = "auto",
    workers: int = 2,
    split: str | None = None,
    threads: int | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]], Any]:
    """COCO mAP of a detector (checkpoint, TorchScript or ONNX) on an annotated set: ``split`` of ``data``
    (default ``val``) when ``data`` declares splits (a data.yaml, a Roboflow export, VOC ImageSets;
    ``list_file`` wins over it), else all of it.

    Returns:
        (metrics: mAP, mAP50, mAP75, per_class, detections, images, images_per_s; COCO results rows; the
        ground truth scored, a :class:`detkit.datasets.model.Dataset`).
    """
    # lazy: torch (the data loader); the rest of this module runs an ONNX model without it
    from detkit.yolo.data import ClassMap, DetectionDataset, build_loader  # lazy: torch, as above
    from detkit.yolo.engine import coco_eval  # lazy: torch, as above

    if split is not None and list_file is None and not has_split(data, split):
        have = declared_splits(data)
        raise DetkitError(f"{data}: declares no split {split!r} (it has: {', '.join(have) or 'none'})")
    model = load_detector(weights, device, threads)
    size = input_size(model, img_size)
    ds = load_split(data, list_file, limit, split or "val")  # warns once about what the loader skipped
    class_map = ClassMap(model.meta["cat_ids"], model.meta["names"])
    own = ClassMap.from_dataset(ds)
    foreign = sorted(set(class_map.cat_ids) - set(own.cat_ids))
    if foreign:  # pycocotools would silently ignore predictions of these ids
        raise DetkitError(
            f"{data}: the model predicts category ids {foreign} that this data set does not declare "
            "(was it trained on another label set?)"
        )
    missing = sorted(set(own.cat_ids) - set(class_map.cat_ids))
    if missing:  # the model cannot predict them; pycocotools would score them silently as misses
        warn(f"{data}: categories {missing} are not among the model's classes; they count as misses")
    dset = DetectionDataset(ds, images, class_map=_eval_map(class_map, ds), img_size=size, augment=None)
    for p in dset.missing:
        warn(f"{p}: image file is missing; skipped")
    loader = build_loader(dset, batch_size=batch, train=False, workers=workers)
    results: list[dict[str, Any]] = []
    seen: list[int] = []
    t0 = time.perf_counter()
    with _Progress("evaluating", len(dset)) as bar:
        for b in loader:
            for p in b["bad"]:
                warn(f"{p}: cannot decode the image; skipped")
            n = len(b["image_ids"])
            if n:
                canvases = b["images"].permute(0, 2, 3, 1).numpy()  # (B, S, S, 3) uint8 RGB
                dets = detect_canvases(
                    model,
                    np.ascontiguousarray(canvases),
                    b["transforms"].tolist(),
                    b["orig_sizes"].tolist(),
                    conf=conf,
                    iou=iou,
                )
                for image_id, det in zip(b["image_ids"].tolist(), dets):
                    results += _coco_rows(int(image_id), det, model.meta["cat_ids"])
                seen += b["image_ids"].tolist()
            bar.advance(n + len(b["bad"]))
    dt = time.perf_counter() - t0
    metrics = coco_eval(ds, results, image_ids=seen)
    metrics["images"] = len(seen)
    metrics["images_per_s"] = len(seen) / dt if dt > 0 else 0.0
    metrics["runtime"] = {"backend": model.kind, "threads": model.threads, "device": model.device}
    return metrics, results, ds


def _eval_map(model_map, ds):
    """A class map (of ``model_map``'s type, :class:`detkit.yolo.data.ClassMap`) covering every category of
    ``ds`` (targets are not used in evaluation, only decoding)."""
    extra = [int(c) for c in ds.cat_id if int(c) not in model_map.cat_ids]
    names = ds.category_names()
    return type(model_map)(model_map.cat_ids + extra, model_map.names + [names[c] for c in extra])


def _coco_rows(image_id: int, det, cat_ids: list[int]) -> list[dict[str, Any]]:
    boxes, scores, labels = det
    return [
        {
            "image_id": image_id,
            "category_id": int(cat_ids[int(c)]),
            "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
            "score": round(float(s), 5),
        }
        for (x0, y0, x1, y1), s, c in zip(boxes.tolist(), scores.tolist(), labels.tolist())
    ]


# ---- predict: inputs -----------------------------------------------------------------------------------


@dataclass
class Source:
    """One input of ``predict``: an image or a video file; ``image_id`` when it comes from a data set."""

    path: Path
    video: bool = False
    image_id: int | None = None


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def expand_sources(paths: list[str | Path], split: str | None = None) -> list[Source]:
    """What ``predict`` runs on, in order: image and video files; folders (their images and videos, sorted);
    globs (``'photos/*.jpg'``, quoted so the shell leaves them); ``.txt`` files listing images one per line
    (relative to the list's folder); a data.yaml (or, with ``split``, any source that declares splits):
    the images of ``split`` (default ``val``) with their data set ids."""
    media = (*IMAGE_EXTS, *VIDEO_EXTS)
    out: list[Source] = []

    def add(p: Path) -> None:
        out.append(Source(p, video=p.suffix.lower() in VIDEO_EXTS))

    for raw in paths:
        p = Path(raw)
        if p.suffix.lower() in DATA_EXTS or (split is not None and p.exists()):
            out += _split_sources(p, split or "val")
        elif p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in media)
            if not files:
                raise DetkitError(f"{p}: no images or videos in this folder")
            for f in files:
                add(f)
        elif p.is_file() and p.suffix.lower() == ".txt":
            lines = [(n, s.strip()) for n, s in enumerate(p.read_text(errors="replace").splitlines(), 1)]
            names = [(n, s) for n, s in lines if s and not s.startswith("#")]
            if not names:
                raise DetkitError(f"{p}: the image list is empty")
            for n, name in names:
                f = Path(name) if Path(name).is_absolute() else p.parent / name
                if not f.is_file():
                    raise DetkitError(f"{p}:line {n}: {name}: no such image file")
                add(f)
        elif p.is_file():
            add(p)
        elif _is_glob(str(raw)):
            files = sorted(Path(f) for f in glob.glob(str(raw), recursive=True) if Path(f).is_file())
            if not files:
                raise DetkitError(f"{raw}: the pattern matches no file")
            for f in files:
                add(f)
        else:
            raise DetkitError(f"{p}: no such image, video, list or folder")
    if not out:
        raise DetkitError("no images to predict on")
    return out


def _split_sources(path: Path, split: str) -> list[Source]:
    have = declared_splits(path)
    if split not in have:
        raise DetkitError(f"{path}: declares no split {split!r} (it has: {', '.join(have) or 'none'})")
    ds = load_dataset(path, split=split)
    warn_skipped(ds, hint="`detkit coco validate` lists them")
    if ds.image_root is None:
        raise DetkitError(f"{path}: cannot tell where the images of {split!r} are")
    root = Path(ds.image_root)
    return [Source(source_path(root, str(f)), image_id=int(i)) for f, i in zip(ds.file_name, ds.image_id)]


# ---- predict: outputs ------------------------------------------------------------------------------------


class _Progress:
    """A bar on a terminal; on a log (stderr not a terminal) a line every 10% or 30 s, for long inputs."""

    def __init__(self, what: str, total: int, every_s: float = 30.0):
        self.what, self.total, self.done, self.every_s = what, max(0, total), 0, every_s
        self.bar = progress() if progress_enabled() else None
        self.last_t, self.last_pct = time.monotonic(), 0

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.__enter__()
            self.task = self.bar.add_task(self.what, total=self.total or None, info="")
        return self

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(self.task, advance=n)
            return
        pct = int(100 * self.done / self.total) if self.total else 0
        now = time.monotonic()
        if self.total >= 50 and (pct >= self.last_pct + 10 or now - self.last_t >= self.every_s):
            info(f"{self.what}: {self.done}/{self.total} ({pct}%)")
            self.last_t, self.last_pct = now, pct - pct % 10

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


@contextlib.contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """A temp folder inside ``out`` whose files move into ``out`` on success; on failure it is removed
    (and ``out`` too when this call created it and it is empty): nothing partial is left."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".predict-", dir=out))
    try:
        yield tmp
        for f in sorted(tmp.rglob("*")):
            if f.is_file():
                dest = out / f.relative_to(tmp)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(f, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created and not any(out.iterdir()):
            out.rmdir()
        raise
    shutil.rmtree(tmp, ignore_errors=True)


def _output_name(path: Path, taken: set[str], suffix: str | None = None) -> str:
    """``path``'s name for its drawn copy: JPEG or PNG kept, other images written as .jpg (videos as .mp4),
    and a suffix ``_2``, ``_3``... when two inputs from different folders share a name."""
    if suffix is None:
        suffix = path.suffix if path.suffix.lower() in (".jpg", ".jpeg", ".png") else ".jpg"
    name, n = f"{path.stem}{suffix}", 1
    while name.lower() in taken:
        n += 1
        name = f"{path.stem}_{n}{suffix}"
    taken.add(name.lower())
    return name


def _video_stem(path: Path, stems: set[str], videos: set[str]) -> str:
    """A video's stem for its ``<stem>_<frame>.txt`` files: ``path``'s stem, or ``_2``, ``_3``... after it
    when another video took it or an earlier file is named ``<stem>_<digits>`` (an image ``v_2.jpg``
    beside ``v.mp4``, whose frame 2 would overwrite its labels)."""

    def clashes(stem: str) -> bool:
        frame = re.compile(re.escape(stem.lower()) + r"_\d+")
        return any(frame.fullmatch(t) for t in stems)

    name, n = path.stem, 1
    while name.lower() in videos or clashes(name):
        n += 1
        name = f"{path.stem}_{n}"
    videos.add(name.lower())
    return name


def _records(det, cat_ids: list[int], names: list[str]) -> list[dict[str, Any]]:
    boxes, scores, labels = det
    return [
        {
            "category_id": int(cat_ids[int(k)]),
            "name": names[int(k)],
            "score": round(float(s), 5),
            "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
        }
        for (x0, y0, x1, y1), s, k in zip(boxes.tolist(), scores.tolist(), labels.tolist())
    ]


def _id_rank(cat_ids: list[int]) -> list[int]:
    """Class index -> position of its category id in id order: the class number of a YOLO txt (what
    ``detkit coco eval`` reads back: class k is the k-th category in id order) and the palette colour of
    :func:`detkit.datasets.ops.draw.class_colours`."""
    order = sorted(cat_ids)
    return [order.index(c) for c in cat_ids]


def _txt(det, w0: int, h0: int, rank: list[int]) -> str:
    """ultralytics' save_txt + save_conf: ``class cx cy w h conf`` normalised to the image."""
    boxes, scores, labels = det
    lines = []
    for (x0, y0, x1, y1), s, c in zip(boxes.tolist(), scores.tolist(), labels.tolist()):
        k = rank[int(c)]
        cx, cy, w, h = (x0 + x1) / 2 / w0, (y0 + y1) / 2 / h0, (x1 - x0) / w0, (y1 - y0) / h0
        lines.append(f"{int(k)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f} {s:.5f}\n")
    return "".join(lines)


def _draw_all(bgr: np.ndarray, det, names: list[str], rank: list[int]) -> None:
    boxes, scores, labels = det
    for (x0, y0, x1, y1), s, k in zip(boxes.tolist(), scores.tolist(), labels.tolist()):
        draw_detection(bgr, [x0, y0, x1 - x0, y1 - y0], f"{names[int(k)]} {s:.2f}", rank[int(k)])


def _frame_count(path: Path) -> int:
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's decoder chatter: our error says it
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        return max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))) if cap.isOpened() else 0
    finally:
        cap.release()


def predict_files(
    weights: str | Path,
    paths: list[str | Path],
    out: str | Path,
    *,
    conf: float = 0.25,
    iou: float = 0.45,
    img_size: int | None = None,
    device: str = "auto",
    threads: int | None = None,
    split: str | None = None,
    save_txt: bool = False,
    max_det: int = 100,
    draw: bool = True,
) -> dict[str, Any]:
    """Detect objects in images and videos (see :func:`expand_sources`); writes into ``out``:
    drawn images (``<name>``) and videos (``<stem>.mp4``), ``detections.json`` (one record per image and
    per video frame), ``predictions.json`` (COCO results; image ids from the data set for a data split,
    else 1, 2, ... in input order, frames included) and with ``save_txt`` ``labels/<stem>.txt``
    (``<stem>_<frame>.txt`` for frames, numbered from 0).

    Returns:
        what ``detections.json`` holds: ``images``, one record per image (file, output, image_id, width,
        height, detections [{category_id, name, score, bbox xywh}]), ``videos`` (file, output, fps, width,
        height, frames [{frame, image_id, detections}]), ``runtime`` (backend, threads, device), ``seconds``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OptionError("out", f"must be a folder: {out} is a file")
    sources = expand_sources(paths, split)
    model = load_detector(weights, device, threads)
    size = input_size(model, img_size)
    total = sum(_frame_count(s.path) if s.video else 1 for s in sources)
    known = [s.image_id for s in sources if s.image_id is not None]
    t0 = time.perf_counter()
    with _staged(out) as tmp, _Progress("predicting", total) as bar:
        run = _Predictor(model, tmp, size, conf, iou, max_det, draw, save_txt, bar, max(known, default=0) + 1)
        for src in sources:
            if src.video:
                run.video(src)
            else:
                run.image(src)
        if sources and run.n_bad == len(sources):
            raise DetkitError(f"none of the {len(sources)} images could be decoded (see the warnings above)")
        doc = {
            "weights": str(weights),
            "conf": conf,
            "iou": iou,
            "img_size": size,
            "runtime": {"backend": model.kind, "threads": model.threads, "device": model.device},
            "seconds": round(time.perf_counter() - t0, 3),
            "images": run.images,
            "videos": run.videos,
        }
        write_json(tmp / "detections.json", doc)
        write_json(tmp / "predictions.json", run.results, indent=None)
    return doc


class _Predictor:
    """What ``predict_files`` accumulates while it walks the inputs: records, COCO rows, the names taken in
    the output folder, the next image id."""

    def __init__(self, model, tmp, size, conf, iou, max_det, draw, save_txt, bar, next_id):
        self.model, self.tmp, self.size, self.bar = model, tmp, size, bar
        self.conf, self.iou, self.max_det, self.draw, self.save_txt = conf, iou, max_det, draw, save_txt
        self.cat_ids, self.names = model.meta["cat_ids"], model.meta["names"]
        self.rank = _id_rank(self.cat_ids)
        self.taken: set[str] = {"detections.json", "predictions.json", "labels"}
        self.stems: set[str] = set()  # of labels/*.txt: two inputs named alike get _2, _3... as drawings do
        self.video_stems: set[str] = set()  # <stem> of each video's <stem>_<frame>.txt
        self.images: list[dict[str, Any]] = []
        self.videos: list[dict[str, Any]] = []
        self.results: list[dict[str, Any]] = []
        self.next_id, self.n_bad = next_id, 0

    def _detect(self, bgr: np.ndarray, image_id: int):
        det = detect(
            self.model, bgr[:, :, ::-1], self.size, conf=self.conf, iou=self.iou, max_det=self.max_det
        )
        self.results += _coco_rows(image_id, det, self.cat_ids)
        if self.draw:
            _draw_all(bgr, det, self.names, self.rank)
        return det

    def image(self, src: Source) -> None:
        import cv2

        bgr = cv2.imread(str(src.path), cv2.IMREAD_COLOR)
        self.bar.advance()
        if bgr is None:
            warn(f"{src.path}: cannot decode the image; skipped")
            self.n_bad += 1
            return
        h0, w0 = bgr.shape[:2]
        image_id = src.image_id
        if image_id is None:
            image_id, self.next_id = self.next_id, self.next_id + 1
        det = self._detect(bgr, image_id)
        rec = {"file": str(src.path), "image_id": image_id, "width": w0, "height": h0}
        if self.draw:
            name = _output_name(src.path, self.taken)
            ok, buf = cv2.imencode(Path(name).suffix, bgr)
            if not ok:
                raise DetkitError(f"{src.path}: cannot encode the drawn image")
            with atomic_write(self.tmp / name, "wb") as f:
                f.write(buf.tobytes())
            rec["output"] = name
        if self.save_txt:
            _write_txt(self.tmp, _output_name(src.path, self.stems, ""), _txt(det, w0, h0, self.rank))
        self.images.append({**rec, "detections": _records(det, self.cat_ids, self.names)})

    def video(self, src: Source) -> None:
        """Every frame: detections, a drawn .mp4, a txt per frame (``<stem>_<frame>.txt``); a video that
        cannot be opened, or a frame that fails to decode before the declared end, is one error naming the
        file (and ``predict_files`` leaves nothing)."""
        import cv2

        cap = cv2.VideoCapture(str(src.path))
        if not cap.isOpened():
            raise DetkitError(f"{src.path}: cannot open the video (not a video OpenCV can read, or corrupt)")
        declared = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
        stem = _video_stem(src.path, self.stems, self.video_stems) if self.save_txt else None
        writer, frames, name, w0, h0 = None, [], None, 0, 0
        try:
            while True:
                ok, bgr = cap.read()
                if not ok or bgr is None:
                    if any(cap.grab() for _ in range(3)):  # frames after this one: it failed mid-video
                        raise DetkitError(f"{src.path}: frame {len(frames)} fails to decode (corrupt video)")
                    break
                h0, w0 = bgr.shape[:2]
                k, image_id = len(frames), self.next_id
                self.next_id += 1
                det = self._detect(bgr, image_id)
                frames.append(
                    {"frame": k, "image_id": image_id, "detections": _records(det, self.cat_ids, self.names)}
                )
                if stem is not None:
                    self.stems.add(f"{stem}_{k}".lower())  # a later image of that name moves on to _2...
                    _write_txt(self.tmp, f"{stem}_{k}", _txt(det, w0, h0, self.rank))
                if self.draw:
                    if writer is None:
                        name = _output_name(src.path, self.taken, ".mp4")
                        fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                        writer = cv2.VideoWriter(str(self.tmp / name), fourcc, fps, (w0, h0))
                        if not writer.isOpened():
                            raise DetkitError(f"{self.tmp / name}: OpenCV cannot write an mp4 video here")
                    writer.write(bgr)
                self.bar.advance()
        finally:
            cap.release()
            if writer is not None:
                writer.release()
        if not frames:
            raise DetkitError(f"{src.path}: no frame of the video could be decoded")
        # the header's count; a variable-rate video's estimate may be a frame or two off
        if declared and len(frames) < declared - max(2, declared // 100):
            raise DetkitError(
                f"{src.path}: frame {len(frames)} of {declared} fails to decode (truncated or corrupt video)"
            )
        rec = {"file": str(src.path), "fps": fps, "width": w0, "height": h0, "frames": frames}
        self.videos.append(rec | ({"output": name} if name is not None else {}))


def _write_txt(tmp: Path, stem: str, text: str) -> None:
    if text:  # as ultralytics: no file for an image without detections
        (tmp / "labels").mkdir(exist_ok=True)
        with atomic_write(tmp / "labels" / f"{stem}.txt") as f:
            f.write(text)


def write_gallery(pred_dir: Path, gt_json: Path, out: Path, side: int = 256) -> Path:
    """Each predicted image (``yolo predict``'s drawing) beside the same image with its ground-truth boxes,
    as one picture per image, into ``out`` with a summary.json (kind ``yolo.gallery``) for the report."""
    import json

    import cv2

    doc = json.loads((pred_dir / "detections.json").read_text())
    gt = load_dataset(gt_json)
    names = gt.category_names()
    cats = sorted(int(c) for c in gt.cat_id)  # colour k: the k-th category in id order, as everywhere
    by_name = {Path(str(f)).name: int(i) for f, i in zip(gt.file_name, gt.image_id)}
    out.mkdir(parents=True, exist_ok=True)
    pictures, n_pred, n_gt = [], 0, 0
    for rec in doc["images"]:
        src = Path(rec["file"])
        img = cv2.imread(str(src))
        if img is None or src.name not in by_name:
            raise DetkitError(f"{src}: cannot read the image, or {gt_json} has no ground truth for it")
        # both panels drawn at display size (labels stay small on small images)
        r = side / img.shape[1]
        img = cv2.resize(img, (side, round(img.shape[0] * r)), interpolation=cv2.INTER_LINEAR)
        pred, truth = img.copy(), img.copy()
        for d in rec["detections"]:
            k = cats.index(d["category_id"]) if d["category_id"] in cats else 0
            draw_detection(pred, [v * r for v in d["bbox"]], f"{d['name']} {d['score']:.2f}", k)
        rows = np.flatnonzero(gt.ann_image_id == by_name[src.name])
        for i in rows:
            c = int(gt.category_id[i])
            draw_detection(truth, (gt.bbox[i] * r).tolist(), str(names.get(c, c)), cats.index(c))
        n_pred, n_gt = n_pred + len(rec["detections"]), n_gt + len(rows)
        panels = []
        for im, text in (
            (pred, f"predicted: {len(rec['detections'])}"),
            (truth, f"ground truth: {len(rows)}"),
        ):
            band = np.full((22, side, 3), 255, np.uint8)
            cv2.putText(band, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
            panels.append(np.vstack([band, im]))
        gap = np.full((panels[0].shape[0], 6, 3), 255, np.uint8)
        name = f"{src.stem}.jpg"  # photographs: JPEG is a fifth of the PNG's size, and the report embeds them
        with atomic_path(out / name) as tmp:
            if not cv2.imwrite(
                str(tmp), np.hstack([panels[0], gap, panels[1]]), [cv2.IMWRITE_JPEG_QUALITY, 90]
            ):
                raise DetkitError(f"{out / name}: cannot write image")
        pictures.append(name)
    write_summary(
        out,
        "yolo.gallery",
        f"{len(pictures)} held-out images: predicted (left) and annotated (right)",
        metrics={"images": len(pictures), "predicted_boxes": n_pred, "ground_truth_boxes": n_gt},
        galleries={"predicted | ground truth": pictures},
        conf=doc.get("conf"),
        weights=doc.get("weights"),
    )
    return out / "summary.json"
