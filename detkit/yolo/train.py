"""``detkit yolo train``: the run folder, checkpoints, resume, optimizer/schedule, EMA, NaN stop, DDP.

    RUN/run.json       resolved config, command line, seed, versions, annotation checksums
    RUN/config.json    the TrainConfig (what --resume reads back)
    RUN/metrics.csv    one row per epoch: loss parts, lr, mAP, mAP50, images/s
    RUN/last.pt        every epoch (the commit, see detkit.harness); RUN/best.pt when the mAP improves
    RUN/summary.json   kind "yolo.train" for ``detkit report``

A checkpoint holds everything needed to continue bit for bit: model, optimizer, scheduler and EMA
states, the epoch, images seen (the loss warm-up depends on it), the Python/NumPy/torch/CUDA RNG states
and the data order (a function of seed and epoch, see ``detkit.yolo.data``), plus the model config,
class map, anchors, the arguments, the metric rows and the best epoch. Launched by ``torchrun``
(RANK/WORLD_SIZE set) it trains with DistributedDataParallel; rank 0 evaluates and writes.

The shape is torchvision's references/detection: :func:`setup` builds data, model and optimizer,
:func:`train_epochs` runs :func:`detkit.yolo.engine.train_one_epoch` and evaluation, :func:`epoch_state`
is what each epoch commits through :class:`detkit.harness.Checkpoints`.
"""

from __future__ import annotations

import json
import math
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detkit import harness as H
from detkit import options as O
from detkit.anchors.metrics import YOLOV2_VOC_GRID_13
from detkit.console import info, progress, warn
from detkit.errors import DetkitError
from detkit.io import write_json
from detkit.runs import record_resume, record_run, write_summary
from detkit.training import ModelEMA, dist_init, resolve_device, rng_state, set_rng_state
from detkit.yolo.config import TrainConfig
from detkit.yolo.data import Augment, ClassMap, DetectionDataset, build_loader, has_split, load_split
from detkit.yolo.engine import LOSS_PARTS, NonFiniteLoss, _unwrap, evaluate, train_one_epoch

# YOLOv2's VOC anchors, in cells of the 13x13 grid at 416 (yolo-voc.cfg)
VOC_ANCHORS = list(YOLOV2_VOC_GRID_13)  # the YOLOv2 paper's VOC anchors, grid cells at 13x13
CSV_COLUMNS = (
    "epoch",
    "loss",
    *LOSS_PARTS,
    "lr",
    "mAP",
    "mAP50",
    "images_per_s",
    "eval_images_per_s",
    "seen_images",
)
RUN_FILES = ("run.json", "config.json", "metrics.csv", "last.pt", "best.pt", "summary.json")


def _anchor_pairs(doc: Any, path: str) -> list[tuple[float, float]]:
    """The normalised (w, h) pairs of an anchors.json, each checked (one line naming the file if not)."""
    try:
        raw = doc["anchors_normalized"]
        pairs = [(float(w), float(h)) for w, h in raw]
    except (KeyError, TypeError, ValueError):
        raise DetkitError(
            f"{path}: not an anchors file ('anchors_normalized' must be a list of [w, h] pairs)"
        ) from None
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


def resolve_anchors(
    path: str | None, ds, img_size: int, k: int = 5, seed: int = 0
) -> tuple[list[tuple[float, float]], str]:
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
                warn(
                    f"{path}: image-normalised anchors were converted to the letterbox with the images' median "
                    f"aspect; `detkit anchors kmeans --norm letterbox` gives exact ones for mixed aspects"
                )
        elif norm != "letterbox":
            raise DetkitError(f"{path}: unknown norm {norm!r} (image or letterbox)")
        return [(w * grid, h * grid) for w, h in pairs], str(path)
    from detkit.anchors.kmeans import iou_kmeans

    wh, _ = clean_wh(dataset_wh(ds, "letterbox"))
    if len(np.unique(wh, axis=0)) >= k:
        res = iou_kmeans(wh, k, seed=seed, restarts=3)
        return [
            (float(w) * grid, float(h) * grid) for w, h in res.anchors
        ], f"iou k-means (k={k}) on the training boxes"
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


