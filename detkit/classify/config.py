"""The options of ``detkit classify train`` and ``lr-find``, each declared once: field, default, help text and
check (:func:`detkit.train.options.opt`). Light on purpose: the CLI builds both commands from it without
importing torch."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from detkit.errors import OptionError
from detkit.train import options as O


def _one_of(name: str) -> O.Check:
    def names() -> tuple[str, ...]:
        from detkit.classify import models  # lazy: torch: the CLI builds its options from this module

        return tuple(getattr(models, name))

    return (lambda v: v in names()), (lambda: f"must be one of {', '.join(names())}")


@dataclass
class TrainConfig:
    """Every option of a training run (None = derived from the others in :meth:`resolved`)."""

    data: str = O.opt(
        help="Tiny ImageNet folder (wnids.txt, train/, val/) or an ImageFolder "
        "(<class>/*.jpg|png). Optional with --resume.",
        resume=True,
    )
    out: str = O.opt(help="Run folder (created).")
    model: str = O.opt(
        "resnet18", "resnet18, resnet34 or resnet50 (torchvision, random init).", check=_one_of("ARCHS")
    )
    stem: str = O.opt(
        "64", "64: 3x3 stride-1 conv, no max-pool (for 64x64 images); imagenet.", check=_one_of("STEMS")
    )
    width: float = O.opt(
        1.0,
        "Channel multiplier (1.0 = the torchvision model).",
        check=((lambda v: v > 0), "must be positive"),
    )
    weights: str | None = O.opt(None, "Local weights to start from (matching shapes only).")
    epochs: int = O.opt(40, "Length of the one-cycle schedule.", check=O.at_least(1))
    batch: int = O.opt(256, "Global batch size.", check=O.at_least(1))
    lr: float | None = O.opt(
        None,
        "Peak learning rate (default: 0.2 x batch / 256).",
        check=((lambda v: v > 0), "must be positive"),
    )
    momentum: float = O.opt(0.9, "SGD momentum (Nesterov).", check=O.finite(0, below=1))
    weight_decay: float = O.opt(5e-4, "Weight decay (conv and linear weights).", check=O.finite(0))
    label_smoothing: float = O.opt(
        0.1, "Label smoothing.", check=((lambda v: 0 <= v < 1), "must be in [0, 1)")
    )
    pct_start: float = O.opt(
        0.25,
        "Share of the one-cycle schedule spent warming up.",
        check=((lambda v: 0 < v < 1), "must be in (0, 1)"),
    )
    split: float = O.opt(
        0.7,
        "Training share of the seeded stratified split.",
        check=((lambda v: 0 < v < 1), "must be between 0 and 1"),
    )
    val: str = O.opt(
        "split",
        "split: a stratified split of all labelled images (train/ and val/ pooled); "
        "official: train/ vs val/.",
        check=((lambda v: v in ("split", "official")), "must be split or official"),
    )
    img_size: int = O.opt(
        64, "Images are resized to this square side.", check=((lambda v: 8 <= v <= 1024), "must be 8..1024")
    )
    pad: int | None = O.opt(None, "Crop padding in pixels (default: img-size / 8).", check=O.at_least(0))
    cutout: int | None = O.opt(
        None, "Cutout side in pixels, 0 = off (default: img-size / 4).", check=O.at_least(0)
    )
    flip: bool = O.opt(True, "Random horizontal flip.", flag="--flip/--no-flip")
    ema_decay: float = O.opt(
        0.999, "Weight EMA decay per step; 0 = off.", check=((lambda v: 0 <= v < 1), "must be in [0, 1)")
    )
    limit: int | None = O.opt(
        None, "Use only N training and N validation images (a seeded pick; smoke runs).", check=O.at_least(1)
    )
    max_steps: int | None = O.opt(
        None, "Stop after N optimizer steps (go on with --resume).", check=O.at_least(1), per_call=True
    )
    stop_after: int | None = O.opt(
        None, "Train this many epochs now; go on with --resume.", check=O.at_least(1), per_call=True
    )
    device: str = O.device_opt()
    compile: bool = O.compile_opt()
    seed: int = O.opt(0, "Seed of the split, init, order and augmentation.")
    workers: int = O.opt(8, "Image decoding threads.", check=O.at_least(1), resume=True)
    threads: int | None = O.threads_opt()
    log_every: float = O.log_every_opt()
    cache_dir: str | None = O.opt(None, "Decoded-image cache (default: OUT/../.detkit-cache).", resume=True)

    def validate(self) -> None:
        """Check the options before any data is read (a typo must not wait for a 100k-image decode)."""
        O.check_config(self)
        if self.cutout is not None and self.cutout > self.img_size:
            raise OptionError("cutout", f"must be 0..img_size ({self.img_size}), got {self.cutout}")

    def resolved(self) -> TrainConfig:
        return replace(
            self,
            data=str(Path(self.data).resolve()) if self.data else self.data,  # eval/resume from any folder
            lr=self.lr if self.lr is not None else 0.2 * self.batch / 256,
            pad=self.pad if self.pad is not None else self.img_size // 8,
            cutout=self.cutout if self.cutout is not None else self.img_size // 4,
            cache_dir=self.cache_dir or str(Path(self.out).resolve().parent / ".detkit-cache"),
        )


@dataclass
class LrFindConfig:
    """The range test's own options (the rest are :class:`TrainConfig`'s)."""

    start_lr: float = O.opt(1e-5, "First learning rate.", check=O.finite(above=0))
    end_lr: float = O.opt(10.0, "Last learning rate.", check=O.finite(above=0))
    steps: int = O.opt(100, "Steps of the exponential ramp.", check=O.at_least(3))

    def validate(self) -> None:
        O.check_config(self)
        if not self.start_lr < self.end_lr:
            raise OptionError("start_lr", f"must be below end_lr, got {self.start_lr:g} and {self.end_lr:g}")


# what lr-find does not use of the training options
LR_FIND_SKIPS = ("epochs", "lr", "pct_start", "ema_decay", "max_steps", "stop_after", "log_every", "compile")
