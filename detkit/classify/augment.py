"""Batches and augmentation on the training device: the images live there as uint8, so the GPU never waits.

Random crop with padding and the horizontal flip are one gather per batch (row and column indices per
sample), cutout is one mask; the same code runs on CPU tensors. Randomness comes from generators seeded
from (seed, epoch, rank) at the start of every epoch, so a resumed run draws exactly what an uninterrupted
one would, whatever happened before.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    """Args: pad: crop padding in pixels; flip: random horizontal flip; cutout: side of the erased square."""

    pad: int = 8
    flip: bool = True
    cutout: int = 16


def epoch_generator(device: torch.device, seed: int, epoch: int, stream: int) -> torch.Generator:
    """A generator on ``device`` seeded from (seed, epoch, stream): order 0, augmentation 1 + rank."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + epoch * 7_919 + stream * 104_729) % (2**63))
    return g


def crop_flip(x: torch.Tensor, pad: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Random ``pad``-padded crop (zero padding) and horizontal flip of a (B, H, W, C) batch, any dtype."""
    b, h, w, _ = x.shape
    dev = x.device
    if pad > 0:
        x = F.pad(x, (0, 0, pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=dev)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=dev)
    rows = dy[:, None] + torch.arange(h, device=dev)
    cols = dx[:, None] + torch.arange(w, device=dev)
    if flip:
        mirrored = torch.rand(b, generator=gen, device=dev) < 0.5
        cols = torch.where(mirrored[:, None], cols.flip(1), cols)
    return x[torch.arange(b, device=dev)[:, None, None], rows[:, :, None], cols[:, None, :]]


def cutout(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Zero one ``size`` square per image of a (B, H, W, C) batch, centred anywhere (DeVries 2017)."""
    b, h, w, _ = x.shape
    dev = x.device
    cy = torch.randint(0, h, (b,), generator=gen, device=dev)
    cx = torch.randint(0, w, (b,), generator=gen, device=dev)
    lo = size // 2
    ys = torch.arange(h, device=dev)[None, :] - (cy[:, None] - lo)
    xs = torch.arange(w, device=dev)[None, :] - (cx[:, None] - lo)
    inside = ((ys >= 0) & (ys < size))[:, :, None] & ((xs >= 0) & (xs < size))[:, None, :]
    return x.masked_fill(inside[..., None], 0)


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """The classifier's one input normalisation: (B, H, W, 3) uint8 -> float (B, 3, H, W) of
    ``(x / 255 - mean) / std`` in channels_last memory (a free permute). Training, evaluation, Grad-CAM
    and :class:`detkit.api.Classifier` all call it."""
    return ((x.float() / 255.0 - mean) / std).permute(0, 3, 1, 2)


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std in [0, 1] units of a (N, H, W, 3) uint8 tensor, in chunks."""
    s = torch.zeros(3, dtype=torch.float64, device=images.device)
    s2 = torch.zeros_like(s)
    for i in range(0, len(images), chunk):
        x = images[i : i + chunk].reshape(-1, 3).double() / 255.0
        s += x.sum(0)
        s2 += (x * x).sum(0)
    n = max(1, images[..., 0].numel())
    mean = s / n
    std = (s2 / n - mean**2).clamp_min(1e-12).sqrt()
    return mean.float(), std.clamp_min(1e-3).float()


class DeviceLoader:
    """Mini-batches from a (N, H, W, 3) uint8 tensor on the device.

    Training batches (``aug`` set) come in a fresh seeded order every epoch, drop the last partial batch
    (so a compiled model never sees a new shape) and, under DDP, each rank takes its slice of every global
    batch. Evaluation batches are in order and complete.

    Args:
        images, labels: the data, already on the device.
        batch: global batch size.
        mean, std: (3,) normalisation in [0, 1] units.
        aug: augmentation for training, or None for evaluation.
        seed: base seed of the order and augmentation generators.
        rank, world: DDP position (0, 1 without DDP).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch: int,
        mean: torch.Tensor,
        std: torch.Tensor,
        aug: AugmentConfig | None = None,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
    ):
        self.images, self.labels, self.batch = images, labels, batch
        self.mean, self.std = mean.to(images.device), std.to(images.device)
        self.aug, self.seed, self.rank, self.world = aug, seed, rank, world
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch if self.aug is not None else -(-n // self.batch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        dev = self.images.device
        if self.aug is None:
            for i in range(0, len(self.images), self.batch):
                yield (
                    normalize(self.images[i : i + self.batch], self.mean, self.std),
                    self.labels[i : i + self.batch],
                )
            return
        order = torch.randperm(
            len(self.images), generator=epoch_generator(dev, self.seed, self.epoch, 0), device=dev
        )
        gen = epoch_generator(dev, self.seed, self.epoch, 1 + self.rank)
        for step in range(len(self)):
            idx = order[step * self.batch : (step + 1) * self.batch][self.rank :: self.world]
            x = crop_flip(self.images[idx], self.aug.pad, self.aug.flip, gen)
            if self.aug.cutout > 0:
                x = cutout(x, self.aug.cutout, gen)
            yield normalize(x, self.mean, self.std), self.labels[idx]
