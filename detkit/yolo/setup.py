"""Setting up a YOLO training run: data, anchors, model, loss, loaders, optimizer, schedule, EMA.

:func:`setup` builds a :class:`Run` (torchvision references' shape: everything the loop needs in one place),
restored from a checkpoint when resuming; :func:`epoch_state` is the checkpoint each epoch commits (see
:mod:`detkit.yolo.checkpoint` for what it holds). The learning rate follows :func:`lr_factor` over the whole
run (``epochs * batches per epoch`` steps), so ``--max-steps`` stops early without changing the schedule."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detkit.console import warn
from detkit.datasets.load import shared_images_line
from detkit.errors import DetkitError, OptionError
from detkit.train.common import (
    ModelEMA,
    dist_init,
    param_groups,
    resolve_device,
    rng_state,
    set_rng_state,
)
from detkit.yolo.config import TrainConfig
from detkit.yolo.data import Augment, ClassMap, DetectionDataset, build_loader
from detkit.yolo.engine import unwrap
from detkit.yolo.loss import LossConfig, YoloLoss
from detkit.yolo.model import YoloConfig, YOLOv2
from detkit.yolo.priors import resolve_anchors
from detkit.yolo.splits import has_split, load_split


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov) or AdamW; weight decay on conv/linear weights only, not BN or biases."""
    groups = param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))
    raise OptionError("optimizer", f"must be sgd or adamw, got '{cfg.optimizer}'")


def lr_factor(step: int, warmup: int, total: int, final_ratio: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``final_ratio`` at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def _load_split(path: str, list_file: str | None, limit: int | None, split: str | None = None):
    return load_split(path, list_file, limit, split)  # a data.yaml / Roboflow / VOC split when declared


@dataclass
class Run:
    """What :func:`setup` builds: data, model, optimizer and the state the loop starts from."""

    cfg: TrainConfig
    path: Path
    device: torch.device
    rank: int
    world: int
    data: dict[str, Any]  # train_ds, val_ds, class_map, anchors, anchors_from, n_train
    model: torch.nn.Module
    net: torch.nn.Module  # DDP / compiled wrapper of model
    criterion: torch.nn.Module
    loader: Any
    val_loader: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    ema: ModelEMA | None
    base: dict[str, Any]  # the checkpoint keys that never change during the run
    state: dict[str, Any] = field(
        default_factory=dict
    )  # epoch, epoch_step, epoch_sums, seen_images, history, best, best_eval

    @property
    def main(self) -> bool:
        return self.rank == 0


def _load_data(cfg: TrainConfig, resume: dict[str, Any] | None) -> dict[str, Any]:
    """Training and validation sets, class map and anchors (from the checkpoint when resuming)."""
    cfg = cfg.resolved()  # idempotent: callers may pass a config with the recipe's defaults unset
    train_ds = _load_split(cfg.data, cfg.train_list, cfg.limit, "train")
    if cfg.val_data or cfg.val_list or has_split(cfg.data, "val"):
        val_ds = _load_split(cfg.val_data or cfg.data, cfg.val_list, cfg.limit, "val")
        val_images = cfg.val_images or (cfg.images if cfg.val_data is None else None)
        if (line := shared_images_line(train_ds, val_ds)) is not None:  # coco128.yaml: val is train
            warn(f"{cfg.data}: {line}")
    else:
        val_ds, val_images = train_ds, cfg.images
    class_map = ClassMap.from_dict(resume["class_map"]) if resume else ClassMap.from_dataset(train_ds)
    if resume:
        anchors, anchors_from = [tuple(a) for a in resume["model_config"]["anchors"]], resume["anchors_from"]
    else:
        anchors, anchors_from = resolve_anchors(
            cfg.anchors, train_ds, cfg.img_size, seed=cfg.seed, stride=cfg.head_stride
        )
    return {
        "train_ds": train_ds,
        "val_ds": val_ds,
        "val_images": val_images,
        "class_map": class_map,
        "anchors": anchors,
        "anchors_from": anchors_from,
    }


def _build_model(cfg: TrainConfig, data: dict[str, Any], device: torch.device, resume: bool):
    """(model config, model on ``device``, loss config, criterion), seeded by ``cfg.seed``."""
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    n = len(data["class_map"])
    mcfg = YoloConfig(
        num_classes=n,
        anchors=data["anchors"],
        backbone=cfg.backbone,
        width=cfg.width,
        head_stride=cfg.head_stride,
        xy_scale=cfg.xy_scale,
    )
    try:
        model = YOLOv2(mcfg, weights=None if resume else cfg.weights).to(device)
    except (ValueError, OSError) as e:
        raise DetkitError(str(e)) from None
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    loss_cfg = LossConfig.preset(
        cfg.loss,
        size_loss=cfg.size_loss,
        rescore=cfg.rescore,
        lambda_coord=cfg.lambda_coord,
        lambda_obj=cfg.lambda_obj,
        lambda_noobj=cfg.lambda_noobj,
        lambda_cls=cfg.lambda_cls,
        warmup_images=cfg.warmup_images,
        label_smoothing=cfg.label_smoothing,
    )
    return mcfg, model, loss_cfg, YoloLoss(loss_cfg, data["anchors"], n, mcfg.xy_scale).to(device)


def _loaders(cfg: TrainConfig, data: dict[str, Any], rank: int, world: int, cuda: bool):
    """(training loader, validation loader on rank 0 else None); counts the training images in ``data``."""
    # mosaic until the last --close-mosaic epochs (a function of the epoch alone, so resume replays it)
    mosaic_until = max(cfg.epochs - cfg.close_mosaic, 0)
    aug = Augment(mosaic=cfg.mosaic, mosaic_until=mosaic_until) if cfg.augment else Augment.off()
    train_set = DetectionDataset(data["train_ds"], cfg.images, data["class_map"], cfg.img_size, aug, cfg.seed)
    val_set = DetectionDataset(
        data["val_ds"], data["val_images"], data["class_map"], cfg.img_size, None, cfg.seed
    )
    for missing in {*train_set.missing, *val_set.missing}:
        warn(f"{missing}: image file is missing; skipped")
    data["n_train"] = len(train_set)
    loader = build_loader(
        train_set,
        batch_size=cfg.batch,
        train=True,
        workers=cfg.workers,
        seed=cfg.seed,
        multi_scale=cfg.multi_scale,
        rank=rank,
        world_size=world,
        pin_memory=cuda,
    )
    if rank != 0:
        return loader, None
    return loader, build_loader(
        val_set, batch_size=cfg.batch, train=False, workers=min(cfg.workers, 2), pin_memory=cuda
    )


def setup(cfg: TrainConfig, path: Path, resume: dict[str, Any] | None = None) -> Run:
    """Data, model, loaders, optimizer, schedule and EMA; restored from ``resume`` (a checkpoint)."""
    cfg = cfg.resolved()
    rank, world, local = dist_init(cfg.device)
    device = resolve_device(cfg.device, local)
    cuda = device.type == "cuda"
    data = _load_data(cfg, resume)
    mcfg, model, loss_cfg, criterion = _build_model(cfg, data, device, resume is not None)
    loader, val_loader = _loaders(cfg, data, rank, world, cuda)
    total = cfg.epochs * len(loader)  # --max-steps stops early without changing the schedule
    warmup = min(round(cfg.warmup_epochs * len(loader)), max(total // 3, 0))
    optimizer = build_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, warmup, total, cfg.final_lr_ratio)
    )
    ema = ModelEMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    base = {
        "model_config": mcfg.to_dict(),
        "class_map": data["class_map"].to_dict(),
        "img_size": cfg.img_size,
        "anchors": [list(a) for a in data["anchors"]],
        "anchors_from": data["anchors_from"],
        "loss_config": loss_cfg.to_dict(),
        "args": asdict(cfg),
        "train_images": data["n_train"],
    }
    parts = (data, model, model, criterion, loader, val_loader, optimizer, scheduler, ema, base)
    r = Run(cfg, path, device, rank, world, *parts)
    r.state = {"epoch": 0, "epoch_step": 0, "seen_images": 0, "history": [], "best": {"mAP": -1.0}}
    r.state["epoch_sums"] = None  # loss sums of a part epoch (a --max-steps stop), see detkit.train.loop
    r.state["best_eval"] = {}
    if resume:
        _restore(r, resume)
    if world > 1:
        r.net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local] if cuda else None)
    if cfg.compile:
        import torch._dynamo as dynamo  # lazy: seconds to import; only --compile needs it

        # multi-scale gives up to 10 input shapes: allow them, and mark H, W dynamic when multi-scale
        dynamo.config.cache_size_limit = max(dynamo.config.cache_size_limit, 64)
        r.net = torch.compile(r.net, dynamic=True if cfg.multi_scale else None)
    return r


