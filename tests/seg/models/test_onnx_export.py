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

require("onnxruntime", "the cpu extra installs it")

from seg.engines import ENGINES
from seg.models.artifact import load_model
from seg.models.export import onnx_model
from seg.serve.onnx_predictor import OnnxPredictor
from seg.serve.predictor import Predictor
from seg.serve.sizing import network_input

pytestmark = [pytest.mark.usefixtures("seg_engine"), pytest.mark.parametrize("seg_engine", ENGINES, indirect=True)]
SIZES = [(37, 53, 1024), (64, 48, 1024), (45, 61, 40)]  # height, width, max_side


def images():
    return [(np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8), side) for h, w, side in SIZES]


def scale_classifier(model, engine, largest=20.0):
    """Scale the head's last convolution (the only one with num_classes outputs) so max |logit| is `largest`."""
    classes = model.info.arch.num_classes
    inference = Predictor(model, engine).inference
    top = max(float(np.abs(inference.logits(network_input(rgb, side))).max()) for rgb, side in images())
    for name, array in model.weights.items():
        if name.startswith("head.") and array.shape[0] == classes:
            model.weights[name] = array * np.float32(largest / top)


def export_and_compare(model, path, engine):
    path.write_bytes(onnx_model(model, engine).SerializeToString())
    for rgb, side in images():
        reference, onnx = Predictor(model, engine, max_side=side), OnnxPredictor.load(path, max_side=side)
        np.testing.assert_array_equal(onnx.predict(rgb), reference.predict(rgb))
        np.testing.assert_allclose(onnx.probabilities(rgb), reference.probabilities(rgb), atol=1e-4, rtol=0)


BACKBONES = ["resnet-18", "resnet-34", pytest.param("resnet-50", marks=pytest.mark.slow),
             pytest.param("resnet-101", marks=pytest.mark.slow)]


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("algorithm", ["fcn", "psp", "deeplab"])
def test_onnx_fp32_masks_equal_the_engines_and_probabilities_agree_to_1e_4(tmp_path, algorithm, backbone,
                                                                          seg_engine):
    from artifacts import save_random_artifact

    model = load_model(save_random_artifact(tmp_path / "model", backbone=backbone, algorithm=algorithm, crop_size=32))
    scale_classifier(model, seg_engine)
    export_and_compare(model, tmp_path / "model.onnx", seg_engine)


@pytest.mark.slow
@pytest.mark.mxnet  # GluonCV writes the built-in model
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
    reference = Predictor.load(tarball)
    for rgb, side in images()[:2]:
        np.testing.assert_array_equal(onnx.predict(rgb), reference.predict(rgb))


def _dims(path):
    import onnx

    return onnx.load(path, load_external_data=False).graph.input[0].type.tensor_type.shape.dim


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["psp", "deeplab"])
def test_seg_heads_on_resnet_50_as_older_artifacts_hold_them_export_too(tmp_path, algorithm, seg_engine):
    from artifacts import save_random_artifact
    from seg.models.arch import Architecture

    arch = Architecture(algorithm, "resnet-50", 3, stem="v1s", heads="seg", aux=False)
    model = load_model(save_random_artifact(tmp_path / "m", backbone="resnet-50", algorithm=algorithm, crop_size=32,
                                            arch=arch))
    scale_classifier(model, seg_engine)
    export_and_compare(model, tmp_path / "model.onnx", seg_engine)
