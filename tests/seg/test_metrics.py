"""Metrics against a confusion matrix counted by hand, with ignored pixels."""
import numpy as np
import pytest

from seg.metrics import ConfusionAccumulator, confusion_matrix, summarize

LABEL = np.array([[0, 0, 1, 1],
                  [0, 2, 2, 255],
                  [255, 255, 1, 0]])
PRED = np.array([[0, 1, 1, 1],
                 [0, 2, 0, 2],
                 [1, 1, 1, 2]])
# by hand, rows = truth, cols = prediction, the three 255 pixels skipped:
# truth 0 at (0,0)->0 (0,1)->1 (1,0)->0 (2,3)->2 ; truth 1: (0,2)->1 (0,3)->1 (2,2)->1 ; truth 2: (1,1)->2 (1,2)->0
HAND = np.array([[2, 1, 1],
                 [0, 3, 0],
                 [1, 0, 1]])


def test_confusion_matrix_skips_ignore_pixels():
    assert (confusion_matrix(PRED, LABEL, 3) == HAND).all()


def test_miou_pixel_accuracy_and_per_class_iou_match_hand_computation():
    metrics = summarize(HAND)
    # IoU_c = TP / (row + col - TP): class 0: 2/(4+3-2), class 1: 3/(3+4-3), class 2: 1/(2+2-1)
    expected = [2 / 5, 3 / 4, 1 / 3]
    assert metrics.per_class_iou == pytest.approx(expected)
    assert metrics.miou == pytest.approx(sum(expected) / 3)
    assert metrics.pixel_accuracy == pytest.approx(6 / 9) and metrics.pixels == 9


def test_a_class_absent_everywhere_has_no_iou_and_does_not_count():
    metrics = summarize(confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), 4))
    assert metrics.per_class_iou[2:] == [None, None]
    assert metrics.miou == pytest.approx((1 / 2 + 1 / 2) / 2)


def test_accumulator_sums_batches():
    acc = ConfusionAccumulator(3)
    acc.update(PRED[:2], LABEL[:2])
    acc.update(PRED[2:], LABEL[2:])
    assert (acc.matrix == HAND).all()
    assert acc.result().to_json(["bg", "a", "b"])["per_class_iou"]["a"] == pytest.approx(0.75)


def test_out_of_range_predictions_are_an_error():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([5]), np.array([0]), 3)
