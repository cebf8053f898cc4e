"""ONNX Runtime serving benchmark: MXNet FP32 vs ONNX FP32 vs ONNX INT8 at 512x512 on the CPU, and INT8's mIOU cost.

    python benchmarks/bench_onnx_serve.py [--algorithms fcn,deeplab] [--size 512] [--rounds 5] [--epochs 6] [--json]

Latency: FCN and DeepLabV3 on ResNet-50, 21 classes, random weights (weights do not change the cost), one
512x512 JPEG. Three `seg serve` (one worker each, nginx in front): MXNet, `--runtime onnx` on model.onnx and on
model-int8.onnx (static QDQ, calibrated on the synthetic layout below). Each round times every path once, back
to back, so load from other processes hits all alike; "bare" is ONNX Runtime's session.run on the normalised
input in this process, for the server overhead. Throughput: one worker, one client: 1 / mean latency.

mIOU: ResNet-50 cannot be trained in minutes on 2 cores, so the accuracy cost is measured on what can: seg's
FCN/ResNet-18 trained `--epochs` on tests/synthdata.py's 3-class set (64 train, 16 validation, 64x64: the
recipe of tests/seg/train/test_seg_learning.py), exported, quantized (static, 16 calibration images) and
both files evaluated on the validation split (`seg export --quantize int8`'s own report).
Targets (issue 15): INT8 >= 2x MXNet FP32 throughput, <= 1 point mIOU loss, server / bare ORT <= 1.15.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # artifacts, synthdata

from bench_serve import Server, elapsed, percentiles, post  # noqa: E402


def bench_latency(algorithm: str, size: int, rounds: int, layout: Path, tmp: Path, env: dict) -> dict:
    import onnxruntime as ort

    from artifacts import save_random_artifact
    from gt2seg.images import decode_rgb
    from seg.models.export import export_onnx
    from seg.serve.sizing import network_input

    model_dir = save_random_artifact(tmp / algorithm, num_classes=21, backbone="resnet-50", algorithm=algorithm,
                                     crop_size=size)
    exported = export_onnx(model_dir, tmp / f"{algorithm}-onnx", quantize="int8", calibration=layout,
                           calibration_images=8)
    rgb = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=90)
    jpeg = out.getvalue()
    data = network_input(decode_rgb(jpeg), 1024)
    sessions = {name: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                for name, path in (("fp32", exported.onnx), ("int8", exported.int8))}
    with Server(model_dir, 1, env) as mxnet, \
            Server(exported.onnx, 1, env, ["--runtime", "onnx"]) as onnx_fp32, \
            Server(exported.int8, 1, env, ["--runtime", "onnx"]) as onnx_int8:
        paths = {"mxnet_fp32_http": lambda: post(mxnet.url, jpeg),
                 "onnx_fp32_bare": lambda: sessions["fp32"].run(None, {"data": data}),
                 "onnx_fp32_http": lambda: post(onnx_fp32.url, jpeg),
                 "onnx_int8_bare": lambda: sessions["int8"].run(None, {"data": data}),
                 "onnx_int8_http": lambda: post(onnx_int8.url, jpeg)}
        for fn in paths.values():  # warm-up: memory pools, each worker's first request
            fn()
        samples = {name: [] for name in paths}
        for _ in range(rounds):
            for name, fn in paths.items():
                samples[name].append(elapsed(fn))
    result = {name: {**percentiles(values), "requests_per_s": 1 / float(np.mean(values))}
              for name, values in samples.items()}
    base = result["mxnet_fp32_http"]["requests_per_s"]
    for runtime in ("fp32", "int8"):
        http, bare = samples[f"onnx_{runtime}_http"], samples[f"onnx_{runtime}_bare"]
        result[f"onnx_{runtime}_http"]["throughput_over_mxnet_fp32"] = result[f"onnx_{runtime}_http"]["requests_per_s"] / base
        result[f"onnx_{runtime}_http"]["server_over_bare_p50"] = float(np.median(http) / np.median(bare))
    result["int8_file_mb"] = exported.int8.stat().st_size / 1e6
    result["fp32_file_mb"] = exported.onnx.stat().st_size / 1e6
    return result


def bench_miou(layout: Path, tmp: Path, epochs: int, env: dict) -> dict:
    """Train FCN/ResNet-18 on the synthetic layout, export FP32 + INT8, report the export's measurement."""
    hps = {"backbone": "resnet-18", "algorithm": "fcn", "use_pretrained_model": "False", "crop_size": 64,
           "base_size": 64, "mini_batch_size": 8, "validation_mini_batch_size": 8, "optimizer": "adam",
           "learning_rate": 0.003, "epochs": epochs, "data_workers": 1}
    (tmp / "hp.json").write_text(json.dumps(hps))
    seg = [sys.executable, "-c", "from seg.cli import main; main()"]
    subprocess.run([*seg, "train", "--data", str(layout), "--model-dir", str(tmp / "trained"), "--no-progress",
                    "--hp-file", str(tmp / "hp.json")], check=True, env=env, capture_output=True)
    run = subprocess.run([*seg, "export", str(tmp / "trained"), str(tmp / "trained-onnx"), "--format", "onnx",
                          "--quantize", "int8", "--calibration", str(layout), "--calibration-images", "16"],
                         check=True, env=env, capture_output=True, text=True)
    return {"model": f"fcn/resnet-18 trained {epochs} epochs on the synthetic set",
            **json.loads(run.stdout)["quantization"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithms", default="fcn,deeplab")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    env = dict(os.environ)

    from synthdata import write_layout

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        layout = write_layout(tmp / "data", n_train=64, n_val=16, size=64, seed=1)
        result = {"latency": {a: bench_latency(a, args.size, args.rounds, layout, tmp, env)
                              for a in args.algorithms.split(",")},
                  "miou": bench_miou(layout, tmp, args.epochs, {**env, "OMP_NUM_THREADS": "1"})}
    result["setup"] = {"image": f"{args.size}x{args.size} JPEG", "rounds": args.rounds, "cpus": os.cpu_count(),
                       "load_average_after": os.getloadavg()[0]}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"setup: {result['setup']}")
    for algorithm, paths in result["latency"].items():
        for name, f in paths.items():
            if isinstance(f, dict):
                extra = "".join(f"  {k} {f[k]:.2f}" for k in ("throughput_over_mxnet_fp32", "server_over_bare_p50")
                                if k in f)
                print(f"{algorithm}/resnet-50 {name:16s} p50 {f['p50_ms']:8.0f} ms  p95 {f['p95_ms']:8.0f} ms  "
                      f"{f['requests_per_s']:.3f} req/s{extra}")
        print(f"{algorithm}/resnet-50 files: FP32 {paths['fp32_file_mb']:.0f} MB, INT8 {paths['int8_file_mb']:.0f} MB")
    m = result["miou"]
    print(f"mIOU ({m['model']}): FP32 {m['fp32_miou']:.4f}, INT8 {m['int8_miou']:.4f} "
          f"({100 * (m['int8_miou'] - m['fp32_miou']):+.2f} points), masks agree on {100 * m['pixel_agreement']:.2f}%")


if __name__ == "__main__":
    main()
