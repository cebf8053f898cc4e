#!/usr/bin/env python3
"""Write a synthetic Ground Truth job of N 1024x768 images for the conversion benchmark.

Masks have 5 classes. Even items are palette PNGs indexed by color-map key, as Ground Truth writes them.
Odd items are RGB PNGs, as other tools re-save them, so the benchmark times both decoding paths. Refs are
relative to the manifest's folder. Each item is seeded by (seed, index), so the job is the same whatever
the number of processes that write it. A finished job carries a stamp and is reused, not rewritten.

    python benchmarks/make_synthetic_job.py bench-out/job-1000 1000
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import datetime, timedelta
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

WIDTH, HEIGHT = 1024, 768
ATTRIBUTE = "bench-ref"
CLASSES = [("BACKGROUND", "#ffffff"), ("building", "#2ca02c"), ("road", "#1f77b4"), ("tree", "#ff7f0e"),
           ("car", "#d62728")]
RGB = np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for _, h in CLASSES], np.uint8)
PALETTE = RGB.flatten().tolist() + [255] * (3 * (256 - len(CLASSES)))
# What each class looks like in the photo: a tint, not the mask colour.
TINT = np.array([[190, 200, 215], [128, 128, 132], [60, 60, 66], [60, 130, 55], [170, 40, 40]], np.uint8)
START = datetime(2023, 5, 2, 9, 30, 0, 125000)
STAMP = ".complete"


def mask_name(i: int) -> str:
    return f"{i}_{(START + timedelta(seconds=7 * i)).isoformat()}.png"


def class_map(rng: np.random.Generator) -> np.ndarray:
    """A street-like map: a road band, buildings, trees and cars as rectangles and ellipses."""
    labels = np.zeros((HEIGHT, WIDTH), np.uint8)
    top = int(rng.integers(450, 600))
    labels[top:top + int(rng.integers(80, 160))] = 2
    yy, xx = np.ogrid[0:HEIGHT, 0:WIDTH]
    for _ in range(int(rng.integers(3, 8))):
        x, w, h = int(rng.integers(0, WIDTH - 60)), int(rng.integers(60, 220)), int(rng.integers(100, 400))
        labels[max(top - h, 0):top, x:x + w] = 1
    for cls, count, size in ((3, int(rng.integers(2, 7)), (25, 70)), (4, int(rng.integers(0, 5)), (20, 45))):
        for _ in range(count):
            cx, cy = rng.uniform(0, WIDTH), rng.uniform(top - 80, top + 100)
            rx, ry = rng.uniform(*size), rng.uniform(*size)
            labels[((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1] = cls
    return labels


def write_item(args: tuple[Path, int, int, int]) -> dict:
    """Write item i's JPEG and mask (every `step`-th pixel of the 1024x768 scene); return its manifest line."""
    folder, seed, i, step = args
    rng = np.random.default_rng([seed, i])
    labels = class_map(rng)
    photo = TINT[labels].astype(np.int16) + rng.integers(-20, 20, 3).astype(np.int16)
    photo += (np.arange(WIDTH) // 64 % 2 * 6).astype(np.int16)[None, :, None]
    labels, photo = labels[::step, ::step], photo[::step, ::step]
    image_ref = f"images/img-{i:06d}.jpg"
    Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(folder / image_ref, "JPEG", quality=85)
    mask_ref = f"masks/{mask_name(i)}"
    if i % 2 == 0:
        mask = Image.fromarray(labels, "P")
        mask.putpalette(PALETTE)
    else:
        mask = Image.fromarray(RGB[labels], "RGB")
    mask.save(folder / mask_ref, "PNG")
    when = (START + timedelta(seconds=7 * i)).isoformat()
    return {"source-ref": image_ref, ATTRIBUTE: mask_ref, f"{ATTRIBUTE}-metadata": {
        "internal-color-map": {str(k): {"class-name": n, "hex-color": h, "confidence": 0}
                               for k, (n, h) in enumerate(CLASSES)},
        "type": "groundtruth/semantic-segmentation", "human-annotated": "yes", "creation-date": when,
        "job-name": "labeling-job/bench"}}


def make_job(folder: Path, n: int, seed: int = 0, processes: int | None = None, step: int = 1) -> Path:
    """Ensure `folder` holds the job for (n, seed) and return its manifest path. step > 1: images of
    1024/step x 768/step (for measuring what grows with the number of items, not with their size)."""
    manifest = folder / "output.manifest"
    want = {"n": n, "seed": seed, "width": WIDTH // step, "height": HEIGHT // step}
    stamp = folder / STAMP
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        return manifest
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    with Pool(processes or os.cpu_count()) as pool:
        lines = pool.map(write_item, [(folder, seed, i, step) for i in range(n)], chunksize=16)
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines))
    os.replace(tmp, manifest)
    stamp.write_text(json.dumps(want))
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("n", type=int)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(make_job(args.folder, args.n, args.seed), file=sys.stdout)


if __name__ == "__main__":
    main()
