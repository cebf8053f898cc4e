"""Networks, pretrained weights, the artifact and the Predictor (real MXNet, tiny inputs)."""
import json

import numpy as np
import pytest

mx = pytest.importorskip("mxnet")

from seg.config import parse_hyperparameters
from seg.errors import ModelError, PretrainedWeightsError
from seg.engines.mxnet.nets import build_network
from seg.engines.mxnet.engine import loss as seg_loss, weights_of
from seg.models.artifact import check_compatible, load_model, read_model, write_artifact
from seg.models.params import write_params
from artifacts import save_random_artifact
from seg.models.pretrained import resolve_pretrained
from seg.serve.predictor import Predictor

pytestmark = pytest.mark.mxnet


def _hp(**overrides):
    values = {"num_classes": 3, "num_training_samples": 4, "crop_size": 32, "base_size": 32,
              "use_pretrained_model": False, "backbone": "resnet-18"}
    values.update(overrides)
    return parse_hyperparameters(values)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["fcn", "psp", "deeplab"])
@pytest.mark.parametrize("backbone", ["resnet-50", "resnet-101"])
def test_each_algorithm_and_backbone_steps_saves_and_loads(tmp_path, algorithm, backbone):
    hp = _hp(algorithm=algorithm, backbone=backbone)
    net = build_network(hp)
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.01})
    data = mx.nd.random.normal(shape=(2, 3, 32, 32))
    label = mx.nd.array(np.random.default_rng(0).integers(0, 3, (2, 32, 32)))
    with mx.autograd.record():
        loss = seg_loss(net(data), label)
    loss.backward()
    trainer.step(1)
    assert np.isfinite(loss.asscalar())
    write_params(tmp_path / "p.params", weights_of(net))
    again = build_network(hp)
    again.load_parameters(str(tmp_path / "p.params"))
    assert np.allclose(net(data).asnumpy(), again(data).asnumpy(), atol=1e-4)


@pytest.mark.parametrize("algorithm", ["fcn", "psp", "deeplab"])
def test_artifact_round_trip_keeps_outputs_and_hyperparameters(tmp_path, algorithm):
    hp = _hp(algorithm=algorithm)
    net = build_network(hp)
    write_params(tmp_path / "p.params", weights_of(net))
    write_artifact(tmp_path / "p.params", hp, [{"index": i, "name": str(i), "color": "#000000"} for i in range(3)],
                   tmp_path / "model")
    loaded = Predictor.load(tmp_path / "model", engine="mxnet")
    data = mx.nd.random.normal(shape=(1, 3, 24, 40))
    assert np.allclose(net(data).asnumpy(), loaded.inference.net(data).asnumpy(), atol=1e-4)
    assert loaded.hp == hp


@pytest.mark.filterwarnings("ignore:Cannot decide type")
def test_exported_symbol_runs_without_seg_at_another_size_and_matches(tmp_path):
    from seg.models.export import export_model

    save_random_artifact(tmp_path / "m", algorithm="psp")
    export_model(tmp_path / "m", tmp_path)
    imported = mx.gluon.SymbolBlock.imports(str(tmp_path / "model-symbol.json"), ["data"],
                                            str(tmp_path / "model-0000.params"))
    data = mx.nd.random.normal(shape=(1, 3, 40, 56))
    assert imported(data).shape == (1, 3, 40, 56)
    expected = Predictor.load(tmp_path / "m", engine="mxnet").inference.net(data)
    assert np.allclose(imported(data).asnumpy(), expected.asnumpy(), atol=1e-4)


def test_predictor_returns_probabilities_at_the_input_size(tmp_path):
    predictor = Predictor.load(save_random_artifact(tmp_path, algorithm="deeplab", num_classes=4), engine="mxnet")
    rgb = np.random.default_rng(0).integers(0, 255, (37, 51, 3)).astype(np.uint8)
    probs = predictor.probabilities(rgb)
    assert probs.shape == (4, 37, 51) and probs.dtype == np.float32
    assert np.allclose(probs.sum(axis=0), 1, atol=1e-5)
    mask = predictor.predict(rgb)
    assert mask.dtype == np.uint8 and (mask == probs.argmax(0)).all()
    assert predictor.num_classes == 4 and [c["index"] for c in predictor.classes] == [0, 1, 2, 3]


