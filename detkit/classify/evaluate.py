"""`detkit classify eval`: top-1/top-5, per-class accuracy, most-confused classes, misclassified gallery
with Grad-CAM overlays, all recorded in summary.json (kind ``classify.eval``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from detkit.classify import data as D
from detkit.classify.augment import DeviceLoader, normalize
from detkit.classify.engine import accuracy_stats, predict
from detkit.classify.gradcam import check_cam_layer, grad_cam, overlay
from detkit.classify.models import build_model, checkpoint_weights
from detkit.classify.runfiles import load_checkpoint
from detkit.console import info, warn
from detkit.errors import DetkitError, InputError
from detkit.io import atomic_path, check_out_folder
from detkit.runs import record_run, write_summary
from detkit.training import resolve_device

SUBSETS = ("val", "official", "all")


def _select(cat: D.Catalog, subset: str, weights: Path) -> np.ndarray:
    if subset == "all":
        return np.arange(len(cat))
    if subset == "official":
        if not (cat.group == D.VAL).any():
            raise InputError(cat.root, None, "--subset official needs a labelled val folder")
        return np.flatnonzero(cat.group == D.VAL)
    split = weights.parent / "split.json"
    if not split.exists():
        raise InputError(
            split,
            None,
            "--subset val needs the run's split.json beside the weights (or use --subset official|all)",
        )
    return np.sort(D.load_split(split, cat)[1])


def _save_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), rgb[..., ::-1]):
            raise DetkitError(f"{path}: cannot write image")


def _captioned(rgb: np.ndarray, lines: list[str], side: int = 256) -> np.ndarray:
    """The image scaled to ``side`` px with a white caption band above it."""
    import cv2

    img = cv2.resize(
        rgb, (side, side), interpolation=cv2.INTER_NEAREST if rgb.shape[0] <= side // 4 else cv2.INTER_LINEAR
    )
    band = np.full((18 * len(lines) + 6, side, 3), 255, np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(
            band, text[:34], (4, 16 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA
        )
    return np.vstack([band, img])


def plot_confusion(path: Path, confusion: np.ndarray, names: list[str], k: int = 15) -> list[int]:
    """Row-normalised confusion among the ``k`` classes with the most off-diagonal mass; returns them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    off = confusion - np.diag(np.diag(confusion))
    mass = off.sum(0) + off.sum(1)
    pick = sorted(np.argsort(-mass, kind="stable")[: min(k, len(names))].tolist())
    sub = confusion[np.ix_(pick, pick)].astype(float)
    rows = confusion[pick].sum(1, keepdims=True).clip(min=1)
    frac = sub / rows
    labels = [names[i][:18] for i in pick]
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * len(pick), 1.0 + 0.45 * len(pick)))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(pick)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(pick)), labels, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=f"most-confused {len(pick)} classes (row share)")
    for (i, j), v in np.ndenumerate(sub):
        if v:
            ax.text(
                j,
                i,
                int(v),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if frac[i, j] > 0.5 else "black",
            )
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return pick


