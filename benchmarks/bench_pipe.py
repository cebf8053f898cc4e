"""Pipe-mode benchmark: RecordIO parse throughput, and Pipe vs File loader throughput on the same data.

    python benchmarks/bench_pipe.py [--images 96] [--size 320] [--workers 2] [--json]

Targets (issue 4): parse >= 1 GB/s on an in-memory stream of JPEG/PNG-sized records; Pipe-mode loader
samples/s >= File-mode loader samples/s with the same transform, batch size and worker threads. The Pipe
figure includes a real `seg pipe-feed` process writing the FIFO, as SageMaker's agent would.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seg.data.files import FileSource
from seg.data.transforms import TrainTransform
from seg.pipe.source import PipeSource
from seg.pipe.recordio import iter_records, pack


def bench_parse(total_mb: int, repeat: int) -> dict:
    """Random bytes sized like a JPEG (~90 KB) and its PNG mask (~6 KB) per sample."""
    rng = np.random.default_rng(0)
    records, size = [], 0
    while size < total_mb << 20:
        for n in (int(rng.integers(60_000, 120_000)), int(rng.integers(3_000, 9_000))):
            records.append(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
            size += n
    stream = b"".join(pack(r) for r in records)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        count = sum(1 for _ in iter_records(io.BytesIO(stream)))
        best = min(best, time.perf_counter() - start)
    assert count == len(records)
    return {"records": len(records), "mb": len(stream) / 1e6, "seconds": best, "gb_per_s": len(stream) / best / 1e9}


def make_layout(root: Path, images: int, size: int) -> Path:
    """A File-mode layout and the equivalent augmented manifest (stem order)."""
    rng = np.random.default_rng(1)
    (root / "train").mkdir(parents=True)
    (root / "train_annotation").mkdir()
    lines = []
    yy, xx = np.mgrid[:size, :size]
    for i in range(images):
        rgb = (rng.integers(0, 256, 3) * 0.5 + np.stack([yy, xx, yy ^ xx], -1) % 128).astype(np.uint8)
        mask = ((xx // (16 + i % 7) + yy // 24) % 3).astype(np.uint8)
        image, ann = root / "train" / f"{i:05d}.jpg", root / "train_annotation" / f"{i:05d}.png"
        Image.fromarray(rgb).save(image, quality=90)
        Image.fromarray(mask).save(ann)
        lines.append(json.dumps({"source-ref": str(image), "bench-ref": str(ann)}))
    manifest = root / "train.manifest"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def _drain(batches) -> int:
    return sum(len(data) for data, _ in batches)


def bench_loaders(root: Path, manifest: Path, args) -> dict:
    transform = TrainTransform(base_size=args.size, crop_size=args.crop, num_classes=3)
    files = FileSource(root, "train", transform, batch_size=args.batch, shuffle=True, seed=0, workers=args.workers)
    fifo_dir = root / "fifos"
    fifo_dir.mkdir()
    seg = str(Path(sys.executable).parent / "seg")
    feeder = subprocess.Popen([seg, "pipe-feed", str(manifest), "--fifo-dir", str(fifo_dir), "--channel", "train",
                               "--epochs", str(args.repeat), "--attribute-names", "source-ref,bench-ref",
                               "--wait-timeout", "120"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pipe = PipeSource(fifo_dir, "train", transform=transform, batch_size=args.batch, shuffle_buffer=64, seed=0,
                      wait_timeout=120, workers=args.workers)
    result = {}
    for name, source in (("file", files), ("pipe", pipe)):
        best = float("inf")
        for epoch in range(args.repeat):
            start = time.perf_counter()
            count = _drain(source.epoch(epoch))
            best = min(best, time.perf_counter() - start)
        assert count == args.images
        result[name] = {"samples_per_s": count / best, "seconds": best}
    if feeder.wait(120) != 0:
        raise SystemExit("seg pipe-feed failed")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parse-mb", type=int, default=256, help="size of the in-memory RecordIO stream")
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--size", type=int, default=320, help="image side and base_size")
    parser.add_argument("--crop", type=int, default=240)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is kept")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    parse = bench_parse(args.parse_mb, args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        loaders = bench_loaders(root, make_layout(root, args.images, args.size), args)
    figures = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpu(s)",
               "settings": vars(args), "parse": parse, "loaders": loaders,
               "pipe_over_file": loaders["pipe"]["samples_per_s"] / loaders["file"]["samples_per_s"]}
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"machine: {figures['machine']}; {args.images} images {args.size}px, crop {args.crop}, "
          f"batch {args.batch}, {args.workers} worker thread(s), best of {args.repeat}")
    print(f"| {'measure':<28} | {'value':>12} | {'target':>10} |")
    print(f"|{'-' * 30}|{'-' * 14}|{'-' * 12}|")
    print(f"| {'RecordIO parse (GB/s)':<28} | {parse['gb_per_s']:>12.2f} | {'>= 1.0':>10} |")
    print(f"| {'File loader (samples/s)':<28} | {loaders['file']['samples_per_s']:>12.1f} | {'':>10} |")
    print(f"| {'Pipe loader (samples/s)':<28} | {loaders['pipe']['samples_per_s']:>12.1f} | {'>= File':>10} |")
    print(f"| {'Pipe / File':<28} | {figures['pipe_over_file']:>12.2f} | {'>= 1.0':>10} |")


if __name__ == "__main__":
    main()
