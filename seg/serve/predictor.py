"""Inference on single images with a trained artifact: the one code path shared by `seg predict`,
`seg evaluate` and the serving endpoint.

Preprocessing is the training normalisation (`seg.data.transforms.normalize`). Large-image policy: the network runs at
the input size unless the long side exceeds `max_side` (default 1024), in which case the image is scaled
down to that long side first; the logits are then resized bilinearly back to the input size and only then
soft-maxed, so memory for the network stays bounded while outputs always match the input's H×W.
"""
from __future__ import annotations

import tempfile
import threading

import mxnet as mx
import numpy as np
from PIL import Image

from seg.data.transforms import normalize
from seg.models.artifact import Artifact, load_artifact, open_model

DEFAULT_MAX_SIDE = 1024


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

    def _check(self, rgb):
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            got = f"{rgb.dtype} array of shape {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
            raise ValueError(f"expected an H×W×3 uint8 RGB array, got {got}")

    def _logits(self, rgb: np.ndarray):
        """(1, C, H, W) logits NDArray at the input's size; the caller holds the lock."""
        self._check(rgb)
        height, width = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        small = rgb
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
        logits = self.net(mx.nd.array(normalize(small)[None], ctx=self.ctx))
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
