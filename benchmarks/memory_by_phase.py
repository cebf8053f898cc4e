#!/usr/bin/env python3
"""Where `gt2seg convert`'s parent memory goes, by phase: Python-heap peaks (tracemalloc) of reading the
manifest, naming, the map and the reduce, in one process (--workers 1, so the figures are the parent's
per-item state plus one worker's constant share). The README's memory breakdown comes from:

    make bench-convert     # writes bench-out/rss-job-20000 (20,000 items of 64x48) for its memory rows
    python benchmarks/memory_by_phase.py bench-out/rss-job-20000/output.manifest
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import gt2seg.convert as convert

PHASES = ("read_manifest", "_assign_names", "_map", "reduce")
_peaks: list[int] = []  # each phase resets tracemalloc's peak: the overall peak is the largest of theirs


def _timed(name: str, func):
    def wrapper(*args, **kwargs):
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        start = time.perf_counter()
        out = func(*args, **kwargs)
        current, peak = tracemalloc.get_traced_memory()
        _peaks.append(peak)
        print(f"{name:14s} start {before / 1e6:6.1f} MB  peak {peak / 1e6:6.1f} MB  end {current / 1e6:6.1f} MB  "
              f"{time.perf_counter() - start:6.1f} s")
        return out
    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", help="a synthetic job's output.manifest (benchmarks/make_synthetic_job.py)")
    args = parser.parse_args()
    for name in PHASES:  # module-level names the pipeline calls through: measured without changing it
        setattr(convert, name, _timed(name, getattr(convert, name)))
    out = Path(tempfile.mkdtemp(prefix="memory-by-phase-"))
    tracemalloc.start()
    try:
        convert.convert(args.manifest, out / "layout", convert.ConvertOptions(workers=1))
        print(f"overall peak {max(_peaks + [tracemalloc.get_traced_memory()[1]]) / 1e6:.1f} MB", file=sys.stdout)
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
