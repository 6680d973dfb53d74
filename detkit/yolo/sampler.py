"""Multi-scale batch sampling for YOLOv2 training: which images form a batch, and at what input size.

YOLOv2 trains at a size drawn from multiples of 32 around the base size (320..608 around 416), changed
every ``every`` batches. The draw comes from an RNG seeded with ``(seed, epoch, batch // every)``, so every
rank, every worker count and every run resumed mid-epoch (``set_epoch(epoch, skip)``) sees the same
sizes in the same order; the image order is the (distributed) sampler's, a function of seed and epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

MULTI_SCALE_SIZES = tuple(range(320, 608 + 1, 32))  # YOLOv2's, around 416


def multi_scale_sizes(img_size: int) -> tuple[int, ...]:
    """Multiples of 32 from 10/13 to 19/13 of ``img_size``: YOLOv2's 320..608 around 416, scaled.

    Anchors are in cells of the ``img_size`` grid, so training far from that size (320..608 around a
    128 px base, say) would put every prior off by the same factor.
    """
    lo = max(32, 32 * round(img_size * 10 / 13 / 32))
    hi = max(lo, 32 * round(img_size * 19 / 13 / 32))
    return tuple(range(lo, hi + 1, 32))


class YoloBatchSampler(torch.utils.data.Sampler):
    """Batches of ``(index, size, epoch)``: the order from a (distributed) sampler, one size per batch.

    With ``multi_scale`` the size is drawn from ``sizes`` every ``every`` batches by an RNG seeded with
    ``(seed, epoch, batch // every)``, so every rank and every resumed run draws the same sizes.

    Args:
        sampler: index order (a ``DistributedSampler``; its ``set_epoch`` is called by ours).
        batch_size: images per batch (per rank).
        drop_last: drop the last incomplete batch.
        img_size: the size when not multi-scale.
        multi_scale: draw sizes from ``sizes``.
        seed: seed of the size draws.
        every: batches between size changes.
        sizes: candidate sizes (multiples of 32; default :func:`multi_scale_sizes` of ``img_size``).
    """

    def __init__(
        self,
        sampler: torch.utils.data.Sampler,
        batch_size: int,
        drop_last: bool,
        img_size: int,
        multi_scale: bool = False,
        seed: int = 0,
        every: int = 10,
        sizes: Sequence[int] | None = None,
    ):
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last
        self.img_size, self.multi_scale, self.seed, self.every = img_size, multi_scale, seed, every
        self.sizes = tuple(sizes) if sizes is not None else multi_scale_sizes(img_size)
        self.epoch = self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Start epoch ``epoch``; ``skip`` leaves out its first batches (a run resumed mid-epoch)."""
        self.epoch, self.skip = epoch, skip
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def size_of_batch(self, batch: int) -> int:
        if not self.multi_scale:
            return self.img_size
        rng = np.random.default_rng((self.seed, self.epoch, batch // self.every, 0x5CA1E))
        return int(rng.choice(self.sizes))

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        batch: list[int] = []
        n = 0
        for idx in self.sampler:
            batch.append(int(idx))
            if len(batch) == self.batch_size:
                if n >= self.skip:
                    size = self.size_of_batch(n)
                    yield [(i, size, self.epoch) for i in batch]
                batch, n = [], n + 1
        if batch and not self.drop_last and n >= self.skip:
            size = self.size_of_batch(n)
            yield [(i, size, self.epoch) for i in batch]

    def __len__(self) -> int:
        n = len(self.sampler)
        return max(
            0, (n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)) - self.skip
        )
