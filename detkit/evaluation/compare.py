"""Is B really better than A? The same COCO numbers for two prediction sets on one ground truth, and a paired
bootstrap over images for the confidence interval of each difference.

COCO's AP re-weighted per image. COCOeval's matching is per image and class, so a bootstrap sample — the
images drawn with replacement, image i drawn w_i times — changes no match: it weights every detection and
every box of image i by w_i. The matches at the ten IoU thresholds are made once per prediction set
(:func:`~detkit.evaluation.matching.coco_matches`, equal to COCOeval's), the detections of each class put
in COCOeval's order once (score high to low; ties by image, then by rank in the image), and a sample is
COCOeval's ``accumulate`` on weighted counts, for class k and threshold t:

    TP(p) = sum of w over the true positives up to position p     FP(p) likewise, over the false positives
    P(p)  = TP / (TP + FP + eps)       R(p) = TP / sum of w over the class's boxes
    q(r)  = max of P(p') over p' >= p, at the first p with R(p) >= r (0 when none), r = 0, .01, ..., 1
    AP_k,t = mean of q over the 101 r;  AP = the mean over t and the classes with a box in the sample

Only true-positive positions are visited (precision between them only falls), so a sample costs one pass
over the detections (their weights' running sum) plus work in the number of true positives. With all w = 1
this is COCOeval's AP exactly (tests/evaluation/test_compare.py). A and B get the same samples (paired),
and the 95% interval of B - A is the 2.5th and 97.5th percentile of the sampled differences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from detkit.datasets.model import Dataset
from detkit.errors import DetkitError
from detkit.evaluation.analysis import grid_bins
from detkit.evaluation.matching import coco_matches
from detkit.evaluation.predictions import Predictions, index_of

IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)  # COCOeval's
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
METRICS = ("AP", "AP50", "AP75")
_SHIFT = 40  # integer search keys: group << _SHIFT | true-positive weight (weights stay far below 2**40)


@dataclass
class Matched:
    """One prediction set's matches, laid out for re-weighting (module docstring). A group is one (IoU
    threshold t, class k) pair, numbered t * K + k; the true positives of all groups are in one array,
    group by group, each in COCOeval's order."""

    d_img: np.ndarray  # (D,) image index of each counted detection, in COCOeval's per-class order
    g_img: np.ndarray  # (G,) image index of each ordinary box
    g_cls: np.ndarray  # (G,) class index of each ordinary box
    n_cls: int
    n_thr: int
    tp: np.ndarray  # (P,) positions (in the detection order) of the true positives, by group
    grp: np.ndarray  # (P,) their group
    grp_first: np.ndarray  # (T K,) index in ``tp`` of each group's first true positive (P when none)
    cls_start: np.ndarray  # (P,) position where the true positive's class starts
    ign: np.ndarray  # (I,) positions not counted at a threshold (crowd), by threshold
    ign_hi: np.ndarray  # (P,) for each true positive: index in ``ign`` past those at or before it
    ign_lo: np.ndarray  # (P,) ... and of the first at or after its class's start (same threshold)

    def __post_init__(self) -> None:  # what every sample reads, computed once
        n_grp = self.n_thr * self.n_cls
        self.first_of = np.append(self.grp_first, len(self.tp))[self.grp]  # index of its group's first
        self.grp_cls = self.grp % max(self.n_cls, 1)
        self.grp_key = self.grp * (len(REC_THRS) + 1)
        self.grp_big = self.grp.astype(np.int64) << _SHIFT
        self.want_grp = np.repeat(np.arange(n_grp, dtype=np.int64) << _SHIFT, len(REC_THRS))
        self.off = 2.0 * (n_grp - 1 - self.grp)
        self.want = (
            np.arange(n_grp)[:, None] * (len(REC_THRS) + 1) + np.arange(1, len(REC_THRS) + 1)[None, :]
        ).ravel()


