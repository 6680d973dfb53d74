"""The detection confusion matrix on a 3-image case worked out by hand."""

from __future__ import annotations

import pytest

from detkit.datasets.model import make_dataset
from detkit.evaluation.confusion import confusion_matrix
from tests.evaluation.cases import preds

G1, G2 = (10, 10, 100, 100), (300, 300, 100, 100)


def test_three_images_by_hand():
    gt = make_dataset(
        [(1, "a.jpg", 640, 480), (2, "b.jpg", 640, 480), (3, "c.jpg", 640, 480)],
        [(1, 1, 1, *G1), (2, 1, 2, *G2), (3, 2, 1, *G1), (4, 3, 1, 300, 300, 200, 150), (5, 3, 2, *G1)],
        [(1, "A"), (2, "B")],
    )
    gt.iscrowd[3] = 1
    p = preds(
        [
            (1, 1, *G1, 0.9),  # A on the A box: A -> A
            (1, 2, 12, 10, 100, 100, 0.8),  # B on the A box already taken: a false positive B
            (1, 1, *G2, 0.7),  # A on the B box: B -> A
            (2, 1, *G1, 0.2),  # below --conf: not counted, so image 2's A box is missed
            (3, 2, *G1, 0.6),  # B on the B box: B -> B
            (3, 1, 320, 320, 50, 50, 0.5),  # inside the crowd region: ignored
            (3, 1, 10, 300, 40, 40, 0.4),  # on nothing: a false positive A
        ]
    )
    cm = confusion_matrix(gt, p, conf=0.25, iou=0.45)
    assert cm["names"] == ["A", "B", "background"]
    # rows: ground truth A, B, background; columns: predicted A, B, background
    assert cm["matrix"] == [[1, 0, 1], [1, 1, 0], [1, 1, 0]]
    assert cm["normalized"][0] == [0.5, 0.0, 0.5]
    assert cm["ignored"] == 1


def test_own_class_first_then_best_iou():
    """A detection takes a box of its own class even when another class's box overlaps it more."""
    gt = make_dataset(
        [(1, "a.jpg", 640, 480)],
        [(1, 1, 1, 0, 0, 100, 100), (2, 1, 2, 10, 0, 100, 100)],
        [(1, "A"), (2, "B")],
    )
    cm = confusion_matrix(gt, preds([(1, 2, 0, 0, 100, 100, 0.9)]), conf=0.25, iou=0.45)
    assert cm["matrix"] == [[0, 0, 1], [0, 1, 0], [0, 0, 0]]


def _reference(gt, p, conf, iou):
    """The module docstring's rule, one detection at a time in plain Python."""
    import numpy as np

    cats = sorted(int(c) for c in gt.cat_id)
    k = len(cats)
    m = [[0] * (k + 1) for _ in range(k + 1)]

    def iou_ioa(a, b):
        iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
        inter = iw * ih
        return inter / max(a[2] * a[3] + b[2] * b[3] - inter, 1e-12), inter / max(a[2] * a[3], 1e-12)

    for img in np.union1d(p.image_id, gt.ann_image_id).tolist():
        g = [j for j in range(gt.num_annotations) if gt.ann_image_id[j] == img]
        plain = [j for j in g if not gt.iscrowd[j]]
        crowds = [j for j in g if gt.iscrowd[j]]
        used = set()
        ds = sorted(
            (d for d in range(len(p)) if p.image_id[d] == img and p.score[d] >= conf),
            key=lambda d: (-p.score[d], d),
        )
        for d in ds:
            c = cats.index(int(p.category_id[d]))
            scored = [(iou_ioa(p.bbox[d], gt.bbox[j])[0], j) for j in plain if j not in used]
            ok = [(v, j) for v, j in scored if v >= iou]
            same = [(v, j) for v, j in ok if cats.index(int(gt.category_id[j])) == c]
            pick = (
                max(same, key=lambda t: (t[0], -t[1]))
                if same
                else max(ok, key=lambda t: (t[0], -t[1]))
                if ok
                else None
            )
            if pick:
                used.add(pick[1])
                m[cats.index(int(gt.category_id[pick[1]]))][c] += 1
            elif not any(iou_ioa(p.bbox[d], gt.bbox[j])[1] >= iou for j in crowds):
                m[k][c] += 1
        for j in plain:
            if j not in used:
                m[cats.index(int(gt.category_id[j]))][k] += 1
    return m


@pytest.mark.parametrize("seed", [0, 1])
def test_equals_plain_python_reference(seed):
    from tests.evaluation.cases import random_case

    gt, p = random_case(seed, n_images=15, n_boxes=80, n_dets=700)
    for conf, iou in ((0.25, 0.45), (0.0, 0.3)):
        assert confusion_matrix(gt, p, conf=conf, iou=iou)["matrix"] == _reference(gt, p, conf, iou)
