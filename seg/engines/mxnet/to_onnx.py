"""seg's hybridized graph → an ONNX graph, op by op, with dynamic batch, height and width.

Why not `mx.onnx.export_model`: its converter for `BilinearResize2D` has no "like" mode (every resize in seg's
nets takes its size from another tensor, so one graph serves any H×W), and it pins onnx<1.16. The nets use
ten MXNet ops; each has one ONNX counterpart, or two for the size-dependent ones:

- `BilinearResize2D(mode="like")` → `Resize` (linear, `align_corners`: MXNet's default) to sizes read with
  `Shape` from the "like" tensor at run time;
- `AdaptiveAvgPooling2D(bins)` → `GlobalAveragePool` for one bin, else per axis one `Slice` + `ReduceMean` per
  bin, its edges MXNet's `floor(i·n/bins)` and `ceil((i+1)·n/bins)` computed from `Shape` in int64 (an average
  over a rectangle is the average over its rows of the average over its columns).

An op outside the table raises ExportError naming it: a new layer needs its row here, not a silent guess.
"""
from __future__ import annotations

import ast
import json
from typing import Callable, Dict, List

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from seg.errors import ExportError
from seg.serve.onnx_predictor import INPUT, OUTPUT

OPSET = 13  # Resize with `sizes`, ReduceMean with an `axes` attribute; ONNX Runtime's QDQ quantization needs ≥ 10
IR_VERSION = 8  # what opset 13 needs; older ONNX Runtime releases refuse newer IR versions


def _tuple(text: str) -> List[int]:
    value = ast.literal_eval(text)
    return list(value) if isinstance(value, (tuple, list)) else [value]


def _true(text: str) -> bool:
    return str(text).lower() in ("true", "1")


class _Graph:
    """The ONNX nodes and initializers under construction; `name()` keeps generated names unique."""

    def __init__(self, params: Dict[str, np.ndarray]):
        self.params, self.nodes, self.initializers, self._used, self._count = params, [], [], set(), 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}__{self._count}"

    def param(self, name: str) -> str:
        if name not in self.params:
            raise ExportError(f"the graph reads parameter {name!r}, which the network does not hold")
        if name not in self._used:
            self._used.add(name)
            self.initializers.append(numpy_helper.from_array(np.asarray(self.params[name], np.float32), name))
        return name

    def const(self, values, dtype=np.int64) -> str:
        name = self.name("const")
        self.initializers.append(numpy_helper.from_array(np.asarray(values, dtype), name))
        return name

    def op(self, op_type: str, inputs: List[str], hint: str, **attrs) -> str:
        out = self.name(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def dim(self, x: str, axis: int) -> str:
        """x's size along `axis`, as a 1-element int64 tensor read at run time."""
        return self.op("Gather", [self.op("Shape", [x], "shape"), self.const([axis])], "dim", axis=0)


def _conv(g: _Graph, node, inputs):
    a = node.get("attrs", {})
    pad, kernel = _tuple(a.get("pad", "(0, 0)")), _tuple(a["kernel"])
    weights = [g.param(n) for n in inputs[1:]]
    return g.op("Conv", [inputs[0], *weights], node["name"], kernel_shape=kernel, pads=pad + pad,
                strides=_tuple(a.get("stride", "(1, 1)")), dilations=_tuple(a.get("dilate", "(1, 1)")),
                group=int(a.get("num_group", "1")))


def _batchnorm(g: _Graph, node, inputs):
    a = node.get("attrs", {})
    gamma, beta, mean, var = inputs[1:5]
    if _true(a.get("fix_gamma", "True")):  # MXNet then multiplies by 1, whatever gamma holds
        gamma = g.const(np.ones_like(g.params[gamma]), np.float32)
    else:
        gamma = g.param(gamma)
    return g.op("BatchNormalization", [inputs[0], gamma, g.param(beta), g.param(mean), g.param(var)], node["name"],
                epsilon=float(a.get("eps", "0.001")))


def _activation(g: _Graph, node, inputs):
    act = node["attrs"]["act_type"]
    ops = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}
    if act not in ops:
        raise ExportError(f"Activation act_type={act!r} has no ONNX translation in seg")
    return g.op(ops[act], inputs[:1], node["name"])


