#!/usr/bin/env python3
"""Benchmark `gt2seg convert` against bare Pillow on synthetic 1024x768 Ground Truth jobs (`make bench`).

For each size N this script times three things, per mask:
  (a) bare Pillow: decode each mask and encode one single-channel PNG of the same size, in one process.
      Palette masks are re-encoded as they are, and RGB masks by their first channel. No converter can do
      less work than this.
  (b) `gt2seg convert … --workers 1`, run through its CLI as a subprocess
  (c) the same with `--workers` set to every core
(b) and (c) alternate for --rounds rounds (2), each the fastest of its runs. Outputs are set aside by a
rename and deleted once the timing is over (see discard()).
Wall time is the target, but on a shared machine it swings with other people's load. So (a) and (b) are
also compared by CPU time (process_time, and wait4's ru_utime+ru_stime), which barely feels that load.
Peak memory is measured in two ways. For --workers 1 it is the process's own peak, wait4's ru_maxrss (what
/usr/bin/time -v shows). For the pool it is the whole process tree, summing Pss (or VmRSS) from /proc every
0.2 s: workers forked by a forkserver are not the convert's children, so wait4 never counts them.
Targets: (b)/(a) <= 1.3, (b)/(c) >= 1.8 on 2 cores, and peak memory flat as N grows. "cores busy" is the
whole machine's busy CPU time during a run over its wall time: kernel threads (the writeback of what the run
wrote) and gt2seg's read-ahead threads use a second core during (b), which (c) has to share.
Then, at S3 scale (benchmarks/bench_convert_scale.py):
  latency  the --latency-n job (1024x768) from a moto S3 server through a proxy adding 0 ms, then --latency-ms,
           per request, 2 workers (target: <= 1.25x)
  memory   peak memory of the whole process tree for --rss-sizes items (images 1024/16 x 768/16: what grows
           with the number of items, not with their size), 2 workers (target: growth <= 10 MB)
  bound    (b) per mask vs libspng's decoder (pyspng) + a level-1 single-channel PNG encode (target <= 1.0x)
  datumaro Datumaro's voc_segmentation import + export of the same masks vs (c) (target >= 15x)
The last two run in --bench-python, a venv with pyspng and datumaro (`make bench-convert` builds
.venv-bench); without it they are skipped.
Jobs live in bench-out/ and are reused between runs; the converted outputs are deleted after timing.

    python benchmarks/bench_convert.py                      # N = 200, 1000
    python benchmarks/bench_convert.py --sizes 1000,10000 --json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_synthetic_job import make_job  # noqa: E402
import bench_convert_scale as scale  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TARGET_OVERHEAD, TARGET_SPEEDUP, TARGET_RSS_GROWTH = 1.3, 1.8, 1.25


@dataclass
class Run:
    """One timed `gt2seg convert` subprocess."""

    workers: int
    seconds: float
    cpu_seconds: float      # user+sys of the process and the children it reaped (wait4)
    max_rss_mb: float       # largest single process it reaped (wait4 ru_maxrss)
    tree_peak_mb: float     # sampled sum over the process tree (Pss where the kernel has it)
    cores_busy: float       # the whole machine's busy CPU seconds during the run / its wall seconds


@dataclass
class Row:
    n: int
    bare_ms: float
    one_ms: float
    all_ms: float
    workers: int
    overhead: float         # (b)/(a), wall
    overhead_cpu: float     # (b)/(a), CPU time; meaningful for --workers 1 only
    speedup: float          # (b)/(c)
    one: Run
    all: Run


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def bare_pillow(manifest: Path, out: Path) -> tuple[float, float]:
    """Wall and CPU seconds to decode every mask of the job and encode a single-channel PNG of it."""
    refs = [json.loads(line)["bench-ref"] for line in manifest.read_text().splitlines()]
    return bare_decode_encode([manifest.parent / ref for ref in refs], out)


TRASH = ".trash"


def discard(path: Path) -> None:
    """Set a timed run's output aside (one rename) instead of deleting it: ext4 allocates new inodes
    slowly for ~30 s after thousands were freed (recently_deleted() in the kernel's profile), which
    charged the next timed run for the previous run's clean-up. empty_trash() deletes after the timing."""
    if path.exists():
        trash = path.parent / TRASH
        trash.mkdir(exist_ok=True)
        path.rename(trash / f"{path.name}-{time.time_ns()}")


def empty_trash(root: Path) -> None:
    shutil.rmtree(root / TRASH, ignore_errors=True)


def bare_decode_encode(masks: list[Path], out: Path) -> tuple[float, float]:
    """Wall and CPU seconds to decode each mask file and encode a single-channel PNG of it: the bound."""
    discard(out)
    out.mkdir(parents=True)
    start, cpu = time.perf_counter(), time.process_time()
    for i, path in enumerate(masks):
        with Image.open(path) as img:
            img.load()
            single = img if img.mode in ("P", "L") else img.getchannel(0)
            single.save(out / f"{i}.png", "PNG")
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    discard(out)
    return seconds, cpu


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat: all but idle and iowait),
    kernel threads included: the writeback of what a run wrote runs there, not in the run's processes."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _tree_memory_kb(root: int) -> int:
    """Sum of Pss (VmRSS if no smaps_rollup) over `root` and its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == pid and p not in tree]
        tree.update(kids)
        frontier.extend(kids)
    total = 0
    for pid in tree:
        for name, key in (("smaps_rollup", "Pss:"), ("status", "VmRSS:")):
            try:
                lines = Path(f"/proc/{pid}/{name}").read_text().splitlines()
            except OSError:
                continue
            hits = [int(line.split()[1]) for line in lines if line.startswith(key)]
            if hits:
                total += hits[0]
                break
    return total


def run_convert(gt2seg: str, manifest: Path, out: Path, workers: int, logs: Path) -> Run:
    """Time one fresh convert (OUT set aside first: convert resumes finished items) and measure its memory."""
    discard(out)
    cmd = [gt2seg, "convert", str(manifest), str(out), "--workers", str(workers), "--json",
           "--validation-fraction", "0.2", "--seed", "0"]
    peak, done = [0], threading.Event()
    with open(logs / "stdout.json", "wb") as stdout, open(logs / "stderr.log", "wb") as stderr:
        start, busy = time.perf_counter(), _busy_seconds()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr)

        def sample() -> None:
            while not done.wait(0.2):
                peak[0] = max(peak[0], _tree_memory_kb(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds, busy = time.perf_counter() - start, _busy_seconds() - busy
        proc.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        sampler.join()
    if proc.returncode != 0:
        tail = (logs / "stderr.log").read_text(errors="replace")[-2000:]
        raise SystemExit(f"bench: {' '.join(cmd)} exited {proc.returncode}:\n{tail}")
    written = sum(1 for d in ("train_annotation", "validation_annotation") for _ in (out / d).iterdir())
    expected = sum(1 for _ in manifest.open())
    if written != expected:
        raise SystemExit(f"bench: {out} holds {written} masks, expected {expected}; see {logs}/stderr.log")
    discard(out)
    return Run(workers, seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, peak[0] / 1024,
               busy / seconds)


def bench_size(n: int, root: Path, gt2seg: str, workers: int, rounds: int) -> Row:
    """(a), then (b) and (c) alternating for `rounds` rounds; each the fastest of its runs."""
    log(f"N={n}: writing the synthetic job (reused when already there)")
    manifest = make_job(root / f"job-{n}", n)
    log(f"N={n}: (a) bare Pillow")
    bare, bare_cpu = bare_pillow(manifest, root / "bare")
    ones, everys = [], []
    for round_ in range(1, rounds + 1):
        log(f"N={n}: (b) gt2seg convert --workers 1, round {round_}/{rounds}")
        ones.append(run_convert(gt2seg, manifest, root / "out", 1, root))
        log(f"N={n}: (c) gt2seg convert --workers {workers}, round {round_}/{rounds}")
        everys.append(run_convert(gt2seg, manifest, root / "out", workers, root))
        log(f"N={n}: round {round_}: (b) {ones[-1].seconds:.2f} s, {ones[-1].cores_busy:.2f} cores busy; "
            f"(c) {everys[-1].seconds:.2f} s, {everys[-1].cores_busy:.2f} cores busy; "
            f"b/c {ones[-1].seconds / everys[-1].seconds:.2f}")
    one, every = (min(runs, key=lambda run: run.seconds) for runs in (ones, everys))
    return Row(n, 1000 * bare / n, 1000 * one.seconds / n, 1000 * every.seconds / n, workers,
               one.seconds / bare, one.cpu_seconds / bare_cpu, one.seconds / every.seconds, one, every)


def verdicts(rows: list[Row]) -> dict:
    """Check each target on every row; memory is compared between the smallest and largest N."""
    first, last = rows[0], rows[-1]
    growth = max(last.one.max_rss_mb / first.one.max_rss_mb, last.all.tree_peak_mb / max(first.all.tree_peak_mb, 1))
    return {"overhead_ok": all(r.overhead <= TARGET_OVERHEAD for r in rows),
            "overhead_cpu_ok": all(r.overhead_cpu <= TARGET_OVERHEAD for r in rows),
            "speedup_ok": all(r.speedup >= TARGET_SPEEDUP for r in rows),
            "memory_growth": round(growth, 3),
            "memory_flat": len(rows) < 2 or growth <= TARGET_RSS_GROWTH}


def table(rows: list[Row], verdict: dict) -> str:
    out = [f"{'N':>7} {'(a) bare':>9} {'(b) w=1':>9} {'(c) w=all':>10} {'b/a':>6} {'b/a':>6} {'b/c':>6} "
           f"{'peak w=1':>9} {'peak w=all':>11} {'cores busy':>11}",
           f"{'':>7} {'ms/mask':>9} {'ms/mask':>9} {'ms/mask':>10} {'wall':>6} {'cpu':>6} {'wall':>6} "
           f"{'MB':>9} {'MB (tree)':>11} {'(b) / (c)':>11}"]
    for r in rows:
        out.append(f"{r.n:>7} {r.bare_ms:>9.1f} {r.one_ms:>9.1f} {r.all_ms:>10.1f} {r.overhead:>6.2f} "
                   f"{r.overhead_cpu:>6.2f} {r.speedup:>6.2f} {r.one.max_rss_mb:>9.0f} {r.all.tree_peak_mb:>11.0f} "
                   f"{r.one.cores_busy:>5.2f} / {r.all.cores_busy:.2f}")

    def met(key: str) -> str:
        return "met" if verdict[key] else "MISSED"

    out.append(f"(c) used --workers {rows[0].workers}. Targets: b/a <= {TARGET_OVERHEAD} {met('overhead_ok')} "
               f"(cpu: {met('overhead_cpu_ok')}), b/c >= {TARGET_SPEEDUP} {met('speedup_ok')}, memory "
               f"{'flat' if verdict['memory_flat'] else 'GROWS'} (x{verdict['memory_growth']} from N={rows[0].n} "
               f"to N={rows[-1].n})")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,1000", help="comma-separated N values (e.g. 1000,10000)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="workers for (c): all cores")
    parser.add_argument("--rounds", type=int, default=2, help="(b) and (c) alternate this many times; the fastest counts")
    parser.add_argument("--root", type=Path, default=REPO / "bench-out", help="where jobs and outputs go")
    parser.add_argument("--gt2seg", default=str(REPO / ".venv" / "bin" / "gt2seg"), help="the CLI to time")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.add_argument("--latency-n", type=int, default=300, help="items of the latency run (0: skip)")
    parser.add_argument("--latency-ms", type=float, default=30.0, help="latency the proxy adds per request")
    parser.add_argument("--rss-sizes", default="1000,20000", help="item counts of the memory run ('': skip)")
    parser.add_argument("--bench-python", default=str(REPO / ".venv-bench" / "bin" / "python"),
                        help="python of a venv with pyspng and datumaro (bound and Datumaro rows)")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if not Path(args.gt2seg).exists() and not shutil.which(args.gt2seg):
        raise SystemExit(f"bench: no gt2seg CLI at {args.gt2seg}; run `make venv` first or pass --gt2seg")
    args.root.mkdir(parents=True, exist_ok=True)
    root = args.root.resolve()
    try:
        rows = [bench_size(n, root, args.gt2seg, args.workers, args.rounds) for n in sizes]
        verdict = verdicts(rows)
        extra = s3_scale(args, root, rows[-1])
    finally:
        empty_trash(root)
    if args.json:
        print(json.dumps({"cpus": os.cpu_count(), "rows": [asdict(r) for r in rows], **verdict, **extra}, indent=2))
    else:
        print(table(rows, verdict))
        for line in scale_lines(extra):
            print(line)


def s3_scale(args, root: Path, last: Row) -> dict:
    """The latency, memory, bound and Datumaro measurements (see the module docstring)."""
    extra: dict = {"load_before": os.getloadavg()}
    if args.latency_n:
        log(f"latency: N={args.latency_n} through a proxy adding 0 and {args.latency_ms} ms per request")
        job = make_job(root / f"job-{args.latency_n}", args.latency_n).parent
        extra["latency"] = scale.latency(job, root, args.gt2seg, 2, args.latency_ms)
    if args.rss_sizes:
        peaks = {}
        for n in sorted(int(x) for x in args.rss_sizes.split(",")):
            log(f"memory: N={n} small items, 2 workers")
            manifest = make_job(root / f"rss-job-{n}", n, step=16)
            peaks[n] = scale.tree_peak(args.gt2seg, manifest, root / "rss-out", 2, _tree_memory_kb)
        extra["memory_tree_peak_mb"] = peaks
        extra["memory_growth_mb"] = peaks[max(peaks)] - peaks[min(peaks)]
    if Path(args.bench_python).exists():
        job = root / f"job-{last.n}"
        masks = [job / json.loads(line)["bench-ref"] for line in (job / "output.manifest").read_text().splitlines()]
        log(f"bound: pyspng decode + level-1 encode of the N={last.n} masks")
        bound = scale.fast_bound(args.bench_python, masks, root)
        extra["fast_bound_ms"] = 1000 * bound["seconds"] / last.n
        extra["gt2seg_vs_fast_bound"] = last.one_ms / extra["fast_bound_ms"]
        log(f"datumaro: voc_segmentation import + export of the N={last.n} masks")
        dm = scale.datumaro(args.bench_python, job, root)
        extra["datumaro_ms"] = 1000 * dm["seconds"] / last.n
        extra["datumaro_vs_gt2seg_2_workers"] = extra["datumaro_ms"] / last.all_ms
    extra["load_after"] = os.getloadavg()
    return extra


def scale_lines(extra: dict) -> list[str]:
    lines = [f"load average before/after: {extra['load_before'][0]:.2f} / {extra['load_after'][0]:.2f}"]
    if "latency" in extra:
        lat = extra["latency"]
        lines.append(f"latency: N={lat['n']}, {lat['workers']} workers, S3 via proxy: +0 ms {lat['seconds_0ms']:.1f} s, "
                     f"+{lat['added_ms']:.0f} ms {lat['seconds_added']:.1f} s -> {lat['ratio']:.2f}x (target <= 1.25)")
    if "memory_tree_peak_mb" in extra:
        peaks = extra["memory_tree_peak_mb"]
        lines.append("memory (tree peak, 2 workers): " + ", ".join(f"N={n}: {mb:.0f} MB" for n, mb in peaks.items())
                     + f" -> growth {extra['memory_growth_mb']:.1f} MB (target <= 10)")
    if "fast_bound_ms" in extra:
        lines.append(f"bound: pyspng + level-1 encode {extra['fast_bound_ms']:.1f} ms/mask; gt2seg (b) / bound = "
                     f"{extra['gt2seg_vs_fast_bound']:.2f} (target <= 1.0)")
        lines.append(f"datumaro: {extra['datumaro_ms']:.1f} ms/mask; / gt2seg (c) = "
                     f"{extra['datumaro_vs_gt2seg_2_workers']:.1f}x (target >= 15)")
    return lines


if __name__ == "__main__":
    main()
