"""``detkit yolo train``: the run folder, checkpoints, resume, optimizer/schedule, EMA, NaN stop, DDP.

    RUN/run.json       resolved config, command line, seed, versions, annotation checksums
    RUN/config.json    the TrainConfig (what --resume reads back)
    RUN/metrics.csv    one row per epoch: loss parts, lr, mAP, mAP50, images/s
    RUN/last.pt        every epoch, atomically; RUN/best.pt when the validation mAP improves
    RUN/summary.json   kind "yolo.train" for ``detkit report``

A checkpoint holds everything needed to continue bit for bit: model, optimizer, scheduler and EMA
states, the epoch, images seen (the loss warm-up depends on it), the Python/NumPy/torch/CUDA RNG states
and the data order (a function of seed and epoch, see ``detkit.yolo.data``), plus the model config,
class map, anchors and the arguments. Launched by ``torchrun`` (RANK/WORLD_SIZE set) it trains with
DistributedDataParallel; rank 0 evaluates and writes.
"""

from __future__ import annotations

import csv
import json
import math
import random
import zipfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detkit.anchors.metrics import YOLOV2_VOC_GRID_13
from detkit.coco.loaders import load_dataset
from detkit.console import info, progress, warn
from detkit.errors import DetkitError
from detkit.io import atomic_path, atomic_write, check_out_folder, write_json
from detkit.runs import record_resume, record_run, write_summary
from detkit.training import ModelEMA, dist_init, resolve_device, rng_state, set_rng_state
from detkit.yolo.data import Augment, ClassMap, DetectionDataset, build_loader, select_images
from detkit.yolo.engine import LOSS_PARTS, NonFiniteLoss, _unwrap, evaluate, train_one_epoch

# YOLOv2's VOC anchors, in cells of the 13x13 grid at 416 (yolo-voc.cfg)
VOC_ANCHORS = list(YOLOV2_VOC_GRID_13)  # the YOLOv2 paper's VOC anchors, grid cells at 13x13
CSV_COLUMNS = ("epoch", "loss", *LOSS_PARTS, "lr", "mAP", "mAP50", "images_per_s", "eval_images_per_s", "seen_images")


@dataclass
class TrainConfig:
    """Every option of ``detkit yolo train`` (saved in config.json and in each checkpoint)."""

    data: str
    out: str
    images: str | None = None
    anchors: str | None = None
    val_data: str | None = None
    val_images: str | None = None
    train_list: str | None = None
    val_list: str | None = None
    limit: int | None = None
    epochs: int = 100
    batch: int = 16
    img_size: int = 416
    multi_scale: bool = False
    augment: bool = True
    lr: float = 1e-3
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    final_lr_ratio: float = 0.05
    grad_clip: float = 10.0
    ema_decay: float = 0.9998
    backbone: str = "darknet19"
    width: float = 1.0
    weights: str | None = None
    loss: str = "darknet"
    size_loss: str | None = None
    rescore: bool | None = None
    lambda_coord: float | None = None
    lambda_obj: float | None = None
    lambda_noobj: float | None = None
    lambda_cls: float | None = None
    warmup_images: int | None = None
    conf: float = 0.001
    iou: float = 0.45
    eval_every: int = 1
    max_steps: int | None = None
    device: str = "auto"
    amp: bool = True
    compile: bool = False
    workers: int = 4
    seed: int = 0

    def validate(self) -> None:
        """Check the options before any data is read; each failure is one plain line (exit 2)."""
        from detkit.yolo.loss import LossConfig
        from detkit.yolo.model import BACKBONES

        def finite(x: float | None) -> bool:
            return x is None or math.isfinite(x)

        checks = [
            (self.img_size % 32 == 0 and 32 <= self.img_size <= 2048, f"--img-size must be a multiple of 32 in 32..2048, got {self.img_size}"),
            (self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}"),
            (self.batch >= 1, f"--batch must be at least 1, got {self.batch}"),
            (finite(self.lr) and self.lr > 0, f"--lr must be a positive number, got {self.lr}"),
            (self.optimizer in ("sgd", "adamw"), f"--optimizer must be sgd or adamw, got {self.optimizer!r}"),
            (self.backbone in BACKBONES, f"--backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}"),
            (finite(self.width) and self.width > 0, f"--width must be positive, got {self.width}"),
            (self.loss in LossConfig.PRESETS, f"--loss must be one of {', '.join(LossConfig.PRESETS)}, got {self.loss!r}"),
            (self.size_loss in (None, "log", "sqrt"), f"--size-loss must be log or sqrt, got {self.size_loss!r}"),
            (finite(self.weight_decay) and self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}"),
            (finite(self.warmup_epochs) and self.warmup_epochs >= 0, f"--warmup-epochs must be >= 0, got {self.warmup_epochs}"),
            (0 <= self.ema_decay < 1, f"--ema-decay must be in [0, 1), got {self.ema_decay}"),
            (finite(self.grad_clip) and self.grad_clip >= 0, f"--grad-clip must be >= 0, got {self.grad_clip}"),
            (self.eval_every >= 1, f"--eval-every must be at least 1, got {self.eval_every}"),
            (self.max_steps is None or self.max_steps >= 1, f"--max-steps must be at least 1, got {self.max_steps}"),
            (self.limit is None or self.limit >= 1, f"--limit must be at least 1, got {self.limit}"),
            (self.workers >= 0, f"--workers must be >= 0, got {self.workers}"),
        ]  # fmt: skip
        for name in ("lambda_coord", "lambda_obj", "lambda_noobj", "lambda_cls"):
            value = getattr(self, name)
            checks.append((finite(value) and (value is None or value >= 0), f"--{name.replace('_', '-')} must be >= 0, got {value}"))
        for ok, message in checks:
            if not ok:
                raise DetkitError(message)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _anchor_pairs(doc: Any, path: str) -> list[tuple[float, float]]:
    """The normalised (w, h) pairs of an anchors.json, each checked (one line naming the file if not)."""
    try:
        raw = doc["anchors_normalized"]
        pairs = [(float(w), float(h)) for w, h in raw]
    except (KeyError, TypeError, ValueError):
        raise DetkitError(f"{path}: not an anchors file ('anchors_normalized' must be a list of [w, h] pairs)") from None
    if not pairs:
        raise DetkitError(f"{path}: 'anchors_normalized' is empty")
    for w, h in pairs:
        if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
            raise DetkitError(f"{path}: anchor [{w}, {h}] needs a positive, finite width and height")
    return pairs