def test_predictor_caps_the_network_input_but_answers_at_full_size(tmp_path):
    predictor = Predictor.load(save_random_artifact(tmp_path), engine="mxnet", max_side=64)
    big = np.zeros((300, 200, 3), np.uint8)
    assert predictor.probabilities(big).shape == (3, 300, 200)
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        predictor.probabilities(np.zeros((4, 4), np.uint8))


def _backbone_file(path, name="resnet18_v1b"):
    import seg.engines.mxnet.gluoncv_compat  # noqa: F401  (before gluoncv: it refuses torch>=2 otherwise)
    from gluoncv.model_zoo.resnetv1b import resnet18_v1b

    backbone = resnet18_v1b(pretrained=False)
    backbone.initialize(mx.init.Uniform(0.5))
    backbone(mx.nd.zeros((1, 3, 32, 32)))
    path.parent.mkdir(parents=True, exist_ok=True)
    backbone.save_parameters(str(path))
    return backbone.conv1.weight.data().asnumpy()


def test_pretrained_backbone_loads_from_a_local_model_store(tmp_path):
    expected = _backbone_file(tmp_path / "store" / "resnet18_v1b-0123abcd.params")
    hp = _hp(use_pretrained_model=True, model_store=str(tmp_path / "store"))
    net = build_network(hp, pretrained_path=resolve_pretrained(hp, tmp_path))
    assert np.array_equal(net.conv1.weight.data().asnumpy(), expected)


def test_pretrained_backbone_loads_from_s3(tmp_path, s3, s3_bucket):
    expected = _backbone_file(tmp_path / "w.params")
    s3.put_object(Bucket=s3_bucket, Key="zoo/resnet18_v1b.params", Body=(tmp_path / "w.params").read_bytes())
    hp = _hp(use_pretrained_model=True, model_store=f"s3://{s3_bucket}/zoo")
    net = build_network(hp, pretrained_path=resolve_pretrained(hp, tmp_path / "cache"))
    assert np.array_equal(net.conv1.weight.data().asnumpy(), expected)


def test_missing_pretrained_weights_say_where_we_looked_and_how_to_fix(tmp_path):
    hp = _hp(use_pretrained_model=True, model_store=str(tmp_path / "empty"))
    with pytest.raises(PretrainedWeightsError) as info:
        resolve_pretrained(hp, tmp_path)
    message = str(info.value)
    assert str(tmp_path / "empty") in message and "resnet18_v1b" in message and "use_pretrained_model=False" in message


def test_weights_of_another_backbone_are_rejected(tmp_path):
    _backbone_file(tmp_path / "store" / "resnet34_v1b.params")  # resnet-18 weights under the resnet-34 name
    hp = _hp(backbone="resnet-34", use_pretrained_model=True, model_store=str(tmp_path / "store"))
    with pytest.raises(PretrainedWeightsError, match="does not fit backbone resnet-34"):
        build_network(hp, pretrained_path=resolve_pretrained(hp, tmp_path))


def test_incompatible_model_for_incremental_training_is_explained():
    with pytest.raises(ModelError, match="crop_size: model 32 vs job 64"):
        check_compatible(_hp(), _hp(crop_size=64), "model/")


def test_a_model_folder_names_what_is_missing(tmp_path):
    save_random_artifact(tmp_path)
    (tmp_path / "classes.json").write_text(json.dumps([{"index": 0, "name": "a"}]))
    with pytest.raises(ModelError, match="has 1 classes but the model has 3"):
        read_model(tmp_path)
    (tmp_path / "model.params").unlink()
    with pytest.raises(ModelError, match="holds no model: expected model.params"):
        read_model(tmp_path)


def test_an_mxnet_op_without_an_onnx_translation_is_named():
    pytest.importorskip("onnx")
    from seg.errors import ExportError
    from seg.engines.mxnet.to_onnx import symbol_to_onnx

    symbol = mx.sym.LRN(mx.sym.var("data"), nsize=3)
    with pytest.raises(ExportError, match="MXNet op LRN .* has no ONNX translation"):
        symbol_to_onnx(symbol.tojson(), {}, 3, {})
