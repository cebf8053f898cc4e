"""A complete model artifact with freshly initialised weights, for tests (and the serving benchmark) of
predict/evaluate/serve that need no training."""
import tempfile
from pathlib import Path


def save_random_artifact(model_dir, num_classes=3, backbone="resnet-18", algorithm="fcn", crop_size=64,
                         classes=None, seed=0) -> Path:
    import mxnet as mx

    from seg.config import parse_hyperparameters
    from gt2seg.classes import ClassTable
    from seg.models.artifact import PARAMS, save_artifact, save_params
    from seg.models.nets import build_network

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