def letterbox_factors(ds) -> tuple[float, float, float]:
    """(fx, fy, spread): what turns image-normalised sizes (w/W, h/H) into letterbox ones (w/max(W, H)),
    as medians over the images, and how far single images stray from them (0 when all share an aspect)."""
    W, H = np.asarray(ds.width, float), np.asarray(ds.height, float)
    ok = (W > 0) & (H > 0)
    if not ok.any():
        return 1.0, 1.0, 0.0
    fx, fy = W[ok] / np.maximum(W[ok], H[ok]), H[ok] / np.maximum(W[ok], H[ok])
    mx, my = float(np.median(fx)), float(np.median(fy))
    return mx, my, float(max(np.abs(fx - mx).max(), np.abs(fy - my).max()))


def resolve_anchors(path: str | None, ds, img_size: int, k: int = 5, seed: int = 0) -> tuple[list[tuple[float, float]], str]:
    """Anchors in grid cells at ``img_size``: from an anchors.json, else IoU k-means on ``ds``, else VOC's.

    The network sees letterboxed images (long side = ``img_size``), so anchors are letterbox-normalised:
    k-means runs on w / max(W, H), and an anchors.json made with ``--norm image`` (the default of
    ``detkit anchors kmeans``) is converted by the images' aspect (exact when they share one).

    Returns:
        (anchors, where they came from).
    """
    from detkit.anchors.units import clean_wh, dataset_wh

    grid = img_size / 32
    if path is not None:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise DetkitError(f"{path}: cannot read anchors ({e})") from None
        pairs = _anchor_pairs(doc, path)
        norm = doc.get("norm", "image") if isinstance(doc, dict) else "image"
        if norm == "image":
            fx, fy, spread = letterbox_factors(ds)
            pairs = [(w * fx, h * fy) for w, h in pairs]
            if spread > 0.05:
                warn(f"{path}: image-normalised anchors were converted to the letterbox with the images' median "
                     f"aspect; `detkit anchors kmeans --norm letterbox` gives exact ones for mixed aspects")  # fmt: skip
        elif norm != "letterbox":
            raise DetkitError(f"{path}: unknown norm {norm!r} (image or letterbox)")
        return [(w * grid, h * grid) for w, h in pairs], str(path)
    from detkit.anchors.kmeans import iou_kmeans

    wh, _ = clean_wh(dataset_wh(ds, "letterbox"))
    if len(np.unique(wh, axis=0)) >= k:
        res = iou_kmeans(wh, k, seed=seed, restarts=3)
        return [(float(w) * grid, float(h) * grid) for w, h in res.anchors], f"iou k-means (k={k}) on the training boxes"
    return [(w * grid / 13, h * grid / 13) for w, h in VOC_ANCHORS], "YOLOv2 VOC anchors"


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov) or AdamW; weight decay on conv/linear weights only, not BN or biases."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))
    raise DetkitError(f"--optimizer must be sgd or adamw, got '{cfg.optimizer}'")


