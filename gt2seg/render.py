"""Pictures of class masks for people: the mode-P image (class indices, class colours as palette) and overlays.

No MXNet: reports, `seg predict` and `seg invoke` draw with these, and an overlay needs nothing but the mask's
own palette, so a client can draw one from a served mask alone. Mask PNG files (the layout's, /invocations',
`seg predict`'s) are written by gt2seg.png.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from gt2seg.classes import palette_for


def mask_image(mask: np.ndarray, classes) -> Image.Image:
    """A mode-P image whose pixel values are the class indices and whose palette shows the colours of
    `classes` (classes.json entries), as the training labels hold them: what reports and overlays draw."""
    image = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), mode="L")
    image.putpalette(palette_for(classes))
    return image


def overlay(rgb: np.ndarray, mask: Image.Image, alpha: float = 0.5) -> np.ndarray:
    """The image blended with the palette colour of every non-background pixel of a mode-P class mask."""
    palette = np.array(mask.getpalette()[:768], dtype=np.float32).reshape(-1, 3)
    indices = np.asarray(mask)
    weight = np.where(indices[..., None] == 0, 0.0, alpha)
    return (rgb * (1 - weight) + palette[indices] * weight).astype(np.uint8)
