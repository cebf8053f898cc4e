"""`OnnxPredictor`: the `Predictor` of an ONNX file `seg export --format onnx` wrote, on ONNX Runtime, without MXNet.

Same inputs, outputs and large-image policy as the MXNet `Predictor` (`seg.serve.sizing`), so the server, `seg
evaluate` and the quantization report take either. The file must carry seg's metadata (`FORMAT_KEY`,
`SIGNATURE_KEY`: normalisation, classes, architecture); any other ONNX file is refused, because its
preprocessing and class table would be guesses. Providers: CPU, or CUDA when asked for and present (else CPU
with a warning, or OnnxModelError when `strict`).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Optional

import numpy as np

from seg.data.transforms import MEAN, STD
from seg.errors import OnnxModelError
from seg.serve.sizing import DEFAULT_MAX_SIDE, network_input, resize_logits

log = logging.getLogger(__name__)

FORMAT_KEY, FORMAT = "seg.format", "seg-onnx"
VERSION_KEY, VERSION = "seg.format_version", "1"
SIGNATURE_KEY = "seg.signature"  # JSON: seg.models.export.signature (input, preprocessing, output, classes, architecture)
ONNX_FILE = "model.onnx"
INPUT, OUTPUT = "data", "logits"  # the graph's one input (N×3×H×W float32) and one output (N×C×H×W logits)
PROVIDERS = {"cpu": ["CPUExecutionProvider"], "gpu": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


def onnx_file(location) -> Path:
    """The ONNX file at `location`: the file itself, or a folder's model.onnx (or its only *.onnx file)."""
    path = Path(location)
    if path.is_dir():
        found = [path / ONNX_FILE] if (path / ONNX_FILE).is_file() else sorted(path.glob("*.onnx"))
        if len(found) != 1:
            raise OnnxModelError(f"{path} holds {len(found)} .onnx files and no {ONNX_FILE}; pass the file to serve")
        path = found[0]
    if not path.is_file():
        raise OnnxModelError(f"ONNX model {path} does not exist; pass the .onnx file seg export --format onnx wrote")
    return path


def providers(device: str, strict: bool) -> list:
    """ONNX Runtime's providers for `device`: CUDA then CPU for gpu when present, else the CPU (warned) or
    OnnxModelError when `strict`."""
    import onnxruntime as ort

    wanted = PROVIDERS[device]
    if wanted[0] in ort.get_available_providers():
        return wanted
    message = (f"device={device}: ONNX Runtime has no {wanted[0]} here (available: "
               f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu with CUDA and cuDNN")
    if strict:
        raise OnnxModelError(message)
    log.warning("%s; running on the CPU", message)
    return PROVIDERS["cpu"]


def read_signature(metadata: dict, where) -> dict:
    """seg's signature from an ONNX file's metadata; OnnxModelError when the file is not seg's or not this version."""
    if metadata.get(FORMAT_KEY) != FORMAT or SIGNATURE_KEY not in metadata:
        raise OnnxModelError(f"{where} is not an ONNX model seg exported (no {FORMAT_KEY!r} metadata): its "
                             "normalisation and classes are unknown; export it with seg export MODEL OUT --format onnx")
    if metadata.get(VERSION_KEY) != VERSION:
        raise OnnxModelError(f"{where}: seg ONNX format version {metadata.get(VERSION_KEY)!r}; this seg reads "
                             f"version {VERSION}: export the model again with this seg")
    try:
        signature = json.loads(metadata[SIGNATURE_KEY])
        missing = {"preprocessing", "classes", "architecture"} - set(signature)
    except (ValueError, TypeError) as exc:
        missing = {str(exc)}
    if missing:
        raise OnnxModelError(f"{where}: seg metadata {SIGNATURE_KEY!r} is damaged (missing or unreadable: "
                             f"{', '.join(sorted(missing))}); export the model again")
    pre = signature["preprocessing"]
    if not (np.allclose(pre["mean"], MEAN) and np.allclose(pre["std"], STD)):
        raise OnnxModelError(f"{where}: normalisation mean={pre['mean']} std={pre['std']} is not seg's "
                             f"(mean={MEAN.tolist()}, std={STD.tolist()})")
    return signature


def _open(location, options, chosen) -> tuple:
    import onnxruntime as ort

    path = onnx_file(location)
    try:
        session = ort.InferenceSession(str(path), options, providers=chosen)
    except Exception as exc:  # ONNX Runtime raises its own untyped errors for unreadable files
        raise OnnxModelError(f"{path} is not a readable ONNX model: {str(exc).strip().splitlines()[-1]}") from None
    return session, read_signature(session.get_modelmeta().custom_metadata_map, path)


def check_onnx_model(location) -> dict:
    """The signature of the seg ONNX file at `location`, read without optimising the graph (a quick check before
    serving it); OnnxModelError when it is missing, unreadable or not seg's."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return _open(location, options, PROVIDERS["cpu"])[1]


class OnnxPredictor:
    """A loaded ONNX model; `predict` and `probabilities` as `seg.serve.predictor.Predictor`'s. Thread-safe
    (ONNX Runtime sessions are)."""

    def __init__(self, session, signature: dict, max_side: int = DEFAULT_MAX_SIDE):
        self.session, self.signature, self.max_side = session, signature, max_side
        self.classes = signature["classes"]
        self.architecture = signature["architecture"]
        self._input = session.get_inputs()[0].name

    @classmethod
    def load(cls, location, device: str = "cpu", strict: bool = False, max_side: int = DEFAULT_MAX_SIDE,
             classes_path: Optional[str] = None) -> "OnnxPredictor":
        """Open an ONNX file (or a folder's model.onnx); `classes_path` renames the classes it carries.

        Threads: OMP_NUM_THREADS when set (`seg serve` shares the cores out between its workers), else all cores.
        """
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        wanted = providers(device, strict)
        session, signature = _open(location, options, wanted)
        if wanted[0] not in session.get_providers():  # the provider loaded, but not its CUDA libraries
            message = f"device={device}: ONNX Runtime could not start {wanted[0]}"
            if strict:
                raise OnnxModelError(message)
            log.warning("%s; running on the CPU", message)
        if classes_path is not None:
            signature["classes"] = _classes(classes_path, len(signature["classes"]))
        return cls(session, signature, max_side)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def logits(self, rgb: np.ndarray) -> np.ndarray:
        """(C, H, W) float32 logits at the input's size."""
        logits = self.session.run(None, {self._input: network_input(rgb, self.max_side)})[0][0]
        height, width = rgb.shape[:2]
        if logits.shape[1:] != (height, width):
            logits = resize_logits(logits, height, width)
        return logits

    def probabilities(self, rgb: np.ndarray) -> np.ndarray:
        """(C, H, W) float32 softmax probabilities at the input's size."""
        logits = self.logits(rgb)
        exp = np.exp(logits - logits.max(axis=0, keepdims=True))
        return (exp / exp.sum(axis=0, keepdims=True)).astype(np.float32, copy=False)

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """H×W uint8 class indices (the argmax of the logits: softmax keeps their order)."""
        return self.logits(rgb).argmax(axis=0).astype(np.uint8)


def _classes(path, count: int) -> list:
    from gt2seg.classes import read_classes
    from gt2seg.errors import ClassesError

    try:
        classes = read_classes(path)
    except ClassesError as exc:
        raise OnnxModelError(str(exc)) from None
    if len(classes) != count:
        raise OnnxModelError(f"{path} has {len(classes)} classes but the model has {count}; "
                             "pass the classes.json the model was trained with")
    return classes
