"""Engines: what runs the network. Each supplies the network, the training step and the weights' I/O; everything
else (data, Pipe mode, metrics, early stopping, checkpoint policy, the /opt/ml contract, reports, the model file
format: seg.models.params) exists once and is shared.

- `torch` (default): PyTorch, any current Python and GPU; the `torch` extra.
- `mxnet`: MXNet 1.9.1 + GluonCV, the built-in algorithm's own engine; the `cpu`/`gpu` extras, Python <= 3.11.

An engine is the module `seg.engines.<name>.engine`; only it (and what it imports) touches its framework.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Optional

from seg.errors import MissingExtraError, SegError

ENGINES = ("torch", "mxnet")
DEFAULT = "torch"
ENV = "SEG_ENGINE"
#: engine → (extra that installs it, the Pythons it installs on)
EXTRAS = {"torch": ("torch", "3.9 to 3.13"), "mxnet": ("cpu", "3.9 to 3.11 (MXNet 1.9.1 needs numpy<1.24)")}


class EngineError(SegError, ValueError):
    """An engine name that is not one of ENGINES."""


def engine_name(name: Optional[str] = None) -> str:
    """The engine to use: `name`, else $SEG_ENGINE, else torch."""
    chosen = (name or os.environ.get(ENV) or DEFAULT).strip().lower()
    if chosen not in ENGINES:
        raise EngineError(f"engine={chosen!r} is not an engine: use one of {', '.join(ENGINES)} (or set {ENV})")
    return chosen


def load_engine(name: Optional[str] = None):
    """The engine module (`seg.engines.<name>.engine`); MissingExtraError naming the extra and the Pythons that
    can hold it when its framework is not installed."""
    chosen = engine_name(name)
    try:
        return importlib.import_module(f"seg.engines.{chosen}.engine")
    except ImportError as exc:
        root = (getattr(exc, "name", None) or "").split(".")[0]
        if root not in ("torch", "mxnet", "gluoncv"):
            raise
        extra, pythons = EXTRAS[chosen]
        here = ".".join(map(str, sys.version_info[:2]))
        raise MissingExtraError(root, extra, f"the {chosen} engine needs it; the {extra!r} extra installs on "
                                             f"Python {pythons} (this is Python {here})") from None
