#!/usr/bin/env python3
"""Benchmark `gt2seg import` (`make bench-import`): Pet trimaps vs the bare bound, VOC vs Datumaro.

(1) Oxford-IIIT Pet: N synthetic 500x375 trimaps (with their JPEGs, list.txt and split files), per mask:
    (a) bare Pillow: decode each trimap and encode a single-channel PNG of it, in one process (the bound
        bench_convert.py uses, the same code); (b) `gt2seg import pets SRC OUT --workers 1`. Target b/a <= 1.3,
    by wall and by CPU time (the machine may be shared; CPU time barely feels other people's load).
(2) Pascal VOC 2012: the same N as a VOCdevkit tree (palette masks, 255 boundaries), per mask:
    (c) `gt2seg import voc SRC OUT --workers 1`; (d) Datumaro, in its own venv (it must not enter the
    project's), importing the tree as `voc_segmentation` and exporting it to a mask folder (Datumaro's
    `voc_segmentation` export: SegmentationClass PNGs + images). Target d/c >= 5, run side by side.
Trees live in bench-out/ and are reused; outputs are deleted after timing.

    python benchmarks/bench_import.py --datumaro .venv-bench/bin/python
    python benchmarks/bench_import.py --n 200 --json
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_convert import bare_decode_encode, discard, empty_trash  # noqa: E402
from bench_convert_scale import DATUMARO  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
W, H = 500, 375
TARGET_OVERHEAD, TARGET_DATUMARO = 1.3, 5.0


@dataclass
class Timed:
    seconds: float
    cpu_seconds: float  # user+sys of the process and the children it reaped (wait4)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def timed(cmd: list[str], logs: Path) -> Timed:
    with open(logs / "stdout.log", "wb") as stdout, open(logs / "stderr.log", "wb") as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        tail = (logs / "stderr.log").read_text(errors="replace")[-2000:]
        raise SystemExit(f"bench: {' '.join(cmd)} failed:\n{tail}")
    return Timed(seconds, usage.ru_utime + usage.ru_stime)


def _scene(rng) -> tuple[np.ndarray, bytes]:
    """A label map (0 background, 1 object, 2 a 3-pixel band around it) and a JPEG rendered from it."""
    yy, xx = np.mgrid[:H, :W]
    cx, cy, rx, ry = rng.integers(150, 350), rng.integers(120, 250), rng.integers(60, 140), rng.integers(50, 110)
    r = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    labels = np.zeros((H, W), np.uint8)
    labels[r <= 1.04] = 2
    labels[r <= 0.96] = 1
    img = np.stack([np.linspace(40, 160, W)[None].repeat(H, 0)] * 3, -1)
    img[labels == 1] = rng.integers(80, 255, 3)
    out = io.BytesIO()
    Image.fromarray(img.astype(np.uint8), "RGB").save(out, format="JPEG", quality=85)
    return labels, out.getvalue()


def _png(array: np.ndarray, palette: bytes | None = None) -> bytes:
    img = Image.fromarray(array, "L")
    if palette:
        img = img.convert("P")
        img.putpalette(palette)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def make_pets(root: Path, n: int) -> list[Path]:
    """An Oxford-IIIT Pet tree of n items (reused when complete); returns the trimap paths."""
    trimaps = [root / "annotations" / "trimaps" / f"Bengal_{i}.png" for i in range(n)]
    if (root / "annotations" / "list.txt").exists():
        return trimaps
    (root / "images").mkdir(parents=True, exist_ok=True)
    trimaps[0].parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i, path in enumerate(trimaps):
        labels, jpeg = _scene(rng)
        (root / "images" / f"Bengal_{i}.jpg").write_bytes(jpeg)
        path.write_bytes(_png(np.choose(labels, [2, 1, 3]).astype(np.uint8)))
        rows.append(f"Bengal_{i} 6 1 2\n")
    (root / "annotations" / "trainval.txt").write_text("".join(rows[: n * 3 // 4]))
    (root / "annotations" / "test.txt").write_text("".join(rows[n * 3 // 4:]))
    (root / "annotations" / "list.txt").write_text("#Image CLASS-ID SPECIES BREED ID\n" + "".join(rows))
    return trimaps


def make_voc(root: Path, n: int) -> None:
    """A VOCdevkit/VOC2012 tree of n items (reused when complete): palette masks with 255 boundaries."""
    base = root / "VOCdevkit" / "VOC2012"
    if (base / "ImageSets" / "Segmentation" / "val.txt").exists():
        return
    from gt2seg.importers.voc import colors

    palette = bytearray(768)
    for i, color in enumerate(colors()):
        palette[3 * i: 3 * i + 3] = bytes.fromhex(color[1:])
    palette[765:768] = b"\xe0\xe0\xc0"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    ids = [f"2008_{i:06d}" for i in range(n)]
    for i, name in enumerate(ids):
        labels, jpeg = _scene(rng)
        (base / "JPEGImages" / f"{name}.jpg").write_bytes(jpeg)
        (base / "SegmentationClass" / f"{name}.png").write_bytes(
            _png(np.choose(labels, [0, 1 + i % 20, 255]).astype(np.uint8), bytes(palette)))
    sets = base / "ImageSets" / "Segmentation"
    (sets / "train.txt").write_text("".join(f"{i}\n" for i in ids[: n * 3 // 4]))
    (sets / "val.txt").write_text("".join(f"{i}\n" for i in ids[n * 3 // 4:]))
    # No trainval.txt: Datumaro reads each list as a subset, so it would import and export every item twice.


def gt2seg_import(gt2seg: str, fmt: str, src: Path, out: Path, logs: Path) -> Timed:
    discard(out)  # import resumes finished items: time a fresh run
    result = timed([gt2seg, "import", fmt, str(src), str(out), "--workers", "1", "--split", "official",
                    "--json"], logs)
    discard(out)
    return result


def datumaro(python: str, src: Path, out: Path, logs: Path) -> Timed:
    discard(out)
    result = timed([python, "-c", DATUMARO, str(src / "VOCdevkit" / "VOC2012"), str(out)], logs)
    discard(out)
    return result


def measure(args, root: Path, n: int) -> dict:
    """The timed runs and their ratios."""
    log(f"N={n}: Pet and VOC trees (reused when already there)")
    trimaps = make_pets(root / f"pets-{n}", n)
    make_voc(root / f"voc-{n}", n)
    log("(a) bare decode+encode of the trimaps")
    bare, bare_cpu = bare_decode_encode(trimaps, root / "bare")
    log("(b) gt2seg import pets --workers 1")
    pets = gt2seg_import(args.gt2seg, "pets", root / f"pets-{n}", root / "import-out", root)
    log("(c) gt2seg import voc --workers 1")
    voc = gt2seg_import(args.gt2seg, "voc", root / f"voc-{n}", root / "import-out", root)
    dm = None
    if args.datumaro:
        log("(d) Datumaro voc_segmentation import + export")
        dm = datumaro(args.datumaro, root / f"voc-{n}", root / "datumaro-out", root)
    result = {
        "n": n, "cpus": os.cpu_count(),
        "bare_ms": 1000 * bare / n, "pets_ms": 1000 * pets.seconds / n,
        "pets_overhead": pets.seconds / bare, "pets_overhead_cpu": pets.cpu_seconds / bare_cpu,
        "voc_ms": 1000 * voc.seconds / n,
        "datumaro_ms": 1000 * dm.seconds / n if dm else None,
        "datumaro_ratio": dm.seconds / voc.seconds if dm else None,
        "runs": {"pets": asdict(pets), "voc": asdict(voc), "datumaro": asdict(dm) if dm else None},
    }
    result["overhead_ok"] = result["pets_overhead"] <= TARGET_OVERHEAD
    result["overhead_cpu_ok"] = result["pets_overhead_cpu"] <= TARGET_OVERHEAD
    result["datumaro_ok"] = dm is not None and result["datumaro_ratio"] >= TARGET_DATUMARO
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="masks per dataset")
    parser.add_argument("--root", type=Path, default=REPO / "bench-out", help="where trees and outputs go")
    parser.add_argument("--gt2seg", default=str(REPO / ".venv" / "bin" / "gt2seg"), help="the CLI to time")
    parser.add_argument("--datumaro", help="python of a venv with datumaro installed (skips (d) when absent)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = parser.parse_args()
    root = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    n = args.n
    try:
        result = measure(args, root, n)
    finally:
        empty_trash(root)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"N={n} masks of {W}x{H}, ms per mask (one process each)")
    print(f"  (a) bare decode+encode  {result['bare_ms']:7.2f}")
    print(f"  (b) gt2seg import pets  {result['pets_ms']:7.2f}   b/a {result['pets_overhead']:.2f} wall, "
          f"{result['pets_overhead_cpu']:.2f} cpu (target <= {TARGET_OVERHEAD}: "
          f"{'met' if result['overhead_ok'] else 'MISSED'} / {'met' if result['overhead_cpu_ok'] else 'MISSED'})")
    print(f"  (c) gt2seg import voc   {result['voc_ms']:7.2f}")
    if result["datumaro_ms"] is not None:
        print(f"  (d) Datumaro voc->mask  {result['datumaro_ms']:7.2f}   d/c {result['datumaro_ratio']:.1f}x "
              f"(target >= {TARGET_DATUMARO}: {'met' if result['datumaro_ok'] else 'MISSED'})")
    else:
        print("  (d) Datumaro: not run (pass --datumaro PYTHON)")


if __name__ == "__main__":
    main()
