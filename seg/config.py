"""Hyperparameters of the SageMaker built-in semantic-segmentation algorithm, parsed and validated.

SageMaker passes every hyperparameter as a string (`"True"`, `"0.001"`); users calling the library pass
typed values. Both are accepted, and everything is checked up front so that a typo fails in a second, not
after an hour of training. Names, defaults and ranges follow the built-in (docs/CONTRACTS.md, "Hyperparameters").

Extensions beyond the built-in (marked `extension` below): `resnet-18`/`resnet-34` backbones (heads sized
to the backbone, for CPU), `seed`, `data_workers`, `hybridize`, `kvstore`, `model_store` (where
pretrained backbone weights are looked up) and `aux_loss_weight` (docs/BUILTIN_MODELS.md). No MXNet import here.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Optional

from seg.errors import HyperparameterError

BUILTIN_BACKBONES = ("resnet-50", "resnet-101")
EXTENSION_BACKBONES = ("resnet-18", "resnet-34")
ALGORITHMS = ("fcn", "psp", "deeplab")
OPTIMIZERS = ("adam", "adagrad", "nag", "rmsprop", "sgd")
LR_SCHEDULERS = ("poly", "cosine", "step")
KVSTORES = ("device", "local", "dist_sync", "dist_device_sync", "dist_async")
#: seg's own hyperparameters, which the built-in algorithm would reject.
EXTENSION_HPS = ("seed", "data_workers", "hybridize", "kvstore", "model_store", "aux_loss_weight")


@dataclass(frozen=True)
class Hyperparameters:
    """Validated hyperparameters under their SageMaker names (crop_size already rounded up to ×8)."""

    num_classes: int
    num_training_samples: int
    backbone: str = "resnet-50"
    algorithm: str = "fcn"
    use_pretrained_model: bool = True
    base_size: int = 520
    crop_size: int = 240
    early_stopping: bool = False
    early_stopping_min_epochs: int = 5
    early_stopping_patience: int = 4
    early_stopping_tolerance: float = 0.0
    epochs: int = 10
    gamma1: float = 0.9
    gamma2: float = 0.9
    learning_rate: float = 0.001
    lr_scheduler: str = "poly"
    lr_scheduler_factor: float = 0.1
    lr_scheduler_step: Optional[tuple] = None
    mini_batch_size: int = 16
    momentum: float = 0.9
    optimizer: str = "sgd"
    syncbn: bool = False
    validation_mini_batch_size: int = 16
    weight_decay: float = 0.0001
    # extensions
    seed: int = 0
    data_workers: int = 2
    hybridize: bool = True
    kvstore: str = "device"
    model_store: str = ""
    aux_loss_weight: float = 0.5  # GluonCV's auxiliary FCN head (ResNet-50/101); 0 trains without it

    def to_json(self) -> dict:
        """JSON-ready dict that `parse_hyperparameters` reads back to an equal object."""
        out = asdict(self)
        if self.lr_scheduler_step is not None:
            out["lr_scheduler_step"] = ",".join(str(e) for e in self.lr_scheduler_step)
        return out

    def resolved_model_store(self) -> str:
        """Where pretrained backbones are looked up: the hyperparameter, $SEG_MODEL_STORE, or MXNet's."""
        if self.model_store:
            return self.model_store
        if os.environ.get("SEG_MODEL_STORE"):
            return os.environ["SEG_MODEL_STORE"]
        return mxnet_models_dir()


def mxnet_models_dir() -> str:
    """MXNet's and GluonCV's cache of downloaded weights: $MXNET_HOME/models (default ~/.mxnet/models)."""
    mxnet_home = os.environ.get("MXNET_HOME", os.path.join(os.path.expanduser("~"), ".mxnet"))
    return os.path.join(mxnet_home, "models")


