#!/usr/bin/env python3
"""Benchmark `gt2seg import coco` (`make bench-import-coco`): vs the reference decoder's bound and vs Datumaro.

N synthetic 1024x768 images in a COCO instances export as CVAT and Datumaro write it
(annotations/instances_default.json, images/default/*.jpg): per image three objects, each a polygon of
24-40 vertices (one of them in two parts), and every fourth image a crowd region as uncompressed RLE; the
objects overlap. Per image:
  (a) the bound: pycocotools reads the JSON (COCO()), draws each annotation with COCO.annToMask, the objects
      are painted later-on-top into one class-index mask, and Pillow encodes it as a single-channel PNG; one
      process, no pipeline;
  (b) `gt2seg import coco SRC OUT --workers 1` (JPEG check + copy, the same drawing, PNG, cache, split,
      layout, manifests, report). Target b/a <= 1.3, by wall and CPU time;
  (c) Datumaro, in its own venv: import the export as `coco_instances`, turn polygons into masks
      (`polygons_to_masks`: without it, `voc_segmentation` exports only the RLE masks and leaves every
      polygon out), export as `voc_segmentation` (class masks + images). Target c/b >= 5.
The export lives in bench-out/ and is reused; outputs are deleted after timing.

    python benchmarks/bench_import_coco.py --datumaro .venv-bench/bin/python
    python benchmarks/bench_import_coco.py --n 100 --json
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_convert import discard, empty_trash  # noqa: E402
from bench_import import log, timed  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
W, H = 1024, 768
TARGET_OVERHEAD, TARGET_DATUMARO = 1.3, 5.0
CATEGORIES = [{"id": 1, "name": "person", "supercategory": ""}, {"id": 3, "name": "car", "supercategory": ""},
              {"id": 18, "name": "dog", "supercategory": ""}]
DATUMARO = """
import sys, time, json
import datumaro as dm
start = time.perf_counter()
dataset = dm.Dataset.import_from(sys.argv[1], "coco_instances")
dataset = dataset.transform("polygons_to_masks")  # else voc_segmentation writes only the RLE (crowd) masks
dataset.export(sys.argv[2], "voc_segmentation", save_media=True)
print(json.dumps({"seconds": time.perf_counter() - start, "items": len(dataset)}))
"""


def _polygon(rng, cx, cy, r, vertices) -> list[float]:
    angles = np.sort(rng.uniform(0, 2 * np.pi, vertices))
    radii = r * rng.uniform(0.6, 1.0, vertices)
    xs = np.clip(cx + radii * np.cos(angles), 0, W - 1)
    ys = np.clip(cy + radii * np.sin(angles), 0, H - 1)
    return [round(float(v), 2) for xy in zip(xs, ys) for v in xy]


def _counts(mask: np.ndarray) -> list[int]:
    flat = mask.T.reshape(-1)
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]))
    counts = np.diff(bounds).tolist()
    return counts if flat[0] == 0 else [0, *counts]


def make_export(root: Path, n: int) -> Path:
    """The COCO export of n images (reused when complete); returns the annotations file."""
    annotations = root / "annotations" / "instances_default.json"
    if annotations.exists():
        return annotations
    images_dir = root / "images" / "default"
    images_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images, anns = [], []
    gradient = np.stack([np.linspace(40, 160, W)[None].repeat(H, 0)] * 3, -1).astype(np.uint8)
    for i in range(n):
        name = f"frame_{i:06d}.jpg"
        img = gradient.copy()
        img[rng.integers(0, H - 200):, rng.integers(0, W - 300):][:150, :250] = rng.integers(80, 255, 3)
        out = io.BytesIO()
        Image.fromarray(img, "RGB").save(out, format="JPEG", quality=85)
        (images_dir / name).write_bytes(out.getvalue())
        images.append({"id": i + 1, "width": W, "height": H, "file_name": name, "license": 0, "date_captured": 0})
        for k in range(3):
            cx, cy, r = rng.integers(200, W - 200), rng.integers(150, H - 150), rng.integers(80, 200)
            parts = [_polygon(rng, cx, cy, r, int(rng.integers(24, 41)))]
            if k == 1:
                parts.append(_polygon(rng, cx + r, cy, r // 2, 24))
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": CATEGORIES[k]["id"], "iscrowd": 0,
                         "area": 0.0, "bbox": [0, 0, 0, 0], "segmentation": parts, "attributes": {"occluded": False}})
        if i % 4 == 0:
            crowd = np.zeros((H, W), np.uint8)
            crowd[rng.integers(0, H // 2):, :][: H // 3, rng.integers(0, W // 2):][:, : W // 3] = 1
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 1, "area": 0.0,
                         "bbox": [0, 0, 0, 0], "segmentation": {"size": [H, W], "counts": _counts(crowd)}})
    annotations.parent.mkdir(parents=True, exist_ok=True)
    data = {"licenses": [{"name": "", "id": 0, "url": ""}], "info": {}, "categories": CATEGORIES,
            "images": images, "annotations": anns}
    annotations.write_text(json.dumps(data))
    return annotations


def bound(annotations: Path, out: Path) -> tuple[float, float]:
    """Wall and CPU seconds of the reference decoder + the PNG encode, no pipeline (a)."""
    import contextlib

    from pycocotools.coco import COCO

    discard(out)
    out.mkdir(parents=True)
    start, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints its progress
        api = COCO(str(annotations))
    index = {c["id"]: n + 1 for n, c in enumerate(sorted(api.dataset["categories"], key=lambda c: c["id"]))}
    for image_id, image in api.imgs.items():
        mask = np.zeros((image["height"], image["width"]), np.uint8)
        for ann in api.imgToAnns[image_id]:
            mask[api.annToMask(ann) > 0] = index[ann["category_id"]]
        Image.fromarray(mask, "L").save(out / f"{Path(image['file_name']).stem}.png", "PNG")
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    discard(out)
    return seconds, cpu


def measure(args, root: Path, n: int) -> dict:
    log(f"N={n}: COCO export (reused when already there)")
    src = root / f"coco-{n}"
    annotations = make_export(src, n)
    log("(a) bound: pycocotools annToMask + Pillow PNG")
    bare, bare_cpu = bound(annotations, root / "bare")
    log("(b) gt2seg import coco --workers 1")
    out = root / "import-out"
    discard(out)
    gt = timed([args.gt2seg, "import", "coco", str(src), str(out), "--workers", "1", "--json"], root)
    discard(out)
    dm = None
    if args.datumaro:
        log("(c) Datumaro coco_instances import + voc_segmentation export")
        discard(root / "datumaro-out")
        dm = timed([args.datumaro, "-c", DATUMARO, str(src), str(root / "datumaro-out")], root)
        discard(root / "datumaro-out")
    result = {
        "n": n, "size": f"{W}x{H}", "cpus": os.cpu_count(),
        "bound_ms": 1000 * bare / n, "bound_cpu_ms": 1000 * bare_cpu / n,
        "gt2seg_ms": 1000 * gt.seconds / n, "gt2seg_cpu_ms": 1000 * gt.cpu_seconds / n,
        "overhead": gt.seconds / bare, "overhead_cpu": gt.cpu_seconds / bare_cpu,
        "datumaro_ms": 1000 * dm.seconds / n if dm else None,
        "datumaro_ratio": dm.seconds / gt.seconds if dm else None,
        "datumaro_cpu_ms": 1000 * dm.cpu_seconds / n if dm else None,
        "datumaro_ratio_cpu": dm.cpu_seconds / gt.cpu_seconds if dm else None,
    }
    result["overhead_ok"] = result["overhead"] <= TARGET_OVERHEAD
    result["overhead_cpu_ok"] = result["overhead_cpu"] <= TARGET_OVERHEAD
    result["datumaro_ok"] = dm is not None and result["datumaro_ratio"] >= TARGET_DATUMARO
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="images in the export")
    parser.add_argument("--root", type=Path, default=REPO / "bench-out", help="where the export and outputs go")
    parser.add_argument("--gt2seg", default=str(REPO / ".venv" / "bin" / "gt2seg"), help="the CLI to time")
    parser.add_argument("--datumaro", help="python of a venv with datumaro installed (skips (c) when absent)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = parser.parse_args()
    root = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    try:
        result = measure(args, root, args.n)
    finally:
        empty_trash(root)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    ok = {True: "met", False: "MISSED"}
    print(f"N={args.n} images of {W}x{H}, 3-4 objects each, ms per image (one process each)")
    print(f"  (a) bound: annToMask + PNG  {result['bound_ms']:7.2f}  ({result['bound_cpu_ms']:.2f} cpu)")
    print(f"  (b) gt2seg import coco      {result['gt2seg_ms']:7.2f}  ({result['gt2seg_cpu_ms']:.2f} cpu)   b/a "
          f"{result['overhead']:.2f} wall, {result['overhead_cpu']:.2f} cpu (target <= {TARGET_OVERHEAD}: "
          f"{ok[result['overhead_ok']]} / {ok[result['overhead_cpu_ok']]})")
    if result["datumaro_ms"] is not None:
        print(f"  (c) Datumaro coco -> voc    {result['datumaro_ms']:7.2f}  ({result['datumaro_cpu_ms']:.2f} cpu)   "
              f"c/b {result['datumaro_ratio']:.1f}x wall, {result['datumaro_ratio_cpu']:.1f}x cpu "
              f"(target >= {TARGET_DATUMARO}: {ok[result['datumaro_ok']]})")
    else:
        print("  (c) Datumaro: not run (pass --datumaro PYTHON)")


if __name__ == "__main__":
    main()
