"""The detection confusion matrix on a 3-image case worked out by hand."""

from __future__ import annotations

from detkit.coco.model import make_dataset
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
    p = preds([
        (1, 1, *G1, 0.9),               # A on the A box: A -> A
        (1, 2, 12, 10, 100, 100, 0.8),  # B on the A box already taken: a false positive B
        (1, 1, *G2, 0.7),               # A on the B box: B -> A
        (2, 1, *G1, 0.2),               # below --conf: not counted, so image 2's A box is missed
        (3, 2, *G1, 0.6),               # B on the B box: B -> B
        (3, 1, 320, 320, 50, 50, 0.5),  # inside the crowd region: ignored
        (3, 1, 10, 300, 40, 40, 0.4),   # on nothing: a false positive A
    ])  # fmt: skip
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
