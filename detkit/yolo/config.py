"""The options of ``detkit yolo train``, each declared once: field, default, help text and check
(:func:`detkit.train.options.opt`). Light on purpose: the CLI builds its command from it without importing
torch."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
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

# --model: the Darknet-19 width of each size (the head follows the width)
MODEL_SIZES = {"n": 0.25, "s": 0.5, "m": 0.75, "l": 1.0}

# what each --loss recipe sets when the option is not given (None); "darknet" and "course" are the
# papers' (YOLOv2's region layer, the course's loss) on YOLOv2's stride-32 head
RECIPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "modern": {
        "model": "n",  # on the CPU, the size that trains faster per epoch than YOLO11n (docs/benchmarks.md)
        "optimizer": "adamw",
        "lr": 3e-3,
        "head_stride": 16,
        "xy_scale": 2.0,
        "mosaic": 1.0,
    },
    "darknet": {
        "model": "l",
        "optimizer": "sgd",
        "lr": 1e-3,
        "head_stride": 32,
        "xy_scale": 1.0,
        "mosaic": 0.0,
    },
    "course": {
        "model": "l",
        "optimizer": "sgd",
        "lr": 1e-3,
        "head_stride": 32,
        "xy_scale": 1.0,
        "mosaic": 0.0,
    },
}


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
    lr: float | None = O.opt(
        None, "Peak learning rate after warm-up (default: 3e-3 modern, 1e-3 darknet/course).", check=_POS
    )
    optimizer: str | None = O.opt(
        None,
        "sgd or adamw (default: adamw modern, sgd darknet/course).",
        check=(lambda v: v in ("sgd", "adamw"), "must be sgd or adamw"),
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
    model: str | None = O.opt(
        None,
        "Size: n, s, m or l = Darknet-19 at width 0.25, 0.5, 0.75, 1.0 "
        "(default: n modern, l darknet/course).",
        check=(lambda v: v in MODEL_SIZES, "must be one of n, s, m, l"),
    )
    width: float | None = O.opt(
        None,
        "Channel multiplier, overrides --model's (0.125 for tiny CPU runs).",
        check=_POS[:1] + ("must be positive",),
    )
    weights: str | None = O.opt(None, "Local backbone weights file (nothing is downloaded).")
    loss: str = O.opt(
        "modern",
        "Recipe: modern (stride-16 head, CIoU, several positives per box, mosaic), darknet or course "
        "(YOLOv2's region loss and the course's, on the stride-32 head).",
        check=_one_of("detkit.yolo.loss", "LossConfig"),
    )
    head_stride: int | None = O.opt(
        None,
        "Output grid stride: 16 or 32 (default: 16 modern, 32 darknet/course).",
        check=(lambda v: v in (16, 32), "must be 16 or 32"),
    )
    xy_scale: float | None = O.opt(
        None,
        "Centre decoding scale: 2 reaches half a cell past the edges (default: 2 modern, 1 darknet/course).",
        check=(lambda v: math.isfinite(v) and 1 <= v <= 3, "must be in 1..3"),
    )
    mosaic: float | None = O.opt(
        None,
        "Probability of a 4-image mosaic per sample (default: 1 modern, 0 darknet/course).",
        check=(lambda v: 0 <= v <= 1, "must be in [0, 1]"),
    )
    close_mosaic: int = O.opt(
        2, "No mosaic in the last N epochs (train on plain images at the end).", check=O.at_least(0)
    )
    label_smoothing: float | None = O.opt(
        None, "Class label smoothing of the modern loss (default 0).", check=O.finite(0, below=1)
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
        if self.loss in ("darknet", "course") and self.xy_scale not in (None, 1, 1.0):
            # their squared-error loss trains sigmoid(t_x) toward the offset inside the cell
            raise OptionError("xy_scale", f"other than 1 needs the modern loss (IoU), got loss {self.loss!r}")

    def resolved(self) -> TrainConfig:
        """The config with every per-recipe default (None) filled in from :data:`RECIPE_DEFAULTS`."""
        d = RECIPE_DEFAULTS.get(self.loss, RECIPE_DEFAULTS["modern"])
        model = self.model or d["model"]

        def pick(name: str) -> Any:
            v = getattr(self, name)
            return d[name] if v is None else v

        return replace(
            self,
            model=model,
            width=self.width if self.width is not None else MODEL_SIZES[model],
            optimizer=pick("optimizer"),
            lr=pick("lr"),
            head_stride=pick("head_stride"),
            xy_scale=pick("xy_scale"),
            mosaic=pick("mosaic"),
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})
