"""The same model file gives the same answers on both engines: `Predictor.probabilities` within 1e-4 and masks at
least 99.9% equal, for FCN, PSP and DeepLabV3 with the auxiliary head on ResNet-50 and ResNet-101, at odd and even
sizes. The torch engine's inference folds BatchNorm into the convolutions and runs channels-last; this is the
check that it still answers as MXNet does.

Random weights give logits in the thousands, where softmax is 0 or 1 whatever the engine; the classifier is
scaled so the largest logit is 20 (as tests/seg/models/test_onnx_export.py does), so probabilities are compared
where they are informative."""
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("mxnet")

from artifacts import save_random_artifact  # noqa: E402
from seg.models.arch import Architecture  # noqa: E402
from seg.models.artifact import load_model  # noqa: E402
from seg.serve.predictor import Predictor  # noqa: E402
from seg.serve.sizing import network_input  # noqa: E402

pytestmark = [pytest.mark.mxnet, pytest.mark.torch, pytest.mark.slow]
SIZES = [(97, 131), (96, 128)]
ARCHS = [(algorithm, "resnet-50") for algorithm in ("fcn", "psp", "deeplab")] + [("deeplab", "resnet-101")]


@pytest.mark.parametrize("algorithm,backbone", ARCHS)
def test_both_engines_give_the_same_probabilities_and_masks(tmp_path, algorithm, backbone):
    arch = Architecture(algorithm, backbone, 5, stem="v1s", heads="gluoncv", aux=True)
    model = load_model(save_random_artifact(tmp_path / "m", num_classes=5, backbone=backbone, algorithm=algorithm,
                                            arch=arch, seed=3))
    images = [np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in SIZES]
    top = max(float(np.abs(Predictor(model, "mxnet").inference.logits(network_input(rgb, 512))).max())
              for rgb in images)
    for name, array in model.weights.items():
        if name.startswith("head.") and array.shape[0] == arch.num_classes:
            model.weights[name] = array * np.float32(20.0 / top)
    mxnet, torch_ = Predictor(model, "mxnet"), Predictor(model, "torch")
    for rgb in images:
        np.testing.assert_allclose(torch_.probabilities(rgb), mxnet.probabilities(rgb), atol=1e-4, rtol=0)
        assert (torch_.predict(rgb) == mxnet.predict(rgb)).mean() >= 0.999
        assert len(np.unique(mxnet.predict(rgb))) >= 2  # the scaled model's masks follow the image
