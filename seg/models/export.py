"""`seg export`: the symbol + params pair of any model seg reads, for Neo or for MXNet without seg.

The graph is seg's size-agnostic one (every resize is "like" its input), so one pair serves any H×W; the
signature file writes down what a caller must feed it and what comes out.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from gt2seg.atomic import atomic_write
from seg.data.transforms import MEAN, STD
from seg.models.artifact import EXPORT_PREFIX, export_symbol, load_artifact, open_model

SIGNATURE = f"{EXPORT_PREFIX}-signature.json"


@dataclass
class ExportResult:
    symbol: Path
    params: Path
    signature: Path
    architecture: str


def signature(artifact) -> dict:
    """Input, preprocessing, output and classes of the exported graph."""
    size = artifact.hp.crop_size
    return {
        "input": {"name": "data", "dtype": "float32", "layout": "NCHW", "shape": ["N", 3, "H", "W"],
                  "any_height_width": True, "example_shape": [1, 3, size, size]},
        "preprocessing": {"channel_order": "RGB", "scale": "pixel / 255", "mean": [float(m) for m in MEAN],
                          "std": [float(s) for s in STD], "formula": "(pixel / 255 - mean) / std, per channel"},
        "output": {"shape": ["N", artifact.arch.num_classes, "H", "W"], "dtype": "float32",
                   "meaning": "class logits at the input's size; argmax over axis 1 is the class index, "
                              "softmax over axis 1 the probabilities"},
        "classes": artifact.classes,
        "architecture": asdict(artifact.arch),
    }


def export_model(model, out_dir, classes_path=None) -> ExportResult:
    """Write OUT/model-symbol.json, OUT/model-0000.params and OUT/model-signature.json for `model`
    (a seg or built-in model folder, model.tar.gz or s3:// URI); nothing is written if it cannot be read."""
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="seg-export-") as scratch:
        artifact = load_artifact(open_model(model, scratch), classes_path=classes_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    export_symbol(artifact.net, artifact.hp.crop_size, out_dir)
    atomic_write(out_dir / SIGNATURE, json.dumps(signature(artifact), indent=2).encode())
    return ExportResult(out_dir / f"{EXPORT_PREFIX}-symbol.json", out_dir / f"{EXPORT_PREFIX}-0000.params",
                        out_dir / SIGNATURE, artifact.arch.describe())
