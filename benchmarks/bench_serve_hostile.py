"""Serving under slow clients: /ping success rate, valid-request p95 and 5xx count (issue 10).

    python benchmarks/bench_serve_hostile.py [--seconds 60] [--slow 2,20] [--threads 8] [--workers 2]
                                             [--size 128] [--no-proxy-too] [--json]

For each count of slow clients, `seg serve` (defaults: nginx in front, --read-timeout 60) serves a random-weight
FCN ResNet-18 (21 classes) while that many slow clients (header dribblers and stalled bodies, alternating;
reconnecting whenever cut) hang on it and ``--threads`` threads post a SIZE x SIZE JPEG back to back, for
``--seconds``. One more thread GETs /ping every 0.1 s with SageMaker's 2 s timeout. The clients are those of
the test suite (tests/seg/serve/hostile.py), so the benchmark is the bounded load test, run long.
``--no-proxy-too`` repeats each run with `seg serve --no-proxy` (gunicorn alone) for comparison.
Targets: /ping success 100%, 0 responses 5xx. A valid request with no answer within 60 s counts as a 5xx;
``conns`` is how many slow-client connections ended (cut by the server, or at the end of the run).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "seg" / "serve"))

from bench_serve import Server  # noqa: E402
from hostile import run_load  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--slow", default="2,20", help="comma-separated counts of slow clients, one run each")
    parser.add_argument("--threads", type=int, default=8, help="threads sending valid requests")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=128, help="side of the JPEG the valid requests send")
    parser.add_argument("--no-proxy-too", action="store_true", help="also run each with seg serve --no-proxy")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()

    from artifacts import save_random_artifact  # tests/artifacts.py: a random-weights model

    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)).save(
        out, format="JPEG", quality=90)
    jpeg = out.getvalue()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_random_artifact(Path(tmp) / "model", num_classes=21, crop_size=args.size)
        for stack in ["nginx + gunicorn"] + ["gunicorn alone"] * args.no_proxy_too:
            for slow in map(int, args.slow.split(",")):
                extra = [] if stack.startswith("nginx") else ["--no-proxy"]
                with Server(model_dir, args.workers, dict(os.environ), extra) as server:
                    figures = run_load(server.url, slow, args.threads, args.seconds, jpeg).summary()
                runs.append({"stack": stack, "slow_clients": slow, **figures})
    setup = {"model": "fcn/resnet-18, 21 classes, random weights", "image": f"{args.size}x{args.size} JPEG",
             "workers": args.workers, "valid_threads": args.threads, "seconds": args.seconds,
             "cpus": os.cpu_count(), "ping_timeout_s": 2.0}
    if args.json:
        print(json.dumps({"setup": setup, "runs": runs}, indent=2))
        return
    print(f"setup: {setup}")
    print(f"{'stack':18s} {'slow':>4s} {'pings':>6s} {'/ping ok':>8s} {'ping p95':>9s} {'valid':>6s} "
          f"{'valid p95':>10s} {'5xx':>4s} {'conns':>5s}")
    for run in runs:
        print(f"{run['stack']:18s} {run['slow_clients']:4d} {run['pings']:6d} {100 * run['ping_success_rate']:7.1f}% "
              f"{run['ping_p95_ms']:7.0f}ms {run['valid_ok']:6d} {run['valid_p95_ms']:8.0f}ms "
              f"{run['responses_5xx']:4d} {run['hostile_connections']:5d}")


if __name__ == "__main__":
    main()