def prepare(gt: Dataset, preds: Predictions, max_det: int = 100) -> Matched:
    """Match ``preds`` at the ten IoU thresholds and order the detections as COCOeval accumulates them."""
    cats = np.sort(gt.cat_id)
    flags = np.stack([coco_matches(gt, preds, float(t), max_det)[0] for t in IOU_THRS], axis=1)  # (N, T)
    counted = np.flatnonzero((flags >= 0).any(axis=1))
    img = index_of(gt.image_id, preds.image_id[counted])
    k = index_of(cats, preds.category_id[counted])
    order = np.lexsort((counted, img, -preds.score[counted], k))
    counted, img, k = counted[order], img[order], k[order]
    f = flags[counted]
    starts = np.searchsorted(k, np.arange(len(cats) + 1))
    tps, grps, igns, his, los = [], [], [], [], []
    n_ign = 0
    for t in range(len(IOU_THRS)):
        tp = np.flatnonzero(f[:, t] == 1)
        ign = np.flatnonzero(f[:, t] == -1)
        tps.append(tp)
        grps.append(t * len(cats) + k[tp])
        his.append(n_ign + np.searchsorted(ign, tp, side="right"))
        los.append(n_ign + np.searchsorted(ign, starts[k[tp]], side="left"))
        igns.append(ign)
        n_ign += len(ign)
    tp, grp = np.concatenate(tps), np.concatenate(grps)
    plain = gt.iscrowd == 0
    return Matched(
        d_img=img,
        g_img=index_of(gt.image_id, gt.ann_image_id[plain]),
        g_cls=index_of(cats, gt.category_id[plain]),
        n_cls=len(cats),
        n_thr=len(IOU_THRS),
        tp=tp,
        grp=grp,
        grp_first=np.searchsorted(grp, np.arange(len(IOU_THRS) * len(cats))),
        cls_start=starts[k[tp]],
        ign=np.concatenate(igns),
        ign_hi=np.concatenate(his),
        ign_lo=np.concatenate(los),
    )


def weighted_ap(m: Matched, w: np.ndarray) -> np.ndarray:
    """(T, K) AP per IoU threshold and class with image weights ``w`` (NaN: no box of the class weighs)."""

    n_r = len(REC_THRS)
    npig = np.bincount(m.g_cls, weights=w[m.g_img], minlength=m.n_cls)
    # whole-number weights (a bootstrap's counts, or 1) are summed as int64: exact, and numpy's integer
    # running sum is ~8x faster than a float one (whose every add waits for the previous)
    acc = np.int64 if np.array_equal(w, np.round(w)) else np.float64
    wd = w.astype(acc)[m.d_img]
    run = np.concatenate([np.zeros(1, acc), np.cumsum(wd)])  # run[p]: weight of positions < p
    cum = np.concatenate([np.zeros(1, acc), np.cumsum(wd[m.tp])])
    tp_i = cum[1:] - cum[m.first_of]  # true-positive weight up to here, in its group
    total = run[m.tp + 1] - run[m.cls_start]
    if len(m.ign):  # detections not counted at this threshold take no part
        ign_run = np.concatenate([np.zeros(1, acc), np.cumsum(wd[m.ign])])
        total -= ign_run[m.ign_hi] - ign_run[m.ign_lo]
    tp_w = tp_i.astype(np.float64)
    fp_w = (total - tp_i).astype(np.float64)
    pr = tp_w / (fp_w + tp_w + np.spacing(1))
    rc = tp_w / np.maximum(npig, np.spacing(1))[m.grp_cls]
    # the envelope: max precision at or after each position, within its group (groups kept apart by an
    # offset that grows as the group number falls, so a running max from the end never crosses one)
    env = np.maximum.accumulate((pr + m.off)[::-1])[::-1] - m.off
    # each group's first position reaching each recall threshold, found by one search of integer keys
    # (non-decreasing, no rounding): whole weights: group << 40 | TP weight, against the least TP weight
    # t with t / npig >= r (float division, as COCOeval compares); else group * (R + 1) + how many
    # thresholds the recall reaches
    if acc is np.int64:
        n = npig[:, None]
        t = np.ceil(REC_THRS[None, :] * n)
        t = np.where((t > 0) & ((t - 1) / np.maximum(n, 1) >= REC_THRS[None, :]), t - 1, t)
        t = np.where(t / np.maximum(n, 1) < REC_THRS[None, :], t + 1, t)
        keys = m.grp_big + tp_i
        want = m.want_grp + np.tile(t.astype(np.int64).ravel(), m.n_thr)
        at = np.searchsorted(keys, want, side="left")
        ok = at < len(keys)
        ok[ok] = (keys[at[ok]] >> _SHIFT) == (want[ok] >> _SHIFT)
    else:
        keys = m.grp_key + grid_bins(rc, REC_THRS)
        want = m.want
        at = np.searchsorted(keys, want, side="left")
        ok = at < len(keys)
        ok[ok] = keys[at[ok]] // (n_r + 1) == want[ok] // (n_r + 1)
    q = np.where(ok, env[np.minimum(at, len(env) - 1)], 0.0) if len(env) else np.zeros(len(want))
    ap = q.reshape(m.n_thr, m.n_cls, n_r).mean(axis=2)
    return np.where(npig[None, :] > 0, ap, np.nan)


