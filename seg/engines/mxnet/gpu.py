"""Refuse GPUs that MXNet 1.9.1's CUDA wheels cannot run, before a CUDA "no kernel image" crash mid-run.

The mxnet-cu1xx 1.9.1 wheels carry machine code for compute capability 5.0 to 8.6 and no PTX to compile for
newer GPUs. CUDA runs machine code on later minor versions of its major (8.6 code on an 8.9 L4) but never on
another major, so Hopper (9.0: H100, H200) and newer GPUs cannot run it. MXNet is imported only where GPUs
are queried: the decision itself (`unsupported_gpus`) is pure.
"""
from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence

from seg.errors import DeviceError

SUPPORTED_MAJORS = range(5, 9)  # compute capability 5.x to 8.x
SKIP = "SEG_SKIP_GPU_CHECK"  # =1: this MXNet was built from source for the GPU


def unsupported_gpus(capabilities: Mapping[int, int], environ: Mapping[str, str] = os.environ) -> Optional[str]:
    """Why MXNet cannot run on these GPUs (device id → capability as MXNet reports it: 75 for 7.5), or None."""
    bad = [f"gpu({i}) has compute capability {cc // 10}.{cc % 10}"
           for i, cc in sorted(capabilities.items()) if cc // 10 not in SUPPORTED_MAJORS]
    if not bad or environ.get(SKIP) == "1":
        return None
    return (f"MXNet 1.9.1 cannot run on this GPU: {', '.join(bad)}, but its CUDA wheels only carry kernels for "
            "compute capability 5.0 to 8.x (e.g. V100, T4, A10G, A100, L4, RTX 30xx/40xx: SageMaker ml.p3, "
            "ml.g4dn, ml.g5, ml.p4d, ml.g6). On this GPU use the torch engine (--engine torch, the default; "
            "the torch extra), or export to ONNX (seg export MODEL OUT --format onnx) and serve it with ONNX "
            "Runtime (seg serve OUT --runtime onnx --device gpu, with onnxruntime-gpu installed); "
            f"set {SKIP}=1 if your MXNet was built for this GPU")


def gpu_capabilities(ctx: Sequence) -> dict:
    """Compute capability of each GPU context in `ctx` that MXNet sees; {} on a host without GPUs."""
    import mxnet as mx

    visible = mx.context.num_gpus()
    ids = sorted({c.device_id for c in ctx if c.device_type == "gpu" and c.device_id < visible})
    return {i: mx.util.get_cuda_compute_capability(mx.gpu(i)) for i in ids}


def check_gpus(ctx: Sequence) -> None:
    """Raise DeviceError when a GPU of `ctx` cannot run MXNet's kernels; call before any work goes to it."""
    problem = unsupported_gpus(gpu_capabilities(ctx))
    if problem:
        raise DeviceError(problem)
