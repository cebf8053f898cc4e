"""Models as SageMaker's built-in algorithm writes them, made with GluonCV itself (random weights).

The built-in's model.tar.gz holds model_algo-1 (GluonCV `save_parameters`), model_best.params and
hyperparams.json (docs/CONTRACTS.md, "The built-in's model artifact"); `demo_mask` is GluonCV's own inference (`demo()`, argmax).
"""
import io
from unittest import mock
from pathlib import Path

import mxnet as mx
import numpy as np
import seg.engines.mxnet.gluoncv_compat  # noqa: F401  (before gluoncv: it refuses torch>=2 otherwise)
from gluoncv.model_zoo import FCN, PSPNet, DeepLabV3, segbase
from gluoncv.model_zoo.resnetv1b import resnet50_v1b, resnet101_v1b
from PIL import Image

from artifacts import builtin_hyperparameters, tar_builtin_model  # noqa: F401 (builtin_hyperparameters: re-exported)
from seg.data.transforms import normalize

GLUONCV = {"fcn": FCN, "psp": PSPNet, "deeplab": DeepLabV3}


def gluoncv_net(algorithm, num_classes=4, stem="v1s", seed=1, size=64, backbone="resnet50"):
    """GluonCV's FCN / PSPNet / DeepLabV3 on ResNet-50 (or `backbone`="resnet101") with aux head, random weights;
    stem "v1b" builds it on GluonCV's resnet50_v1b (7×7 stem) instead of resnet50_v1s, as other GluonCV versions
    did."""
    mx.random.seed(seed)
    v1s = f"{backbone}_v1s"
    base = {"resnet50": resnet50_v1b, "resnet101": resnet101_v1b}[backbone] if stem == "v1b" else getattr(segbase, v1s)
    with mock.patch.object(segbase, v1s, base):
        net = GLUONCV[algorithm](num_classes, backbone=backbone, aux=True, pretrained_base=False, crop_size=size)
    net.initialize(mx.init.Xavier(magnitude=2), force_reinit=True)
    net(mx.nd.zeros((1, 3, size, size)))
    return net


def write_builtin_model(folder, net, hyperparameters=None) -> Path:
    """folder/model.tar.gz holding model_algo-1, model_best.params and (when given) hyperparams.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    net.save_parameters(str(folder / "model_algo-1"))
    return tar_builtin_model(folder, hyperparameters)


def demo_mask(net, rgb) -> np.ndarray:
    """GluonCV's prediction for an RGB uint8 image: demo() on the ImageNet-normalised input, argmax."""
    logits = net.demo(mx.nd.array(normalize(rgb)[None]))
    return logits.argmax(axis=1)[0].asnumpy().astype(np.uint8)


def random_rgb(seed, height, width):
    """3×3 blocks of random colours plus noise: structure enough for random weights to predict several classes."""
    rng = np.random.default_rng(seed)
    blocks = np.kron(rng.integers(0, 256, (3, 3, 3)), np.ones((height // 3 + 1, width // 3 + 1, 1)))[:height, :width]
    return np.clip(blocks + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)


def png(rgb) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()
