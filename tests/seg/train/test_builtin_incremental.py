"""Incremental training from a model the built-in algorithm wrote (GluonCV PSPNet, ResNet-50, 32 px), on each engine,
and back: the fine-tuned model_algo-1 is a file the built-in (GluonCV) loads strictly.

The built-in model.tar.gz is written with numpy (tests/artifacts.py), so the torch engine's side runs without MXNet;
that GluonCV's own files read the same is tests/seg/models/test_builtin_models.py's and test_torch_weights.py's."""
import json

import pytest

from artifacts import save_random_builtin_model
from ci_skips import require_engine
from gt2seg.classes import read_classes
from seg.config import parse_hyperparameters
from seg.data.files import layout_channels
from seg.engines import ENGINES
from seg.errors import ModelError
from seg.models.params import read_params
from seg.train.loop import Inputs, train
from synthdata import write_layout

JOB = {"num_classes": 3, "num_training_samples": 4, "algorithm": "psp", "crop_size": 32, "base_size": 32,
       "use_pretrained_model": False, "mini_batch_size": 2, "validation_mini_batch_size": 2, "epochs": 4,
       "optimizer": "adam", "learning_rate": 0.0001, "data_workers": 0}


@pytest.fixture(scope="module")
def layout(module_tmp):
    return write_layout(module_tmp("layout"), n_train=4, n_val=2, size=32, seed=5)


@pytest.fixture(scope="module")
def builtin_tarball(module_tmp):
    return save_random_builtin_model(module_tmp("builtin"), "psp", num_classes=3, crop_size=32)


@pytest.fixture(scope="module", params=ENGINES)
def fine_tuned(request, module_tmp, layout, builtin_tarball):
    """The built-in model fine-tuned for 4 epochs by one engine: (engine, TrainResult)."""
    require_engine(request.param)
    inputs = Inputs(layout_channels(layout), classes=read_classes(layout / "classes.json"), init_model=builtin_tarball)
    model_dir = module_tmp(f"fine-tuned-{request.param}") / "model"
    return request.param, train(parse_hyperparameters(JOB), inputs, model_dir, progress=False, engine=request.param)


@pytest.mark.mxnet
def test_auxiliary_loss_is_gluoncvs_mix_softmax_cross_entropy():
    require_engine("mxnet")
    import mxnet as mx
    import numpy as np
    import seg.engines.mxnet.gluoncv_compat  # noqa: F401  (before gluoncv: it refuses torch>=2 otherwise)
    from gluoncv.loss import MixSoftmaxCrossEntropyLoss

    from seg.engines.mxnet.engine import loss as seg_loss

    rng = np.random.default_rng(0)
    main, aux = (mx.nd.array(rng.normal(size=(2, 3, 8, 8))) for _ in range(2))
    label = mx.nd.array(rng.integers(0, 3, (2, 8, 8)))
    expected = MixSoftmaxCrossEntropyLoss(aux=True, aux_weight=0.5)(main, aux, label).mean().asscalar()
    assert np.isclose(seg_loss((main, aux), label, 0.5).asscalar(), expected, rtol=1e-5)
    assert seg_loss((main, aux), label, 0.5).asscalar() > seg_loss(main, label).asscalar()


@pytest.mark.slow
def test_training_from_a_builtin_model_lowers_the_loss_and_writes_the_builtins_files(fine_tuned, builtin_tarball):
    engine, result = fine_tuned
    losses = [epoch["train:loss"] for epoch in result.history]
    assert len(losses) == 4 and losses[-1] < losses[0]
    model_dir = result.model_dir
    assert json.loads((model_dir / "metrics.json").read_text())["engine"] == engine
    assert json.loads((model_dir / "hyperparams.json").read_text())["crop_size"] == "32"
    start = read_params(builtin_tarball.parent / "model_algo-1")
    tuned = read_params(model_dir / "model_algo-1")
    # the built-in's own file: the same names in the same order, the same shapes, new values
    assert list(tuned) == list(start) and all(tuned[k].shape == start[k].shape for k in start)
    assert (model_dir / "model_algo-1").read_bytes() == (model_dir / "model.params").read_bytes()
    assert any(not (tuned[k] == start[k]).all() for k in start if k.endswith("weight"))


@pytest.mark.mxnet
@pytest.mark.slow
def test_the_fine_tuned_model_loads_strictly_into_gluoncv(fine_tuned):
    """The way back: the built-in's network class takes the fine-tuned file (load_parameters is strict)."""
    require_engine("mxnet")
    import seg.engines.mxnet.gluoncv_compat  # noqa: F401  (before gluoncv: it refuses torch>=2 otherwise)
    from gluoncv.model_zoo import PSPNet

    _, result = fine_tuned
    gluon = PSPNet(3, backbone="resnet50", aux=True, pretrained_base=False, crop_size=32)
    gluon.load_parameters(str(result.model_dir / "model_algo-1"))


def test_training_from_a_builtin_model_of_another_num_classes_is_refused(layout, builtin_tarball, tmp_path):
    job = parse_hyperparameters({**JOB, "num_classes": 4})
    with pytest.raises(ModelError, match="num_classes: model 3 vs job 4"):
        train(job, Inputs(layout_channels(layout), init_model=builtin_tarball), tmp_path / "model", progress=False)
    assert not (tmp_path / "model").exists()
