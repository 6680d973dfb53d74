"""YOLOv2 training throughput: the trainer's full step (forward, loss, backward, clip, SGD, EMA) on synthetic
tensors, and end to end with the real data loader on JPEGs (``--loader``).

Prints images/s, the model's FLOPs per image (torch.utils.flop_counter), the achieved fraction of the
GPU's dense bf16 peak, and the ratio against a baseline measured in the same run: the plain eager
fp32 NCHW step ("baseline fp32", CUDA only: on the CPU the step is that baseline), and for
``--loader`` the synthetic-tensor step of the same config. It also times the loss alone (forward +
backward on raw outputs of the same shape) as a share of the step.

    python bench/yolo_step.py --device cpu --steps 3 --batch 4                 # ~1-2 min on 2 cores
    python bench/yolo_step.py --device cuda --batch 64 --steps 30              # bf16 + channels_last
    python bench/yolo_step.py --device cuda --batch 64 --compile
    python bench/yolo_step.py --device cuda --loader --workers 12 [--data instances.json --images DIR]

Targets (one H100, 416 px, Darknet-19 full width): step >= 2,500 img/s, end to end >= 1,500 img/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detkit.anchors.metrics import YOLOV2_VOC_GRID_13
from detkit.train.common import ModelEMA, peak_bf16_tflops
from detkit.yolo.engine import TrainStep
from detkit.yolo.loss import LossConfig, YoloLoss
from detkit.yolo.model import YoloConfig, YOLOv2

VOC_ANCHORS = list(YOLOV2_VOC_GRID_13)  # the YOLOv2 paper's VOC anchors, grid cells at 13x13
TARGET_STEP, TARGET_E2E = 2500.0, 1500.0  # img/s on one H100


def synthetic_batch(batch: int, size: int, num_classes: int, device: torch.device, seed: int = 0):
    """Random images and 1..8 random boxes per image (targets stay on the CPU, as the loader gives them)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, size, size, generator=g).to(device)
    gt = []
    for _ in range(batch):
        n = int(torch.randint(1, 9, (1,), generator=g))
        wh = torch.rand(n, 2, generator=g) * 0.5 + 0.05
        cxcy = wh / 2 + torch.rand(n, 2, generator=g) * (1 - wh)
        cls = torch.randint(0, num_classes, (n, 1), generator=g).float()
        gt.append(torch.cat([cls, cxcy, wh], dim=1))
    return images, gt


def count_flops(model: torch.nn.Module, size: int) -> tuple[float, float]:
    """(forward, forward + backward) FLOPs per image at ``size``, counted on a batch of 2 (BN in
    train mode)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(2, 3, size, size, device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as fwd:
        out = model(x)
    f = fwd.get_total_flops()
    with FlopCounterMode(display=False) as both:
        model(x).float().sum().backward()
    model.zero_grad(set_to_none=True)
    del out
    return f / 2, both.get_total_flops() / 2


class Stepper:
    """The trainer's own step (``detkit.yolo.engine.TrainStep``: clip, finite check, EMA) with the
    settings under test, on a model built as ``detkit yolo train`` builds it."""

    def __init__(self, args, device: torch.device, amp: bool, channels_last: bool, compile_: bool):
        torch.manual_seed(0)
        self.device = device
        cfg = YoloConfig(
            num_classes=args.classes, anchors=VOC_ANCHORS, width=args.width, backbone=args.backbone
        )
        self.model = YOLOv2(cfg).to(device).train()
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        forward = torch.compile(self.model, dynamic=False) if compile_ else self.model
        loss_fn = YoloLoss(LossConfig.preset("darknet"), VOC_ANCHORS, args.classes)
        opt = torch.optim.SGD(
            self.model.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4, nesterov=True
        )
        self.step = TrainStep(
            forward,
            loss_fn,
            opt,
            ema=ModelEMA(self.model),
            amp=amp,
            grad_clip=10.0,
            channels_last=channels_last,
        )
        self.seen = 0

    def __call__(self, images: torch.Tensor, gt: list[torch.Tensor]) -> torch.Tensor:
        parts = self.step(images, gt, self.device, self.seen)  # images: uint8 from the loader, or float
        self.seen += images.shape[0]
        return parts[0]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_synthetic(step: Stepper, args, device: torch.device) -> float:
    images, gt = synthetic_batch(args.batch, args.img_size, args.classes, device)
    for _ in range(args.warmup):
        step(images, gt)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step(images, gt)
    sync(device)
    dt = time.perf_counter() - t0
    assert torch.isfinite(loss), "loss is not finite"
    return args.steps * args.batch / dt


def time_loss(args, device: torch.device) -> float:
    """Milliseconds of the loss alone (forward + backward) on raw outputs of the step's shape."""
    s = args.img_size // 32
    raw = torch.randn(args.batch, len(VOC_ANCHORS), s, s, 5 + args.classes, device=device, requires_grad=True)
    _, gt = synthetic_batch(args.batch, args.img_size, args.classes, device)
    loss_fn = YoloLoss(LossConfig.preset("darknet"), VOC_ANCHORS, args.classes)
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            sync(device)
            t0 = time.perf_counter()
        loss, _ = loss_fn(raw, gt)
        loss.backward()
    sync(device)
    return 1e3 * (time.perf_counter() - t0) / args.steps


