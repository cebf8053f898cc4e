"""Inference on single images with a trained artifact: the one code path shared by `seg predict`,
`seg evaluate` and the serving endpoint.

Preprocessing and the large-image policy (scale down to `max_side`, resize the logits back, then soft-max)
are `seg.serve.sizing`'s, shared with the ONNX Runtime predictor (`seg.serve.onnx_predictor`).
"""
from __future__ import annotations

import tempfile
import threading

import mxnet as mx
import numpy as np

from seg.models.artifact import Artifact, load_artifact, open_model
from seg.serve.sizing import DEFAULT_MAX_SIDE, network_input


class Predictor:
    """A loaded model. Thread-safe (a lock serialises the forward pass: MXNet engines are per process)."""

    def __init__(self, artifact: Artifact, ctx=None, max_side: int = DEFAULT_MAX_SIDE):
        self.net, self.hp, self.classes = artifact.net, artifact.hp, artifact.classes
        self.ctx = ctx or mx.cpu()
        self.max_side = max_side
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model_dir, ctx=None, max_side: int = DEFAULT_MAX_SIDE, classes_path=None) -> "Predictor":
        """Read a model seg or the built-in algorithm wrote: a folder, a model.tar.gz, or an s3:// URI of either.

        `classes_path`: a classes.json naming the classes (default: the model's own, else class_0..C-1).
        """
        ctx = ctx or mx.cpu()
        with tempfile.TemporaryDirectory() as scratch:
            artifact = load_artifact(open_model(model_dir, scratch), ctx=ctx, classes_path=classes_path)
        return cls(artifact, ctx, max_side)

    @property
    def num_classes(self) -> int:
        return self.hp.num_classes

    def _logits(self, rgb: np.ndarray):
        """(1, C, H, W) logits NDArray at the input's size; the caller holds the lock."""
        logits = self.net(mx.nd.array(network_input(rgb, self.max_side), ctx=self.ctx))
        height, width = rgb.shape[:2]
        if logits.shape[2:] != (height, width):
            logits = mx.nd.contrib.BilinearResize2D(logits, height=height, width=width)
        return logits

    def probabilities(self, rgb: np.ndarray) -> np.ndarray:
        """(C, H, W) float32 softmax probabilities at the input's size."""
        with self._lock:
            probs = mx.nd.softmax(self._logits(rgb), axis=1)[0].asnumpy()
        return probs.astype(np.float32, copy=False)

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """H×W uint8 class indices: the argmax of `probabilities`, taken on the device from the
        logits (softmax keeps their order), so a mask costs no softmax and no (C, H, W) copy."""
        with self._lock:
            return mx.nd.argmax(self._logits(rgb), axis=1)[0].asnumpy().astype(np.uint8)
