"""Inference on single images with a trained model: the one code path shared by `seg predict`,
`seg evaluate` and the serving endpoint, whichever engine runs the network.

Preprocessing and the large-image policy (scale down to `max_side`, resize the logits back, then soft-max)
are `seg.serve.sizing`'s, shared with the ONNX Runtime predictor (`seg.serve.onnx_predictor`).
"""
from __future__ import annotations

import threading
from typing import Optional

import numpy as np

from seg.models.artifact import Model, load_model
from seg.serve.sizing import DEFAULT_MAX_SIDE, network_input


class Predictor:
    """A loaded model on one engine. Thread-safe (a lock serialises the forward pass)."""

    def __init__(self, model: Model, engine: Optional[str] = None, device: str = "cpu",
                 max_side: int = DEFAULT_MAX_SIDE):
        from seg.engines import load_engine

        info = model.info
        self.engine = load_engine(engine)
        self.hp, self.classes, self.arch = info.hp, info.classes, info.arch
        self.inference = self.engine.Inference(info.hp, info.arch, model.weights, device=device,
                                               where=info.source)
        self.max_side = max_side
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model_dir, engine: Optional[str] = None, device: str = "cpu", max_side: int = DEFAULT_MAX_SIDE,
             classes_path=None) -> "Predictor":
        """Read a model seg or the built-in algorithm wrote: a folder, a model.tar.gz, or an s3:// URI of either.

        `engine`: torch or mxnet (default $SEG_ENGINE, else torch); `classes_path`: a classes.json naming the
        classes (default: the model's own, else class_0..C-1).
        """
        return cls(load_model(model_dir, classes_path), engine, device, max_side)

    @property
    def num_classes(self) -> int:
        return self.hp.num_classes

    def probabilities(self, rgb: np.ndarray) -> np.ndarray:
        """(C, H, W) float32 softmax probabilities at the input's size."""
        x = network_input(rgb, self.max_side)
        with self._lock:
            probs = self.inference.probabilities(x, *rgb.shape[:2])
        return probs.astype(np.float32, copy=False)

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """H×W uint8 class indices: the argmax of `probabilities`, taken from the logits (softmax keeps their
        order), so a mask costs no softmax and no (C, H, W) copy."""
        x = network_input(rgb, self.max_side)
        with self._lock:
            return self.inference.mask(x, *rgb.shape[:2])
