"""Gallery panels: small tiles (image, mask, blend, ...) side by side in one JPEG, with Pillow only.

Tiles are thumbnails, so a panel costs the same whatever the image size, and the page stays small.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from gt2seg.render import overlay

TILE_HEIGHT = 128


def thumbnail(image: Image.Image, height: int = TILE_HEIGHT) -> Image.Image:
    """Scaled to `height` keeping the aspect; masks (mode P/L) stay crisp (nearest)."""
    width = max(1, round(image.width * height / max(1, image.height)))
    resample = Image.NEAREST if image.mode in ("P", "L") else Image.BILINEAR
    return image.resize((width, height), resample)


def open_thumbnail(data: bytes, height: int = TILE_HEIGHT) -> Image.Image:
    """Decode only as much of a JPEG as the thumbnail needs (draft mode), then scale."""
    image = Image.open(io.BytesIO(data))
    if image.format == "JPEG":
        image.draft("RGB", (image.width * height // max(1, image.height), height))
    if image.mode not in ("P", "L"):
        image = image.convert("RGB")
    return thumbnail(image, height)


def blend(rgb: Image.Image, mask: Image.Image, alpha: float = 0.5) -> Image.Image:
    """The image with every non-background pixel of a class-indexed palette mask tinted by its class colour."""
    rgb = rgb.convert("RGB").resize(mask.size, Image.BILINEAR)
    return Image.fromarray(overlay(np.asarray(rgb), mask, alpha))


def panel(tiles: list[Image.Image], gap: int = 4) -> bytes:
    """Tiles left to right on white, as JPEG bytes (4:4:4, so mask edges keep their colours)."""
    width = sum(t.width for t in tiles) + gap * (len(tiles) - 1)
    height = max(t.height for t in tiles)
    canvas = Image.new("RGB", (width, height), "white")
    x = 0
    for tile in tiles:
        canvas.paste(tile.convert("RGB"), (x, 0))
        x += tile.width + gap
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=88, subsampling=0)
    return out.getvalue()