def _restore(r: Run, ckpt: dict[str, Any]) -> None:
    """Model, optimizer, schedule, EMA, RNG and the loop's position from a checkpoint."""
    r.model.load_state_dict(ckpt["model"])
    r.optimizer.load_state_dict(ckpt["optimizer"])
    r.scheduler.load_state_dict(ckpt["scheduler"])
    if r.ema is not None and ckpt.get("ema"):
        r.ema.load_state_dict(ckpt["ema"])
    r.state = {
        "epoch": ckpt["epoch"],
        "epoch_step": ckpt.get("epoch_step", 0),
        "epoch_sums": ckpt.get("epoch_sums"),
        "seen_images": ckpt["seen_images"],
        "history": list(ckpt["history"]),  # a part epoch's row is replaced when the epoch goes on
        "best": ckpt["best"],
        "best_eval": ckpt.get("best_eval", {}),
    }
    set_rng_state(ckpt["rng"])


def epoch_state(r: Run) -> dict[str, Any]:
    """The checkpoint an epoch commits: everything :func:`setup` needs to continue bit for bit."""
    return {
        **r.base,
        **r.state,
        "model": unwrap(r.model).state_dict(),
        "optimizer": r.optimizer.state_dict(),
        "scheduler": r.scheduler.state_dict(),
        "ema": r.ema.state_dict() if r.ema else None,
        "rng": rng_state(),
        "data_order": {"seed": r.cfg.seed, "next_epoch": r.state["epoch"] + 1},
    }