def lr_factor(step: int, warmup: int, total: int, final_ratio: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``final_ratio`` at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a detkit YOLO checkpoint (``RUN`` means ``RUN/last.pt``) with ``weights_only``: a foreign
    file can run no code (RNG states are saved as plain lists and tensors, see detkit.training)."""
    p = Path(path)
    if p.is_dir():
        p = p / "last.pt"
    if not p.is_file():
        raise DetkitError(f"{p}: no such checkpoint")
    if not zipfile.is_zipfile(p):  # torch.save has written zip archives since torch 1.6
        raise DetkitError(f"{p}: not a PyTorch checkpoint (torch.save file)")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        raise DetkitError(f"{p}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or "model_config" not in ckpt:
        raise DetkitError(f"{p}: not a detkit yolo checkpoint (no model_config)")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], ema: bool = True):
    """(model in eval mode, class map, img_size) from a checkpoint; EMA weights when present."""
    from detkit.yolo.model import YoloConfig, YOLOv2

    model = YOLOv2(YoloConfig.from_dict(ckpt["model_config"]))
    sd = ckpt["ema"]["module"] if ema and ckpt.get("ema") else ckpt["model"]
    model.load_state_dict(sd)
    return model.eval(), ClassMap.from_dict(ckpt["class_map"]), int(ckpt["img_size"])


def write_metrics_csv(path: Path, history: list[dict[str, Any]]) -> None:
    with atomic_write(path) as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for row in history:
            w.writerow({k: ("" if row.get(k) is None else row[k]) for k in CSV_COLUMNS})


def _load_split(path: str, list_file: str | None, limit: int | None):
    return select_images(load_dataset(path), list_file, limit)


def train(cfg: TrainConfig, resume: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train (or continue ``resume``, a loaded checkpoint) and return the summary fields.

    Raises:
        DetkitError: unusable input (exit 2), or exit 1 when the loss turned non-finite.
    """
    from detkit.yolo.loss import LossConfig, YoloLoss
    from detkit.yolo.model import YoloConfig, YOLOv2

    cfg.validate()
    run = check_out_folder(cfg.out, "a run folder")
    rank, world, local = dist_init(cfg.device)
    main = rank == 0
    device = resolve_device(cfg.device, local)
    cuda = device.type == "cuda"

    train_ds, images = _load_split(cfg.data, cfg.train_list, cfg.limit), cfg.images
    if cfg.val_data or cfg.val_list:
        val_ds = _load_split(cfg.val_data or cfg.data, cfg.val_list, cfg.limit)
        val_images = cfg.val_images or (cfg.images if cfg.val_data is None else None)
    else:
        val_ds, val_images = train_ds, images
    class_map = ClassMap.from_dict(resume["class_map"]) if resume else ClassMap.from_dataset(train_ds)
    if resume:
        anchors, anchors_from = [tuple(a) for a in resume["model_config"]["anchors"]], resume["anchors_from"]
    else:
        anchors, anchors_from = resolve_anchors(cfg.anchors, train_ds, cfg.img_size, seed=cfg.seed)

    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    mcfg = YoloConfig(num_classes=len(class_map), anchors=anchors, backbone=cfg.backbone, width=cfg.width)
    try:
        model = YOLOv2(mcfg, weights=None if resume else cfg.weights).to(device)
    except (ValueError, OSError) as e:
        raise DetkitError(str(e)) from None
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    loss_cfg = LossConfig.preset(
        cfg.loss, size_loss=cfg.size_loss, rescore=cfg.rescore, lambda_coord=cfg.lambda_coord, lambda_obj=cfg.lambda_obj,
        lambda_noobj=cfg.lambda_noobj, lambda_cls=cfg.lambda_cls, warmup_images=cfg.warmup_images,
    )  # fmt: skip
    criterion = YoloLoss(loss_cfg, anchors, len(class_map)).to(device)

    aug = Augment() if cfg.augment else Augment.off()
    train_set = DetectionDataset(train_ds, images, class_map, cfg.img_size, aug, cfg.seed)
    val_set = DetectionDataset(val_ds, val_images, class_map, cfg.img_size, None, cfg.seed)
    for missing in {*train_set.missing, *val_set.missing}:
        warn(f"{missing}: image file is missing; skipped")
    loader = build_loader(train_set, batch_size=cfg.batch, train=True, workers=cfg.workers, seed=cfg.seed,
                          multi_scale=cfg.multi_scale, rank=rank, world_size=world, pin_memory=cuda)  # fmt: skip
    val_loader = build_loader(val_set, batch_size=cfg.batch, train=False, workers=min(cfg.workers, 2), pin_memory=cuda) if main else None

    steps_per_epoch = len(loader)
    total = cfg.epochs * steps_per_epoch  # --max-steps stops early without changing the schedule
    warmup = min(round(cfg.warmup_epochs * steps_per_epoch), max(total // 3, 0))
    optimizer = build_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, warmup, total, cfg.final_lr_ratio))
    ema = ModelEMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None

    start_epoch, start_step, seen, history, best = 0, 0, 0, [], {"mAP": -1.0}
    if resume:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        if ema is not None and resume.get("ema"):
            ema.load_state_dict(resume["ema"])
        start_epoch, seen, history, best = resume["epoch"], resume["seen_images"], resume["history"], resume["best"]
        start_step = resume.get("epoch_step", 0)  # batches of epoch start_epoch + 1 already trained
        history = [r for r in history if r["epoch"] <= start_epoch]  # a part-epoch row is redone whole
        set_rng_state(resume["rng"])
        if main:
            at = f", batch {start_step + 1} of {steps_per_epoch}" if start_step else ""
            info(f"resuming {run} at epoch {start_epoch + 1}/{cfg.epochs}{at} ({seen} images seen)")
            record_resume(run, asdict(cfg))

    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local] if cuda else None)
    if cfg.compile:
        import torch._dynamo as dynamo

        # multi-scale gives up to 10 input shapes: allow them, and mark H, W dynamic when multi-scale
        dynamo.config.cache_size_limit = max(dynamo.config.cache_size_limit, 64)
        net = torch.compile(net, dynamic=True if cfg.multi_scale else None)

    if main and resume is None:
        if val_ds is train_ds:  # said once the run is set up, not before an error about something else
            warn("no --val-data/--val-list: mAP is measured on the training images")
        record_run(run, asdict(cfg), seed=cfg.seed, inputs=[p for p in {cfg.data, cfg.val_data, cfg.anchors} if p])
        write_json(run / "config.json", asdict(cfg))
        info(f"training {cfg.backbone} x{cfg.width} on {len(train_set)} images ({len(class_map)} classes, "
             f"anchors: {anchors_from}) for {cfg.epochs} epochs on {device}")  # fmt: skip

    def report_bad(paths: list[str]) -> None:
        for p in paths:
            warn(f"{p}: cannot decode the image; skipped")

    base = {"model_config": mcfg.to_dict(), "class_map": class_map.to_dict(), "img_size": cfg.img_size,
            "anchors": [list(a) for a in anchors], "anchors_from": anchors_from, "loss_config": loss_cfg.to_dict(),
            "args": asdict(cfg)}  # fmt: skip
    best_eval: dict[str, Any] = resume.get("best_eval", {}) if resume else {}
    with progress(transient=True) as bar:
        task = bar.add_task("train", total=(cfg.epochs - start_epoch) * steps_per_epoch - start_step, info="")
        bar_done = 0  # batches of this invocation so far (the bar's position)
        for epoch in range(start_epoch, cfg.epochs):
            skip = start_step if epoch == start_epoch else 0
            loader.batch_sampler.set_epoch(epoch, skip=skip)
            steps_left = None if cfg.max_steps is None else cfg.max_steps - scheduler.last_epoch
            if steps_left is not None and steps_left <= 0:
                break

            def on_step(step: int, parts: dict[str, float], epoch: int = epoch, base: int = bar_done) -> None:
                bar.update(task, completed=base + step, description=f"epoch {epoch + 1}/{cfg.epochs}",
                           info=" ".join(f"{k} {v:.3f}" for k, v in parts.items()))  # fmt: skip

            try:
                stats = train_one_epoch(
                    net, criterion, optimizer, scheduler, loader, device, seen_images=seen, ema=ema, amp=cfg.amp,
                    grad_clip=cfg.grad_clip, channels_last=cuda, max_steps=steps_left, world_size=world, on_bad=report_bad, on_step=on_step,
                )  # fmt: skip
            except NonFiniteLoss as e:
                kept = f"last good checkpoint kept: {run / 'last.pt'}" if (run / "last.pt").exists() else "no checkpoint was written yet"
                raise DetkitError(f"training stopped in epoch {epoch + 1}: {e}; {kept}", exit_code=1) from None
            seen = stats["seen_images"]
            bar_done += stats["batches"]
            bar.update(task, completed=bar_done)
            done = skip + stats["batches"]  # batches of this epoch trained, over all invocations
            complete = done >= steps_per_epoch
            row = {"epoch": epoch + 1, **{k: stats[k] for k in ("loss", *LOSS_PARTS, "lr", "images_per_s")}, "seen_images": seen}
            last_epoch = (epoch + 1 == cfg.epochs and complete) or (cfg.max_steps is not None and scheduler.last_epoch >= cfg.max_steps)
            if main and ((epoch + 1) % max(cfg.eval_every, 1) == 0 or last_epoch):
                eval_model = ema.module if ema is not None else _unwrap(model)
                metrics, _ = evaluate(eval_model, val_loader, val_ds, anchors, class_map, device, conf=cfg.conf, iou=cfg.iou,
                                      amp=cfg.amp, on_bad=report_bad)  # fmt: skip
                row.update(mAP=metrics["mAP"], mAP50=metrics["mAP50"], eval_images_per_s=metrics["images_per_s"])
                info(f"epoch {epoch + 1}: loss {stats['loss']:.4f}  mAP {metrics['mAP']:.4f}  mAP50 {metrics['mAP50']:.4f}")
                improved = metrics["mAP"] > best["mAP"]
                if improved:
                    best = {"mAP": metrics["mAP"], "mAP50": metrics["mAP50"], "epoch": epoch + 1}
                    best_eval = metrics
            else:
                improved = False
            history.append(row)
            if main:
                state = {**base, "model": _unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict(), "ema": ema.state_dict() if ema else None,
                         # a --max-steps stop inside an epoch: --resume skips the batches already trained
                         "epoch": epoch + 1 if complete else epoch, "epoch_step": 0 if complete else done,
                         "seen_images": seen, "history": history, "best": best, "best_eval": best_eval, "rng": rng_state(),
                         "data_order": {"seed": cfg.seed, "next_epoch": epoch + 1}}  # fmt: skip
                save_checkpoint(run / "last.pt", state)
                if improved or not (run / "best.pt").exists():
                    save_checkpoint(run / "best.pt", state)
                write_metrics_csv(run / "metrics.csv", history)
            if last_epoch:
                break
    summary = _summary_fields(cfg, history, best, best_eval, class_map, anchors, anchors_from, len(train_set))
    if main:
        write_summary(run, "yolo.train", f"YOLOv2 training: {Path(cfg.data).name}", **summary)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()  # rank 0 may still be evaluating or writing
        dist.destroy_process_group()
    return summary


def _summary_fields(cfg, history, best, best_eval, class_map, anchors, anchors_from, n_train) -> dict[str, Any]:
    last = history[-1] if history else {}
    return {
        "metrics": {
            "best_mAP": max(best["mAP"], 0.0), "best_mAP50": best.get("mAP50", 0.0), "best_epoch": best.get("epoch"),
            "epochs": len(history) and history[-1]["epoch"], "final_loss": last.get("loss"),
            "train_images_per_s": last.get("images_per_s"), "train_images": n_train,
        },
        "curves": "metrics.csv",
        "tables": {
            "per_class": [{k: r[k] for k in ("category_id", "name", "gt_boxes", "AP", "AP50")} for r in best_eval.get("per_class", [])],
            "epochs": [{k: r.get(k) for k in CSV_COLUMNS} for r in history],
        },
        "classes": class_map.names,
        "anchors": [list(a) for a in anchors],
        "anchors_from": anchors_from,
        "checkpoints": {"last": "last.pt", "best": "best.pt"},
        "config": asdict(cfg),
    }  # fmt: skip
