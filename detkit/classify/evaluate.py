"""`detkit classify eval`: top-1/top-5, per-class accuracy, most-confused classes, misclassified gallery
with Grad-CAM overlays, all recorded in summary.json (kind ``classify.eval``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from detkit.classify import data as D
from detkit.classify.augment import DeviceLoader, normalize
from detkit.classify.checkpoint import load_checkpoint, load_classifier
from detkit.classify.engine import accuracy_stats, predict
from detkit.classify.gradcam import check_cam_layer, grad_cam, overlay
from detkit.classify.models import build_model, checkpoint_weights
from detkit.console import info, warn
from detkit.deploy.export import torch_threads
from detkit.deploy.formats import TORCHSCRIPT_SUFFIXES
from detkit.deploy.runtime import Exported
from detkit.errors import DetkitError, InputError, OptionError
from detkit.io import atomic_path, check_out_folder
from detkit.train.common import resolve_device
from detkit.train.runs import record_run, write_summary

SUBSETS = ("val", "official", "all")
EXPORT_SUFFIXES = (".onnx", *TORCHSCRIPT_SUFFIXES)


def _select(cat: D.Catalog, subset: str, weights: Path) -> np.ndarray:
    if subset == "all":
        return np.arange(len(cat))
    if subset == "official":
        if not (cat.group == D.VAL).any():
            raise InputError(cat.root, None, "subset 'official' needs a labelled val folder")
        return np.flatnonzero(cat.group == D.VAL)
    split = weights.parent / "split.json"
    if not split.exists():
        raise InputError(
            split,
            None,
            "subset 'val' needs the run's split.json beside the weights (or use subset 'official' or 'all')",
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


@dataclass
class _Eval:
    """What evaluation works on: the checkpoint's config, the selected images, the model on the device."""

    cfg: dict
    cat: D.Catalog
    idx: np.ndarray  # selected catalog rows
    images: np.ndarray  # (N, S, S, 3) uint8
    x: torch.Tensor  # images on the device
    y: torch.Tensor  # labels on the device
    mean: torch.Tensor
    std: torch.Tensor
    model: torch.nn.Module | None  # None for an export: it runs through ``exported``
    dev: torch.device
    cache: dict | None  # the decoded-image cache used: path, bytes, reused (None: decoded in memory)
    exported: Exported | None = None


