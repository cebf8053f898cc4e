"""Class tables for models and pictures of masks."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from seg.errors import DataError


def default_classes(num_classes: int) -> list:
    """Class table used when a dataset ships no classes.json (gt2seg always writes one)."""
    rng = np.random.default_rng(7)
    colors = ["#ffffff"] + ["#%02x%02x%02x" % tuple(rng.integers(0, 256, 3)) for _ in range(num_classes - 1)]
    return [{"index": i, "name": "BACKGROUND" if i == 0 else f"class_{i}", "color": colors[i]} for i in range(num_classes)]


def load_classes(path) -> list:
    try:
        classes = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable classes.json ({exc})") from None
    if not isinstance(classes, list) or [c.get("index") for c in classes if isinstance(c, dict)] != list(
        range(len(classes))
    ):
        raise DataError(f'{path}: expected [{{"index": 0, "name": ..., "color": "#rrggbb"}}, ...] with indices 0..C-1')
    return classes


def mask_image(mask: np.ndarray, classes) -> Image.Image:
    """A mode-P image whose pixel values are the class indices and whose palette shows the class
    colours (black elsewhere): the form of the training labels, for predictions and /invocations."""
    palette = bytearray(768)
    for entry in classes:
        color, index = str(entry.get("color", "")), int(entry["index"])
        if 0 <= index < 256 and len(color) == 7 and color.startswith("#"):
            palette[3 * index: 3 * index + 3] = bytes.fromhex(color[1:])
    image = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), mode="L")
    image.putpalette(bytes(palette))
    return image


def overlay(rgb: np.ndarray, mask: Image.Image, alpha: float = 0.5) -> np.ndarray:
    """The image blended with the palette colour of every non-background pixel of a mode-P class mask."""
    palette = np.array(mask.getpalette()[:768], dtype=np.float32).reshape(-1, 3)
    indices = np.asarray(mask)
    weight = np.where(indices[..., None] == 0, 0.0, alpha)
    return (rgb * (1 - weight) + palette[indices] * weight).astype(np.uint8)
