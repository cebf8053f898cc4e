"""CPU inference per engine: the torch engine vs the MXNet engine vs ONNX Runtime, on the same model file.

    python benchmarks/bench_engines.py [--algorithms fcn,deeplab] [--size 512] [--rounds 5] [--threads N]
                                       [--engines torch,mxnet,onnx] [--json]

One random-weight artifact per network (ResNet-50, 21 classes, tests/artifacts.save_random_artifact: weights
do not change the cost), and its `seg export --format onnx` file. Each engine runs in a process of its own
(MXNet loaded into a process drops torch to one thread) with OMP_NUM_THREADS=N (and torch.set_num_threads(N);
ONNX Runtime takes OMP_NUM_THREADS as its intra-op threads): `Predictor.load(model, engine=...)` or
`OnnxPredictor.load(model.onnx)`, then `.predict(rgb)` on one size x size image (normalise, forward, argmax:
what `seg predict` and the endpoint run per image). The engines take turns (benchmarks/engine_rounds.py): one
warm-up round, then --rounds rounds of one image per engine, so load from other processes hits all alike.
The HTTP server's own cost is bench_onnx_serve.py's; this is the engines alone.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # artifacts: a random-weights model

from bench_serve import percentiles  # noqa: E402
from engine_rounds import Worker, interleaved, serve_units  # noqa: E402

ENGINES = ("torch", "mxnet", "onnx")


def worker(engine: str, model: str, size: int, threads: int) -> None:
    """One engine in this process: one `predict` per `go` (engine_rounds' protocol)."""
    import numpy as np

    if engine == "onnx":
        from seg.serve.onnx_predictor import OnnxPredictor

        predictor = OnnxPredictor.load(model, "cpu")
    else:
        if engine == "torch":
            import torch

            torch.set_num_threads(threads)
        from seg.serve.predictor import Predictor

        predictor = Predictor.load(model, engine=engine, device="cpu")
    rgb = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)

    def facts() -> dict:
        if engine != "torch":
            return {}
        import torch

        return {"torch_threads": torch.get_num_threads()}

    serve_units(lambda: predictor.predict(rgb), facts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithms", default="fcn,deeplab", help="comma-separated: fcn, psp, deeplab")
    parser.add_argument("--backbone", default="resnet-50")
    parser.add_argument("--size", type=int, default=512, help="image side in pixels [512]")
    parser.add_argument("--rounds", type=int, default=5, help="timed images per engine [5]")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads of each engine [all cores]")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)  # internal: one engine, this process
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.model, args.size, args.threads)
        return

    from artifacts import save_random_artifact
    from seg.models.export import export_onnx

    load_at_start = os.getloadavg()[0]
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as name:
        tmp = Path(name)
        for algorithm in args.algorithms.split(","):
            model = save_random_artifact(tmp / algorithm, num_classes=21, backbone=args.backbone,
                                         algorithm=algorithm, crop_size=args.size)
            onnx = export_onnx(model, tmp / f"{algorithm}-onnx").onnx if "onnx" in args.engines else None
            workers = [Worker(e, [sys.executable, __file__, "--worker", e, "--model",
                                  str(onnx if e == "onnx" else model), "--size", str(args.size),
                                  "--threads", str(args.threads)], args.threads)
                       for e in args.engines.split(",")]
            times = interleaved(workers, 1, args.rounds)
            results[algorithm] = {w.name: {**percentiles(times[w.name]), **w.finish()} for w in workers}
    setup = {"image": f"{args.size}x{args.size}", "backbone": args.backbone, "rounds": args.rounds,
             "cpus": os.cpu_count(), "threads": args.threads, "load_1min_at_start": load_at_start,
             "load_1min_at_end": os.getloadavg()[0]}
    if args.json:
        print(json.dumps({"setup": setup, "ms_per_image": results}, indent=2))
        return
    print("| network | engine | p50 ms/image | p95 ms/image | ÷ torch p50 |")
    print("|---|---|---|---|---|")
    for algorithm, by_engine in results.items():
        base = by_engine.get("torch", {}).get("p50_ms")
        for engine, r in by_engine.items():
            ratio = f"{r['p50_ms'] / base:.2f}" if base else ""
            print(f"| {algorithm} {args.backbone} | {engine} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {ratio} |")
    print(f"\n{args.size}x{args.size} image, {args.rounds} interleaved rounds of one image per engine after one "
          f"warm-up; {setup['cpus']} "
          f"CPUs, {args.threads} threads per engine; load average (1 min) {load_at_start:.2f} at the start, "
          f"{setup['load_1min_at_end']:.2f} at the end")


if __name__ == "__main__":
    main()
