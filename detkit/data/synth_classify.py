"""Synthetic Tiny-ImageNet-layout classification set (owned by the classify work)."""

from __future__ import annotations

from pathlib import Path


def write_classify_set(out: str | Path, classes: int = 5, per_class: int = 60, seed: int = 0) -> Path:
    raise NotImplementedError("classify synth is not written yet")
