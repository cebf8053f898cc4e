"""ImageNet weights for the backbones: the model store first, then GluonCV's own model store.

Order (`resolve_pretrained`): 1. the model store (`model_store`, else $SEG_MODEL_STORE, else $MXNET_HOME/models):
`<name>.params` or `<name>-*.params` in a folder or under an s3:// prefix, or the .params file named;
2. GluonCV's model store (`get_model_file`): its SHA-1-checked cache in $MXNET_HOME/models, else a download
from $MXNET_GLUON_REPO (default: GluonCV's public repo) with a progress bar, unless $SEG_OFFLINE=1.
GluonCV's downloader is used as is: it honours both variables and checks the SHA-1 it pins for each model.
"""
from __future__ import annotations

import contextlib
import glob
import os
import sys
import zipfile
from pathlib import Path

from gt2seg.atomic import atomic_write
from seg.config import Hyperparameters, mxnet_models_dir
from seg.errors import PretrainedWeightsError
from seg.models.arch import STORE_NAMES

OFFLINE = "SEG_OFFLINE"  # =1: never download weights (air-gapped jobs); the model store must hold them


def pretrained_candidates(hp: Hyperparameters) -> list:
    """Where `resolve_pretrained` looks in the model store, in order (for the error message too)."""
    store = hp.resolved_model_store()
    name = STORE_NAMES[hp.backbone]
    if store.endswith(".params"):
        return [store]
    return [store.rstrip("/") + f"/{name}.params", str(Path(store) / f"{name}-*.params")]


def resolve_pretrained(hp: Hyperparameters, cache_dir) -> str:
    """A local path to the ImageNet weights of hp.backbone (copied to cache_dir when the store is s3://)."""
    found = _from_model_store(pretrained_candidates(hp), cache_dir)
    if found:
        return found
    name = STORE_NAMES[hp.backbone]
    if os.environ.get(OFFLINE) == "1":
        _missing(hp, f"not downloaded from GluonCV's model store ({_gluon_url(name)}) because {OFFLINE}=1")
    return _from_gluon_store(hp)


def _from_gluon_store(hp: Hyperparameters) -> str:
    """GluonCV's weights of hp.backbone from its SHA-1-checked cache or repo; progress goes to stderr."""
    import seg.models.gluoncv_compat  # noqa: F401  (before gluoncv: it refuses torch>=2 otherwise)
    from gluoncv.model_zoo.model_store import get_model_file, short_hash

    name = STORE_NAMES[hp.backbone]
    try:
        with contextlib.redirect_stdout(sys.stderr):  # GluonCV prints "Downloading ..." on stdout
            return get_model_file(name, root=mxnet_models_dir())
    except ValueError:  # GluonCV extracted a file whose SHA-1 is not the one it pins: refuse it for good
        Path(mxnet_models_dir(), f"{name}-{short_hash(name)}.params").unlink(missing_ok=True)
        _missing(hp, f"{_gluon_url(name)} was downloaded but its SHA-1 is not the one GluonCV pins for {name}, "
                     "so it was deleted (is $MXNET_GLUON_REPO a mirror of another GluonCV version?)")
    except (OSError, RuntimeError, zipfile.BadZipFile) as exc:  # requests' errors are OSErrors
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        _missing(hp, f"downloading {_gluon_url(name)} failed ({reason})")


def _from_model_store(candidates: list, cache_dir):
    from gt2seg.errors import Gt2SegError
    from gt2seg.storage import is_s3, read_bytes

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
    return None


def _gluon_url(name: str) -> str:
    """The URL GluonCV's model store downloads `name` from (its own URL format and repo variable)."""
    from gluoncv.model_zoo import model_store

    repo = os.environ.get("MXNET_GLUON_REPO", model_store.apache_repo_url).rstrip("/") + "/"
    return model_store._url_format.format(repo_url=repo, file_name=f"{name}-{model_store.short_hash(name)}")


def _missing(hp: Hyperparameters, gluon_problem: str):
    name = STORE_NAMES[hp.backbone]
    raise PretrainedWeightsError(
        f"use_pretrained_model=True but no ImageNet weights for backbone {hp.backbone} were found: looked for "
        f"{' and '.join(pretrained_candidates(hp))}, then {gluon_problem}. Put GluonCV's {name} weights in the "
        f"model store (on a machine with network: gluoncv.model_zoo.get_model('{name}', pretrained=True) saves "
        f"~/.mxnet/models/{name}-<hash>.params), or point the model_store hyperparameter (or $SEG_MODEL_STORE) at "
        "a folder, an s3:// prefix or a .params file, or $MXNET_GLUON_REPO at a reachable GluonCV mirror, or set "
        "use_pretrained_model=False"
    ) from None
