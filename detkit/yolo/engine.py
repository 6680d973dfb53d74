"""One training epoch, the EMA of the weights, and COCO evaluation (torchvision references' engine.py).

``train_one_epoch`` runs :class:`TrainStep` (uint8 -> float on the device, bf16 autocast on CUDA, fp32
loss, gradient clipping, per-step LR schedule, EMA update) and stops with :class:`NonFiniteLoss` as soon
as the loss or the gradient is NaN/inf, before the optimizer touches the weights. ``evaluate``
post-processes, maps boxes back to original pixels and class indices back to the dataset's category ids,
and scores them with the engine of ``detkit coco eval`` (see :func:`coco_eval`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from detkit.datasets.model import Dataset
from detkit.deploy.runtime import unletterbox
from detkit.evaluation.analysis import per_class
from detkit.evaluation.engine import coco_evaluate
from detkit.evaluation.predictions import from_results
from detkit.train.common import ModelEMA
from detkit.yolo.data import ClassMap

LOSS_PARTS = ("coord", "obj", "noobj", "cls", "prior")


class NonFiniteLoss(RuntimeError):
    """The loss or its gradient turned NaN or infinite; the weights were not updated by that step."""


def to_input(images: torch.Tensor, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float 0..1 on ``device`` (converted there: 4x less to copy); float passes."""
    x = images.to(device, non_blocking=True)
    x = x.float().div_(255.0) if x.dtype == torch.uint8 else x
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def autocast(device: torch.device, amp: bool):
    """bf16 autocast on CUDA when ``amp``; a no-op otherwise."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class TrainStep:
    """One optimizer step: the very step ``train_one_epoch`` runs and ``bench/yolo_step.py`` times.

    uint8 images -> float on the device, forward under bf16 autocast (CUDA), the fp32 loss on targets
    left on the CPU (built there and copied without blocking), backward, the gradient norm (clipped when
    ``grad_clip``), then one host sync to check that loss and norm are finite *before* the optimizer
    touches the weights, the optimizer and scheduler steps and the EMA update.

    Args:
        model: the network (DDP / compiled wrappers are fine).
        criterion: a :class:`detkit.yolo.loss.YoloLoss`.
        optimizer, scheduler: the scheduler (optional) steps once per optimizer step.
        ema: updated after each step.
        amp: bf16 autocast on CUDA.
        grad_clip: max gradient norm (0: no clipping; the norm is still checked).
        channels_last: NHWC inputs (CUDA).
    """

    def __init__(
        self,
        model,
        criterion,
        optimizer,
        scheduler=None,
        *,
        ema: ModelEMA | None = None,
        amp: bool = False,
        grad_clip: float = 10.0,
        channels_last: bool = False,
    ):
        self.model, self.criterion, self.optimizer, self.scheduler = model, criterion, optimizer, scheduler
        self.ema, self.amp, self.grad_clip, self.channels_last = ema, amp, grad_clip, channels_last
        self.params = [p for p in model.parameters() if p.requires_grad]

    def __call__(
        self, images: torch.Tensor, targets: list[torch.Tensor], device: torch.device, seen_images: int
    ) -> torch.Tensor:
        """Run the step; returns the detached (loss, *LOSS_PARTS) as one tensor on ``device`` (no sync)."""
        x = to_input(images, device, self.channels_last)
        with autocast(device, self.amp):
            raw = self.model(x)
        loss, parts = self.criterion(raw, targets, seen_images)  # fp32 inside
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip or float("inf"))
        if not torch.isfinite(loss.detach() + norm):  # the step's one host sync
            what = "loss" if not torch.isfinite(loss) else "gradient norm"
            raise NonFiniteLoss(f"{what} is {(loss if what == 'loss' else norm).item()}")
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update(unwrap(self.model))
        return torch.stack([loss.detach(), *(parts[k] for k in LOSS_PARTS)])


def train_one_epoch(
    model: torch.nn.Module,
    criterion: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loader,
    device: torch.device,
    *,
    seen_images: int = 0,
    ema: ModelEMA | None = None,
    amp: bool = False,
    grad_clip: float = 10.0,
    channels_last: bool = False,
    max_steps: int | None = None,
    world_size: int = 1,
    log_every: int = 10,
    on_bad: Callable[[list[str]], None] = lambda paths: None,
    on_step: Callable[[int, dict[str, float]], None] = lambda step, parts: None,
) -> dict[str, float]:
    """Train for one pass over ``loader`` (or ``max_steps`` steps) with :class:`TrainStep`.

    Args:
        model, criterion, optimizer, scheduler: the scheduler steps every optimizer step.
        loader: batches from :func:`detkit.yolo.data.build_loader`.
        device: where the step runs.
        seen_images: images trained on before this epoch (the loss's prior warm-up uses it).
        ema: updated after every step.
        amp: bf16 autocast on CUDA.
        grad_clip: max gradient norm (0 disables clipping).
        channels_last: NHWC inputs (CUDA).
        max_steps: stop after this many steps.
        world_size: DDP processes; ``seen_images`` and ``images`` count every rank's images (this
            rank's batch size times ``world_size``).
        log_every: steps between ``on_step`` calls (each reads the running sums back from the device).
        on_bad: called with the paths of undecodable images of a batch.
        on_step: called with (steps so far, running means of the loss and its parts).

    Returns:
        mean loss and parts, ``lr`` (last), ``images``, ``steps``, ``batches`` (consumed from the loader,
        empty ones included), ``seen_images``, ``images_per_s``.

    Raises:
        NonFiniteLoss: the loss or gradient was NaN/inf (the step was not applied).
    """
    model.train()
    step_fn = TrainStep(
        model,
        criterion,
        optimizer,
        scheduler,
        ema=ema,
        amp=amp,
        grad_clip=grad_clip,
        channels_last=channels_last,
    )
    sums = torch.zeros(1 + len(LOSS_PARTS), device=device)  # summed on the device: no per-step .item()
    steps = images = batches = 0
    names = ("loss", *LOSS_PARTS)
    t0 = time.perf_counter()
    for batch in loader:
        batches += 1
        if batch["bad"]:
            on_bad(batch["bad"])
        n = len(batch["targets"])
        if n == 0:
            continue  # every image of the batch was undecodable
        try:
            sums += step_fn(batch["images"], batch["targets"], device, seen_images)
        except NonFiniteLoss as e:
            raise NonFiniteLoss(f"{e} at step {steps + 1} of the epoch") from None
        seen_images += n * world_size
        images += n * world_size
        steps += 1
        if steps % log_every == 0:
            on_step(steps, dict(zip(names, (sums / steps).tolist())))
        if max_steps is not None and steps >= max_steps:
            break
    dt = time.perf_counter() - t0
    out = dict(zip(names, (sums / max(steps, 1)).tolist()))
    out.update(
        lr=optimizer.param_groups[0]["lr"],
        images=images,
        steps=steps,
        batches=batches,
        seen_images=seen_images,
        images_per_s=images / dt if dt > 0 else 0.0,
    )
    return out


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP and torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


@torch.no_grad()
def predict_batch(
    model: torch.nn.Module,
    batch: dict[str, Any],
    anchors,
    class_map: ClassMap,
    device: torch.device,
    *,
    conf: float = 0.001,
    iou: float = 0.45,
    max_det: int = 100,
    amp: bool = False,
) -> list[dict[str, Any]]:
    """Detections of one batch in original-image pixels, as COCO results rows (xywh, category ids); a box
    that lies wholly in the letterbox border (no width or height left once clipped to the image) is left
    out: it can match nothing, and ``detkit coco eval`` refuses boxes without a positive size."""
    from detkit.yolo.decode import postprocess  # lazy: torchvision; an export's eval uses only coco_eval

    x = to_input(batch["images"], device)
    with autocast(device, amp):
        raw = model(x)
    xy_scale = getattr(getattr(unwrap(model), "cfg", None), "xy_scale", 1.0)
    dets = postprocess(
        raw.float(), anchors, conf_thresh=conf, iou_thresh=iou, max_det=max_det, xy_scale=xy_scale
    )
    size = x.shape[-1]
    rows = []
    for det, image_id, tr, (w0, h0) in zip(
        dets, batch["image_ids"].tolist(), batch["transforms"].tolist(), batch["orig_sizes"].tolist()
    ):
        b = unletterbox(det["boxes"].cpu().numpy(), size, tr, w0, h0)
        for (x0, y0, x1, y1), s, c in zip(b.tolist(), det["scores"].tolist(), det["labels"].tolist()):
            if round(x1 - x0, 2) <= 0 or round(y1 - y0, 2) <= 0:
                continue  # wholly in the letterbox border: clipped to nothing, it can match no box
            rows.append(
                {
                    "image_id": int(image_id),
                    "category_id": class_map.to_category_id(c),
                    "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                    "score": round(s, 5),
                }
            )
    return rows


def coco_eval(
    gt: Dataset, results: list[dict[str, Any]], image_ids: list[int] | None = None, backend: str = "hotcoco"
) -> dict[str, Any]:
    """COCO mAP of ``results`` (COCO results rows, xywh pixels) against ``gt``, quietly.

    The same engine as ``detkit coco eval`` (:func:`detkit.evaluation.engine.coco_evaluate`: hotcoco,
    pycocotools' exact semantics, built from the columns): an empty result list gives mAP 0; a category id
    absent from ``gt`` raises ValueError instead of being ignored; boxes must be xywh (rows from
    :func:`predict_batch` are).

    Args:
        gt: the ground truth.
        results: COCO results rows (image_id, category_id, bbox xywh, score).
        image_ids: evaluate only these images (default: every image of ``gt``).
        backend: ``hotcoco`` or ``pycocotools``.

    Returns:
        ``mAP`` (@[.5:.95]), ``mAP50``, ``mAP75`` and ``per_class`` rows, those of ``detkit coco eval``
        (:func:`detkit.evaluation.analysis.per_class`: category_id, name, gt (boxes), AP, AP50, AP75,
        APs/m/l, AR100; AP None for a class without ground truth), ``detections``.
    """

    known = {int(c) for c in gt.cat_id}
    bad = sorted({int(r["category_id"]) for r in results} - known)
    if bad:
        raise ValueError(f"predictions use category ids {bad} that the ground truth does not declare")
    ids = None if image_ids is None else np.asarray(image_ids, dtype=np.int64)
    core = coco_evaluate(gt, from_results(results), backend, image_ids=ids)
    stats = [max(float(v), 0.0) for v in core.stats]  # -1 means "no ground truth at all"
    rows = per_class(core, gt, image_ids=core.image_ids)  # coco eval's rows and key names ("gt")
    return {
        "mAP": stats[0],
        "mAP50": stats[1],
        "mAP75": stats[2],
        "per_class": rows,
        "detections": len(results),
    }


def evaluate(
    model: torch.nn.Module,
    loader,
    gt: Dataset,
    anchors,
    class_map: ClassMap,
    device: torch.device,
    *,
    conf: float = 0.001,
    iou: float = 0.45,
    max_det: int = 100,
    amp: bool = False,
    on_bad: Callable[[list[str]], None] = lambda paths: None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Predict every image of ``loader`` (an evaluation loader) and score with :func:`coco_eval`.

    Returns:
        (metrics dict of :func:`coco_eval` plus ``images_per_s``, the COCO results rows).
    """
    model.eval()
    results: list[dict[str, Any]] = []
    seen: list[int] = []
    t0 = time.perf_counter()
    for batch in loader:
        if batch["bad"]:
            on_bad(batch["bad"])
        if len(batch["targets"]) == 0:
            continue
        results += predict_batch(
            model, batch, anchors, class_map, device, conf=conf, iou=iou, max_det=max_det, amp=amp
        )
        seen += batch["image_ids"].tolist()
    dt = time.perf_counter() - t0
    metrics = coco_eval(gt, results, image_ids=seen)
    metrics["images"] = len(seen)
    metrics["images_per_s"] = len(seen) / dt if dt > 0 else 0.0
    return metrics, results
