"""Detection data for YOLOv2 training: letterbox, augmentation, multi-scale batches, a safe loader.

Pipeline, torchvision-references style (a Dataset that decodes in DataLoader workers, a batch
sampler, a collate function):

    YoloBatchSampler  -> [(index, size, epoch), ...]   one input size per batch (detkit.yolo.sampler)
    DetectionDataset  -> one sample: cv2 decode, random scale/translate + letterbox in ONE warpAffine,
                         flip, HSV jitter, boxes follow (clipped, tiny ones dropped)
    collate           -> uint8 images (B, 3, S, S) + per-image targets (class_index, cx, cy, w, h)

Every random choice of a sample comes from ``np.random.default_rng((seed, epoch, index))`` and every
size choice from ``(seed, epoch, batch // every)``, so a run is the same whatever the number of
workers, and ``--resume`` replays the data exactly from the epoch number alone.

Corrupt or missing images never crash an epoch: missing files are dropped (and listed) when the
dataset is built, undecodable ones come back as ``bad`` paths in their batch for the trainer to report.

Images leave the workers as uint8 (4x less inter-process traffic than float); the trainer converts them on the
device."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from detkit.datasets.load import load_dataset
from detkit.datasets.model import Dataset
from detkit.datasets.paths import source_path
from detkit.deploy.runtime import PAD_VALUE, letterbox_transform, warp_letterbox
from detkit.errors import DetkitError
from detkit.train.threads import worker_init_fn
from detkit.yolo.sampler import YoloBatchSampler

IMAGES_FLAG = {"name the image folder": "pass --images DIR"}  # the CLI names the flag (DetkitError.flags)


@dataclass
class ClassMap:
    """COCO category ids <-> contiguous class indices 0..C-1 (the model predicts indices).

    Args:
        cat_ids: category id of each class index, in the dataset's category order.
        names: category name of each class index.
    """

    cat_ids: list[int]
    names: list[str]

    @classmethod
    def from_dataset(cls, ds: Dataset) -> ClassMap:
        return cls([int(c) for c in ds.cat_id], [str(n) for n in ds.cat_name])

    def __len__(self) -> int:
        return len(self.cat_ids)

    def to_index(self, category_ids: np.ndarray) -> np.ndarray:
        """Class index of each category id; -1 for ids that are not in the map."""
        lut = {c: i for i, c in enumerate(self.cat_ids)}
        return np.array([lut.get(int(c), -1) for c in category_ids], dtype=np.int64)

    def to_category_id(self, index: int) -> int:
        return self.cat_ids[int(index)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassMap:
        return cls([int(c) for c in d["cat_ids"]], [str(n) for n in d["names"]])


@dataclass
class Augment:
    """Training augmentation; ``Augment.off()`` for evaluation (plain letterbox).

    Args:
        flip: probability of a horizontal flip.
        hsv: gains of the HSV jitter (hue fraction of the circle, saturation, value); 0 disables.
        scale: the letterboxed image is scaled by a factor in [1 - scale, 1 + scale].
        translate: and shifted by up to this fraction of the input size, in x and y.
        min_size: boxes narrower or lower than this (pixels, after augmentation) are dropped.
        min_visible: boxes with less than this fraction of their area left inside are dropped.
        mosaic: probability that a sample is a mosaic of four images (see :meth:`DetectionDataset.mosaic`).
        mosaic_scale: the mosaic is scaled by a factor in [1 - mosaic_scale, 1 + mosaic_scale].
        mosaic_until: no mosaic from this epoch on (None: every epoch); the last epochs train on plain
            images, as the evaluation sees them.
    """

    flip: float = 0.5
    hsv: tuple[float, float, float] = (0.015, 0.5, 0.3)
    scale: float = 0.25
    translate: float = 0.1
    min_size: float = 2.0
    min_visible: float = 0.25
    mosaic: float = 0.0
    mosaic_scale: float = 0.5
    mosaic_until: int | None = None

    @classmethod
    def off(cls) -> Augment:
        return cls(flip=0.0, hsv=(0.0, 0.0, 0.0), scale=0.0, translate=0.0)


def hsv_jitter(img: np.ndarray, gains: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """Random hue shift and saturation/value scaling of a BGR uint8 image (lookup tables, in place)."""
    import cv2

    hg, sg, vg = gains
    if not (hg or sg or vg):
        return img
    g = rng.uniform(-1, 1, 3) * np.array([hg, sg, vg]) + np.array([0.0, 1.0, 1.0])
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    x = np.arange(256, dtype=np.float32)
    lut_h = ((x + g[0] * 180) % 180).astype(np.uint8)  # OpenCV hue is 0..179
    lut_s = np.clip(x * g[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * g[2], 0, 255).astype(np.uint8)
    h, s, v = cv2.split(hsv)
    hsv = cv2.merge((cv2.LUT(h, lut_h), cv2.LUT(s, lut_s), cv2.LUT(v, lut_v)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def transform_boxes(
    boxes: np.ndarray, r: float, tx: float, ty: float, size: int, aug: Augment
) -> tuple[np.ndarray, np.ndarray]:
    """Map xyxy pixel boxes through p' = r p + t, clip to the input, drop tiny / mostly-outside ones.

    Returns:
        (kept boxes (k, 4) xyxy input pixels, boolean mask of kept rows).
    """
    b = boxes * r + np.array([tx, ty, tx, ty])
    area0 = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    b = b.clip(0, size)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    keep = (w >= aug.min_size) & (h >= aug.min_size) & (w * h >= aug.min_visible * np.maximum(area0, 1e-9))
    return b[keep], keep


class DetectionDataset(torch.utils.data.Dataset):
    """Images + boxes of a :class:`~detkit.datasets.model.Dataset` for YOLO training and evaluation.

    Items are addressed by ``(index, size, epoch)`` tuples (see :class:`YoloBatchSampler`); a plain
    int means ``(index, img_size, 0)``.

    Args:
        ds: the annotations (crowd and degenerate boxes are left out of training targets).
        image_root: folder of the images (``ds.image_root`` when None).
        class_map: category ids <-> class indices (from ``ds`` when None).
        img_size: default input size (a multiple of 32).
        augment: training augmentation, or None for evaluation.
        seed: seed of every random choice.
    """

    def __init__(
        self,
        ds: Dataset,
        image_root: str | Path | None = None,
        class_map: ClassMap | None = None,
        img_size: int = 416,
        augment: Augment | None = None,
        seed: int = 0,
    ):
        root = image_root if image_root is not None else ds.image_root
        if root is None:
            raise DetkitError(
                f"{ds.source}: cannot tell where the images are; name the image folder", flags=IMAGES_FLAG
            )
        self.root = Path(root)
        self.class_map = class_map or ClassMap.from_dataset(ds)
        self.img_size, self.augment, self.seed = img_size, augment, seed
        paths = [source_path(self.root, str(f)) for f in ds.file_name]  # the name rule every command shares
        exists = np.array([p.is_file() for p in paths], dtype=bool)
        self.missing = [str(p) for p, ok in zip(paths, exists) if not ok]
        rows = np.flatnonzero(exists)
        self.paths = [str(paths[i]) for i in rows]
        self.image_ids = ds.image_id[rows].astype(np.int64)
        self.sizes = np.stack([ds.width[rows], ds.height[rows]], axis=1)  # (I, 2) declared w, h
        # per-image boxes (xyxy pixels) and class indices, built once with a sort instead of a loop of masks
        cls = self.class_map.to_index(ds.category_id)
        unknown = np.flatnonzero(cls < 0)
        if len(unknown):
            i = int(unknown[0])
            raise DetkitError(
                f"{ds.source}: {ds.record(i)}: category id {int(ds.category_id[i])} is not a declared "
                "category"
            )
        ok = (ds.bbox[:, 2] > 0) & (ds.bbox[:, 3] > 0) & (ds.iscrowd == 0) & np.isfinite(ds.bbox).all(1)
        row_of = {int(im): k for k, im in enumerate(self.image_ids)}
        img_row = np.array([row_of.get(int(i), -1) for i in ds.ann_image_id], dtype=np.int64)
        ok &= img_row >= 0
        order = np.flatnonzero(ok)[np.argsort(img_row[ok], kind="stable")]
        xyxy = ds.bbox[order].copy()
        xyxy[:, 2:] += xyxy[:, :2]
        bounds = np.searchsorted(img_row[order], np.arange(len(rows) + 1))
        self.boxes = [xyxy[bounds[k] : bounds[k + 1]].astype(np.float32) for k in range(len(rows))]
        self.labels = [cls[order][bounds[k] : bounds[k + 1]] for k in range(len(rows))]

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(BGR image, its xyxy pixel boxes), or None when the file cannot be decoded."""
        import cv2

        img = cv2.imread(self.paths[index], cv2.IMREAD_COLOR)
        if img is None or img.size == 0:
            return None
        h0, w0 = img.shape[:2]
        boxes = self.boxes[index]
        dw, dh = self.sizes[index]
        if (w0, h0) != (dw, dh):  # annotations declare another size: boxes live in the declared frame
            boxes = boxes * np.array([w0 / dw, h0 / dh, w0 / dw, h0 / dh], dtype=np.float32)
        return img, boxes

    def __getitem__(self, item: int | tuple[int, int, int]) -> dict[str, Any]:
        index, size, epoch = (item, self.img_size, 0) if isinstance(item, (int, np.integer)) else item
        path = self.paths[index]
        loaded = self._load(index)
        if loaded is None:
            return {"bad": path}
        img, boxes = loaded
        h0, w0 = img.shape[:2]
        aug = self.augment or Augment.off()
        rng = np.random.default_rng((self.seed, epoch, index))
        mosaic_on = aug.mosaic > 0 and (aug.mosaic_until is None or epoch < aug.mosaic_until)
        if mosaic_on and rng.random() < aug.mosaic:
            canvas, b, labels, (r, tx, ty) = self.mosaic(index, img, boxes, size, rng, aug)
        else:
            s = 1.0 + rng.uniform(-aug.scale, aug.scale) if aug.scale else 1.0
            shift = rng.uniform(-aug.translate, aug.translate, 2) * size if aug.translate else (0.0, 0.0)
            r, tx, ty = letterbox_transform(w0, h0, size, s, tuple(shift))
            canvas = warp_letterbox(img, (r, tx, ty), size)
            b, keep = transform_boxes(boxes, r, tx, ty, size, aug)
            labels = self.labels[index][keep]
        if aug.flip and rng.random() < aug.flip:
            canvas = canvas[:, ::-1]
            b = np.stack([size - b[:, 2], b[:, 1], size - b[:, 0], b[:, 3]], axis=1)
        canvas = hsv_jitter(np.ascontiguousarray(canvas), aug.hsv, rng)
        chw = np.ascontiguousarray(canvas[:, :, ::-1].transpose(2, 0, 1))  # BGR HWC -> RGB CHW
        cxcywh = (
            np.stack(
                [(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1
            )
            / size
        )
        target = np.concatenate(
            [labels[:, None].astype(np.float32), cxcywh.astype(np.float32)], axis=1
        ).reshape(-1, 5)
        return {
            "image": torch.from_numpy(chw),
            "target": torch.from_numpy(target),
            "image_id": int(self.image_ids[index]),
            "transform": (r, tx, ty),
            "orig_size": (w0, h0),
        }

    def mosaic(
        self,
        index: int,
        img: np.ndarray,
        boxes: np.ndarray,
        size: int,
        rng: np.random.Generator,
        aug: Augment,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float, float]]:
        """Four images around a random centre (YOLOv4's mosaic), scaled and cut to ``size`` x ``size``.

        Image k (``index`` and three drawn by ``rng``), its long side resized to S = ``size`` (r_k), is
        placed with one corner on the centre (x_c, y_c), uniform in [S/2, 3S/2]^2 of a 2S x 2S canvas
        (top-left, top-right, bottom-left, bottom-right). The output shows that canvas scaled by g,
        uniform in 1 +- ``mosaic_scale``, about its middle: q = g (r_k p + o_k - S) + S/2, each image in one
        warp; boxes follow and are clipped (tiny or mostly cut ones dropped, see :func:`transform_boxes`).
        An undecodable extra image leaves its quadrant grey.

        Returns:
            (canvas (S, S, 3) BGR, boxes (k, 4) xyxy input pixels, class indices (k,), (r, tx, ty) of
            ``index``'s own image).
        """
        import cv2

        others = rng.integers(0, len(self), 3)
        xc, yc = rng.uniform(0.5 * size, 1.5 * size, 2)
        g = 1.0 + rng.uniform(-aug.mosaic_scale, aug.mosaic_scale)
        canvas = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
        all_boxes, all_labels, own = [], [], (1.0, 0.0, 0.0)
        for k, idx in enumerate([index, *others.tolist()]):
            loaded = (img, boxes) if k == 0 else self._load(int(idx))
            if loaded is None:
                continue
            im, bx = loaded
            h, w = im.shape[:2]
            rk = size / max(w, h)
            ox = xc - w * rk if k in (0, 2) else xc  # the corner on the centre
            oy = yc - h * rk if k in (0, 1) else yc
            r, tx, ty = g * rk, g * (ox - size) + size / 2, g * (oy - size) + size / 2
            m = np.array([[r, 0, tx], [0, r, ty]], dtype=np.float64)
            cv2.warpAffine(
                im, m, (size, size), dst=canvas, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT
            )
            b, keep = transform_boxes(bx, r, tx, ty, size, aug)
            all_boxes.append(b)
            all_labels.append(self.labels[int(idx)][keep])
            if k == 0:
                own = (r, tx, ty)
        return canvas, np.concatenate(all_boxes), np.concatenate(all_labels), own


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack good samples; undecodable images are passed on as ``bad`` paths (the batch may be empty)."""
    good = [it for it in items if "bad" not in it]
    bad = [it["bad"] for it in items if "bad" in it]
    if not good:
        return {
            "images": torch.zeros(0, 3, 32, 32, dtype=torch.uint8),
            "targets": [],
            "image_ids": torch.zeros(0, dtype=torch.long),
            "transforms": torch.zeros(0, 3, dtype=torch.float64),
            "orig_sizes": torch.zeros(0, 2),
            "bad": bad,
        }
    return {
        "images": torch.stack([it["image"] for it in good]),
        "targets": [it["target"] for it in good],
        "image_ids": torch.tensor([it["image_id"] for it in good], dtype=torch.long),
        "transforms": torch.tensor([it["transform"] for it in good], dtype=torch.float64),
        "orig_sizes": torch.tensor([it["orig_size"] for it in good], dtype=torch.float64),
        "bad": bad,
    }


def _worker_init(worker_id: int) -> None:
    # one thread per worker (detkit.train.threads' policy: the workers are the data parallelism)
    worker_init_fn(worker_id)
    # samples draw from their own seeded RNGs; seed the global ones too for any library that uses them
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    import random

    random.seed(seed)


def _dataset_of(
    path: str | Path, images, img_size: int, augment: Augment | None, seed: int
) -> DetectionDataset:
    """A :class:`DetectionDataset` of an annotation file (any format of ``load_dataset``)."""

    return DetectionDataset(load_dataset(path), images, img_size=img_size, augment=augment, seed=seed)


def build_loader(
    data: DetectionDataset | str | Path,
    images: str | Path | None = None,
    img_size: int | None = None,
    batch_size: int = 16,
    *,
    train: bool = True,
    workers: int = 4,
    seed: int = 0,
    multi_scale: bool = False,
    augment: Augment | None = None,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
    drop_last: bool | None = None,
) -> DataLoader:
    """A DataLoader of YOLO batches (uint8 images, normalised targets); see the module docstring.

    Args:
        data: a :class:`DetectionDataset`, or an annotation path (any format of ``load_dataset``).
        images: image folder when ``data`` is a path.
        img_size: input size (multiple of 32), the base size for multi-scale (default: the dataset's
            size, or 416 for a path).
        batch_size: images per batch (per rank).
        train: shuffle, augment (``augment`` or the default :class:`Augment`) and drop the last
            incomplete batch; otherwise the plain letterbox in file order.
        workers: decoding processes (0 = in the main process).
        seed: seed of the order, the sizes and the augmentation.
        multi_scale: sizes around ``img_size`` in steps of 32 (320..608 at 416), changed every 10
            batches (training only).
        rank, world_size: this process's share of every epoch (DDP).
        pin_memory: pin batches (CUDA).
        drop_last: override the default (train: True when there is more than one batch).

    Example (the benchmark's end-to-end loader)::

        loader = build_loader("instances.json", "images/", img_size=416, batch_size=64, workers=8)
        for epoch in range(2):
            loader.batch_sampler.set_epoch(epoch)
            for batch in loader: images = batch["images"].cuda().float() / 255
    """
    if not isinstance(data, DetectionDataset):
        data = _dataset_of(data, images, img_size or 416, (augment or Augment()) if train else None, seed)
    if len(data) == 0:
        raise DetkitError(
            f"no images to load: every listed image is missing under {data.root}; "
            "name the image folder (the folder the file names are relative to)",
            flags=IMAGES_FLAG,
        )
    if workers > 0:
        import cv2

        # one OpenCV thread per worker (the workers are the parallelism). Set here, before the fork:
        # calling setNumThreads inside a forked worker deadlocks on the pool inherited from the parent.
        cv2.setNumThreads(1)
    sampler = DistributedSampler(
        data, num_replicas=world_size, rank=rank, shuffle=train, seed=seed, drop_last=False
    )
    if drop_last is None:
        drop_last = train and len(sampler) > batch_size
    bs = YoloBatchSampler(
        sampler,
        batch_size,
        drop_last,
        img_size or data.img_size,
        multi_scale=train and multi_scale,
        seed=seed,
    )
    return DataLoader(
        data,
        batch_sampler=bs,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        worker_init_fn=_worker_init,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )
