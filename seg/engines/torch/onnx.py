"""A torch network (seg.engines.torch.nets) as an ONNX graph: input "data" N×3×H×W, output "logits" N×C×H×W,
batch, height and width dynamic; opset 13 through torch's TorchScript-based exporter. No metadata here
(seg.models.export adds seg's)."""
from __future__ import annotations

import io
import os

import torch

from gt2seg.atomic import atomic_write
from seg.errors import ExportError
from seg.serve.onnx_predictor import INPUT, OUTPUT

OPSET = 13
#: the traced example's height and width: odd, and no multiple of the PSP bins, so no size is special-cased
EXAMPLE_SIZE = (67, 93)


def export_onnx(module: torch.nn.Module, path_or_buffer=None) -> bytes:
    """The serialized ONNX ModelProto of `module` in eval mode (also written to `path_or_buffer` when given: a path
    is written whole or not at all)."""
    was_training = module.training
    module.eval()
    parameter = next(module.parameters())
    example = torch.zeros((1, 3) + EXAMPLE_SIZE, dtype=parameter.dtype, device=parameter.device)
    out = io.BytesIO()
    try:
        with torch.no_grad():
            torch.onnx.export(module, (example,), out, dynamo=False, opset_version=OPSET, input_names=[INPUT],
                              output_names=[OUTPUT], dynamic_axes={INPUT: {0: "N", 2: "H", 3: "W"},
                                                                   OUTPUT: {0: "N", 2: "H", 3: "W"}})
    except Exception as exc:  # the exporter raises many types; the user needs its reason in one line
        raise ExportError(f"torch could not export {type(module).__name__} to ONNX: "
                          f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
    finally:
        module.train(was_training)
    data = out.getvalue()
    if isinstance(path_or_buffer, (str, os.PathLike)):
        atomic_write(path_or_buffer, data)
    elif path_or_buffer is not None:
        path_or_buffer.write(data)
    return data
