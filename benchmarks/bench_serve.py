"""Serving benchmark: /invocations latency for a 512x512 JPEG against the bare forward, and throughput.

    python benchmarks/bench_serve.py [--backbone resnet-18] [--algorithm fcn] [--size 512] [--requests 10]
                                     [--threads N] [--json]

All figures come from one run on one random-weight model (weights do not change the cost):
- bare forward: the hybridized network on the normalised input, to the logits in host memory
  (hybridized and not, the second being what an un-hybridized Gluon model would cost);
- in-process predict: `Predictor.predict` (normalise, forward, softmax, argmax), hybridized and not;
- HTTP: `seg serve` with one worker, sequential requests (JPEG decode, forward, PNG encode, HTTP);
- throughput: requests/s with 1 and 2 workers, as many concurrent clients as workers.
Latencies are taken in rounds (each path once per round, back to back) so that a busy machine slows all
paths alike; `median_of_paired_ratios` compares HTTP with the bare forward within each round.
Target (issue 5): HTTP p50 <= 1.15 x bare forward p50 on CPU.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # artifacts: a random-weights model


def percentiles(seconds: list) -> dict:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "n": len(ms)}


def elapsed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_latency(model_dir: Path, rgb: np.ndarray, jpeg: bytes, rounds: int, env: dict) -> dict:
    """Each round times every path once, back to back, so that load from other processes hits all alike."""
    import mxnet as mx

    from seg.data.transforms import normalize
    from seg.serve.predictor import Predictor

    hybrid, plain = Predictor.load(model_dir), Predictor.load(model_dir)
    plain.net.hybridize(active=False)
    data = mx.nd.array(normalize(rgb)[None])
    with Server(model_dir, 1, env) as server:
        paths = {"bare_forward_hybridized": lambda: hybrid.net(data).asnumpy(),
                 "bare_forward_not_hybridized": lambda: plain.net(data).asnumpy(),
                 "predict_hybridized": lambda: hybrid.predict(rgb),
                 "predict_not_hybridized": lambda: plain.predict(rgb),
                 "http_invocations_1_worker": lambda: post(server.url, jpeg)}
        for fn in paths.values():  # warm-up: graph building, memory pools, the worker's first request
            fn(), fn()
        samples = {name: [] for name in paths}
        for _ in range(rounds):
            for name, fn in paths.items():
                samples[name].append(elapsed(fn))
    result = {name: percentiles(values) for name, values in samples.items()}
    ratios = np.asarray(samples["http_invocations_1_worker"]) / np.asarray(samples["bare_forward_hybridized"])
    result["http_over_bare_forward"] = {
        "ratio_of_p50s": result["http_invocations_1_worker"]["p50_ms"] / result["bare_forward_hybridized"]["p50_ms"],
        "median_of_paired_ratios": float(np.median(ratios))}
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, model_dir: Path, workers: int, env: dict, extra_args=()):
        import requests

        self.url = f"http://127.0.0.1:{free_port()}"
        port = self.url.rsplit(":", 1)[1]
        cmd = [sys.executable, "-c", "import sys; from seg.cli import main; sys.exit(main())", "serve",
               str(model_dir), "--host", "127.0.0.1", "--port", port, "--workers", str(workers), *extra_args]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # bounded poll on /ping
            if self.proc.poll() is not None:
                raise RuntimeError(f"seg serve exited {self.proc.returncode}")
            try:
                if requests.get(f"{self.url}/ping", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError("seg serve did not become ready in 300 s")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(60)


def post(url: str, body: bytes) -> None:
    import requests

    response = requests.post(f"{url}/invocations", data=body, headers={"Content-Type": "image/jpeg"}, timeout=600)
    if response.status_code != 200:
        raise RuntimeError(f"/invocations answered {response.status_code}: {response.text[:200]}")


def bench_throughput(model_dir: Path, jpeg: bytes, per_worker: int, workers: int, env: dict) -> float:
    """Requests/s with as many concurrent clients as workers, after every worker has seen the shape."""
    with Server(model_dir, workers, env) as server:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda _: post(server.url, jpeg), range(2 * workers)))
            start = time.perf_counter()
            list(pool.map(lambda _: post(server.url, jpeg), range(per_worker * workers)))
        return per_worker * workers / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="resnet-18")
    parser.add_argument("--algorithm", default="fcn")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--requests", type=int, default=10, help="latency rounds; throughput requests per worker")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for everything (default: unset)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(args.threads)

    from artifacts import save_random_artifact
    from gt2seg.images import decode_rgb

    rgb = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=90)
    jpeg = out.getvalue()
    decoded = decode_rgb(jpeg)  # what the server feeds the model
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_random_artifact(Path(tmp) / "model", num_classes=21, backbone=args.backbone,
                                         algorithm=args.algorithm, crop_size=args.size)
        result = {"latency": bench_latency(model_dir, decoded, jpeg, args.requests, env),
                  "requests_per_s": {f"{n}_worker{'s' * (n > 1)}":
                                     bench_throughput(model_dir, jpeg, args.requests, n, env) for n in (1, 2)}}
    result["setup"] = {"model": f"{args.algorithm}/{args.backbone}, 21 classes, random weights",
                       "image": f"{args.size}x{args.size} JPEG ({len(jpeg)} bytes)", "rounds": args.requests,
                       "omp_num_threads": env.get("OMP_NUM_THREADS", "unset"), "cpus": os.cpu_count(),
                       "load_average_after": os.getloadavg()[0]}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"setup: {result['setup']}")
    for name, figures in result["latency"].items():
        if "p50_ms" in figures:
            print(f"{name:30s} p50 {figures['p50_ms']:8.1f} ms   p95 {figures['p95_ms']:8.1f} ms")
    ratio = result["latency"]["http_over_bare_forward"]
    print(f"http / bare forward: ratio of p50s {ratio['ratio_of_p50s']:.3f}, median of paired ratios "
          f"{ratio['median_of_paired_ratios']:.3f} (target <= 1.15)")
    for name, value in result["requests_per_s"].items():
        print(f"throughput {name:10s} {value:.3f} requests/s")

if __name__ == "__main__":
    main()
