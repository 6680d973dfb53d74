"""Assign ground-truth boxes to YOLOv2 predictions, for the whole batch at once (no loop over boxes).

A ground-truth box (class, cx, cy, w, h), normalised to the network input, belongs to

    the cell (j, i) that holds its centre:   i = floor(cx * S_w), j = floor(cy * S_h)
    the anchor a whose (w, h) matches best:  argmax_a wh_iou((w * S_w, h * S_h), anchor_a)  (grid cells)

and its regression targets are the ones YOLOv2 learns:

    tx = cx * S_w - i,  ty = cy * S_h - j            (compared with sigmoid(t_x), sigmoid(t_y))
    tw = log(w * S_w / p_w),  th = log(h * S_h / p_h)  (compared with t_w, t_h)

When several boxes land on the same (image, anchor, cell), the LAST one in the image's list wins,
deterministically (darknet overwrites in the same order); the others get no prediction of their own
but still count for the ignore rule. Boxes with w <= 0 or h <= 0 are skipped.

Try it: python -m pytest tests/yolo/test_targets.py -q
"""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import pad_sequence

from detkit.boxes import wh_iou


def pad_gt(
    gt: list[torch.Tensor] | torch.Tensor, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack per-image ground truth (n_i, 5) into (B, M, 5) zeros-padded, with a (B, M) validity mask.

    Args:
        gt: one (n_i, 5) tensor per image, rows (class_index, cx, cy, w, h); or an already padded
            (B, M, 5) tensor whose padding rows have w = h = 0.
        device: where the result goes (default: the first tensor's device).
    """
    device = device if device is not None else (gt[0].device if len(gt) else torch.device("cpu"))
    if isinstance(gt, torch.Tensor):
        padded = gt.to(device=device, dtype=torch.float32).reshape(len(gt), -1, 5)
        return padded, (padded[..., 3] > 0) & (padded[..., 4] > 0)
    # one cheap call per image (dtype/device no-ops for loader output); the padding itself is C++
    gt = [g.to(device=device, dtype=torch.float32).reshape(-1, 5) for g in gt]
    if not gt or max(len(g) for g in gt) == 0:
        return torch.zeros(len(gt), 0, 5, device=device), torch.zeros(
            len(gt), 0, dtype=torch.bool, device=device
        )
    padded = pad_sequence(gt, batch_first=True)  # (B, M, 5)
    n = torch.tensor([len(g) for g in gt], device=device)
    mask = torch.arange(padded.shape[1], device=device)[None, :] < n[:, None]  # (B, M)
    mask &= (padded[..., 3] > 0) & (padded[..., 4] > 0)
    return padded, mask


def build_targets(
    gt: list[torch.Tensor] | torch.Tensor, anchors: torch.Tensor, grid_hw: tuple[int, int]
) -> dict[str, torch.Tensor]:
    """Targets for a batch; positives come as flat index lists, one entry per responsible prediction.

    Args:
        gt: one (n_i, 5) tensor per image, rows (class_index, cx, cy, w, h) normalised to 0..1, or
            a padded (B, M, 5) tensor (padding rows with w = h = 0).
        anchors: (A, 2) anchor w, h in grid cells.
        grid_hw: (S_h, S_w) of the output grid.

    Returns:
        dict with, for the K responsible predictions: ``b``, ``a``, ``j``, ``i`` (long, K) indices into
        raw[B, A, S_h, S_w]; ``txy`` (K, 2) in 0..1; ``twh`` (K, 2) log-space; ``wh`` (K, 2) normalised
        w, h; ``box`` (K, 4) normalised cxcywh; ``cls`` (K,) long; and for the ignore rule
        ``gt_boxes`` (B, M, 4) normalised cxcywh with ``gt_mask`` (B, M).
    """
    S_h, S_w = grid_hw
    A = anchors.shape[0]
    device = gt[0].device if len(gt) else anchors.device
    padded, mask = pad_gt(gt, device)  # (B, M, 5), (B, M)
    anchors = anchors.to(device=device, dtype=torch.float32)
    B, M = mask.shape

    b_idx = torch.arange(B, device=device)[:, None].expand(B, M)[
        mask
    ]  # (K0,) in image order, then list order
    g = padded[mask]  # (K0, 5)
    cls, cxcy, wh = g[:, 0].long(), g[:, 1:3], g[:, 3:5]
    grid_wh = torch.tensor([S_w, S_h], device=device, dtype=torch.float32)
    cell_xy = cxcy * grid_wh  # (K0, 2) centre in grid cells
    ij = cell_xy.floor().long()
    i = ij[:, 0].clamp(0, S_w - 1)
    j = ij[:, 1].clamp(0, S_h - 1)
    wh_cells = wh * grid_wh  # (K0, 2)
    a = wh_iou(wh_cells, anchors).argmax(dim=1) if len(g) else torch.zeros(0, dtype=torch.long, device=device)

    # last one wins: keep a box only if no later box (in flat order) has the same (b, a, j, i)
    key = ((b_idx * A + a) * S_h + j) * S_w + i  # (K0,)
    pos = torch.arange(len(key), device=device)
    uniq, inverse = torch.unique(key, return_inverse=True)
    last = torch.full((len(uniq),), -1, dtype=torch.long, device=device)
    last = last.scatter_reduce(0, inverse, pos, reduce="amax")
    keep = last[inverse] == pos  # (K0,) bool

    txy = cell_xy - torch.stack([i, j], dim=1).float()  # (K0, 2) in 0..1 (1 only at the far edge)
    twh = torch.log(wh_cells / anchors[a])  # (K0, 2)
    return {
        "b": b_idx[keep],
        "a": a[keep],
        "j": j[keep],
        "i": i[keep],
        "txy": txy[keep],
        "twh": twh[keep],
        "wh": wh[keep],
        "box": g[keep, 1:5],
        "cls": cls[keep],
        "gt_boxes": padded[..., 1:5],
        "gt_mask": mask,
    }


def build_targets_multi(
    gt: list[torch.Tensor] | torch.Tensor,
    anchors: torch.Tensor,
    grid_hw: tuple[int, int],
    anchor_iou: float = 0.3,
    neighbours: bool = True,
) -> dict[str, torch.Tensor]:
    """Several positives per ground-truth box (the ``modern`` recipe; YOLOv5's assignment, IoU-gated).

    A box (class, cx, cy, w, h) is assigned to

        every anchor a with wh_iou((w S_w, h S_h), anchor_a) >= anchor_iou, and always its best anchor;
        its own cell (i, j) and, when ``neighbours``, the two neighbouring cells nearest its centre:
        i - 1 when the centre lies in the left half of its cell (frac(cx S_w) < .5), else i + 1 (inside
        the grid), and likewise j - 1 / j + 1 for y.

    A neighbour's prediction must reach the centre 0.5..1.5 cells away from its corner, so ``neighbours``
    needs the decoding ``xy_scale = 2`` (``YoloConfig.xy_scale``). No box is dropped: two boxes on the same
    (image, anchor, cell) both stay (the loss takes the best IoU for the objectness target). Boxes with
    w <= 0 or h <= 0 are skipped.

    Args:
        gt: one (n_i, 5) tensor per image, rows (class_index, cx, cy, w, h) normalised to 0..1, or
            a padded (B, M, 5) tensor.
        anchors: (A, 2) anchor w, h in grid cells.
        grid_hw: (S_h, S_w) of the output grid.
        anchor_iou: shape IoU from which an anchor is a positive too.
        neighbours: add the two neighbouring cells.

    Returns:
        dict with, for the K positives: ``b``, ``a``, ``j``, ``i`` (long, K) indices into
        raw[B, A, S_h, S_w]; ``box`` (K, 4) normalised cxcywh of the ground truth; ``cls`` (K,) long.
    """
    S_h, S_w = grid_hw
    device = gt[0].device if len(gt) else anchors.device
    padded, mask = pad_gt(gt, device)
    anchors = anchors.to(device=device, dtype=torch.float32)
    B, M = mask.shape
    b_idx = torch.arange(B, device=device)[:, None].expand(B, M)[mask]
    g = padded[mask]  # (K0, 5)
    grid_wh = torch.tensor([S_w, S_h], device=device, dtype=torch.float32)
    shape_iou = wh_iou(g[:, 3:5] * grid_wh, anchors)  # (K0, A)
    ok = shape_iou >= anchor_iou
    if len(g):
        ok[torch.arange(len(g), device=device), shape_iou.argmax(dim=1)] = True
    n, a = ok.nonzero(as_tuple=True)  # (K1,) box, anchor; in box order, then anchor order
    cell_xy = g[n, 1:3] * grid_wh  # (K1, 2)
    ij = cell_xy.floor().long()
    i0 = ij[:, 0].clamp(0, S_w - 1)
    j0 = ij[:, 1].clamp(0, S_h - 1)
    cand_i, cand_j, cand_ok = [i0], [j0], [torch.ones_like(i0, dtype=torch.bool)]
    if neighbours:
        frac = cell_xy - ij.float()
        di = torch.where(frac[:, 0] < 0.5, -1, 1)
        dj = torch.where(frac[:, 1] < 0.5, -1, 1)
        cand_i += [i0 + di, i0]
        cand_j += [j0, j0 + dj]
        cand_ok += [(i0 + di >= 0) & (i0 + di < S_w), (j0 + dj >= 0) & (j0 + dj < S_h)]
    i, j, keep = torch.cat(cand_i), torch.cat(cand_j), torch.cat(cand_ok)
    n, a = n.repeat(len(cand_i)), a.repeat(len(cand_i))
    return {
        "b": b_idx[n][keep],
        "a": a[keep],
        "j": j[keep],
        "i": i[keep],
        "box": g[n][keep][:, 1:5],
        "cls": g[n][keep][:, 0].long(),
    }