def summarize(ap: np.ndarray) -> dict[str, float]:
    """AP, AP50, AP75 from (T, K) per-class APs (the mean over the classes with boxes, as COCOeval)."""
    valid = ~np.isnan(ap[0])
    if not valid.any():
        return {k: float("nan") for k in METRICS}
    return {
        "AP": float(ap[:, valid].mean()),
        "AP50": float(ap[0, valid].mean()),
        "AP75": float(ap[5, valid].mean()),
    }


def paired_bootstrap(
    gt: Dataset, a: Predictions, b: Predictions, samples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """Point estimates of A, B and B - A, and the paired bootstrap interval of each difference.

    Returns:
        ``a``, ``b``, ``delta`` ({AP, AP50, AP75}), ``interval`` ({metric: [lo, hi]}), ``per_class``
        (per class name: AP of A and B, delta AP and its interval), ``samples``, ``seed``, ``level``.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:  # numpy lets go of the GIL: A and B on two cores
        ma, mb = pool.map(lambda p: prepare(gt, p), (a, b))
        ones = np.ones(gt.num_images)
        ap_a, ap_b = weighted_ap(ma, ones), weighted_ap(mb, ones)
        rng = np.random.default_rng(seed)
        n = gt.num_images
        draws = [np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64) for _ in range(samples)]

        def run(m: Matched) -> np.ndarray:
            return np.stack([weighted_ap(m, w) for w in draws]) if draws else np.zeros((0, *ap_a.shape))

        sa, sb = pool.map(run, (ma, mb))
    lo_q, hi_q = 50 * (1 - level), 100 - 50 * (1 - level)
    pa, pb = summarize(ap_a), summarize(ap_b)
    sampled = {k: np.array([summarize(y)[k] - summarize(x)[k] for x, y in zip(sa, sb)]) for k in METRICS}
    cats = np.sort(gt.cat_id)
    names = gt.category_names()
    per_class = []
    for k, c in enumerate(cats.tolist()):
        if np.isnan(ap_a[0, k]):
            continue
        d = sb[:, :, k].mean(axis=1) - sa[:, :, k].mean(axis=1) if samples else np.zeros(0)
        d = d[~np.isnan(d)]
        x, y = float(ap_a[:, k].mean()), float(ap_b[:, k].mean())
        per_class.append(
            {
                "category_id": c,
                "name": names.get(c, str(c)),
                "AP_a": x,
                "AP_b": y,
                "delta": y - x,
                "interval": _interval(d, lo_q, hi_q),
            }
        )
    return {
        "a": pa,
        "b": pb,
        "delta": {k: pb[k] - pa[k] for k in METRICS},
        "interval": {k: _interval(v[~np.isnan(v)], lo_q, hi_q) for k, v in sampled.items()},
        "per_class": per_class,
        "samples": samples,
        "seed": seed,
        "level": level,
    }


def _interval(v: np.ndarray, lo: float, hi: float) -> list[float] | None:
    return [float(np.percentile(v, lo)), float(np.percentile(v, hi))] if len(v) else None


def parse_fail_if_drop(text: str | None) -> dict[str, float]:
    """``AP=0.01,AP50=0.02`` -> {"AP": 0.01, "AP50": 0.02}; names AP, AP50, AP75 (mAP, mAP50, mAP75)."""

    out: dict[str, float] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name = {"mAP": "AP", "mAP50": "AP50", "mAP75": "AP75"}.get(name.strip(), name.strip())
        try:
            v = float(value)
        except ValueError:
            v = float("nan")
        if not sep or name not in METRICS or not 0 <= v <= 1:
            raise DetkitError(
                f"fail_if_drop: '{item.strip()}' is not NAME=VALUE with NAME one of AP, AP50, AP75 and "
                "VALUE in 0..1",
                flags={"fail_if_drop:": "--fail-if-drop:"},
            )
        out[name] = v
    return out


def drops(result: dict[str, Any], thresholds: dict[str, float]) -> list[dict[str, Any]]:
    """The metrics where B is worse than A by more than the threshold *and* the whole interval is below 0."""
    failed = []
    for k, thr in thresholds.items():
        d, iv = result["delta"][k], result["interval"][k]
        if d < -thr and iv is not None and iv[1] < 0:
            failed.append({"metric": k, "delta": d, "interval": iv, "threshold": thr})
    return failed
