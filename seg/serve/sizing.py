"""The large-image policy both runtimes share (MXNet's `Predictor`, ONNX Runtime's `OnnxPredictor`).

The network runs at the input size unless the long side exceeds `max_side`; then the image is scaled down to
that long side first and the logits are resized bilinearly back to the input size (align-corners, as MXNet's
`BilinearResize2D`), so the network's memory stays bounded while outputs always match the input's H×W.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from seg.data.transforms import normalize

DEFAULT_MAX_SIDE = 1024


def check_rgb(rgb) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        got = f"{rgb.dtype} array of shape {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"expected an H×W×3 uint8 RGB array, got {got}")


def network_input(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """1×3×h×w float32, normalised as in training, with the long side scaled down to `max_side` when above it."""
    check_rgb(rgb)
    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
    return normalize(rgb)[None]


def _axis_weights(n_in: int, n_out: int):
    """Source indices and weights of an align-corners linear resize along one axis."""
    pos = np.arange(n_out, dtype=np.float64) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    low = np.minimum(np.floor(pos).astype(np.int64), n_in - 1)
    high = np.minimum(low + 1, n_in - 1)
    return low, high, (pos - low).astype(np.float32)


def resize_logits(logits: np.ndarray, height: int, width: int) -> np.ndarray:
    """(C, h, w) → (C, height, width), bilinear with aligned corners (MXNet's `BilinearResize2D` default)."""
    top, bottom, wy = _axis_weights(logits.shape[1], height)
    left, right, wx = _axis_weights(logits.shape[2], width)
    rows = logits[:, top] * (1 - wy)[None, :, None] + logits[:, bottom] * wy[None, :, None]
    return rows[:, :, left] * (1 - wx) + rows[:, :, right] * wx
