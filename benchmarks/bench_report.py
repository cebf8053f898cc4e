"""Dataset report benchmark: time and size of `gt2seg report` on synthetic layouts of growing size.

    python benchmarks/bench_report.py [--items 1000 20000] [--size 64] [--json]

Target (issue 14): roughly flat in the number of items, because the gallery is bounded. The one per-item
cost is the class count: a histogram of each mask, or (a layout gt2seg convert wrote) its cache record.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from PIL import Image  # noqa: E402

from gt2seg.report import build_dataset_report, write_dataset_report  # noqa: E402
from synthdata import write_layout  # noqa: E402


def add_cache_records(data: Path) -> None:
    """The per-item records gt2seg convert leaves in .gt2seg/items/ (pixels per class, flags), from the masks."""
    cache = data / ".gt2seg" / "items"
    cache.mkdir(parents=True, exist_ok=True)
    for mask in data.glob("*_annotation/*.png"):
        with Image.open(mask) as image:
            pixels = image.histogram()[:3]
        record = {"pixels": pixels, "expanded": False, "resized": False, "exif_rotated": False}
        (cache / f"{mask.stem}.json").write_text(json.dumps(record))


def bench(items: int, size: int, scratch: Path, cached: bool) -> dict:
    data = scratch / f"layout-{items}"
    if not data.is_dir():
        write_layout(data, n_train=items - items // 5, n_val=items // 5, size=size)
    if cached:
        add_cache_records(data)
    started = time.perf_counter()
    report = build_dataset_report(data)
    counted = time.perf_counter()
    index = Path(write_dataset_report(report))
    done = time.perf_counter()
    pictures = list((index.parent / "img").iterdir())
    return {"items": items, "counts_from": "cache" if cached else "masks", "count_s": round(counted - started, 2), "pictures_s": round(done - counted, 2),
            "total_s": round(done - started, 2), "pictures": len(pictures),
            "page_kb": round((index.stat().st_size + sum(p.stat().st_size for p in pictures)) / 1024)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[1000, 20000])
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        rows = [bench(n, args.size, Path(scratch), cached) for n in args.items for cached in (False, True)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'items':>7} {'counts from':>11} {'count s':>8} {'pictures s':>10} {'total s':>8} {'pictures':>8} {'page KB':>8}")
    for r in rows:
        print(f"{r['items']:>7} {r['counts_from']:>11} {r['count_s']:>8} {r['pictures_s']:>10} {r['total_s']:>8} {r['pictures']:>8} "
              f"{r['page_kb']:>8}")


if __name__ == "__main__":
    main()
