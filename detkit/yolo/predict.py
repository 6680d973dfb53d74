"""Evaluation and prediction from a checkpoint: ``detkit yolo eval`` and ``detkit yolo predict``.

Both load a checkpoint written by ``detkit yolo train`` (model config, class map, input size and
anchors travel inside it) and use its EMA weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from detkit.console import warn
from detkit.errors import DetkitError, OptionError
from detkit.io import atomic_path, atomic_write, write_json
from detkit.train.common import resolve_device
from detkit.yolo.checkpoint import load_checkpoint, model_from_checkpoint
from detkit.yolo.data import ClassMap, DetectionDataset, build_loader
from detkit.yolo.engine import evaluate
from detkit.yolo.splits import load_split


def load_model(
    weights: str | Path, device: str = "auto"
) -> tuple[torch.nn.Module, dict[str, Any], torch.device]:
    """(model on device in eval mode, checkpoint metadata, device) from a checkpoint file."""
    ckpt = load_checkpoint(weights)
    model, class_map, img_size = model_from_checkpoint(ckpt)
    dev = resolve_device(device)
    meta = {
        "class_map": class_map,
        "img_size": img_size,
        "anchors": ckpt["model_config"]["anchors"],
        "epoch": ckpt.get("epoch"),
    }
    return model.to(dev), meta, dev


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
) -> tuple[dict[str, Any], list[dict[str, Any]], Any]:
    """COCO mAP of a checkpoint on an annotated set: its ``val`` split when ``data`` declares splits (a
    data.yaml, a Roboflow export, VOC ImageSets; ``list_file`` wins over it), else all of it.

    Returns:
        (metrics: mAP, mAP50, mAP75, per_class, detections, images, images_per_s; COCO results rows; the
        ground truth scored, a :class:`detkit.datasets.model.Dataset`).
    """
    model, meta, dev = load_model(weights, device)
    ds = load_split(data, list_file, limit, "val")  # warns once about what the loader skipped
    class_map: ClassMap = meta["class_map"]
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
    size = img_size or meta["img_size"]
    if size % 32:
        raise OptionError("img_size", f"must be a multiple of 32, got {size}")
    dset = DetectionDataset(ds, images, class_map=_eval_map(class_map, ds), img_size=size, augment=None)
    for p in dset.missing:
        warn(f"{p}: image file is missing; skipped")
    loader = build_loader(dset, batch_size=batch, train=False, workers=workers)
    # predictions use the model's class map, so category ids go back to the ids it was trained with
    metrics, results = evaluate(
        model,
        loader,
        ds,
        meta["anchors"],
        class_map,
        dev,
        conf=conf,
        iou=iou,
        on_bad=lambda ps: [warn(f"{p}: cannot decode the image; skipped") for p in ps],
    )
    return metrics, results, ds


def _eval_map(model_map: ClassMap, ds) -> ClassMap:
    """A class map covering every category of ``ds`` (targets are not used in evaluation, only decoding)."""
    extra = [int(c) for c in ds.cat_id if int(c) not in model_map.cat_ids]
    names = ds.category_names()
    return ClassMap(model_map.cat_ids + extra, model_map.names + [names[c] for c in extra])


def predict_files(
    weights: str | Path,
    paths: list[Path],
    out: Path,
    *,
    conf: float = 0.25,
    iou: float = 0.45,
    img_size: int | None = None,
    device: str = "auto",
) -> list[dict[str, Any]]:
    """Detect objects in image files; writes OUT/<name> with drawn, labelled boxes.

    Returns:
        one record per image: file, width, height, detections [{category_id, name, score, bbox xywh}].
    """
    import cv2

    from detkit.api import Detector

    det = Detector.load(weights, device)
    class_map: ClassMap = det.class_map
    size = img_size or det.img_size
    if size % 32 or not 32 <= size <= 2048:
        raise OptionError("img_size", f"must be a multiple of 32 in 32..2048, got {size}")
    colours = _palette(len(class_map))
    records, taken = [], set()
    for path in paths:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            warn(f"{path}: cannot decode the image; skipped")
            continue
        h0, w0 = img.shape[:2]
        boxes, scores, labels = det.predict(img, conf=conf, iou=iou, img_size=size, bgr=True)
        dets = []
        for (x0, y0, x1, y1), score, cat in zip(boxes.tolist(), scores.tolist(), labels.tolist()):
            k = class_map.cat_ids.index(cat)
            xywh = [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]
            dets.append(
                {"category_id": cat, "name": class_map.names[k], "score": round(score, 5), "bbox": xywh}
            )
            _draw(img, xywh, f"{class_map.names[k]} {score:.2f}", colours[k])
        name = _output_name(Path(path), taken)
        ok, buf = cv2.imencode(Path(name).suffix, img)
        if not ok:
            raise DetkitError(f"{path}: cannot encode the drawn image")
        with atomic_write(out / name, "wb") as f:
            f.write(buf.tobytes())
        records.append({"file": str(path), "output": name, "width": w0, "height": h0, "detections": dets})
    if paths and not records:
        raise DetkitError(f"none of the {len(paths)} images could be decoded (see the warnings above)")
    write_json(
        out / "detections.json",
        {"weights": str(weights), "conf": conf, "iou": iou, "img_size": size, "images": records},
    )
    return records


def _output_name(path: Path, taken: set[str]) -> str:
    """``path``'s name for its drawn copy: JPEG or PNG kept, other formats written as .jpg, and a suffix
    ``_2``, ``_3``... when two inputs from different folders share a name."""
    suffix = path.suffix if path.suffix.lower() in (".jpg", ".jpeg", ".png") else ".jpg"
    name, n = f"{path.stem}{suffix}", 1
    while name.lower() in taken:
        n += 1
        name = f"{path.stem}_{n}{suffix}"
    taken.add(name.lower())
    return name


def _palette(n: int) -> list[tuple[int, int, int]]:
    """n well-separated BGR colours (golden-angle hues)."""
    import cv2

    hsv = np.array([[[int(i * 137.5) % 180, 200, 255] for i in range(n)]], dtype=np.uint8)
    return [tuple(int(v) for v in c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0]]


def _draw(img: np.ndarray, xywh: list[float], label: str, colour: tuple[int, int, int]) -> None:
    import cv2

    x, y, w, h = (round(v) for v in xywh)
    thick = max(1, round(max(img.shape[:2]) / 400))
    cv2.rectangle(img, (x, y), (x + w, y + h), colour, thick, cv2.LINE_AA)
    scale = max(0.35, max(img.shape[:2]) / 1200)
    (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    # label above the box, or inside it when the box touches the top
    ty = y - 2 if y - th - base - 2 >= 0 else y + th + base + 2
    cv2.rectangle(img, (x, ty - th - base), (x + tw + 2, ty + 1), colour, -1)
    cv2.putText(
        img, label, (x + 1, ty - base + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA
    )


def write_gallery(pred_dir: Path, gt_json: Path, out: Path, side: int = 256) -> Path:
    """Each predicted image (``yolo predict``'s drawing) beside the same image with its ground-truth boxes,
    as one picture per image, into ``out`` with a summary.json (kind ``yolo.gallery``) for the report."""
    import json

    import cv2

    from detkit.datasets.load import load_dataset
    from detkit.train.runs import write_summary

    doc = json.loads((pred_dir / "detections.json").read_text())
    gt = load_dataset(gt_json)
    names = gt.category_names()
    cats = [int(c) for c in gt.cat_id]
    colours = _palette(len(cats))
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
            _draw(pred, [v * r for v in d["bbox"]], f"{d['name']} {d['score']:.2f}", colours[k])
        rows = np.flatnonzero(gt.ann_image_id == by_name[src.name])
        for i in rows:
            c = int(gt.category_id[i])
            _draw(truth, (gt.bbox[i] * r).tolist(), str(names.get(c, c)), colours[cats.index(c)])
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
