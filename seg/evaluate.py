"""Evaluation of a predictor on a layout split (no MXNet here: the predictor brings it)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seg.serve.predictor import Predictor


def evaluate_layout(predictor: Predictor, data, split: str = "validation", progress: bool = False, on_image=None):
    """SegMetrics of the predictor on a layout split, each image at its own size (label map applied).

    on_image(pair, rgb, mask, prediction, confusion) sees every image and its own confusion matrix, for
    per-image figures (seg.report)."""
    from tqdm import tqdm

    from seg.data.files import FileSource
    from seg.data.transforms import check_labels
    from seg.errors import DataError
    from seg.metrics import ConfusionAccumulator

    source = FileSource(data, split, transform=None, batch_size=1)
    acc = ConfusionAccumulator(predictor.num_classes)
    for index in tqdm(range(len(source)), desc="evaluate", unit="image", disable=not progress):
        rgb, mask = source.load(index)
        try:
            check_labels(mask, predictor.num_classes)
        except DataError as exc:
            raise DataError(f"{source.pairs[index].mask}: {exc}") from None
        prediction = predictor.predict(rgb)
        confusion = acc.update(prediction, mask)
        if on_image:
            on_image(source.pairs[index], rgb, mask, prediction, confusion)
    return acc.result()
