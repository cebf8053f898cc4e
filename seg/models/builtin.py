"""SageMaker's built-in semantic-segmentation artifact: read it, write it, and tell what a parameter file holds.

The built-in's model.tar.gz holds `model_algo-1` (a GluonCV FCN/PSPNet/DeepLabV3 `save_parameters` file),
`model_best.params` and `hyperparams.json` (string values under the built-in's names); docs/CONTRACTS.md, "The built-in's model artifact".
The network is worked out from the parameter file itself (names and shapes, read with numpy: no engine needed);
hyperparams.json, when present, must agree with it. See docs/BUILTIN_MODELS.md for what is confirmed and what is inferred.
"""
from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

from gt2seg.atomic import atomic_write
from seg.config import BUILTIN_BACKBONES, EXTENSION_HPS, Hyperparameters, parse_hyperparameters
from seg.errors import HyperparameterError, ModelError
from seg.models.arch import Architecture, parameter_shapes
from seg.models.params import plain_names, read_params

BUILTIN_PARAMS, BUILTIN_BEST, BUILTIN_HYPERPARAMETERS = "model_algo-1", "model_best.params", "hyperparams.json"
#: blocks in layer3 (and whether layer1 has bottlenecks) → backbone
_LAYER3_BLOCKS = {(2, False): "resnet-18", (6, False): "resnet-34", (6, True): "resnet-50", (23, True): "resnet-101"}
_CLASSIFIERS = {"head.block.4.weight": "gluoncv", "head.classifier.block.2.weight": "seg",
                "head.block.2.weight": "seg"}


def read_shapes(path) -> dict:
    """name → shape of an MXNet parameter file; ModelError when it is not one (or is cut short)."""
    arrays = plain_names(read_params(path))
    if not arrays:
        raise ModelError(f"{path}: holds no named parameters; expected a Gluon save_parameters file")
    return {name: tuple(array.shape) for name, array in arrays.items()}


def _candidates(shapes: dict) -> list:
    """Architectures the names suggest; the stems are told apart by shapes (both are tried)."""
    heads = {kind for name, kind in _CLASSIFIERS.items() if name in shapes}
    classifier = next((n for n in _CLASSIFIERS if n in shapes and len(shapes[n]) == 4), None)
    blocks = len({n.split(".")[1] for n in shapes if n.startswith("layer3.")})
    backbone = _LAYER3_BLOCKS.get((blocks, "layer1.0.conv3.weight" in shapes))
    if classifier is None or backbone is None or len(heads) != 1:
        return []
    if any(n.startswith("head.psp.") for n in shapes):
        algorithm = "psp"
    elif any(n.startswith(("head.aspp.", "head.image_pool.")) for n in shapes):
        algorithm = "deeplab"
    else:  # seg's PSP head has branches but no image pooling; FCN has neither
        algorithm = "psp" if any(n.startswith("head.branches.") for n in shapes) else "fcn"
    kind, num_classes = heads.pop(), shapes[classifier][0]
    if kind == "seg":
        stems = ("v1s",) if backbone in BUILTIN_BACKBONES else ("v1b",)
        return [Architecture(algorithm, backbone, num_classes, stem, "seg", aux=False) for stem in stems]
    aux = "auxlayer.block.0.weight" in shapes
    return [Architecture(algorithm, backbone, num_classes, stem, "gluoncv", aux) for stem in ("v1s", "v1b")]


def _differences(shapes: dict, expected: dict, shown: int = 3) -> str:
    missing = [n for n in expected if n not in shapes]
    extra = [n for n in shapes if n not in expected]
    wrong = [f"{n} {shapes[n]} vs {expected[n]}" for n in expected if n in shapes and shapes[n] != expected[n]]
    parts = [f"{len(items)} {what} ({', '.join(items[:shown])}{', ...' if len(items) > shown else ''})"
             for what, items in (("missing", missing), ("unexpected", extra), ("of another shape", wrong)) if items]
    return "; ".join(parts)


def detect_architecture(path, shapes=None) -> Architecture:
    """The architecture whose every parameter (name and shape) the file at `path` matches."""
    shapes = shapes if shapes is not None else read_shapes(path)
    candidates = _candidates(shapes)
    for arch in candidates:
        if parameter_shapes(arch) == shapes:
            return arch
    holds = f"{len(shapes)} parameters, e.g. " + ", ".join(f"{n} {s}" for n, s in list(shapes.items())[:3])
    if not candidates:
        raise ModelError(f"{path} matches no known architecture: it holds {holds} but no FCN/PSP/DeepLabV3 head on a "
                         "GluonCV ResNet-18/34/50/101; pass a model written by seg or the built-in algorithm")
    tried = " | ".join(f"{a.describe()} expects: {_differences(shapes, parameter_shapes(a))}" for a in candidates)
    raise ModelError(f"{path} matches no known architecture: it holds {holds}; {tried}")


def read_builtin_hyperparameters(path) -> dict:
    """hyperparams.json as written by the built-in: a JSON object of strings (unknown keys are kept)."""
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable hyperparams.json ({exc})") from None
    if not isinstance(values, dict):
        raise ModelError(f'{path}: expected a JSON object like {{"num_classes": "21", "backbone": "resnet-50"}}')
    return values


def builtin_hyperparameters(arch: Architecture, raw: dict, where) -> tuple:
    """(Hyperparameters, names the model states) from the architecture and hyperparams.json, which must agree.

    Keys seg does not know are ignored (the built-in may write more than it documents, UNCONFIRMED).
    """
    known = {f.name for f in fields(Hyperparameters)}
    values = {k: v for k, v in raw.items() if k in known and k not in EXTENSION_HPS}
    detected = {"backbone": arch.backbone, "algorithm": arch.algorithm, "num_classes": arch.num_classes}
    try:
        hp = parse_hyperparameters({"num_training_samples": 1, **values, **detected})
        stated = parse_hyperparameters({"num_training_samples": 1, **detected, **values})
    except HyperparameterError as exc:
        raise ModelError(f"{where}: {exc}") from None
    conflicts = [f"{k}={getattr(stated, k)!r} but the parameters are {v!r}" for k, v in detected.items()
                 if getattr(stated, k) != v]
    if conflicts:
        raise ModelError(f"{where} contradicts the parameter file: " + "; ".join(conflicts)
                         + "; fix hyperparams.json or pair it with the right model_algo-1")
    return replace(hp, use_pretrained_model=False), frozenset(values) | frozenset(detected)


def builtin_params_file(model_dir) -> Path:
    """model_algo-1, else model_best.params (their difference is UNCONFIRMED; model_algo-1 is the documented one)."""
    for name in (BUILTIN_PARAMS, BUILTIN_BEST):
        if (Path(model_dir) / name).is_file():
            return Path(model_dir) / name
    raise ModelError(f"{model_dir} holds no model: expected model.params (seg) or model_algo-1 (the built-in "
                     "algorithm's model.tar.gz); pass the folder or the model.tar.gz a training job wrote")


def write_builtin_form(params: Path, hp: Hyperparameters, model_dir: Path) -> None:
    """model_algo-1 (the same bytes as seg's model.params) and hyperparams.json, as the built-in writes them."""
    atomic_write(Path(model_dir) / BUILTIN_PARAMS, Path(params).read_bytes())
    values = {k: v for k, v in hp.to_json().items() if k not in EXTENSION_HPS and v is not None}
    text = {k: str(v) for k, v in values.items()}
    atomic_write(Path(model_dir) / BUILTIN_HYPERPARAMETERS, json.dumps(text, indent=2).encode())
