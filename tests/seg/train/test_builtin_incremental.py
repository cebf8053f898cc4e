"""Incremental training from a model written by the built-in algorithm (GluonCV PSPNet, ResNet-50, 32 px)."""
import json

import pytest

mx = pytest.importorskip("mxnet")

from builtin_models import builtin_hyperparameters, gluoncv_net, write_builtin_model  # noqa: E402
from seg.config import parse_hyperparameters  # noqa: E402
from gt2seg.classes import read_classes  # noqa: E402
from seg.data.files import layout_channels  # noqa: E402
from seg.errors import ModelError  # noqa: E402
from seg.train.loop import Inputs, train  # noqa: E402
from synthdata import write_layout  # noqa: E402

pytestmark = pytest.mark.mxnet
JOB = {"num_classes": 3, "num_training_samples": 4, "algorithm": "psp", "crop_size": 32, "base_size": 32,
       "use_pretrained_model": False, "mini_batch_size": 2, "validation_mini_batch_size": 2, "epochs": 4,
       "optimizer": "adam", "learning_rate": 0.0001, "data_workers": 0}


@pytest.fixture(scope="module")
def layout(module_tmp):
    return write_layout(module_tmp("layout"), n_train=4, n_val=2, size=32, seed=5)


@pytest.fixture(scope="module")
def builtin_tarball(module_tmp):
    net = gluoncv_net("psp", num_classes=3, size=32)
    return write_builtin_model(module_tmp("builtin"), net, builtin_hyperparameters("psp", 3, 32))


def test_auxiliary_loss_is_gluoncvs_mix_softmax_cross_entropy():
    import seg.engines.mxnet.gluoncv_compat  # noqa: F401  (before gluoncv: it refuses torch>=2 otherwise)
    from gluoncv.loss import MixSoftmaxCrossEntropyLoss
    import numpy as np

    from seg.engines.mxnet.engine import loss as seg_loss

    rng = np.random.default_rng(0)
    main, aux = (mx.nd.array(rng.normal(size=(2, 3, 8, 8))) for _ in range(2))
    label = mx.nd.array(rng.integers(0, 3, (2, 8, 8)))
    expected = MixSoftmaxCrossEntropyLoss(aux=True, aux_weight=0.5)(main, aux, label).mean().asscalar()
    assert np.isclose(seg_loss((main, aux), label, 0.5).asscalar(), expected, rtol=1e-5)
    assert seg_loss((main, aux), label, 0.5).asscalar() > seg_loss(main, label).asscalar()


def _inputs(layout, model):
    return Inputs(layout_channels(layout), classes=read_classes(layout / "classes.json"), init_model=model)


@pytest.mark.slow
def test_training_from_a_builtin_model_runs_lowers_the_loss_and_writes_both_forms(layout, builtin_tarball, tmp_path):
    from gluoncv.model_zoo import PSPNet

    result = train(parse_hyperparameters(JOB), _inputs(layout, builtin_tarball), tmp_path / "model", progress=False)
    losses = [epoch["train:loss"] for epoch in result.history]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert json.loads((tmp_path / "model" / "hyperparams.json").read_text())["crop_size"] == "32"
    gluon = PSPNet(3, backbone="resnet50", aux=True, pretrained_base=False, crop_size=32)
    gluon.load_parameters(str(tmp_path / "model" / "model_algo-1"))  # strict


def test_training_from_a_builtin_model_of_another_num_classes_is_refused(layout, builtin_tarball, tmp_path):
    job = parse_hyperparameters({**JOB, "num_classes": 4})
    with pytest.raises(ModelError, match="num_classes: model 3 vs job 4"):
        train(job, Inputs(layout_channels(layout), init_model=builtin_tarball), tmp_path / "model", progress=False)
    assert not (tmp_path / "model").exists()