def evaluate_run(
    weights: str | Path,
    out: str | Path,
    data: str | Path | None = None,
    subset: str = "val",
    gallery: int = 16,
    cam_layer: str = "layer3",
    device: str = "auto",
    batch: int = 256,
    cache_dir: str | Path | None = None,
    workers: int = 8,
) -> dict:
    """Evaluate a classify checkpoint and write OUT/{summary.json, confusion.png, gallery/, gradcam/}.

    Args:
        weights: best.pt / last.pt of a run.
        out: output folder.
        data: data root [default: the run's].
        subset: ``val`` (the run's validation split), ``official`` (the val folder) or ``all``.
        gallery: number of misclassified images to draw (most confident mistakes first).
        cam_layer: layer Grad-CAM explains.
        device, batch, cache_dir, workers: as in training.
    Returns: dict with top1, top5, loss, images, misclassified and the summary path.
    """
    weights, out = Path(weights), check_out_folder(out)
    if subset not in SUBSETS:
        raise DetkitError(f"--subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
    ckpt = load_checkpoint(weights)
    cfg = ckpt["config"]
    cat = D.scan_dataset(data or cfg["data"])
    if cat.classes != ckpt["classes"]:
        raise InputError(
            cat.root, None, f"classes differ from the {len(ckpt['classes'])} the model was trained on"
        )
    idx = _select(cat, subset, weights)
    if subset == "official" and cfg.get("val") == "split":
        warn(
            "this run's --split pooled train/ and val/, so it trained on part of the official val images: "
            "the official-val figure is optimistic (train with --val official for a clean one)"
        )
    dev = resolve_device(device)
    size = cfg["img_size"]
    if cache_dir is None:  # the run's cache when it is still there, else one beside the output
        run_cache = cfg.get("cache_dir")
        cache_dir = run_cache if run_cache and Path(run_cache).is_dir() else out.parent / ".detkit-cache"
    cache, _ = D.decode_cache(cat, size, cache_dir, workers)
    images = np.ascontiguousarray(cache[idx])
    x = torch.from_numpy(images).to(dev)
    y = torch.from_numpy(cat.labels[idx]).to(dev)
    mean, std = torch.tensor(ckpt["mean"]), torch.tensor(ckpt["std"])
    model = build_model(cfg["model"], len(cat.classes), cfg["stem"], cfg.get("width", 1.0))
    model.load_state_dict(checkpoint_weights(ckpt))
    model.to(dev).eval()
    if gallery:
        check_cam_layer(model, cam_layer, size)
    logits, targets = predict(model, DeviceLoader(x, y, batch, mean, std), dev)
    stats = accuracy_stats(logits, targets)
    probs = logits.softmax(1)
    pred = stats["pred"]
    conf = probs.gather(1, pred[:, None])[:, 0]
    names = cat.names

    out.mkdir(parents=True, exist_ok=True)
    confusion = stats["confusion"]
    counts = confusion.sum(1)
    per_class = [
        {
            "class": cat.classes[c],
            "name": names[c],
            "images": int(counts[c]),
            "correct": int(confusion[c, c]),
            "top1": float(confusion[c, c] / counts[c]) if counts[c] else None,
        }
        for c in range(len(cat.classes))
    ]
    per_class.sort(key=lambda r: (r["top1"] is None, r["top1"] if r["top1"] is not None else 0.0, r["class"]))
    picked = plot_confusion(out / "confusion.png", confusion, names)

    wrong = torch.nonzero(pred != targets)[:, 0]
    wrong = wrong[torch.argsort(-conf[wrong], stable=True)][:gallery]
    rows, gal, cams = [], [], []
    if len(wrong):
        sel = wrong.to(dev)
        xb = normalize(x[sel], mean.to(dev), std.to(dev)).contiguous()
        maps, _, _ = grad_cam(model, xb, cam_layer, target=pred[wrong].to(dev))
        maps = maps.cpu().numpy()
        for r, (i, cam) in enumerate(zip(wrong.tolist(), maps)):
            t, p = int(targets[i]), int(pred[i])
            caption = [f"true: {names[t]}", f"pred: {names[p]} ({100 * conf[i]:.0f}%)"]
            g, c = f"gallery/{r:03d}.png", f"gradcam/{r:03d}.png"
            _save_png(out / g, _captioned(images[i], caption))
            _save_png(out / c, _captioned(overlay(images[i], cam), caption + [f"Grad-CAM {cam_layer}"]))
            gal.append(g)
            cams.append(c)
            rows.append(
                {
                    "file": cat.files[idx[i]],
                    "true": names[t],
                    "pred": names[p],
                    "confidence": float(conf[i]),
                    "gallery": g,
                    "gradcam": c,
                }
            )
    metrics = {
        "top1": stats["top1"],
        "top5": stats["top5"],
        "loss": stats["loss"],
        "images": len(idx),
        "misclassified": int((pred != targets).sum()),
    }
    record_run(
        out,
        {
            "weights": str(weights),
            "data": str(cat.root),
            "subset": subset,
            "gallery": gallery,
            "cam_layer": cam_layer,
            "device": str(dev),
            "batch": batch,
        },
        None,
        [weights],
    )
    summary = write_summary(
        out,
        "classify.eval",
        f"{cfg['model']} on {cat.root.name} ({subset})",
        metrics=metrics,
        tables={"per_class": per_class, "misclassified": rows},
        plots={"confusion": "confusion.png"},
        galleries={"misclassified": gal, "gradcam": cams},
        weights=str(weights),
        subset=subset,
        cam_layer=cam_layer,
        num_classes=len(cat.classes),
        most_confused=[cat.classes[i] for i in picked],
    )
    info(
        f"top-1 {100 * metrics['top1']:.2f}%  top-5 {100 * metrics['top5']:.2f}% on {len(idx)} images; "
        f"wrote {out}"
    )
    return {**metrics, "summary": str(summary)}
