"""Inference on single images with a trained artifact: the one code path shared by `seg predict`,
`seg evaluate` and the serving endpoint.

Preprocessing is the training normalisation (`seg.data.normalize`). Large-image policy: the network runs at
the input size unless the long side exceeds `max_side` (default 1024), in which case the image is scaled
down to that long side first; the logits are then resized bilinearly back to the input size and only then
soft-maxed, so memory for the network stays bounded while outputs always match the input's H×W.
"""
from __future__ import annotations

import io
import tempfile
import threading
from pathlib import Path

import mxnet as mx
import numpy as np
from PIL import Image

from seg.data import mask_image, normalize, overlay
from seg.model import Artifact, load_artifact, unpack_model_dir

DEFAULT_MAX_SIDE = 1024


class Predictor:
    """A loaded model. Thread-safe (a lock serialises the forward pass: MXNet engines are per process)."""

    def __init__(self, artifact: Artifact, ctx=None, max_side: int = DEFAULT_MAX_SIDE):
        self.net, self.hp, self.classes = artifact.net, artifact.hp, artifact.classes
        self.ctx = ctx or mx.cpu()
        self.max_side = max_side
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model_dir, ctx=None, max_side: int = DEFAULT_MAX_SIDE) -> "Predictor":
        """Read the artifact `seg train` wrote (a folder, or a folder/file holding model.tar.gz)."""
        ctx = ctx or mx.cpu()
        with tempfile.TemporaryDirectory() as scratch:
            artifact = load_artifact(unpack_model_dir(model_dir, scratch), ctx=ctx)
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


def list_images(path) -> list:
    """`path` itself if it is a file, else the images directly inside the folder, sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist")
    return sorted(p for p in path.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png") and not p.name.startswith("."))


def predict_files(predictor: Predictor, images, out_dir) -> list:
    """Masks and overlays for each image; each PNG is written to a temp name then renamed into place."""
    from seg.contract import write_atomic
    from seg.data import DataError, decode_image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in list_images(images):
        try:
            rgb = decode_image(path.read_bytes())
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None
        mask = predictor.predict(rgb)
        outputs = {"mask": out_dir / f"{path.stem}.png", "overlay": out_dir / f"{path.stem}_overlay.png"}
        painted = mask_image(mask, predictor.classes)
        for key, image in (("mask", painted), ("overlay", Image.fromarray(overlay(rgb, painted)))):
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            write_atomic(outputs[key], buffer.getvalue())
        written.append({"image": str(path), **{k: str(v) for k, v in outputs.items()}})
    return written


def evaluate_layout(predictor: Predictor, data, split: str = "validation", progress: bool = False):
    """SegMetrics of the predictor on a layout split, each image at its own size (label map applied)."""
    from tqdm import tqdm

    from seg.data import DataError, FileSource, check_labels
    from seg.metrics import ConfusionAccumulator

    source = FileSource(data, split, transform=None, batch_size=1)
    acc = ConfusionAccumulator(predictor.num_classes)
    for index in tqdm(range(len(source)), desc="evaluate", unit="image", disable=not progress):
        rgb, mask = source.load(index)
        try:
            check_labels(mask, predictor.num_classes)
        except DataError as exc:
            raise DataError(f"{source.pairs[index].mask}: {exc}") from None
        acc.update(predictor.predict(rgb), mask)
    return acc.result()
