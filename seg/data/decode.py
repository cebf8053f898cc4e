"""Decoding training pairs: image bytes to RGB, mask bytes to class indices, through gt2seg's one decoder
(`gt2seg.images`: strict opening, alpha flattened on white, EXIF orientation not applied)."""
from __future__ import annotations

import numpy as np

from gt2seg.errors import ImageError
from gt2seg.images import decode_rgb, load_strict, open_strict
from seg.errors import DataError

_MASK_MODES = ("L", "P")


def _data_error(exc: ImageError) -> DataError:
    return DataError(f"{exc.what} is not a decodable image: {exc.problem} ({exc.reason})")


def decode_image(image_bytes: bytes) -> np.ndarray:
    """HxWx3 uint8 RGB from JPEG/PNG bytes (grayscale and palette converted, transparency on white)."""
    try:
        return decode_rgb(image_bytes)
    except ImageError as exc:
        raise _data_error(exc) from None


def decode_pair(image_bytes: bytes, mask_bytes: bytes) -> tuple:
    """(RGB uint8 HxWx3, mask uint8 HxW); raises DataError on bad bytes, multi-channel masks or size mismatch."""
    rgb = decode_image(image_bytes)
    try:
        mask_image = load_strict(open_strict(mask_bytes, what="mask"), what="mask")
    except ImageError as exc:
        raise _data_error(exc) from None
    if mask_image.mode not in _MASK_MODES:
        raise DataError(
            f"mask has PIL mode {mask_image.mode!r} ({len(mask_image.getbands())} band(s)); annotations must be "
            "single-channel 8-bit PNGs (mode P or L) whose pixel values are class indices (gt2seg convert "
            "writes them)"
        )
    mask = np.asarray(mask_image)
    if mask.shape != rgb.shape[:2]:
        raise DataError(
            f"image is {rgb.shape[1]}x{rgb.shape[0]} but its mask is {mask.shape[1]}x{mask.shape[0]} (WxH); "
            "a mask must have exactly the size of its image"
        )
    return rgb, mask
