"""The data of a classification run: the split, and the decoded images as tensors on the device.

The split is made once (seeded, stratified, or the official train/ vs val/ folders; cut to ``--limit``
by a seeded pick) and saved in RUN/split.json, which ``--resume`` reads back, so a resumed run sees the
very same images. Images are decoded once into the shared cache of :func:`detkit.classify.data.decode_cache`
(rank 0 decodes, the other ranks wait at a barrier), or directly with ``--limit`` so a smoke run
neither waits for nor replaces the whole set's cache; then the whole split moves to the device.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from detkit.classify import data as D
from detkit.classify.config import TrainConfig
from detkit.console import info
from detkit.errors import OptionError
from detkit.train.common import barrier


@dataclass
class Prepared:
    cat: D.Catalog
    train_idx: np.ndarray
    val_idx: np.ndarray
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor


def _split(
    cfg: TrainConfig, cat: D.Catalog, run: Path, reuse: bool, rank: int
) -> tuple[np.ndarray, np.ndarray]:
    """The split: read back from run/split.json on resume, else made (and cut to --limit) and saved."""
    split_file = run / "split.json"
    if reuse and split_file.exists():
        return D.load_split(split_file, cat)
    train_idx, val_idx = D.make_split(cat, cfg.val, cfg.split, cfg.seed)
    if cfg.limit is not None:  # a seeded pick: the first N of a class-sorted catalog would be one class
        rng = np.random.default_rng(cfg.seed)
        train_idx, val_idx = (np.sort(rng.permutation(i)[: cfg.limit]) for i in (train_idx, val_idx))
    if len(train_idx) < cfg.batch:  # checked before the decode, which may take minutes
        raise OptionError("batch", f"{cfg.batch} is larger than the training set ({len(train_idx)} images)")
    if rank == 0:
        meta = {"mode": cfg.val, "train_fraction": cfg.split, "seed": cfg.seed, "limit": cfg.limit}
        D.save_split(split_file, cat, train_idx, val_idx, **meta)
    return train_idx, val_idx


def _decoded(cfg: TrainConfig, cat: D.Catalog, idx: np.ndarray, rank: int, world: int):
    """``idx -> (N, S, S, 3) uint8`` images: from the shared decoded cache, or with --limit decoded
    directly (a smoke run neither waits for nor replaces the whole set's cache)."""
    if cfg.limit is not None:
        with ThreadPoolExecutor(cfg.workers) as ex:
            images = dict(
                zip(
                    idx.tolist(), ex.map(lambda i: D.decode_image(cat.root / cat.files[i], cfg.img_size), idx)
                )
            )
        return lambda sel: np.stack([images[i] for i in sel.tolist()])
    if rank > 0:
        barrier(world)  # rank 0 decodes; the others then find its cache
    cache, reused = D.decode_cache(cat, cfg.img_size, cfg.cache_dir, cfg.workers)
    if rank == 0:
        barrier(world)
    if reused and rank == 0:
        info(f"reusing decoded images from {cfg.cache_dir}")
    return lambda sel: np.ascontiguousarray(cache[sel])


def prepare_data(
    cfg: TrainConfig, device: torch.device, run: Path, reuse_split: bool, rank: int = 0, world: int = 1
) -> Prepared:
    """Catalog, split (made and saved, or read back from run/split.json) and decoded tensors on ``device``."""
    cat = D.scan_dataset(cfg.data)
    train_idx, val_idx = (np.sort(i) for i in _split(cfg, cat, run, reuse_split, rank))
    images = _decoded(cfg, cat, np.union1d(train_idx, val_idx), rank, world)

    def take(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(images(idx)).to(device), torch.from_numpy(cat.labels[idx]).to(device)

    tx, ty = take(train_idx)
    vx, vy = take(val_idx)
    return Prepared(cat, train_idx, val_idx, tx, ty, vx, vy)
