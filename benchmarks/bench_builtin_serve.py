"""Serving a built-in artifact vs a seg artifact of the same network: /invocations latency, same weights.

    python benchmarks/bench_builtin_serve.py [--algorithm psp] [--size 256] [--rounds 20] [--json]

One GluonCV PSPNet (ResNet-50, aux head, 21 classes, random weights) is written the way SageMaker's built-in
algorithm writes it (model.tar.gz: model_algo-1 + hyperparams.json) and, from the same weights, as seg's
artifact. Both run under `seg serve` (one worker each); each round posts the same PNG to both, back to back,
so load from other processes hits both alike. Expectation (issue 11): the same latency within noise, since
the loaded network is the same; `median_of_paired_ratios` near 1.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_serve import Server, elapsed, percentiles  # noqa: E402


def post_png(url: str, body: bytes) -> bytes:
    import requests

    response = requests.post(f"{url}/invocations", data=body, headers={"Content-Type": "image/png"}, timeout=600)
    if response.status_code != 200:
        raise RuntimeError(f"/invocations answered {response.status_code}: {response.text[:200]}")
    return response.content


def write_models(root: Path, algorithm: str, size: int) -> tuple:
    """(built-in model.tar.gz, seg artifact folder) holding the same weights."""
    import tarfile

    import mxnet as mx
    import seg.engines.mxnet.gluoncv_compat  # noqa: F401  (before gluoncv: it refuses torch>=2 otherwise)
    from gluoncv.model_zoo import FCN, PSPNet, DeepLabV3

    from seg.models.artifact import read_model, save_artifact

    gluon = {"fcn": FCN, "psp": PSPNet, "deeplab": DeepLabV3}[algorithm](
        21, backbone="resnet50", aux=True, pretrained_base=False, crop_size=size)
    gluon.initialize(mx.init.Xavier(magnitude=2), force_reinit=True)
    gluon(mx.nd.zeros((1, 3, size, size)))
    builtin = root / "builtin"
    builtin.mkdir(parents=True)
    gluon.save_parameters(str(builtin / "model_algo-1"))
    (builtin / "hyperparams.json").write_text(json.dumps(
        {"backbone": "resnet-50", "algorithm": algorithm, "num_classes": "21", "crop_size": str(size)}))
    with tarfile.open(root / "model.tar.gz", "w:gz") as tar:
        for name in ("model_algo-1", "hyperparams.json"):
            tar.add(builtin / name, arcname=name)
    info = read_model(builtin)
    save_artifact(info.params, info.hp, info.classes, root / "seg", info.arch)
    return root / "model.tar.gz", root / "seg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithm", default="psp", choices=["fcn", "psp", "deeplab"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    env = dict(os.environ)
    rgb = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG")
    body = out.getvalue()
    with tempfile.TemporaryDirectory() as tmp:
        builtin, seg_model = write_models(Path(tmp), args.algorithm, args.size)
        with Server(builtin, 1, env) as a, Server(seg_model, 1, env) as b:
            if post_png(a.url, body) != post_png(b.url, body):
                raise RuntimeError("the two servers answered different masks for the same weights")
            for url in (a.url, b.url):  # warm-up
                post_png(url, body)
            samples = {"builtin_artifact": [], "seg_artifact": []}
            for _ in range(args.rounds):
                samples["builtin_artifact"].append(elapsed(lambda: post_png(a.url, body)))
                samples["seg_artifact"].append(elapsed(lambda: post_png(b.url, body)))
    result = {name: percentiles(values) for name, values in samples.items()}
    ratios = np.asarray(samples["builtin_artifact"]) / np.asarray(samples["seg_artifact"])
    result["builtin_over_seg"] = {"median_of_paired_ratios": float(np.median(ratios)),
                                  "p5_p95_of_paired_ratios": [float(np.percentile(ratios, 5)),
                                                              float(np.percentile(ratios, 95))]}
    result["setup"] = {"model": f"{args.algorithm}/resnet-50 + aux head, 21 classes, random weights",
                       "image": f"{args.size}x{args.size} PNG", "rounds": args.rounds, "cpus": os.cpu_count(),
                       "omp_num_threads": env.get("OMP_NUM_THREADS", "unset"),
                       "load_average_after": os.getloadavg()[0]}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"setup: {result['setup']}")
    for name in samples:
        print(f"{name:18s} p50 {result[name]['p50_ms']:8.1f} ms   p95 {result[name]['p95_ms']:8.1f} ms")
    paired = result["builtin_over_seg"]
    print(f"built-in / seg: median of paired ratios {paired['median_of_paired_ratios']:.3f} "
          f"(5th-95th percentile {paired['p5_p95_of_paired_ratios'][0]:.3f}-{paired['p5_p95_of_paired_ratios'][1]:.3f})")


if __name__ == "__main__":
    main()
