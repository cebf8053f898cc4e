"""`seg export`: the symbol + params pair of any model seg reads, for Neo or for MXNet without seg (the MXNet
engine); or one ONNX file (`--format onnx`, from either engine: the torch engine's exporter or MXNet's symbol
through `seg.engines.mxnet.to_onnx`), optionally quantized to INT8 (`seg.models.quantize`).

The graph is seg's size-agnostic one (every resize is "like" its input), so one pair (or ONNX file) serves any
H×W; the signature writes down what a caller must feed it and what comes out: a file beside the pair, the
ONNX file's own metadata (`seg.serve.onnx_predictor` reads it back).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from gt2seg.atomic import atomic_write
from seg.data.transforms import MEAN, STD
from seg.engines import load_engine
from seg.errors import ExportError
from seg.models.artifact import ModelInfo, load_model
from seg.serve.onnx_predictor import FORMAT, FORMAT_KEY, ONNX_FILE, SIGNATURE_KEY, VERSION, VERSION_KEY

if TYPE_CHECKING:
    from seg.models.quantize import QuantizationReport

EXPORT_PREFIX = "model"  # → model-symbol.json, model-0000.params, model-signature.json
SIGNATURE = f"{EXPORT_PREFIX}-signature.json"


@dataclass
class ExportResult:
    symbol: Path
    params: Path
    signature: Path
    architecture: str


def signature(info: ModelInfo) -> dict:
    """Input, preprocessing, output and classes of the exported graph."""
    size = info.hp.crop_size
    return {
        "input": {"name": "data", "dtype": "float32", "layout": "NCHW", "shape": ["N", 3, "H", "W"],
                  "any_height_width": True, "example_shape": [1, 3, size, size]},
        "preprocessing": {"channel_order": "RGB", "scale": "pixel / 255", "mean": [float(m) for m in MEAN],
                          "std": [float(s) for s in STD], "formula": "(pixel / 255 - mean) / std, per channel"},
        "output": {"shape": ["N", info.arch.num_classes, "H", "W"], "dtype": "float32",
                   "meaning": "class logits at the input's size; argmax over axis 1 is the class index, "
                              "softmax over axis 1 the probabilities"},
        "classes": info.classes,
        "architecture": asdict(info.arch),
    }


def export_model(model, out_dir, classes_path=None, engine=None) -> ExportResult:
    """Write OUT/model-symbol.json, OUT/model-0000.params and OUT/model-signature.json for `model`
    (a seg or built-in model folder, model.tar.gz or s3:// URI); nothing is written if it cannot be read.
    The pair is MXNet's format, so the MXNet engine writes it (engine=torch is refused)."""
    if engine is not None and engine != "mxnet":
        raise ExportError(f"engine={engine}: the symbol + params pair is MXNet's own format, written by the mxnet "
                          "engine; use engine=mxnet, or format=onnx for a file any runtime reads")
    backend = load_engine("mxnet")
    loaded = load_model(model, classes_path)
    info, out_dir = loaded.info, Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    symbol, params = backend.export_symbol(info.hp, info.arch, loaded.weights, out_dir, EXPORT_PREFIX)
    atomic_write(out_dir / SIGNATURE, json.dumps(signature(info), indent=2).encode())
    return ExportResult(symbol, params, out_dir / SIGNATURE, info.arch.describe())


INT8_FILE = "model-int8.onnx"


@dataclass
class OnnxExportResult:
    onnx: Path
    architecture: str
    int8: Optional[Path] = None
    quantization: Optional["QuantizationReport"] = None  # with quantize="int8"


def onnx_model(model, engine=None):
    """The inference graph of a loaded `Model` as an ONNX model, seg's signature in its metadata."""
    info = model.info
    metadata = {FORMAT_KEY: FORMAT, VERSION_KEY: VERSION, SIGNATURE_KEY: json.dumps(signature(info))}
    return load_engine(engine).export_onnx(info.hp, info.arch, model.weights, metadata)


def export_onnx(model, out_dir, classes_path=None, quantize: Optional[str] = None, calibration=None,
                calibration_images: Optional[int] = None, engine=None) -> OnnxExportResult:
    """Write OUT/model.onnx (FP32) for `model`; with quantize="int8" also OUT/model-int8.onnx, static with the
    train images of the layout `calibration` (its validation split then measures the mIOU cost), else dynamic."""
    out_dir = Path(out_dir)
    loaded = load_model(model, classes_path)
    proto = onnx_model(loaded, engine)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / ONNX_FILE, proto.SerializeToString())
    result = OnnxExportResult(out_dir / ONNX_FILE, loaded.info.arch.describe())
    if quantize == "int8":
        from seg.models.quantize import CALIBRATION_IMAGES, quantize_int8

        result.int8 = out_dir / INT8_FILE
        result.quantization = quantize_int8(result.onnx, result.int8, calibration,
                                            calibration_images or CALIBRATION_IMAGES, loaded.info.hp.crop_size)
    return result
