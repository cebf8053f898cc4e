"""Segmentation metrics from a confusion matrix: mIOU, pixel accuracy, per-class IoU (no MXNet here).

Pixels labelled IGNORE (255) count nowhere. mIOU is the mean IoU over the classes that occur in the
ground truth or in the predictions (union > 0); a class absent from both has no IoU (None) instead of
dragging the mean to 0 or inflating it to 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gt2seg.classes import IGNORE


def confusion_matrix(pred: np.ndarray, label: np.ndarray, num_classes: int) -> np.ndarray:
    """C×C int64 counts, rows = ground truth, columns = prediction; IGNORE labels are skipped."""
    label = np.asarray(label).ravel().astype(np.int64)
    pred = np.asarray(pred).ravel().astype(np.int64)
    if label.shape != pred.shape:
        raise ValueError(f"prediction has {pred.size} pixels but the label has {label.size}")
    keep = label != IGNORE
    label, pred = label[keep], pred[keep]
    if label.size and (label.max() >= num_classes or label.min() < 0 or pred.max() >= num_classes or pred.min() < 0):
        raise ValueError(f"labels/predictions outside 0..{num_classes - 1} (and {IGNORE} for ignore)")
    return np.bincount(label * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@dataclass(frozen=True)
class SegMetrics:
    miou: float
    pixel_accuracy: float
    per_class_iou: list  # float, or None for a class absent from labels and predictions
    pixels: int

    def to_json(self, class_names=None) -> dict:
        names = class_names or [str(i) for i in range(len(self.per_class_iou))]
        return {
            "mIOU": self.miou,
            "pixel_accuracy": self.pixel_accuracy,
            "per_class_iou": {name: iou for name, iou in zip(names, self.per_class_iou)},
            "pixels": self.pixels,
        }


def summarize(confusion: np.ndarray) -> SegMetrics:
    confusion = np.asarray(confusion, dtype=np.float64)
    total = confusion.sum()
    inter = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - inter
    present = union > 0
    ious = [float(i / u) if u > 0 else None for i, u in zip(inter, union)]
    miou = float((inter[present] / union[present]).mean()) if present.any() else 0.0
    accuracy = float(inter.sum() / total) if total else 0.0
    return SegMetrics(miou, accuracy, ious, int(total))


class ConfusionAccumulator:
    """Running confusion matrix over batches (validation, `seg evaluate`)."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred, label) -> np.ndarray:
        """Add one batch; returns that batch's own confusion matrix (per-image figures reuse it)."""
        confusion = confusion_matrix(pred, label, self.num_classes)
        self.matrix += confusion
        return confusion

    def result(self) -> SegMetrics:
        return summarize(self.matrix)