def _bool(name, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise HyperparameterError(name, value, "True or False")


def _int(name, value, low=None, high=None, allowed=None):
    allowed = allowed or _range_text(low, high, "integer")
    if isinstance(value, bool):
        raise HyperparameterError(name, value, allowed)
    try:
        number = int(value.strip()) if isinstance(value, str) else value
    except ValueError:
        raise HyperparameterError(name, value, allowed) from None
    if not isinstance(number, int) or (low is not None and number < low) or (high is not None and number > high):
        raise HyperparameterError(name, value, allowed)
    return number


def _float(name, value, low, high, low_open=False, high_open=False):
    allowed = f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if isinstance(value, bool):
        raise HyperparameterError(name, value, allowed)
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise HyperparameterError(name, value, allowed) from None
    if not math.isfinite(number) or number < low or number > high or (low_open and number == low) or (
        high_open and number == high
    ):
        raise HyperparameterError(name, value, allowed)
    return number


def _choice(name, value, choices):
    text = value.strip().lower() if isinstance(value, str) else value
    if text not in choices:
        raise HyperparameterError(name, value, "one of " + ", ".join(choices))
    return text


def _range_text(low, high, kind):
    if low is not None and high is not None:
        return f"an {kind} in [{low}, {high}]"
    return f"an {kind} >= {low}" if low is not None else f"an {kind}"


def _steps(value):
    allowed = 'comma-separated increasing positive epoch numbers, e.g. "10,20"'
    if isinstance(value, (list, tuple)):
        parts = list(value)
    elif isinstance(value, str):
        parts = [p for p in value.split(",")]
    else:
        parts = [value]
    try:
        steps = tuple(_int("lr_scheduler_step", p, 1) for p in parts)
    except HyperparameterError:
        raise HyperparameterError("lr_scheduler_step", value, allowed) from None
    if not steps or any(b <= a for a, b in zip(steps, steps[1:])):
        raise HyperparameterError("lr_scheduler_step", value, allowed)
    return steps


_PARSERS = {
    "num_classes": lambda v: _int("num_classes", v, 2, 254),
    "num_training_samples": lambda v: _int("num_training_samples", v, 1),
    "backbone": lambda v: _choice("backbone", v, BUILTIN_BACKBONES + EXTENSION_BACKBONES),
    "algorithm": lambda v: _choice("algorithm", v, ALGORITHMS),
    "use_pretrained_model": lambda v: _bool("use_pretrained_model", v),
    "base_size": lambda v: _int("base_size", v, 17, allowed="an integer > 16"),
    "crop_size": lambda v: -(-_int("crop_size", v, 17, allowed="an integer > 16") // 8) * 8,
    "early_stopping": lambda v: _bool("early_stopping", v),
    "early_stopping_min_epochs": lambda v: _int("early_stopping_min_epochs", v, 1),
    "early_stopping_patience": lambda v: _int("early_stopping_patience", v, 1),
    "early_stopping_tolerance": lambda v: _float("early_stopping_tolerance", v, 0.0, 1.0),
    "epochs": lambda v: _int("epochs", v, 1),
    "gamma1": lambda v: _float("gamma1", v, 0.0, 1.0),
    "gamma2": lambda v: _float("gamma2", v, 0.0, 1.0),
    "learning_rate": lambda v: _float("learning_rate", v, 0.0, 1.0, low_open=True),
    "lr_scheduler": lambda v: _choice("lr_scheduler", v, LR_SCHEDULERS),
    "lr_scheduler_factor": lambda v: _float("lr_scheduler_factor", v, 0.0, 1.0),
    "lr_scheduler_step": _steps,
    "mini_batch_size": lambda v: _int("mini_batch_size", v, 1),
    "momentum": lambda v: _float("momentum", v, 0.0, 1.0, low_open=True),
    "optimizer": lambda v: _choice("optimizer", v, OPTIMIZERS),
    "syncbn": lambda v: _bool("syncbn", v),
    "validation_mini_batch_size": lambda v: _int("validation_mini_batch_size", v, 1),
    "weight_decay": lambda v: _float("weight_decay", v, 0.0, 1.0, low_open=True, high_open=True),
    "seed": lambda v: _int("seed", v, 0),
    "data_workers": lambda v: _int("data_workers", v, 0, 64),
    "hybridize": lambda v: _bool("hybridize", v),
    "kvstore": lambda v: _choice("kvstore", v, KVSTORES),
    "model_store": lambda v: str(v).strip(),
    "aux_loss_weight": lambda v: _float("aux_loss_weight", v, 0.0, 1.0),
}
assert set(_PARSERS) == {f.name for f in fields(Hyperparameters)}


def _ignored(name: str) -> bool:
    """Keys SageMaker itself adds (HPO's `_tuning_objective_metric`, framework `sagemaker_*`)."""
    return name.startswith("_") or name.startswith("sagemaker_")


def parse_hyperparameters(mapping: Mapping[str, Any]) -> Hyperparameters:
    """Typed, validated hyperparameters from strings or values; raises HyperparameterError on the first bad one."""
    values = {}
    for name, raw in mapping.items():
        if _ignored(name):
            continue
        if name not in _PARSERS:
            raise HyperparameterError(name, raw, "a known hyperparameter: " + ", ".join(sorted(_PARSERS)))
        if raw is None and name in ("lr_scheduler_step", "model_store"):
            continue
        values[name] = _PARSERS[name](raw)
    for required in ("num_classes", "num_training_samples"):
        if required not in values:
            raise HyperparameterError(required, None, "a value: this hyperparameter is required")
    if values.get("lr_scheduler") == "step" and "lr_scheduler_step" not in values:
        raise HyperparameterError("lr_scheduler_step", None, 'a value when lr_scheduler=step, e.g. "10,20"')
    return Hyperparameters(**values)