def _pick(idx: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """``limit`` images of ``idx`` by a seeded pick (the first N of a class-sorted catalog would be one
    class), in catalog order; all of them without a limit."""
    if limit is None or limit >= len(idx):
        return idx
    return np.sort(np.random.default_rng(seed).permutation(idx)[:limit])


def _images(cat: D.Catalog, idx: np.ndarray, size: int, cache_dir: Path, cache: bool, workers: int):
    """The scored images, decoding only those: from the training set's cache when it is there, else
    decoded and cached (``classify-eval-*`` in ``cache_dir``) or, without ``cache``, decoded in memory.
    Returns (images, cache record for the summary)."""
    whole = D.cached(cat, size, cache_dir)
    if whole is not None:
        path = D.cache_path(cat, size, cache_dir, "classify")[0]
        return np.ascontiguousarray(whole[idx]), {
            "path": str(path),
            "bytes": path.stat().st_size,
            "reused": True,
        }
    sub = D.subset(cat, idx)
    if not cache:
        return D.decode_images(sub, size, workers), None
    arr, reused = D.decode_cache(sub, size, cache_dir, workers, family="classify-eval")
    path = D.cache_path(sub, size, cache_dir, "classify-eval")[0]
    # a copy: torch will not wrap the read-only memory map
    return np.array(arr), {"path": str(path), "bytes": path.stat().st_size, "reused": reused}


def _prepare(
    weights: Path,
    data,
    subset: str,
    device: str,
    cache_dir,
    workers: int,
    threads: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    cache: bool = True,
) -> _Eval:
    if subset not in SUBSETS:
        raise DetkitError(f"subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
    if limit is not None and limit < 1:
        raise OptionError("limit", f"must be at least 1, got {limit}")
    exported = None
    if weights.suffix.lower() in EXPORT_SUFFIXES:  # an export carries what eval needs in its metadata
        exported = load_classifier(weights, device, threads)
        ckpt = {k: exported.meta[k] for k in ("classes", "mean", "std")}
        cfg = exported.meta["config"]
    else:
        ckpt = load_checkpoint(weights)
        cfg = ckpt["config"]
    if data is None and not cfg.get("data"):
        raise DetkitError(
            f"{weights}: does not name its training data; give its data folder (data=DIR)",
            flags={"(data=DIR)": "(--data DIR)"},
        )
    cat = D.scan_dataset(data or cfg["data"])
    if cat.classes != ckpt["classes"]:
        raise InputError(
            cat.root, None, f"classes differ from the {len(ckpt['classes'])} the model was trained on"
        )
    idx = _pick(_select(cat, subset, weights), limit, seed)
    if subset == "official" and cfg.get("val") == "split":
        warn(
            "this run's val split pooled train/ and val/, so it trained on part of the official val images: "
            "the official-val figure is optimistic (train with val 'official' for a clean one)"
        )
    dev = resolve_device(device) if exported is None else torch.device("cpu")
    if exported is None:
        torch_threads(threads, dev)
    if cache_dir is None:  # the one cache folder: the run's (in its config), or beside the run if it moved
        run_cache = Path(cfg.get("cache_dir") or weights.parent.parent / ".detkit-cache")
        cache_dir = run_cache if run_cache.parent.is_dir() else weights.parent.parent / ".detkit-cache"
    images, cache_rec = _images(cat, idx, cfg["img_size"], Path(cache_dir), cache, workers)
    x, y = torch.from_numpy(images).to(dev), torch.from_numpy(cat.labels[idx]).to(dev)
    mean, std = torch.tensor(ckpt["mean"]), torch.tensor(ckpt["std"])
    if exported is not None:
        return _Eval(cfg, cat, idx, images, x, y, mean, std, None, dev, cache_rec, exported)
    model = build_model(cfg["model"], len(cat.classes), cfg["stem"], cfg.get("width", 1.0))
    model.load_state_dict(checkpoint_weights(ckpt))
    return _Eval(cfg, cat, idx, images, x, y, mean, std, model.to(dev).eval(), dev, cache_rec)


def _per_class(confusion: torch.Tensor, cat: D.Catalog) -> list[dict]:
    """Accuracy of every class, worst first (classes without images last)."""
    counts = confusion.sum(1)
    rows = [
        {
            "class": cat.classes[c],
            "name": cat.names[c],
            "images": int(counts[c]),
            "correct": int(confusion[c, c]),
            "top1": float(confusion[c, c] / counts[c]) if counts[c] else None,
        }
        for c in range(len(cat.classes))
    ]
    rows.sort(key=lambda r: (r["top1"] is None, r["top1"] if r["top1"] is not None else 0.0, r["class"]))
    return rows


def _mistakes(
    e: _Eval, out: Path, wrong: torch.Tensor, pred, targets, conf, cam_layer: str
) -> tuple[list, list, list]:
    """The most confident mistakes drawn with captions and Grad-CAM overlays: (rows, gallery, gradcam)."""
    rows, gal, cams = [], [], []
    if not len(wrong):
        return rows, gal, cams
    names = e.cat.names
    xb = normalize(e.x[wrong.to(e.dev)], e.mean.to(e.dev), e.std.to(e.dev)).contiguous()
    maps, _, _ = grad_cam(e.model, xb, cam_layer, target=pred[wrong].to(e.dev))
    for r, (i, cam) in enumerate(zip(wrong.tolist(), maps.cpu().numpy())):
        t, p = int(targets[i]), int(pred[i])
        caption = [f"true: {names[t]}", f"pred: {names[p]} ({100 * conf[i]:.0f}%)"]
        g, c = f"gallery/{r:03d}.png", f"gradcam/{r:03d}.png"
        _save_png(out / g, _captioned(e.images[i], caption))
        _save_png(out / c, _captioned(overlay(e.images[i], cam), caption + [f"Grad-CAM {cam_layer}"]))
        gal.append(g)
        cams.append(c)
        rows.append(
            {
                "file": e.cat.files[e.idx[i]],
                "true": names[t],
                "pred": names[p],
                "confidence": float(conf[i]),
                "gallery": g,
                "gradcam": c,
            }
        )
    return rows, gal, cams


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
    threads: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    cache: bool = True,
) -> dict:
    """Evaluate a classify checkpoint and write OUT/{summary.json, confusion.png, gallery/, gradcam/}.

    Args:
        weights: best.pt / last.pt of a run.
        out: output folder.
        data: data root [default: the run's].
        subset: ``val`` (the run's validation split), ``official`` (the val folder) or ``all``.
        gallery: number of misclassified images to draw (most confident mistakes first).
        cam_layer: layer Grad-CAM explains.
        device, batch, workers: as in training.
        cache_dir: the decoded-image cache folder (default: the one the run trained with). The training
            set's cache is read when present; otherwise only the scored images are decoded, into
            ``classify-eval-*.npy`` there (one per data root and size, replaced when the selection changes).
        threads: CPU threads (None: the trainers' policy).
        limit: score a seeded pick of this many images of the subset.
        seed: the pick's seed.
        cache: False: decode the scored images in memory and write no cache.

    ``weights`` may be an export of ``detkit classify export`` (.onnx on onnxruntime, .ts): the same
    metrics, without the gallery (Grad-CAM needs the checkpoint).

    Returns: dict with top1, top5, loss, images, misclassified, cache (path, bytes, reused; None without
        one) and the summary path.
    """
    weights, out = Path(weights), check_out_folder(out)
    e = _prepare(weights, data, subset, device, cache_dir, workers, threads, limit, seed, cache)
    if e.exported is not None:
        if gallery:
            info("an exported model has no Grad-CAM: no gallery (evaluate the checkpoint for one)")
            gallery = 0
        run = e.exported.run
        logits = torch.from_numpy(
            np.concatenate([run(e.images[i : i + batch])[0] for i in range(0, len(e.images), batch)])
        )
        targets = e.y.cpu()
    else:
        if gallery:
            check_cam_layer(e.model, cam_layer, e.cfg["img_size"])
        logits, targets = predict(e.model, DeviceLoader(e.x, e.y, batch, e.mean, e.std), e.dev)
    stats = accuracy_stats(logits, targets)
    pred = stats["pred"]
    conf = logits.softmax(1).gather(1, pred[:, None])[:, 0]

    out.mkdir(parents=True, exist_ok=True)
    picked = plot_confusion(out / "confusion.png", stats["confusion"], e.cat.names)
    wrong = torch.nonzero(pred != targets)[:, 0]
    wrong = wrong[torch.argsort(-conf[wrong], stable=True)][:gallery]
    rows, gal, cams = _mistakes(e, out, wrong, pred, targets, conf, cam_layer)
    metrics = {
        "top1": stats["top1"],
        "top5": stats["top5"],
        "loss": stats["loss"],
        "images": len(e.idx),
        "misclassified": int((pred != targets).sum()),
    }
    record_run(
        out,
        {
            "weights": str(weights),
            "data": str(e.cat.root),
            "subset": subset,
            "gallery": gallery,
            "cam_layer": cam_layer,
            "device": str(e.dev),
            "batch": batch,
            "thread_policy": {
                "backend": e.exported.kind if e.exported is not None else "torch",
                "threads": e.exported.threads if e.exported is not None else torch.get_num_threads(),
            },
            "limit": limit,
            "seed": seed,
            "workers": workers,
            "cache": e.cache,
        },
        None,
        [weights],
    )
    summary = write_summary(
        out,
        "classify.eval",
        f"{e.cfg['model']} on {e.cat.root.name} ({subset})",
        metrics=metrics,
        tables={"per_class": _per_class(stats["confusion"], e.cat), "misclassified": rows},
        plots={"confusion": "confusion.png"},
        galleries={"misclassified": gal, "gradcam": cams},
        weights=str(weights),
        subset=subset,
        limit=limit,
        cam_layer=cam_layer,
        num_classes=len(e.cat.classes),
        most_confused=[e.cat.classes[i] for i in picked],
    )
    top5 = f"  top-5 {100 * metrics['top5']:.2f}%" if len(e.cat.classes) > 5 else ""  # always 100% with <= 5
    info(f"top-1 {100 * metrics['top1']:.2f}%{top5} on {len(e.idx)} images; wrote {out}")
    return {**metrics, "cache": e.cache, "summary": str(summary)}
