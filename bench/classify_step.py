"""Training throughput of `detkit classify train`'s step on synthetic 64x64 data held on the device.

Measures images/s of the full recipe step (device-resident uint8 images, crop/flip/cutout on the device,
ResNet forward/backward, SGD + one-cycle, EMA; bf16 autocast + channels_last on CUDA, optional torch.compile)
against a named baseline measured in the same run: the same model in a plain eager fp32 NCHW loop with no
augmentation or EMA. FLOPs per image come from torch.utils.flop_counter; the fraction of peak uses the dense
bf16 peak of the GPU (detkit.train.common.BF16_PEAK_TFLOPS). The issue's target: a 70k-image ResNet-18 epoch
in under 10 s on one H100 (>= 7,000 images/s).

    python bench/classify_step.py                      # auto device, recipe defaults
    python bench/classify_step.py --device cpu --batch 32 --steps 3 --warmup 1
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from detkit.classify.augment import AugmentConfig, DeviceLoader
from detkit.classify.config import TrainConfig
from detkit.classify.engine import Step, train_one_epoch
from detkit.classify.models import build_model
from detkit.classify.train import build_optimizer
from detkit.train.common import ModelEMA, peak_bf16_tflops


def flops_per_image(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, amp: bool) -> float:
    """Forward + backward FLOPs of one batch, per image."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        F.cross_entropy(model(x).float(), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(x)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_recipe(model, images, labels, args, device) -> float:
    """Images/s of the detkit step (train_one_epoch over a loader of warmup + steps batches)."""
    cuda = device.type == "cuda"
    model = model.to(device, memory_format=torch.channels_last if cuda else torch.contiguous_format)
    cfg = TrainConfig(data="", out="", batch=args.batch, img_size=args.img_size).resolved()
    opt, sched = build_optimizer(model, cfg, total_steps=10 * (args.steps + args.warmup))
    net = torch.compile(model) if args.compile else model
    step = Step(opt, sched, 0.1, amp=cuda, channels_last=cuda, ema=ModelEMA(model, 0.999), raw_model=model)
    mean, std = torch.full((3,), 0.45), torch.full((3,), 0.25)
    aug = AugmentConfig(cfg.pad, True, cfg.cutout)
    warm = DeviceLoader(
        images[: args.batch * args.warmup], labels[: args.batch * args.warmup], args.batch, mean, std, aug
    )
    timed = DeviceLoader(images, labels, args.batch, mean, std, aug)
    train_one_epoch(net, warm, step, device)  # compile, cudnn autotune, allocator warm-up
    r = train_one_epoch(net, timed, step, device)
    return r["images"] / r["seconds"]


def bench_baseline(model, images, labels, args, device) -> float:
    """Images/s of a plain eager fp32 NCHW loop: no augmentation, EMA or schedule."""
    model = model.to(device, memory_format=torch.contiguous_format).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x_all = images.permute(0, 3, 1, 2).float().div(255).contiguous()

    def run(n_steps: int) -> None:
        for i in range(n_steps):
            x, y = x_all[i * args.batch : (i + 1) * args.batch], labels[i * args.batch : (i + 1) * args.batch]
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    run(args.warmup)
    sync(device)
    t = time.perf_counter()
    run(args.steps)
    sync(device)
    return args.steps * args.batch / (time.perf_counter() - t)


def bench_loader(images, labels, args, device) -> float:
    """Images/s of batching + augmentation alone (no model)."""
    loader = DeviceLoader(
        images,
        labels,
        args.batch,
        torch.zeros(3),
        torch.ones(3),
        AugmentConfig(args.img_size // 8, True, args.img_size // 4),
    )
    sum(len(y) for _, y in loader)  # warm-up pass
    sync(device)
    t = time.perf_counter()
    n = sum(len(y) for _ in range(3) for _, y in loader)
    sync(device)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--img-size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--classes", type=int, default=200)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument(
        "--epoch-images", type=int, default=70_000, help="images per epoch for the epoch-time line"
    )
    args = ap.parse_args()
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    n = args.batch * args.steps
    images = torch.randint(0, 256, (n, args.img_size, args.img_size, 3), dtype=torch.uint8, device=device)
    labels = torch.randint(0, args.classes, (n,), device=device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    peak = peak_bf16_tflops(device)
    model = build_model(args.model, args.classes, "64", args.width).to(device)
    fpi = flops_per_image(model, images[:8].permute(0, 3, 1, 2).float().div(255), labels[:8], amp=False)
    loader_ips = bench_loader(images, labels, args, device)
    base = bench_baseline(
        build_model(args.model, args.classes, "64", args.width), images, labels, args, device
    )
    ours = bench_recipe(build_model(args.model, args.classes, "64", args.width), images, labels, args, device)

    print(f"device: {name}; torch {torch.__version__}; threads {torch.get_num_threads()}")
    print(
        f"model: {args.model} (64x64 stem, width {args.width}), {args.img_size}px, batch {args.batch}, "
        f"{args.steps} timed steps, compile={args.compile}"
    )
    print(f"FLOPs per training image (fwd+bwd): {fpi / 1e9:.2f} GFLOP")
    print(f"augmentation + batching alone     : {loader_ips:,.0f} images/s")
    for label, ips in (("baseline: eager fp32 NCHW, no aug", base), ("detkit recipe step", ours)):
        tf = ips * fpi / 1e12
        frac = f", {100 * tf / peak:.1f}% of {peak:.0f} TFLOP/s bf16 peak" if peak else ""
        print(
            f"{label:34s}: {ips:,.0f} images/s, {tf:.3f} TFLOP/s{frac}; "
            f"{args.epoch_images / ips:,.1f} s per {args.epoch_images:,}-image epoch"
        )
    print(
        f"ratio detkit / baseline: {ours / base:.2f}x; target (< 10 s per 70k-image epoch on H100): "
        f"{'met' if args.epoch_images / ours < 10 else 'not met'} on this device"
    )


if __name__ == "__main__":
    main()
