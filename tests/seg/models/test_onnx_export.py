"""`seg export --format onnx`: the ONNX file computes what MXNet computes, for every algorithm and backbone.

Random weights are enough for FP32 agreement, with one adjustment: random ResNet-50/101 networks reach logits
near 10^3, where float32 rounding (relative 5e-6, different summation orders) moves a softmax by ~1e-3. The
classifier (the last, linear convolution) is scaled so the largest logit is 20, as in trained models; masks
are compared before and after. Sizes: odd (37×53), even (64×48) and one above `max_side` (both runtimes scale
it down and resize the logits back).
"""
import json
import subprocess
import sys

import numpy as np
import pytest

from ci_skips import require

mx = pytest.importorskip("mxnet")
require("onnxruntime", "the cpu extra installs it")

from seg.errors import ExportError
from seg.models.artifact import load_artifact
from seg.models.export import onnx_model
from seg.models.to_onnx import symbol_to_onnx
from seg.serve.onnx_predictor import OnnxPredictor
from seg.serve.predictor import Predictor

pytestmark = pytest.mark.mxnet
SIZES = [(37, 53, 1024), (64, 48, 1024), (45, 61, 40)]  # height, width, max_side


def images():
    return [(np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8), side) for h, w, side in SIZES]


def scale_classifier(artifact, largest=20.0):
    """Scale the head's last convolution (the only one with num_classes outputs) so max |logit| is `largest`."""
    net, classes = artifact.net, artifact.arch.num_classes
    top = max(float(mx.nd.abs(Predictor(artifact, max_side=side)._logits(rgb)).max().asscalar())
              for rgb, side in images())
    for param in net.head.collect_params().values():
        if param.shape[0] == classes:
            param.set_data(param.data() * (largest / top))
    net.hybridize()  # drops the cached graph: the new weights are used


def export_and_compare(artifact, path):
    path.write_bytes(onnx_model(artifact).SerializeToString())
    for rgb, side in images():
        mxnet, onnx = Predictor(artifact, max_side=side), OnnxPredictor.load(path, max_side=side)
        np.testing.assert_array_equal(onnx.predict(rgb), mxnet.predict(rgb))
        np.testing.assert_allclose(onnx.probabilities(rgb), mxnet.probabilities(rgb), atol=1e-4, rtol=0)


BACKBONES = ["resnet-18", "resnet-34", pytest.param("resnet-50", marks=pytest.mark.slow),
             pytest.param("resnet-101", marks=pytest.mark.slow)]


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("algorithm", ["fcn", "psp", "deeplab"])
def test_onnx_fp32_masks_equal_mxnet_and_probabilities_agree_to_1e_4(tmp_path, algorithm, backbone):
    from artifacts import save_random_artifact

    artifact = load_artifact(save_random_artifact(tmp_path / "model", backbone=backbone, algorithm=algorithm,
                                                  crop_size=32))
    scale_classifier(artifact)
    export_and_compare(artifact, tmp_path / "model.onnx")


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["fcn", "psp", "deeplab"])
def test_builtin_models_export_through_the_cli_with_their_metadata(tmp_path, algorithm):
    """A model.tar.gz as the built-in writes it (GluonCV's own classes): one ONNX file, dynamic H and W,
    normalisation, classes and architecture inside; its masks equal MXNet's."""
    from builtin_models import builtin_hyperparameters, gluoncv_net, write_builtin_model

    tarball = write_builtin_model(tmp_path / "builtin", gluoncv_net(algorithm, num_classes=4),
                                  builtin_hyperparameters(algorithm))
    run = subprocess.run([sys.executable, "-c", "from seg.cli import main; main()", "export", str(tarball),
                          str(tmp_path / "out"), "--format", "onnx"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    onnx = OnnxPredictor.load(report["onnx"])
    assert [c["name"] for c in onnx.classes] == ["class_0", "class_1", "class_2", "class_3"]
    assert onnx.architecture["algorithm"] == algorithm and onnx.architecture["heads"] == "gluoncv"
    assert onnx.signature["preprocessing"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert [d.dim_param for d in _dims(report["onnx"])] == ["N", "", "H", "W"]
    mxnet = Predictor.load(tarball)
    for rgb, side in images()[:2]:
        np.testing.assert_array_equal(onnx.predict(rgb), mxnet.predict(rgb))


def _dims(path):
    import onnx

    return onnx.load(path, load_external_data=False).graph.input[0].type.tensor_type.shape.dim


def test_an_op_without_a_translation_is_named():
    symbol = mx.sym.LRN(mx.sym.var("data"), nsize=3)
    with pytest.raises(ExportError, match="MXNet op LRN .* has no ONNX translation"):
        symbol_to_onnx(symbol.tojson(), {}, 3, {})


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["psp", "deeplab"])
def test_seg_heads_on_resnet_50_as_older_artifacts_hold_them_export_too(tmp_path, algorithm):
    from gt2seg.classes import ClassTable
    from seg.config import parse_hyperparameters
    from seg.models.artifact import Artifact
    from seg.models.nets import Architecture, build_network

    hp = parse_hyperparameters({"num_classes": 3, "num_training_samples": 1, "backbone": "resnet-50",
                                "algorithm": algorithm, "crop_size": 32, "use_pretrained_model": False})
    arch = Architecture(algorithm, "resnet-50", 3, stem="v1b", heads="seg", aux=False)
    net = build_network(hp, arch=arch)
    net.hybridize()
    artifact = Artifact(net, hp, ClassTable.default(3).entries(), arch)
    scale_classifier(artifact)
    export_and_compare(artifact, tmp_path / "model.onnx")
