"""`seg serve` over real HTTP with models crossing between seg and the built-in algorithm (ResNet-50, small images).

Masks are compared on every pixel with GluonCV's own `demo()` argmax: the two run the same operators (the
resizes differ only in taking their size "like" a tensor instead of from a number), so no pixel may differ.
"""
import io
import json
import tarfile

import numpy as np
import pytest
import requests
from PIL import Image

mx = pytest.importorskip("mxnet")

from builtin_models import builtin_hyperparameters, demo_mask, gluoncv_net, png, random_rgb, write_builtin_model  # noqa: E402
from test_serve_http import Server  # noqa: E402

pytestmark = pytest.mark.mxnet
IMAGES = [random_rgb(seed, height, width) for seed, (height, width) in enumerate(((40, 56), (64, 48)))]


def served_masks(model, extra_args=()):
    server = Server(model, 1, extra_args).wait_ready()
    try:
        masks = []
        for rgb in IMAGES:
            reply = requests.post(f"{server.url}/invocations", data=png(rgb), headers={"Content-Type": "image/png"},
                                  timeout=120)
            assert reply.status_code == 200, reply.text
            masks.append(np.asarray(Image.open(io.BytesIO(reply.content))))
        return masks
    finally:
        server.stop()


def test_served_masks_of_a_builtin_model_equal_gluoncvs_demo_on_every_pixel(tmp_path):
    net = gluoncv_net("psp")
    tarball = write_builtin_model(tmp_path, net, builtin_hyperparameters("psp"))
    for rgb, mask in zip(IMAGES, served_masks(tarball)):
        expected = demo_mask(net, rgb)
        assert len(np.unique(expected)) > 1 and np.array_equal(mask, expected)


def test_gluoncv_loads_a_seg_models_model_algo_1_strictly_and_its_demo_equals_seg_serve(tmp_path):
    import seg.engines.mxnet.gluoncv_compat  # noqa: F401  (before gluoncv: it refuses torch>=2 otherwise)
    from gluoncv.model_zoo import DeepLabV3

    from artifacts import save_random_artifact

    model = save_random_artifact(tmp_path / "model", num_classes=4, backbone="resnet-50", algorithm="deeplab",
                                 crop_size=64, seed=0)
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as tar:  # what a training job uploads
        for path in sorted(model.iterdir()):
            tar.add(path, arcname=path.name)
    with tarfile.open(tmp_path / "model.tar.gz") as tar:
        tar.extract("model_algo-1", tmp_path / "builtin", filter="data")
        hyperparameters = json.load(tar.extractfile("hyperparams.json"))
    assert hyperparameters["algorithm"] == "deeplab" and hyperparameters["backbone"] == "resnet-50"
    gluon = DeepLabV3(int(hyperparameters["num_classes"]), backbone="resnet50", aux=True, pretrained_base=False,
                      crop_size=int(hyperparameters["crop_size"]))
    gluon.load_parameters(str(tmp_path / "builtin" / "model_algo-1"))  # strict: every name and shape
    for rgb, mask in zip(IMAGES, served_masks(tmp_path / "model.tar.gz")):
        expected = demo_mask(gluon, rgb)
        assert len(np.unique(expected)) > 1 and np.array_equal(mask, expected)