def _pooling(g: _Graph, node, inputs):
    a = node.get("attrs", {})
    kind = a.get("pool_type", "max")
    if kind not in ("max", "avg"):
        raise ExportError(f"Pooling pool_type={kind!r} has no ONNX translation in seg")
    if _true(a.get("global_pool", "False")):
        return g.op("GlobalMaxPool" if kind == "max" else "GlobalAveragePool", inputs[:1], node["name"])
    pad = _tuple(a.get("pad", "(0, 0)"))
    attrs = dict(kernel_shape=_tuple(a["kernel"]), strides=_tuple(a.get("stride", "(1, 1)")), pads=pad + pad,
                 ceil_mode=int(a.get("pooling_convention", "valid") == "full"))
    if kind == "avg":
        attrs["count_include_pad"] = int(_true(a.get("count_include_pad", "True")))
    return g.op("MaxPool" if kind == "max" else "AveragePool", inputs[:1], node["name"], **attrs)


def _resize(g: _Graph, node, inputs):
    a = node.get("attrs", {})
    if a.get("mode", "size") != "like" or not _true(a.get("align_corners", "True")):
        raise ExportError(f"BilinearResize2D {a} has no ONNX translation in seg (only mode='like', align_corners)")
    x, like = inputs[:2]
    sizes = g.op("Concat", [g.op("Gather", [g.op("Shape", [x], "shape"), g.const([0, 1])], "nc", axis=0),
                            g.op("Gather", [g.op("Shape", [like], "shape"), g.const([2, 3])], "hw", axis=0)],
                 "sizes", axis=0)
    return g.op("Resize", [x, "", "", sizes], node["name"], mode="linear",
                coordinate_transformation_mode="align_corners")


def _adaptive_avg_pool(g: _Graph, node, inputs):
    bins = _tuple(node.get("attrs", {}).get("output_size", "1"))
    bins = bins * 2 if len(bins) == 1 else bins
    x = inputs[0]
    if bins == [1, 1]:
        return g.op("GlobalAveragePool", [x], node["name"])
    for axis, count in ((2, bins[0]), (3, bins[1])):
        n = g.dim(x, axis)
        parts = []
        for i in range(count):
            start = g.op("Div", [g.op("Mul", [n, g.const([i])], "m"), g.const([count])], "start")
            end = g.op("Div", [g.op("Add", [g.op("Mul", [n, g.const([i + 1])], "m"), g.const([count - 1])], "a"),
                               g.const([count])], "end")
            part = g.op("Slice", [x, start, end, g.const([axis])], "bin")
            parts.append(g.op("ReduceMean", [part], "mean", axes=[axis], keepdims=1))
        x = g.op("Concat", parts, node["name"], axis=axis)
    return x


#: MXNet op → its translation (graph, node, input names) → output name.
OPS: Dict[str, Callable] = {
    "Convolution": _conv,
    "BatchNorm": _batchnorm,
    "Activation": _activation,
    "Pooling": _pooling,
    "elemwise_add": lambda g, node, inputs: g.op("Add", inputs[:2], node["name"]),
    "_Plus": lambda g, node, inputs: g.op("Add", inputs[:2], node["name"]),
    "broadcast_add": lambda g, node, inputs: g.op("Add", inputs[:2], node["name"]),
    "Concat": lambda g, node, inputs: g.op("Concat", inputs, node["name"], axis=int(node["attrs"].get("dim", "1"))),
    "Dropout": lambda g, node, inputs: g.op("Identity", inputs[:1], node["name"]),  # inference: identity
    "_contrib_BilinearResize2D": _resize,
    "_contrib_AdaptiveAvgPooling2D": _adaptive_avg_pool,
}


def symbol_to_onnx(symbol_json: str, params: Dict[str, np.ndarray], num_classes: int,
                   metadata: Dict[str, str]) -> onnx.ModelProto:
    """The ONNX model of an MXNet symbol (JSON) whose one input is `data` (N×3×H×W float32) and one output the
    N×C×H×W logits; `params` holds every weight and running statistic by name; `metadata` goes to the file."""
    graph = json.loads(symbol_json)
    nodes, g = graph["nodes"], _Graph(params)
    names: Dict[int, str] = {}
    for index, node in enumerate(nodes):
        if node["op"] == "null":
            names[index] = node["name"]
            continue
        if node["op"] not in OPS:
            raise ExportError(f"MXNet op {node['op']} (node {node['name']}) has no ONNX translation in seg; "
                              f"translated ops: {', '.join(sorted(OPS))}")
        inputs = [names[i] for i, *_ in node["inputs"]]
        names[index] = OPS[node["op"]](g, node, inputs)
    if len(graph["heads"]) != 1:
        raise ExportError(f"the graph has {len(graph['heads'])} outputs; export needs the inference graph (one)")
    g.nodes.append(helper.make_node("Identity", [names[graph["heads"][0][0]]], [OUTPUT], name=OUTPUT))
    onnx_graph = helper.make_graph(
        g.nodes, "seg", [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", num_classes, "H", "W"])], g.initializers)
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="seg")
    model.ir_version = IR_VERSION
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model, full_check=True)
    return model
