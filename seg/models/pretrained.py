"""ImageNet weights for the backbones: the model store first, then GluonCV's own model store.

Order (`resolve_pretrained`): 1. the model store (`model_store`, else $SEG_MODEL_STORE, else $MXNET_HOME/models):
`<name>.params` or `<name>-*.params` in a folder or under an s3:// prefix, or the .params file named;
2. GluonCV's model store, read as GluonCV reads it but without MXNet (so the torch engine shares it): the
SHA-1-checked `<name>-<sha1[:8]>.params` in $MXNET_HOME/models, else `<repo>gluon/models/<name>-<sha1[:8]>.zip`
downloaded from $MXNET_GLUON_REPO (default: GluonCV's public repo) with a progress bar on stderr, unzipped and
checked against the SHA-1 GluonCV 0.10.5 pins for that backbone; never with $SEG_OFFLINE=1.
"""
from __future__ import annotations

import fcntl
import glob
import hashlib
import io
import os
import urllib.request
import zipfile
from pathlib import Path

from gt2seg.atomic import atomic_write
from seg.config import Hyperparameters, mxnet_models_dir
from seg.errors import PretrainedWeightsError
from seg.models.arch import STORE_NAMES

OFFLINE = "SEG_OFFLINE"  # =1: never download weights (air-gapped jobs); the model store must hold them
#: SHA-1 of GluonCV's ImageNet weights for seg's backbones (gluoncv.model_zoo.model_store, GluonCV 0.10.5)
GLUON_SHA1 = {"resnet18_v1b": "2d9d980c990442f826f20781ed039851e78dabe3",
              "resnet34_v1b": "8e16b84814e84f64d897854003f049872991eaa6",
              "resnet50_v1s": "25a187fa281ddc98afbcd0cc0f0646885b874b80",
              "resnet101_v1s": "bd93a83c05f709a803b1221aeff0b028e6eebb03"}
GLUON_REPO = "https://apache-mxnet.s3-accelerate.dualstack.amazonaws.com/"  # GluonCV's default repo_url


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


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str) -> bytes:
    """The body at `url`, with a tqdm progress bar on stderr (stdout stays machine-readable)."""
    from tqdm import tqdm

    with urllib.request.urlopen(url, timeout=60) as response:
        size = int(response.headers.get("Content-Length") or 0) or None
        body = io.BytesIO()
        with tqdm(total=size, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1]) as bar:
            for chunk in iter(lambda: response.read(1 << 16), b""):
                body.write(chunk)
                bar.update(len(chunk))
    return body.getvalue()


def _from_gluon_store(hp: Hyperparameters) -> str:
    """GluonCV's weights of hp.backbone from its SHA-1-checked cache or repo (one process downloads at a time)."""
    name = STORE_NAMES[hp.backbone]
    sha1, root = GLUON_SHA1[name], Path(mxnet_models_dir())
    stem = f"{name}-{sha1[:8]}"
    params = root / f"{stem}.params"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{stem}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if params.is_file() and _sha1(params) == sha1:
            return str(params)
        try:
            archive = zipfile.ZipFile(io.BytesIO(_download(_gluon_url(name))))
            body = archive.read(f"{stem}.params")
        except (OSError, zipfile.BadZipFile, KeyError) as exc:  # urllib's errors are OSErrors
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
            _missing(hp, f"downloading {_gluon_url(name)} failed ({reason})")
        if hashlib.sha1(body).hexdigest() != sha1:
            _missing(hp, f"{_gluon_url(name)} was downloaded but its SHA-1 is not the one GluonCV pins for {name}, "
                         "so it was not kept (is $MXNET_GLUON_REPO a mirror of another GluonCV version?)")
        atomic_write(params, body)
    return str(params)


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
    """Where GluonCV's model store keeps `name`: $MXNET_GLUON_REPO (else GluonCV's repo), gluon/models/."""
    repo = os.environ.get("MXNET_GLUON_REPO", GLUON_REPO).rstrip("/") + "/"
    return f"{repo}gluon/models/{name}-{GLUON_SHA1[name][:8]}.zip"


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