def model_from_checkpoint(ckpt: dict[str, Any], ema: bool = True):
    """(model in eval mode, class map, img_size) from a checkpoint; EMA weights when present."""
    from detkit.yolo.model import YoloConfig, YOLOv2

    model = YOLOv2(YoloConfig.from_dict(ckpt["model_config"]))
    sd = ckpt["ema"]["module"] if ema and ckpt.get("ema") else ckpt["model"]
    model.load_state_dict(sd)
    return model.eval(), ClassMap.from_dict(ckpt["class_map"]), int(ckpt["img_size"])


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a detkit YOLO checkpoint (``RUN`` means ``RUN/last.pt``) with ``weights_only``: a foreign
    file can run no code (RNG states are saved as plain lists and tensors, see detkit.training)."""
    p = Path(path)
    return H.load_checkpoint(p / "last.pt" if p.is_dir() else p, "yolo", ("model_config",))


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
    )  # epoch, epoch_step, seen_images, history, best, best_eval

    @property
    def main(self) -> bool:
        return self.rank == 0


def _load_data(cfg: TrainConfig, resume: dict[str, Any] | None) -> dict[str, Any]:
    """Training and validation sets, class map and anchors (from the checkpoint when resuming)."""
    train_ds = _load_split(cfg.data, cfg.train_list, cfg.limit, "train")
    if cfg.val_data or cfg.val_list or has_split(cfg.data, "val"):
        val_ds = _load_split(cfg.val_data or cfg.data, cfg.val_list, cfg.limit, "val")
        val_images = cfg.val_images or (cfg.images if cfg.val_data is None else None)
    else:
        val_ds, val_images = train_ds, cfg.images
    class_map = ClassMap.from_dict(resume["class_map"]) if resume else ClassMap.from_dataset(train_ds)
    if resume:
        anchors, anchors_from = [tuple(a) for a in resume["model_config"]["anchors"]], resume["anchors_from"]
    else:
        anchors, anchors_from = resolve_anchors(cfg.anchors, train_ds, cfg.img_size, seed=cfg.seed)
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
    from detkit.yolo.loss import LossConfig, YoloLoss
    from detkit.yolo.model import YoloConfig, YOLOv2

    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    n = len(data["class_map"])
    mcfg = YoloConfig(num_classes=n, anchors=data["anchors"], backbone=cfg.backbone, width=cfg.width)
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
    )
    return mcfg, model, loss_cfg, YoloLoss(loss_cfg, data["anchors"], n).to(device)


def _loaders(cfg: TrainConfig, data: dict[str, Any], rank: int, world: int, cuda: bool):
    """(training loader, validation loader on rank 0 else None); counts the training images in ``data``."""
    aug = Augment() if cfg.augment else Augment.off()
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
    r.state["best_eval"] = {}
    if resume:
        _restore(r, resume)
    if world > 1:
        r.net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local] if cuda else None)
    if cfg.compile:
        import torch._dynamo as dynamo

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
    epoch = ckpt["epoch"]
    r.state = {
        "epoch": epoch,
        "epoch_step": ckpt.get("epoch_step", 0),
        "seen_images": ckpt["seen_images"],
        "history": [h for h in ckpt["history"] if h["epoch"] <= epoch],  # a part-epoch row is redone whole
        "best": ckpt["best"],
        "best_eval": ckpt.get("best_eval", {}),
    }
    set_rng_state(ckpt["rng"])


def epoch_state(r: Run) -> dict[str, Any]:
    """The checkpoint an epoch commits: everything :func:`setup` needs to continue bit for bit."""
    return {
        **r.base,
        **r.state,
        "model": _unwrap(r.model).state_dict(),
        "optimizer": r.optimizer.state_dict(),
        "scheduler": r.scheduler.state_dict(),
        "ema": r.ema.state_dict() if r.ema else None,
        "rng": rng_state(),
        "data_order": {"seed": r.cfg.seed, "next_epoch": r.state["epoch"] + 1},
    }


def summary_fields(state: dict[str, Any], status: str) -> dict[str, Any]:
    """summary.json's fields, from a checkpoint alone (so a killed run's summary can be rebuilt)."""
    history, best, best_eval = state["history"], state["best"], state.get("best_eval") or {}
    last = history[-1] if history else {}
    return {
        "status": status,
        "metrics": {
            "best_mAP": max(best["mAP"], 0.0),
            "best_mAP50": best.get("mAP50", 0.0),
            "best_epoch": best.get("epoch"),
            "epochs": len(history) and history[-1]["epoch"],
            "final_loss": last.get("loss"),
            "train_images_per_s": last.get("images_per_s"),
            "train_images": state.get("train_images"),
        },
        "curves": "metrics.csv",
        "tables": {
            "per_class": [
                {k: r[k] for k in ("category_id", "name", "gt_boxes", "AP", "AP50")}
                for r in best_eval.get("per_class", [])
            ],
            "epochs": [{k: r.get(k) for k in CSV_COLUMNS} for r in history],
        },
        "classes": state["class_map"]["names"],
        "anchors": state["anchors"],
        "anchors_from": state["anchors_from"],
        "checkpoints": {"last": "last.pt", "best": "best.pt"},
        "config": state["args"],
    }


def checkpoints(path: Path) -> H.Checkpoints:
    """The commit and side files of a detector run (best.pt is the whole state of the best epoch)."""

    def summary(state: dict[str, Any], status: str) -> None:
        title = f"YOLOv2 training: {Path(state['args']['data']).name}"
        write_summary(path, "yolo.train", title, **summary_fields(state, status))

    return H.Checkpoints(path, CSV_COLUMNS, best_state=lambda s: s, summary=summary)


def _evaluate(r: Run, row: dict[str, Any], epoch: int, report_bad) -> None:
    """mAP of the EMA (or plain) weights; updates ``row`` and the best epoch."""
    cfg, d = r.cfg, r.data
    eval_model = r.ema.module if r.ema is not None else _unwrap(r.model)
    metrics, _ = evaluate(
        eval_model,
        r.val_loader,
        d["val_ds"],
        d["anchors"],
        d["class_map"],
        r.device,
        conf=cfg.conf,
        iou=cfg.iou,
        amp=cfg.amp,
        on_bad=report_bad,
    )
    row.update(mAP=metrics["mAP"], mAP50=metrics["mAP50"], eval_images_per_s=metrics["images_per_s"])
    info(f"epoch {epoch + 1}: loss {row['loss']:.4f}  mAP {metrics['mAP']:.4f}  mAP50 {metrics['mAP50']:.4f}")
    if metrics["mAP"] > r.state["best"]["mAP"]:
        r.state["best"] = {
            "mAP": metrics["mAP"],
            "mAP50": metrics["mAP50"],
            "epoch": epoch + 1,
            "epoch_step": r.state["epoch_step"],
        }
        r.state["best_eval"] = metrics


def train_epochs(r: Run, ckpts: H.Checkpoints) -> str:
    """The epoch loop; each epoch (or a --max-steps stop inside one) ends in one commit.

    Returns: "done", or "stopped" (by --max-steps). Raises :class:`detkit.harness.Diverged` on NaN.
    """
    cfg, s, per_epoch = r.cfg, r.state, len(r.loader)
    log = H.ProgressLog(cfg.log_every)

    def report_bad(paths: list[str]) -> None:
        for p in paths:
            warn(f"{p}: cannot decode the image; skipped")

    with progress(transient=True) as bar:
        task = bar.add_task("train", total=(cfg.epochs - s["epoch"]) * per_epoch - s["epoch_step"], info="")
        bar_done = 0  # batches of this call so far (the bar's position)
        for epoch in range(s["epoch"], cfg.epochs):
            skip = s["epoch_step"] if epoch == s["epoch"] else 0
            r.loader.batch_sampler.set_epoch(epoch, skip=skip)
            steps_left = None if cfg.max_steps is None else cfg.max_steps - r.scheduler.last_epoch
            if steps_left is not None and steps_left <= 0:
                break

            def on_step(
                step: int, parts: dict[str, float], epoch: int = epoch, base: int = bar_done, skip: int = skip
            ) -> None:
                text = " ".join(f"{k} {v:.3f}" for k, v in parts.items())
                bar.update(
                    task, completed=base + step, description=f"epoch {epoch + 1}/{cfg.epochs}", info=text
                )
                log(lambda: f"epoch {epoch + 1}/{cfg.epochs} step {skip + step}/{per_epoch}: {text}")

            try:
                stats = train_one_epoch(
                    r.net,
                    r.criterion,
                    r.optimizer,
                    r.scheduler,
                    r.loader,
                    r.device,
                    seen_images=s["seen_images"],
                    ema=r.ema,
                    amp=cfg.amp,
                    grad_clip=cfg.grad_clip,
                    channels_last=r.device.type == "cuda",
                    max_steps=steps_left,
                    world_size=r.world,
                    on_bad=report_bad,
                    on_step=on_step,
                    log_every=1 if r.device.type == "cpu" else 10,
                )
            except NonFiniteLoss as e:
                raise H.diverged(r.path, epoch + 1, str(e)) from None
            bar_done += stats["batches"]
            bar.update(task, completed=bar_done)
            done = skip + stats["batches"]  # batches of this epoch trained, over all invocations
            complete = done >= per_epoch
            s["seen_images"] = stats["seen_images"]
            row = {
                "epoch": epoch + 1,
                **{k: stats[k] for k in ("loss", *LOSS_PARTS, "lr", "images_per_s")},
                "seen_images": s["seen_images"],
            }
            last = (epoch + 1 == cfg.epochs and complete) or (
                cfg.max_steps is not None and r.scheduler.last_epoch >= cfg.max_steps
            )
            # a --max-steps stop inside an epoch: --resume skips the batches already trained
            s["epoch"], s["epoch_step"] = (epoch + 1, 0) if complete else (epoch, done)
            if r.main and ((epoch + 1) % cfg.eval_every == 0 or last):
                _evaluate(r, row, epoch, report_bad)
            s["history"].append(row)
            if r.main:
                ckpts.commit(epoch_state(r))
            if last:
                break
    return "done" if s["epoch"] >= cfg.epochs else "stopped"


def _record(r: Run, threads: dict[str, Any] | None, resumed: bool) -> None:
    """run.json (a new run) or its ``resumed`` list, config.json, and the start-up line."""
    cfg, d, s = r.cfg, r.data, r.state
    config = {**asdict(cfg), "thread_policy": threads}
    if resumed:
        at = f", batch {s['epoch_step'] + 1} of {len(r.loader)}" if s["epoch_step"] else ""
        info(f"resuming {r.path} at epoch {s['epoch'] + 1}/{cfg.epochs}{at} ({s['seen_images']} images seen)")
        record_resume(r.path, config)
        return
    if d["val_ds"] is d["train_ds"]:  # said once the run is set up, not before an error about something else
        warn("no --val-data/--val-list: mAP is measured on the training images")
    record_run(r.path, config, seed=cfg.seed, inputs=[p for p in {cfg.data, cfg.val_data, cfg.anchors} if p])
    write_json(r.path / "config.json", asdict(cfg))
    info(
        f"training {cfg.backbone} x{cfg.width} on {d['n_train']} images ({len(d['class_map'])} classes, "
        f"anchors: {d['anchors_from']}) for {cfg.epochs} epochs on {r.device}"
    )


def _run(cfg: TrainConfig, path: Path, resume: dict[str, Any] | None) -> dict[str, Any]:
    """Set up, train, write the final summary; returns the summary fields."""
    threads = H.apply_threads(cfg, cfg.workers)
    r = setup(cfg, path, resume)
    ckpts = checkpoints(path)
    if r.main:
        _record(r, threads, resume is not None)
    try:
        status = train_epochs(r, ckpts)
    except H.Diverged as e:
        if r.main and (path / "last.pt").exists():
            ckpts.finish(load_checkpoint(path), "diverged")
        _dist_end(r.world)
        raise e from None
    state = epoch_state(r)
    if r.main:
        ckpts.finish(state, status)
    _dist_end(r.world)
    return summary_fields(state, status)


def _dist_end(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()  # rank 0 may still be evaluating or writing
        dist.destroy_process_group()


def train(cfg: TrainConfig, exist_ok: bool = False) -> dict[str, Any]:
    """Train a new run in ``cfg.out`` and return the summary fields.

    Args:
        cfg: the options.
        exist_ok: start over in a folder that holds a run (its files are deleted, and named).
    Raises:
        DetkitError: unusable input or a folder holding a run (exit 2); Diverged (exit 1) at a NaN loss.
    """
    cfg.validate()
    main = os.environ.get("RANK", "0") == "0"
    with H.RunFolder(cfg.out, RUN_FILES, exist_ok=exist_ok, main=main):
        return _run(cfg, Path(cfg.out), None)


def resume(run: str | Path, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """Continue the run in ``run`` (a folder or its last.pt) exactly; ``given`` are options typed again
    (only those of :func:`detkit.options.resume_fields` may change)."""
    path = Path(run) if Path(run).is_dir() or not Path(run).suffix else Path(run).parent  # RUN or RUN/last.pt
    main = os.environ.get("RANK", "0") == "0"
    with H.RunFolder(path, RUN_FILES, resume=True, main=main):
        ckpt = H.load_checkpoint(path / "last.pt", "yolo", ("model_config", *H.STATE_KEYS, "args"))
        cfg = O.resumed_config(TrainConfig, {**ckpt["args"], "out": str(path)}, given or {}, path)
        cfg.validate()
        if ckpt["epoch"] >= cfg.epochs:
            if main and checkpoints(path).repair(ckpt, finished=True):
                return summary_fields(ckpt, "done")
            raise DetkitError(
                f"{run}: already trained {ckpt['epoch']} of {cfg.epochs} epochs (pass --epochs N to go on)"
            )
        if main:
            checkpoints(path).repair(ckpt, finished=False)
        return _run(cfg, path, ckpt)
