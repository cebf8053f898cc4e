"""Decoding training pairs: image bytes to RGB, mask bytes to class indices."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from seg.errors import DataError

_MASK_MODES = ("L", "P")


def load_strict(image: Image.Image) -> Image.Image:
    """Decode fully, truncation an error even where GluonCV's import has set Pillow's process-wide
    LOAD_TRUNCATED_IMAGES (training and serving processes import it)."""
    tolerant, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        image.load()
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = tolerant
    return image


def _open(data: bytes, what: str) -> Image.Image:
    try:
        return load_strict(Image.open(io.BytesIO(data)))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{what} is not a decodable image ({exc})") from None


def decode_image(image_bytes: bytes) -> np.ndarray:
    """HxWx3 uint8 RGB from JPEG/PNG bytes (grayscale and RGBA are converted)."""
    return np.asarray(_open(image_bytes, "image").convert("RGB"))


def decode_pair(image_bytes: bytes, mask_bytes: bytes) -> tuple:
    """(RGB uint8 HxWx3, mask uint8 HxW); raises DataError on bad bytes, multi-channel masks or size mismatch."""
    rgb = decode_image(image_bytes)
    mask_image = _open(mask_bytes, "mask")
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
