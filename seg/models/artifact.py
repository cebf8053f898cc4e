"""The model artifact: write, read, and check for incremental training."""
from __future__ import annotations

import json
import os
import tarfile
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import mxnet as mx

from gt2seg.atomic import atomic_files, atomic_path, atomic_write
from gt2seg.classes import CLASSES_JSON, ClassTable, read_classes
from gt2seg.errors import ClassesError
from seg.config import Hyperparameters, parse_hyperparameters
from seg.errors import DataError, HyperparameterError, ModelError
from seg.models.nets import SegNet, build_network

PARAMS, HYPERPARAMETERS, CLASSES = "model.params", "hyperparameters.json", CLASSES_JSON

EXPORT_PREFIX = "model"  # → model-symbol.json, model-0000.params

MUST_MATCH = ("backbone", "algorithm", "crop_size", "num_classes")  # incremental training (SAGEMAKER_SPEC §1.5)


@dataclass
class Artifact:
    net: SegNet
    hp: Hyperparameters
    classes: list


def export_symbol(net: SegNet, hp: Hyperparameters, model_dir: Path) -> None:
    """Hybridize and export `model-symbol.json` + `model-0000.params` (atomically renamed into place)."""
    net.hybridize()
    ctx = list(net.collect_params().values())[0].list_ctx()[0]
    net(mx.nd.zeros((1, 3, hp.crop_size, hp.crop_size), ctx=ctx))
    names = (f"{EXPORT_PREFIX}-symbol.json", f"{EXPORT_PREFIX}-0000.params")
    with atomic_files(model_dir, names) as tmp:
        net.export(os.path.join(tmp, EXPORT_PREFIX), epoch=0)


def save_params(net, path: Path) -> None:
    with atomic_path(path) as tmp:
        net.save_parameters(str(tmp))


def save_artifact(params_path, hp: Hyperparameters, classes: list, model_dir) -> Path:
    """Write the full artifact from a parameters file, via a clean CPU copy with plain BatchNorm.

    Exporting from a fresh copy keeps training state (SyncBatchNorm, GPU contexts) out of the artifact.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    stored_hp = replace(hp, use_pretrained_model=False, model_store="")
    net = build_network(stored_hp)
    net.load_parameters(str(params_path), ctx=mx.cpu())
    save_params(net, model_dir / PARAMS)
    atomic_write(model_dir / HYPERPARAMETERS, json.dumps(stored_hp.to_json(), indent=2).encode())
    atomic_write(model_dir / CLASSES, json.dumps(classes, indent=2).encode())
    export_symbol(net, stored_hp, model_dir)
    return model_dir


def save_random_artifact(model_dir, num_classes=3, backbone="resnet-18", algorithm="fcn", crop_size=64,
                         classes=None, seed=0) -> Path:
    """A complete artifact with freshly initialised weights: for tests of predict/serve that need no training."""
    mx.random.seed(seed)
    hp = parse_hyperparameters({
        "num_classes": num_classes, "num_training_samples": 1, "backbone": backbone, "algorithm": algorithm,
        "crop_size": crop_size, "base_size": crop_size, "use_pretrained_model": False,
    })
    net = build_network(hp)
    with tempfile.TemporaryDirectory() as tmp:
        params = Path(tmp) / PARAMS
        save_params(net, params)
        return save_artifact(params, hp, classes or ClassTable.default(num_classes).entries(), model_dir)


def unpack_model_dir(path, scratch) -> Path:
    """The folder holding the artifact: `path` itself, or `scratch` after extracting a model.tar.gz in it."""
    path = Path(path)
    tarball = path if path.is_file() else path / "model.tar.gz"
    if (path / PARAMS).exists() or not tarball.is_file():
        return path
    Path(scratch).mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(tarball) as tar:
            tar.extractall(scratch, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ModelError(f"{tarball}: not a readable model.tar.gz ({exc})") from None
    return Path(scratch)


def read_artifact_hyperparameters(model_dir) -> Hyperparameters:
    """The hyperparameters an artifact was trained with (checks the artifact's files are all there)."""
    model_dir = Path(model_dir)
    for name in (PARAMS, HYPERPARAMETERS, CLASSES):
        if not (model_dir / name).is_file():
            raise ModelError(f"{model_dir} is not a seg model: {name} is missing (seg train writes model.params, "
                             "hyperparameters.json and classes.json)")
    try:
        return parse_hyperparameters(json.loads((model_dir / HYPERPARAMETERS).read_text()))
    except (ValueError, HyperparameterError) as exc:
        raise ModelError(f"{model_dir / HYPERPARAMETERS}: {exc}") from None


def load_artifact(model_dir, ctx=None) -> Artifact:
    """Network (hybridized), hyperparameters and classes from a folder written by `save_artifact`."""
    model_dir = Path(model_dir)
    hp = read_artifact_hyperparameters(model_dir)
    try:
        classes = read_classes(model_dir / CLASSES)
    except ClassesError as exc:
        raise DataError(str(exc)) from None
    if len(classes) != hp.num_classes:
        raise ModelError(f"{model_dir}: classes.json has {len(classes)} classes but num_classes={hp.num_classes}")
    ctx = ctx if isinstance(ctx, list) else [ctx or mx.cpu()]
    net = build_network(hp, ctx=ctx)
    try:
        net.load_parameters(str(model_dir / PARAMS), ctx=ctx)
    except (mx.base.MXNetError, AssertionError) as exc:
        raise ModelError(f"{model_dir / PARAMS} does not match {hp.algorithm}/{hp.backbone}: "
                         f"{str(exc).splitlines()[0]}") from None
    net.hybridize()
    return Artifact(net, hp, classes)


def check_compatible(previous: Hyperparameters, hp: Hyperparameters, where: str) -> None:
    """Incremental training needs the same backbone, algorithm, crop_size and num_classes."""
    diffs = [f"{k}: model {getattr(previous, k)!r} vs job {getattr(hp, k)!r}" for k in MUST_MATCH
             if getattr(previous, k) != getattr(hp, k)]
    if diffs:
        raise ModelError(f"the model in {where} cannot be trained further with these hyperparameters ("
                         + "; ".join(diffs) + "); set them to the model's values")
