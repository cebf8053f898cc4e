"""A small seg ONNX model built with onnx.helper alone (no MXNet), for the ONNX server's tests.

The server's contract does not depend on the network, so one 1×1 convolution (3 → C channels, known weights)
stands in for a segmentation net: tests can compute its masks and probabilities with numpy. The metadata is
what `seg export --format onnx` writes (`seg.serve.onnx_predictor`'s keys); `seg_metadata=False` leaves it
out, as in an ONNX file from elsewhere.
"""
import json
from pathlib import Path

import numpy as np

CLASSES = [{"index": 0, "name": "BACKGROUND", "color": "#ffffff"}, {"index": 1, "name": "road", "color": "#ff0000"},
           {"index": 2, "name": "car", "color": "#0000ff"}]


def weights(num_classes=3, seed=0):
    """(C×3 kernel, C bias) of the 1×1 convolution: large enough that every class wins somewhere."""
    rng = np.random.default_rng(seed)
    return rng.normal(0, 2, (num_classes, 3)).astype(np.float32), rng.normal(0, 1, num_classes).astype(np.float32)


def logits(normalised: np.ndarray, num_classes=3, seed=0) -> np.ndarray:
    """What the model computes for a 3×H×W normalised image: C×H×W logits."""
    kernel, bias = weights(num_classes, seed)
    return np.einsum("ck,khw->chw", kernel, normalised) + bias[:, None, None]


def write_onnx_model(path, classes=CLASSES, seed=0, seg_metadata=True) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from seg.data.transforms import MEAN, STD
    from seg.serve.onnx_predictor import FORMAT, FORMAT_KEY, SIGNATURE_KEY, VERSION, VERSION_KEY

    kernel, bias = weights(len(classes), seed)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["data", "w", "b"], ["logits"], kernel_shape=[1, 1])], "tiny",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", len(classes), "H", "W"])],
        [numpy_helper.from_array(kernel[:, :, None, None], "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if seg_metadata:
        signature = {"preprocessing": {"mean": MEAN.tolist(), "std": STD.tolist()}, "classes": classes,
                     "architecture": {"algorithm": "tiny", "backbone": "none", "num_classes": len(classes)}}
        helper.set_model_props(model, {FORMAT_KEY: FORMAT, VERSION_KEY: VERSION, SIGNATURE_KEY: json.dumps(signature)})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
