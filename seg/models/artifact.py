"""The model artifact, engine-free: read a model folder or tarball, write one from a parameter file, check a model
for incremental training. The parameter file is MXNet's format (seg.models.params) whichever engine wrote it."""
from __future__ import annotations

import json
import os
import shutil
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path

from gt2seg.atomic import atomic_path, atomic_write
from gt2seg.classes import CLASSES_JSON, ClassTable, read_classes
from gt2seg.errors import ClassesError
from seg.config import Hyperparameters, parse_hyperparameters
from seg.errors import DataError, HyperparameterError, ModelError
from seg.models.builtin import (
    BUILTIN_HYPERPARAMETERS,
    BUILTIN_PARAMS,
    builtin_hyperparameters,
    builtin_params_file,
    detect_architecture,
    read_builtin_hyperparameters,
    write_builtin_form,
)
from seg.models.arch import Architecture, architecture_for
from seg.models.params import TORCH_CHECKPOINT, is_torch_checkpoint

PARAMS, HYPERPARAMETERS, CLASSES = "model.params", "hyperparameters.json", CLASSES_JSON

MUST_MATCH = ("backbone", "algorithm", "crop_size", "num_classes")  # docs/CONTRACTS.md, "Incremental training"


def write_artifact(params_path, hp: Hyperparameters, classes: list, model_dir, arch: Architecture = None) -> Path:
    """The model folder from a parameter file (GluonCV's names, as both engines write it): model.params,
    hyperparameters.json and classes.json, plus the built-in's model_algo-1 + hyperparams.json when GluonCV's
    classes can load it (the built-in then takes the folder's tarball for incremental training)."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    stored_hp = replace(hp, use_pretrained_model=False, model_store="")
    arch = arch or architecture_for(hp)
    with atomic_path(model_dir / PARAMS) as tmp:
        shutil.copyfile(params_path, tmp)
    if arch.builtin_compatible:
        write_builtin_form(model_dir / PARAMS, stored_hp, model_dir)
    atomic_write(model_dir / HYPERPARAMETERS, json.dumps(stored_hp.to_json(), indent=2).encode())
    atomic_write(model_dir / CLASSES, json.dumps(classes, indent=2).encode())
    return model_dir


def open_model(location, scratch) -> Path:
    """The folder holding a model: `location` itself, or `scratch` after fetching (s3://) and extracting a
    model.tar.gz (the file, or one inside the folder)."""
    location = str(location)
    scratch = Path(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    if location.startswith("s3://"):
        location = str(_download(location, scratch / "download"))
    path = Path(location)
    if not path.exists():
        raise ModelError(f"model {path} does not exist; pass a model folder, a model.tar.gz or an s3:// URI of one")
    tarball = path if path.is_file() else path / "model.tar.gz"
    if path.is_dir() and ((path / PARAMS).is_file() or (path / BUILTIN_PARAMS).is_file() or not tarball.is_file()):
        return path
    extract_tarball(tarball, scratch / "model")
    return scratch / "model"


def _download(uri: str, target: Path) -> Path:
    """An s3:// model.tar.gz object, or a prefix holding a model folder or a model.tar.gz, copied to `target`."""
    from gt2seg.errors import Gt2SegError
    from gt2seg.storage import download_tree, exists, read_bytes

    try:
        if uri.endswith((".tar.gz", ".tgz")) or exists(uri):
            atomic_write(target / "model.tar.gz", read_bytes(uri))
            return target / "model.tar.gz"
        download_tree(uri.rstrip("/") + "/", target)
    except Gt2SegError as exc:
        raise ModelError(f"model {uri}: {exc}") from None
    return target


def extract_tarball(tarball: Path, dest: Path) -> None:
    """Extract a model.tar.gz; links, devices and entries that would land outside `dest` are refused
    before anything is written."""
    try:
        with tarfile.open(tarball) as tar:
            members = tar.getmembers()
            for member in members:
                target = os.path.normpath(os.path.join(dest, member.name))
                if member.issym() or member.islnk():
                    raise ModelError(f"{tarball}: entry {member.name!r} is a link; a model.tar.gz holds plain files "
                                     "only: repack it without links")
                if os.path.isabs(member.name) or not (target + os.sep).startswith(os.path.normpath(dest) + os.sep):
                    raise ModelError(f"{tarball}: entry {member.name!r} would be written outside the extraction "
                                     "folder; repack it with plain relative names")
                if not (member.isfile() or member.isdir()):
                    raise ModelError(f"{tarball}: entry {member.name!r} is not a regular file; repack it with "
                                     "plain files only")
            Path(dest).mkdir(parents=True, exist_ok=True)
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ModelError(f"{tarball}: {_why_not_a_tarball(tarball, exc)}") from None


def _why_not_a_tarball(tarball: Path, exc: Exception) -> str:
    """One line: what the file that tarfile could not read is instead."""
    try:
        with open(tarball, "rb") as fh:
            head = fh.read(8)
    except OSError:
        head = b""
    if is_torch_checkpoint(head):
        return TORCH_CHECKPOINT
    if isinstance(exc, tarfile.ReadError) and "\n" in str(exc):  # tarfile lists each compression it tried
        return ("not a readable model.tar.gz (no tar archive, compressed or not); pass the model.tar.gz or the "
                "folder a training job wrote")
    return f"not a readable model.tar.gz ({' '.join(str(exc).split())})"


@dataclass
class ModelInfo:
    """A model's files understood, before any network is built."""

    arch: Architecture
    hp: Hyperparameters
    classes: list
    params: Path
    stated: frozenset  # hyperparameter names the model itself states (for incremental training's checks)
    source: str = ""  # where the model came from, for messages


def read_model(model_dir, classes_path=None) -> ModelInfo:
    """Architecture, hyperparameters, classes and parameter file of a seg artifact or a built-in model folder."""
    model_dir = Path(model_dir)
    if (model_dir / PARAMS).is_file():
        hp = _seg_hyperparameters(model_dir)
        arch = detect_architecture(model_dir / PARAMS)
        mismatch = [f"{k} {getattr(hp, k)!r} vs {getattr(arch, k)!r}" for k in ("algorithm", "backbone", "num_classes")
                    if getattr(hp, k) != getattr(arch, k)]
        if mismatch:
            raise ModelError(f"{model_dir / HYPERPARAMETERS} contradicts {PARAMS} (" + "; ".join(mismatch)
                             + "); the two files come from different models")
        params, stated = model_dir / PARAMS, frozenset(MUST_MATCH)
        classes_path = classes_path or model_dir / CLASSES
    else:
        params = builtin_params_file(model_dir)
        arch = detect_architecture(params)
        raw = {}
        if (model_dir / BUILTIN_HYPERPARAMETERS).is_file():
            raw = read_builtin_hyperparameters(model_dir / BUILTIN_HYPERPARAMETERS)
        hp, stated = builtin_hyperparameters(arch, raw, model_dir / BUILTIN_HYPERPARAMETERS)
        if classes_path is None and (model_dir / CLASSES).is_file():
            classes_path = model_dir / CLASSES
    if classes_path is None:
        classes = [dict(c, name=f"class_{c['index']}") for c in ClassTable.default(arch.num_classes).entries()]
    else:
        try:
            classes = read_classes(classes_path)
        except ClassesError as exc:
            raise DataError(str(exc)) from None
        if len(classes) != arch.num_classes:
            raise ModelError(f"{classes_path} has {len(classes)} classes but the model has {arch.num_classes}; "
                             "pass the classes.json the model was trained with")
    return ModelInfo(arch, hp, classes, params, stated, str(params))


def _seg_hyperparameters(model_dir: Path) -> Hyperparameters:
    if not (model_dir / HYPERPARAMETERS).is_file():
        raise ModelError(f"{model_dir} is not a complete seg model: {HYPERPARAMETERS} is missing beside {PARAMS} "
                         "(seg train writes model.params, hyperparameters.json and classes.json)")
    try:
        return parse_hyperparameters(json.loads((model_dir / HYPERPARAMETERS).read_text()))
    except (ValueError, HyperparameterError) as exc:
        raise ModelError(f"{model_dir / HYPERPARAMETERS}: {exc}") from None


def check_compatible(previous: Hyperparameters, hp: Hyperparameters, where: str, stated=MUST_MATCH) -> None:
    """Incremental training needs the same backbone, algorithm, crop_size and num_classes (those the model states)."""
    diffs = [f"{k}: model {getattr(previous, k)!r} vs job {getattr(hp, k)!r}" for k in MUST_MATCH
             if k in stated and getattr(previous, k) != getattr(hp, k)]
    if diffs:
        raise ModelError(f"the model in {where} cannot be trained further with these hyperparameters ("
                         + "; ".join(diffs) + "); set them to the model's values")


@dataclass
class Model:
    """A model read whole: what it is (`info`) and its weights (GluonCV name → array), ready for any engine."""

    info: ModelInfo
    weights: dict


def load_model(location, classes_path=None) -> Model:
    """Read a model seg or the built-in wrote (folder, model.tar.gz, or an s3:// URI of either), engine-free."""
    import tempfile

    from seg.models.params import plain_names, read_params

    with tempfile.TemporaryDirectory(prefix="seg-model-") as scratch:
        info = read_model(open_model(location, scratch), classes_path)
        weights = plain_names(read_params(info.params))
    info.params, info.source = None, str(location)  # the scratch copy is gone; the weights are in memory
    return Model(info, weights)
