"""ImageNet weights for the backbones: where to find them."""
from __future__ import annotations

import glob
import os
from pathlib import Path

from gt2seg.atomic import atomic_write
from seg.config import Hyperparameters
from seg.errors import PretrainedWeightsError
from seg.models.nets import BACKBONES


def pretrained_candidates(hp: Hyperparameters) -> list:
    """Where `resolve_pretrained` looks, in order (for the error message too)."""
    store = hp.resolved_model_store()
    name = BACKBONES[hp.backbone][1]
    if store.endswith(".params"):
        return [store]
    return [store.rstrip("/") + f"/{name}.params", str(Path(store) / f"{name}-*.params")]


def resolve_pretrained(hp: Hyperparameters, cache_dir) -> str:
    """A local path to the ImageNet weights of hp.backbone (downloaded to cache_dir when the store is s3://)."""
    from gt2seg.errors import Gt2SegError
    from gt2seg.storage import is_s3, read_bytes

    candidates = pretrained_candidates(hp)
    for candidate in candidates:
        if is_s3(candidate):
            try:
                data = read_bytes(candidate)
            except Gt2SegError:
                continue
            local = Path(cache_dir) / os.path.basename(candidate)
            atomic_write(local, data)
            return str(local)
        matches = sorted(glob.glob(candidate))
        if matches:
            return matches[-1]
    name = BACKBONES[hp.backbone][1]
    raise PretrainedWeightsError(
        f"use_pretrained_model=True but no ImageNet weights for backbone {hp.backbone} were found; looked for "
        f"{' and '.join(c for c in candidates if not is_s3(c) or c.startswith('s3://'))}. Put GluonCV's {name} "
        f"weights there (on a machine with network: gluoncv.model_zoo.get_model('{name}', pretrained=True) saves "
        f"~/.mxnet/models/{name}-<hash>.params), or point the model_store hyperparameter (or $SEG_MODEL_STORE) at "
        "a folder, an s3:// prefix or a .params file, or set use_pretrained_model=False"
    )
