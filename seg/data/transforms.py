"""Training and validation transforms: resize, crop, flip, normalise; padding carries the ignore label."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from gt2seg.classes import IGNORE
from seg.errors import DataError

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # ImageNet, as the pretrained backbones expect

STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def normalize(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 → 3xHxW float32 with ImageNet mean/std (training, evaluation and serving share it)."""
    out = (rgb.astype(np.float32) * (1.0 / 255.0) - MEAN) / STD
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def check_labels(mask: np.ndarray, num_classes: int) -> None:
    bad = (mask >= num_classes) & (mask != IGNORE)
    if bad.any():
        values = sorted(set(np.unique(mask[bad]).tolist()))[:10]
        raise DataError(
            f"mask has pixel value(s) {values} but num_classes={num_classes} allows 0..{num_classes - 1} and "
            f"{IGNORE} (ignore); fix num_classes or give a label_map that maps these values"
        )


def _resize(rgb, mask, height, width):
    size = (max(1, width), max(1, height))
    rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
    mask = np.asarray(Image.fromarray(mask).resize(size, Image.NEAREST))
    return rgb, mask


def _pad(chw, mask, height, width):
    """Pad bottom/right: image with 0 (the mean colour after normalisation), mask with IGNORE."""
    ph, pw = max(0, height - mask.shape[0]), max(0, width - mask.shape[1])
    if ph or pw:
        chw = np.pad(chw, ((0, 0), (0, ph), (0, pw)))
        mask = np.pad(mask, ((0, ph), (0, pw)), constant_values=IGNORE)
    return chw, mask


@dataclass(frozen=True)
class TrainTransform:
    """The built-in's augmentation: long side → base_size×U(0.5, 2), pad (mask with IGNORE), random crop, flip."""

    base_size: int
    crop_size: int
    num_classes: int

    def __call__(self, rgb, mask, rng: np.random.Generator):
        check_labels(mask, self.num_classes)
        height, width = mask.shape
        scale = self.base_size * rng.uniform(0.5, 2.0) / max(height, width)
        rgb, mask = _resize(rgb, mask, round(height * scale), round(width * scale))
        crop = self.crop_size
        top = int(rng.integers(0, max(0, mask.shape[0] - crop) + 1))
        left = int(rng.integers(0, max(0, mask.shape[1] - crop) + 1))
        rgb, mask = rgb[top : top + crop, left : left + crop], mask[top : top + crop, left : left + crop]
        if rng.random() < 0.5:
            rgb, mask = rgb[:, ::-1], mask[:, ::-1]
        chw, mask = _pad(normalize(rgb), mask, crop, crop)
        return chw, mask.astype(np.int32)


@dataclass(frozen=True)
class ValTransform:
    """Whole image, long side → `size` (aspect kept), padded to size×size with IGNORE so batches stack."""

    size: int
    num_classes: int

    def __call__(self, rgb, mask, rng=None):
        check_labels(mask, self.num_classes)
        height, width = mask.shape
        scale = self.size / max(height, width)
        if scale != 1.0:
            rgb, mask = _resize(rgb, mask, round(height * scale), round(width * scale))
        chw, mask = _pad(normalize(rgb), mask, self.size, self.size)
        return chw, mask.astype(np.int32)


def train_transform(hp) -> TrainTransform:
    return TrainTransform(hp.base_size, hp.crop_size, hp.num_classes)


def val_transform(hp) -> ValTransform:
    """Validation at the centre of the training scale range (long side = base_size)."""
    return ValTransform(hp.base_size, hp.num_classes)
