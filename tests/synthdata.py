"""A synthetic 3-class segmentation set in the gt2seg layout, for tests that need real, learnable data.

Class 0 = textured background, 1 = discs, 2 = axis-aligned rectangles. Colours overlap between classes
(warm-ish discs, cool-ish rectangles, random jitter) so a model must use shape and colour together; the
all-background baseline mIOU is about 0.29. Deterministic in `seed`. Other engineers' tests import it:
`write_layout(root, n_train, n_val, size, seed)` returns the root.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = [
    {"index": 0, "name": "BACKGROUND", "color": "#ffffff"},
    {"index": 1, "name": "disc", "color": "#2ca02c"},
    {"index": 2, "name": "rectangle", "color": "#1f77b4"},
]


def make_pair(rng: np.random.Generator, height: int = 64, width: int = 64) -> tuple:
    """(RGB uint8 H×W×3, mask uint8 H×W with values 0..2) for one synthetic image."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(70, 150, 3)
    wave = 25 * np.sin(xx / rng.uniform(3, 9) + rng.uniform(0, 6)) * np.cos(yy / rng.uniform(3, 9))
    rgb = base[None, None, :] + wave[..., None] + rng.normal(0, 14, (height, width, 3))
    mask = np.zeros((height, width), dtype=np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        klass = int(rng.integers(1, 3))
        size = rng.uniform(0.12, 0.3) * min(height, width)
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        if klass == 1:
            region = (yy - cy) ** 2 + (xx - cx) ** 2 <= size**2
            color = np.array([rng.uniform(150, 255), rng.uniform(40, 160), rng.uniform(20, 110)])
        else:
            region = (np.abs(yy - cy) <= size * rng.uniform(0.6, 1.2)) & (np.abs(xx - cx) <= size * rng.uniform(0.6, 1.2))
            color = np.array([rng.uniform(20, 110), rng.uniform(40, 160), rng.uniform(150, 255)])
        rgb[region] = color + rng.normal(0, 10, (int(region.sum()), 3))
        mask[region] = klass
    return np.clip(rgb, 0, 255).astype(np.uint8), mask


def training_batches(count: int, size: int = 48, batch: int = 4, seed: int = 0) -> list:
    """`count` (data, label) batches as seg's loader yields them: N×3×size×size normalised float32 images and
    N×size×size masks, drawn with `make_pair`."""
    from seg.data.transforms import normalize

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        pairs = [make_pair(rng, size, size) for _ in range(batch)]
        out.append((np.stack([normalize(rgb) for rgb, _ in pairs]), np.stack([m for _, m in pairs])))
    return out


def _write_mask(path: Path, mask: np.ndarray) -> None:
    image = Image.frombytes("P", (mask.shape[1], mask.shape[0]), mask.tobytes())
    palette = [255, 255, 255, 0x2C, 0xA0, 0x2C, 0x1F, 0x77, 0xB4] + [0] * (3 * 253)
    image.putpalette(palette)
    image.save(path)


def write_layout(root, n_train: int = 32, n_val: int = 8, size: int = 64, seed: int = 0, scale: int = 1) -> Path:
    """Write train/ train_annotation/ validation/ validation_annotation/ label_map/ classes.json under root.

    `scale` > 1 stores pixel value class×scale in the masks and a matching {"scale": scale} label map.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("validation", n_val)):
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / f"{split}_annotation").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            rgb, mask = make_pair(rng, size, size)
            stem = f"{split}_{i:04d}"
            Image.fromarray(rgb).save(root / split / f"{stem}.jpg", quality=92)
            _write_mask(root / f"{split}_annotation" / f"{stem}.png", (mask * scale).astype(np.uint8))
    (root / "label_map").mkdir(exist_ok=True)
    for split in ("train", "validation"):
        (root / "label_map" / f"{split}_label_map.json").write_text(json.dumps({"scale": scale}))
    (root / "classes.json").write_text(json.dumps(CLASSES, indent=2))
    return root