def time_loader(step: Stepper, args, device: torch.device) -> float | None:
    try:
        from detkit.datasets.load import load_dataset  # noqa: F401  (build_loader needs it)
        from detkit.yolo.data import build_loader
    except ImportError as e:
        print(f"loader: skipped (detkit.yolo.data unavailable: {e})", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory() as tmp:
        data, images = args.data, args.images
        if data is None:  # synthetic JPEGs, COCO-like size
            from detkit.data.synth import write_detection_set

            n = max(args.batch * (args.steps + args.warmup), 64)
            print(f"loader: writing {n} synthetic {args.synth_size}px JPEGs to {tmp}", file=sys.stderr)
            data = write_detection_set(tmp, images=n, size=args.synth_size, seed=0, max_objects=8)
        loader = build_loader(
            data,
            images,
            img_size=args.img_size,
            batch_size=args.batch,
            train=True,
            workers=args.workers,
            seed=0,
            pin_memory=device.type == "cuda",
        )
        n_done, t0, it = 0, None, 0
        while t0 is None or it < args.warmup + args.steps:
            for batch in loader:
                if it == args.warmup:
                    sync(device)
                    t0, n_done = time.perf_counter(), 0
                step(batch["images"], batch["targets"])  # uint8 -> float on the device, as in training
                n_done += batch["images"].shape[0]
                it += 1
                if it >= args.warmup + args.steps:
                    break
        sync(device)
        return n_done / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--batch", type=int, default=None, help="default: 64 on CUDA, 4 on CPU")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default: 30 on CUDA, 3 on CPU)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 10 CUDA, 1 CPU)")
    ap.add_argument("--img-size", type=int, default=416)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--backbone", default="darknet19", choices=["darknet19", "resnet18", "resnet50"])
    ap.add_argument("--classes", type=int, default=80)
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--no-baseline", action="store_true", help="skip the fp32 NCHW eager baseline")
    ap.add_argument("--loader", action="store_true", help="also time end to end with detkit.yolo.data")
    ap.add_argument("--data", default=None, help="annotations for --loader (default: synthetic JPEGs)")
    ap.add_argument("--images", default=None, help="image folder for --data")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--synth-size", type=int, default=640)
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args(argv)

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    args.batch = args.batch or (64 if gpu else 4)
    args.steps = args.steps or (30 if gpu else 3)
    args.warmup = args.warmup if args.warmup is not None else (10 if gpu else 1)
    if gpu:
        torch.backends.cudnn.benchmark = True
    dev_name = torch.cuda.get_device_name(device) if gpu else f"CPU ({torch.get_num_threads()} threads)"

    step = Stepper(args, device, amp=gpu, channels_last=gpu, compile_=args.compile)
    fwd_flops, train_flops = count_flops(step.model, args.img_size)
    res = {
        "device": dev_name,
        "img_size": args.img_size,
        "batch": args.batch,
        "steps": args.steps,
        "backbone": args.backbone,
        "width": args.width,
        "config": ("bf16 autocast + channels_last" if gpu else "fp32 NCHW")
        + (" + compile" if args.compile else ""),
        "gflops_fwd_per_image": fwd_flops / 1e9,
        "gflops_train_per_image": train_flops / 1e9,
        "step_img_s": time_synthetic(step, args, device),
    }
    peak = peak_bf16_tflops(device)
    res["achieved_tflops"] = res["step_img_s"] * train_flops / 1e12
    res["peak_bf16_tflops"] = peak
    res["fraction_of_peak"] = res["achieved_tflops"] / peak if peak else None
    res["loss_ms"] = time_loss(args, device)
    res["loss_share_of_step"] = res["loss_ms"] / 1e3 / (args.batch / res["step_img_s"])
    if gpu and not args.no_baseline:  # on the CPU the main config already is the baseline
        base = Stepper(args, device, amp=False, channels_last=False, compile_=False)
        res["baseline_fp32_img_s"] = time_synthetic(base, args, device)
        del base
    if args.loader:
        res["e2e_img_s"] = time_loader(step, args, device)

    if args.json:
        print(json.dumps(res, indent=2))
        return res
    frac = f"{100 * res['fraction_of_peak']:.1f}% of {peak:.0f}" if peak else "n/a"
    print(
        f"device            {res['device']}   ({res['config']}, batch {args.batch}, {args.img_size}px, "
        f"{args.backbone} x{args.width})"
    )
    print(
        f"model FLOPs/image {res['gflops_fwd_per_image']:.2f} G forward, "
        f"{res['gflops_train_per_image']:.2f} G "
        "forward+backward"
    )
    print(
        f"step              {res['step_img_s']:9.1f} img/s   {res['achieved_tflops']:.2f} TFLOP/s   "
        f"bf16 peak: {frac}   vs H100 target {res['step_img_s'] / TARGET_STEP:.3f}x"
    )
    print(
        f"loss alone        {res['loss_ms']:9.2f} ms/step (forward + backward) = "
        f"{100 * res['loss_share_of_step']:.1f}% of the step"
    )
    if "baseline_fp32_img_s" in res:
        print(
            f"baseline fp32     {res['baseline_fp32_img_s']:9.1f} img/s   step / baseline = "
            f"{res['step_img_s'] / res['baseline_fp32_img_s']:.2f}x"
        )
    if res.get("e2e_img_s"):
        print(
            f"end to end        {res['e2e_img_s']:9.1f} img/s   end-to-end / step = "
            f"{res['e2e_img_s'] / res['step_img_s']:.2f}x   vs H100 target "
            f"{res['e2e_img_s'] / TARGET_E2E:.3f}x"
        )
    return res


if __name__ == "__main__":
    main()
