"""Pieces every detkit training loop shares (detector and classifier): device choice, torchrun set-up,
the weight EMA, and the global RNG state a checkpoint carries so ``--resume`` continues bit for bit.
"""

from __future__ import annotations

import copy
import os
import random
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from detkit.errors import OptionError


def is_main_process() -> bool:
    """Rank 0 of a torchrun launch, or a plain process (RANK unset): the one that writes files."""
    return os.environ.get("RANK", "0") == "0"


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """The optimizer's two parameter groups: weight decay on conv / linear weights (ndim > 1), none on
    norm weights and biases; frozen parameters (``requires_grad`` False) are left out of both.

    Both trainers build their optimizer from it (the classifier's copy had no ``requires_grad`` filter;
    it freezes nothing, so its groups are unchanged).
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a usage error (exit 2).

    Args:
        name: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        local_rank: the GPU of this process under torchrun (used for plain ``cuda``).
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise OptionError("device", "cuda: no CUDA GPU is available (use cpu)")
        return torch.device("cuda", local_rank if name == "cuda" else torch.device(name).index)
    if name != "cpu":
        raise OptionError("device", f"must be auto, cpu or cuda, got {name!r}")
    return torch.device("cpu")


def dist_init(device: str) -> tuple[int, int, int]:
    """(rank, world size, local rank); starts the process group when torchrun set WORLD_SIZE > 1.

    NCCL on CUDA, gloo otherwise (so a CPU ``torchrun --nproc_per_node 2`` works too).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        use_nccl = device != "cpu" and torch.cuda.is_available()
        if use_nccl:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if use_nccl else "gloo")
    return dist.get_rank(), world, local


def barrier(world: int) -> None:
    """Wait for every rank (a no-op in a single process)."""
    if world > 1:
        torch.distributed.barrier()


class ModelEMA:
    """Exponential moving average of a model's weights and buffers, used for evaluation.

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` after n updates, so short runs are not
    dominated by the random initial weights. Integer buffers (BN's ``num_batches_tracked``) are copied.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9998):
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema, cur = [], []
        for e, m in zip(self.module.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                ema.append(e)
                cur.append(m.detach())
            else:
                e.copy_(m)
        torch._foreach_lerp_(ema, cur, 1.0 - d)  # e += (1 - d) * (m - e), one fused call

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "decay": self.decay, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.decay, self.updates = state["decay"], state["updates"]


def rng_state() -> dict[str, Any]:
    """Every global RNG's state: python, numpy (as plain lists, so ``weights_only`` loads work),
    torch, CUDA."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [name, keys.tolist(), pos, has_gauss, gauss],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# Dense bf16 tensor-core peaks in TFLOP/s (vendor data sheets, no sparsity), keyed by a substring of
# torch.cuda.get_device_name(); the first match wins, so the more specific names come first.
BF16_PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("GH200", 989.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("H800", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("RTX 4090", 165.0),
    ("RTX 3090", 71.0),
    ("V100", 125.0),
)


def peak_bf16_tflops(device: torch.device) -> float | None:
    """The GPU's dense bf16 peak, for benchmarks' fraction-of-peak; None on CPU or an unknown GPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in BF16_PEAK_TFLOPS if key in name), None)
