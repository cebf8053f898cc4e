"""A complete model artifact with freshly initialised weights, for tests (and the serving benchmark) of
predict/evaluate/serve that need no training. Engine-free: the weights are drawn with numpy for every
parameter the architecture has (seg.models.arch.parameter_shapes), as either engine would initialise them."""
import json
import tarfile
import tempfile
from pathlib import Path

import numpy as np


def random_weights(arch, seed=0) -> dict:
    """He-normal convolutions, zero biases, BatchNorm with slightly random statistics (so both engines' BN
    arithmetic is exercised), GluonCV's names."""
    from seg.models.arch import parameter_shapes

    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in parameter_shapes(arch).items():
        kind = name.rsplit(".", 1)[1]
        if kind == "weight" and len(shape) == 4:
            value = rng.normal(0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
        elif kind in ("gamma", "running_var"):
            value = rng.uniform(0.8, 1.2, shape)
        elif kind in ("beta", "running_mean"):
            value = rng.normal(0, 0.05, shape)
        else:
            value = np.zeros(shape)
        weights[name] = value.astype(np.float32)
    return weights


def save_random_artifact(model_dir, num_classes=3, backbone="resnet-18", algorithm="fcn", crop_size=64,
                         classes=None, seed=0, arch=None) -> Path:
    from gt2seg.classes import ClassTable
    from seg.config import parse_hyperparameters
    from seg.models.arch import architecture_for
    from seg.models.artifact import PARAMS, write_artifact
    from seg.models.params import write_params

    hp = parse_hyperparameters({
        "num_classes": num_classes, "num_training_samples": 1, "backbone": backbone, "algorithm": algorithm,
        "crop_size": crop_size, "base_size": crop_size, "use_pretrained_model": False,
    })
    arch = arch or architecture_for(hp)
    with tempfile.TemporaryDirectory() as tmp:
        params = Path(tmp) / PARAMS
        write_params(params, random_weights(arch, seed))
        return write_artifact(params, hp, classes or ClassTable.default(num_classes).entries(), model_dir, arch)


def tar_builtin_model(folder, hyperparameters=None, pack=True) -> Path:
    """folder/model.tar.gz as the built-in algorithm writes it, from folder/model_algo-1: that file, the same bytes
    as model_best.params, and hyperparams.json (all values strings) when `hyperparameters` is given. pack=False:
    the folder holding those files, without the tarball (packing ResNet-50's 140 MB takes seconds)."""
    folder = Path(folder)
    (folder / "model_best.params").write_bytes((folder / "model_algo-1").read_bytes())
    names = ["model_algo-1", "model_best.params"]
    if hyperparameters is not None:
        (folder / "hyperparams.json").write_text(json.dumps({k: str(v) for k, v in hyperparameters.items()}))
        names.append("hyperparams.json")
    if not pack:
        return folder
    with tarfile.open(folder / "model.tar.gz", "w:gz") as tar:
        for name in names:
            tar.add(folder / name, arcname=name)
    return folder / "model.tar.gz"


def save_random_builtin_model(folder, algorithm="psp", num_classes=3, crop_size=32, seed=0, pack=True) -> Path:
    """A built-in model.tar.gz (GluonCV's network on ResNet-50 with the deep stem and the aux head) with random
    weights, written with numpy alone: what the built-in's files hold, for tests that must run without MXNet."""
    from seg.models.arch import Architecture
    from seg.models.params import write_params

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_params(folder / "model_algo-1", random_weights(Architecture(algorithm, "resnet-50", num_classes), seed))
    return tar_builtin_model(folder, builtin_hyperparameters(algorithm, num_classes, crop_size), pack)


def builtin_hyperparameters(algorithm, num_classes=4, crop_size=64) -> dict:
    """hyperparams.json of a built-in training job on ResNet-50."""
    return {"backbone": "resnet-50", "algorithm": algorithm, "num_classes": num_classes, "crop_size": crop_size,
            "use_pretrained_model": "True", "num_training_samples": 8, "epochs": 10}
