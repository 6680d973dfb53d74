from __future__ import annotations

import torch

from detkit.classify.augment import AugmentConfig, DeviceLoader, channel_stats, crop_flip, cutout, normalize


def _ramp(b: int = 6, h: int = 5, w: int = 7) -> torch.Tensor:
    """(B, H, W, 3) uint8 images whose pixels are all distinct and non-zero."""
    return (torch.arange(b * h * w * 3) % 250 + 1).reshape(b, h, w, 3).to(torch.uint8)


def test_crop_without_padding_is_identity_or_mirror():
    x = _ramp()
    out = crop_flip(x, pad=0, flip=True, gen=torch.Generator().manual_seed(0))
    flipped = [bool((o == xi.flip(1)).all()) for o, xi in zip(out, x)]
    kept = [bool((o == xi).all()) for o, xi in zip(out, x)]
    assert all(f != k for f, k in zip(flipped, kept))  # each image is exactly one of the two
    assert any(flipped) and any(kept)
    assert (crop_flip(x, 0, False, torch.Generator().manual_seed(0)) == x).all()


def test_padded_crop_is_a_window_of_the_zero_padded_image():
    x = _ramp()
    pad = 2
    out = crop_flip(x, pad=pad, flip=False, gen=torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(x, (0, 0, pad, pad, pad, pad))
    shifts = set()
    for o, p in zip(out, padded):
        hits = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if (p[dy : dy + 5, dx : dx + 7] == o).all()
        ]
        assert len(hits) == 1
        shifts.add(hits[0])
    assert len(shifts) > 1


def test_cutout_zeroes_one_clipped_square():
    x = torch.full((64, 8, 8, 3), 9, dtype=torch.uint8)
    out = cutout(x, 4, torch.Generator().manual_seed(0))
    for img in out:
        zero = img[..., 0] == 0
        rows, cols = zero.any(1).nonzero()[:, 0], zero.any(0).nonzero()[:, 0]
        # a centred 4x4 square clipped at the borders: 2 to 4 rows and columns, filled completely
        assert 2 <= len(rows) <= 4 and 2 <= len(cols) <= 4
        assert zero.sum() == len(rows) * len(cols)
        assert (img[zero] == 0).all() and (img[~zero] == 9).all()


def test_channel_stats_and_normalisation():
    x = torch.zeros(2, 1, 2, 3, dtype=torch.uint8)
    x[..., 0] = torch.tensor([[[0, 255]], [[0, 255]]], dtype=torch.uint8)
    x[..., 1] = 51  # 0.2
    mean, std = channel_stats(x, chunk=1)
    assert torch.allclose(mean, torch.tensor([0.5, 0.2, 0.0]))
    assert torch.allclose(std, torch.tensor([0.5, 1e-3, 1e-3]))  # std floored at 1e-3
    y = normalize(x, mean, std)
    assert y.shape == (2, 3, 1, 2) and y.is_contiguous(memory_format=torch.channels_last)
    assert y[0, 0, 0].tolist() == [-1.0, 1.0]


def test_loader_drops_last_and_reseeds_per_epoch():
    x = _ramp(b=10)
    y = torch.arange(10)
    mean, std = torch.zeros(3), torch.ones(3)
    loader = DeviceLoader(x, y, 4, mean, std, AugmentConfig(pad=1, flip=True, cutout=2), seed=5)
    assert len(loader) == 2
    ep0 = [(a.clone(), b.clone()) for a, b in loader]
    assert [len(b) for _, b in ep0] == [4, 4] and len(set(torch.cat([b for _, b in ep0]).tolist())) == 8
    again = list(loader)
    assert all((a == c).all() and (b == d).all() for (a, b), (c, d) in zip(ep0, again))
    loader.set_epoch(1)
    assert any((b != d).any() for (_, b), (_, d) in zip(ep0, loader))
    # DDP: ranks 0 and 1 take complementary halves of the same global batches
    loader.set_epoch(0)
    r0 = [b for _, b in DeviceLoader(x, y, 4, mean, std, AugmentConfig(), seed=5, rank=0, world=2)]
    r1 = [b for _, b in DeviceLoader(x, y, 4, mean, std, AugmentConfig(), seed=5, rank=1, world=2)]
    for (_, full), a, b in zip(ep0, r0, r1):
        assert sorted(full.tolist()) == sorted(a.tolist() + b.tolist())
    evals = [b.tolist() for _, b in DeviceLoader(x, y, 4, mean, std)]
    assert evals == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
