"""GluonCV parameter names ↔ the torch networks' state_dict (seg.engines.torch.nets).

The networks mirror GluonCV's structural names, so the map is one renaming: BatchNorm's weight/bias are Gluon's
gamma/beta (running_mean and running_var keep their names); torch's `num_batches_tracked` has no Gluon
counterpart and is neither written nor read. Names are those of `Block._collect_params_with_prefix()`, what
`save_parameters` writes and `load_parameters` reads, in the same order.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from seg.engines.torch.nets import build
from seg.errors import ModelError
from seg.models.arch import Architecture

#: torch BatchNorm name → Gluon BatchNorm name
_BN_TO_GLUON = {"weight": "gamma", "bias": "beta", "running_mean": "running_mean", "running_var": "running_var"}
#: prefixes MXNet's own writers (mx.nd.save of a symbol's arg/aux params) put before a name
_MXNET_PREFIXES = ("arg:", "aux:")


def name_map(module: nn.Module) -> dict:
    """GluonCV name → state_dict key, in registration order (which is Gluon's), without num_batches_tracked."""
    batch_norms = {name for name, m in module.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    names = {}
    for key in module.state_dict(keep_vars=True):
        owner, _, leaf = key.rpartition(".")
        if owner in batch_norms:
            if leaf not in _BN_TO_GLUON:  # num_batches_tracked
                continue
            leaf = _BN_TO_GLUON[leaf]
        names[f"{owner}.{leaf}" if owner else leaf] = key
    return names


def to_gluon(module: nn.Module) -> dict:
    """GluonCV name → float32 numpy array of every parameter and running statistic, in GluonCV's order."""
    state = module.state_dict()
    return {name: state[key].detach().to("cpu", torch.float32).numpy().copy()
            for name, key in name_map(module).items()}


def strip_prefix(name: str) -> str:
    """A parameter name without MXNet's "arg:"/"aux:" prefix."""
    return name[4:] if name.startswith(_MXNET_PREFIXES) else name


def differences(shapes: dict, expected: dict, shown: int = 3) -> str:
    """What keeps `shapes` (name → shape) from matching `expected`: missing, unexpected and reshaped names,
    up to `shown` of each; "" when they match."""
    missing = [n for n in expected if n not in shapes]
    extra = [n for n in shapes if n not in expected]
    wrong = [f"{n} {tuple(shapes[n])} vs {tuple(expected[n])}" for n in expected
             if n in shapes and tuple(shapes[n]) != tuple(expected[n])]
    parts = [f"{len(items)} {what} ({', '.join(items[:shown])}{', ...' if len(items) > shown else ''})"
             for what, items in (("missing", missing), ("unexpected", extra), ("of another shape", wrong)) if items]
    return "; ".join(parts)


def from_gluon(module: nn.Module, arrays: dict, where) -> None:
    """Load GluonCV-named arrays (numpy, or anything np.asarray takes) into `module`, strictly.

    Every parameter and running statistic must be there with its shape and nothing else may be: else ModelError,
    one line naming `where` (the file) and up to 3 names of each kind. Nothing is loaded unless all of it fits.
    """
    names = name_map(module)
    state = module.state_dict()
    arrays = {strip_prefix(name): value for name, value in arrays.items()}
    expected = {name: tuple(state[key].shape) for name, key in names.items()}
    found = {name: tuple(np.shape(value)) for name, value in arrays.items()}
    problems = differences(found, expected)
    if problems:
        raise ModelError(f"{where} does not fit the {type(module).__name__} network ({len(expected)} parameters): "
                         f"{problems}; pass a model written by seg or SageMaker's built-in algorithm for this "
                         "architecture")
    with torch.no_grad():
        for name, key in names.items():
            target = state[key]
            target.copy_(torch.as_tensor(np.asarray(arrays[name]), dtype=target.dtype))


@functools.lru_cache(maxsize=None)
def _expected(arch: Architecture) -> tuple:
    with torch.device("meta"):
        module = build(arch)
    state = module.state_dict()
    return tuple((name, tuple(state[key].shape)) for name, key in name_map(module).items())


def expected_shapes(arch: Architecture) -> dict:
    """GluonCV name → shape of every parameter `arch`'s network loads, in GluonCV's order (built on the meta
    device: no memory, no weights)."""
    return dict(_expected(arch))
