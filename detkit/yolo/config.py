"""The options of ``detkit yolo train``, each declared once: field, default, help text and check
(:func:`detkit.train.options.opt`). Light on purpose: the CLI builds its command from it without importing
torch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from detkit.errors import OptionError
from detkit.train import options as O


def _choices(module: str, name: str) -> tuple[str, ...]:
    import importlib

    obj = getattr(importlib.import_module(module), name)
    return tuple(getattr(obj, "PRESETS", obj))


def _one_of(module: str, name: str) -> O.Check:
    return (lambda v: v in _choices(module, name)), (
        lambda: f"must be one of {', '.join(_choices(module, name))}"
    )


IMG_SIZE_RULE = "must be a multiple of 32 in 32..2048"


def valid_img_size(v: int) -> bool:
    """The one input-size rule of the detector (train, eval, predict, export, :class:`detkit.Detector`):
    the network downsamples by 32, and 2048 bounds the memory one image can take."""
    return v % 32 == 0 and 32 <= v <= 2048


def check_img_size(v: int, what: str = "img_size") -> int:
    """``v`` when it follows :data:`IMG_SIZE_RULE`, else OptionError naming ``what`` and the value."""
    if not valid_img_size(v):
        raise OptionError(what, f"{IMG_SIZE_RULE}, got {v}")
    return v


_POS = (lambda v: math.isfinite(v) and v > 0), "must be a positive number"
_WEIGHT = O.finite(0)


@dataclass
class TrainConfig:
    """Every option of ``detkit yolo train`` (saved in config.json and in each checkpoint): the one place
    each is declared, with its help text and check (see :func:`detkit.train.harness.opt`)."""

    data: str = O.opt(help="Annotations: COCO json, course text, YOLO or VOC folder.")
    out: str = O.opt(help="Run folder (created).")
    images: str | None = O.opt(None, "Image folder (default: the one the annotations name).")
    anchors: str | None = O.opt(
        None, "anchors.json from `detkit anchors kmeans --out` (default: k-means on the data)."
    )
    val_data: str | None = O.opt(None, "Validation annotations (default: --data).")
    val_images: str | None = O.opt(None, "Image folder of --val-data.")
    train_list: str | None = O.opt(
        None, "Train only on these image names (e.g. VOC ImageSets/Main/train.txt)."
    )
    val_list: str | None = O.opt(None, "Validate on these image names.")
    limit: int | None = O.opt(None, "Use only the first N images (smoke runs).", check=O.at_least(1))
    epochs: int = O.opt(100, "Epochs (may grow on --resume).", check=O.at_least(1), resume=True)
    batch: int = O.opt(16, "Images per batch (per GPU).", check=O.at_least(1))
    img_size: int = O.opt(
        416,
        "Input size, a multiple of 32.",
        check=(valid_img_size, IMG_SIZE_RULE),
    )
    multi_scale: bool = O.opt(
        False,
        "Sizes from 10/13 to 19/13 of --img-size (320..608 at 416), step 32, changed every 10 batches.",
        flag="--multi-scale",
    )
    augment: bool = O.opt(True, "Flip, HSV, scale/translate.", flag="--augment/--no-augment")
    lr: float = O.opt(1e-3, "Peak learning rate (after warm-up).", check=_POS)
    optimizer: str = O.opt(
        "sgd", "sgd or adamw.", check=(lambda v: v in ("sgd", "adamw"), "must be sgd or adamw")
    )
    momentum: float = O.opt(0.9, "SGD momentum (AdamW beta1).", check=O.finite(0, below=1))
    weight_decay: float = O.opt(5e-4, "Weight decay (conv and linear weights).", check=_WEIGHT)
    warmup_epochs: float = O.opt(1.0, "Linear LR warm-up, then cosine decay.", check=_WEIGHT)
    final_lr_ratio: float = O.opt(0.05, "Final LR as a share of the peak.", check=O.finite(0))
    grad_clip: float = O.opt(10.0, "Max gradient norm (0 = off).", check=_WEIGHT)
    ema_decay: float = O.opt(
        0.9998,
        "EMA of the weights for evaluation (0 = off).",
        check=(lambda v: 0 <= v < 1, "must be in [0, 1)"),
    )
    backbone: str = O.opt(
        "darknet19",
        "darknet19, resnet18 or resnet50 (random init).",
        check=_one_of("detkit.yolo.model", "BACKBONES"),
    )
    width: float = O.opt(
        1.0, "Channel multiplier (0.125 for tiny CPU runs).", check=_POS[:1] + ("must be positive",)
    )
    weights: str | None = O.opt(None, "Local backbone weights file (nothing is downloaded).")
    loss: str = O.opt(
        "darknet", "Loss preset: darknet or course.", check=_one_of("detkit.yolo.loss", "LossConfig")
    )
    size_loss: str | None = O.opt(
        None, "log (darknet) or sqrt (course).", check=(lambda v: v in ("log", "sqrt"), "must be log or sqrt")
    )
    rescore: bool | None = O.opt(
        None, "Objectness target = IoU (default: per preset).", flag="--rescore/--no-rescore"
    )
    lambda_coord: float | None = O.opt(None, "Box loss weight (default: per preset).", check=_WEIGHT)
    lambda_obj: float | None = O.opt(None, "Objectness loss weight.", check=_WEIGHT)
    lambda_noobj: float | None = O.opt(None, "No-object loss weight.", check=_WEIGHT)
    lambda_cls: float | None = O.opt(None, "Class loss weight.", check=_WEIGHT)
    warmup_images: int | None = O.opt(
        None, "Images of the anchor-prior warm-up (default: per preset).", check=O.at_least(0)
    )
    conf: float = O.opt(0.001, "Score threshold of the evaluation.", check=O.finite(0))
    iou: float = O.opt(0.45, "NMS IoU threshold of the evaluation.", check=O.finite(0))
    eval_every: int = O.opt(
        1, "Evaluate every N epochs (and after the last).", check=O.at_least(1), resume=True
    )
    max_steps: int | None = O.opt(
        None, "Stop after N optimizer steps (go on with --resume).", check=O.at_least(1), per_call=True
    )
    device: str = O.device_opt()
    amp: bool = O.opt(True, "bf16 autocast on CUDA.", flag="--amp/--no-amp", resume=True)
    compile: bool = O.compile_opt()
    workers: int = O.opt(4, "Image-decoding processes.", check=O.at_least(0), resume=True)
    threads: int | None = O.threads_opt("the free cores and --workers")
    log_every: float = O.log_every_opt()
    seed: int = O.opt(0, "Seed of the init, data order, sizes and augmentation.")

    def validate(self) -> None:
        """Check the options before any data is read; each failure is one plain line (exit 2)."""
        O.check_config(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})
