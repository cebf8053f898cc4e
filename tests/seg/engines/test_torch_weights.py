"""GluonCV names ↔ the torch networks: the same names, shapes and order as MXNet's networks, for every architecture
seg supports; strict loading that names what does not fit."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from seg.engines.torch.nets import build  # noqa: E402
from seg.engines.torch.weights import expected_shapes, from_gluon, to_gluon  # noqa: E402
from seg.errors import ModelError  # noqa: E402
from seg.models.arch import Architecture  # noqa: E402

pytestmark = pytest.mark.torch
ALGORITHMS = ("fcn", "psp", "deeplab")
#: every Architecture seg builds or detects (seg.models.builtin._candidates)
ARCHITECTURES = (
    [Architecture(a, b, 5, "v1b", "seg", aux=False) for a in ALGORITHMS for b in ("resnet-18", "resnet-34")]
    + [Architecture(a, b, 5, stem, "seg", aux=False)
       for a in ALGORITHMS for b in ("resnet-50", "resnet-101") for stem in ("v1s", "v1b")]
    + [Architecture(a, b, 5, stem, "gluoncv", aux)
       for a in ALGORITHMS for b in ("resnet-50", "resnet-101") for stem in ("v1s", "v1b") for aux in (True, False)])


def arch_id(arch):
    return f"{arch.algorithm}-{arch.backbone}-{arch.stem}-{arch.heads}{'-aux' if arch.aux else ''}"


def shapes(arrays):
    return [(name, tuple(a.shape)) for name, a in arrays.items()]


@pytest.mark.mxnet
@pytest.mark.parametrize("arch", ARCHITECTURES, ids=arch_id)
def test_names_shapes_and_order_equal_the_mxnet_network(arch):
    from seg.config import parse_hyperparameters
    from seg.engines.mxnet.nets import build_network
    from seg.models.arch import parameter_shapes

    hp = parse_hyperparameters({"num_classes": arch.num_classes, "num_training_samples": 2, "backbone": arch.backbone,
                                "algorithm": arch.algorithm, "use_pretrained_model": False})
    net = build_network(hp, arch=arch)
    mxnet = [(name, tuple(p.shape)) for name, p in net._collect_params_with_prefix().items()]
    assert list(expected_shapes(arch).items()) == mxnet
    assert list(parameter_shapes(arch).items()) == mxnet  # the engine-free table both engines are checked against
    if arch.backbone != "resnet-101" or arch.algorithm == "fcn":  # building ResNet-101s for real adds nothing
        assert shapes(to_gluon(build(arch))) == mxnet


@pytest.mark.parametrize("arch", [a for a in ARCHITECTURES if a.backbone in ("resnet-18", "resnet-50")], ids=arch_id)
def test_to_gluon_names_are_expected_shapes_and_float32(arch):
    arrays = to_gluon(build(arch))
    assert shapes(arrays) == list(expected_shapes(arch).items())
    assert {a.dtype for a in arrays.values()} == {np.dtype(np.float32)}


def test_expected_shapes_name_gluoncv_parameters_not_torch_ones():
    arch = Architecture("deeplab", "resnet-50", 5)
    names = expected_shapes(arch)
    assert {"conv1.0.weight", "bn1.gamma", "bn1.beta", "layer1.0.downsample.1.running_var",
            "head.aspp.concurent.4.gap.1.weight", "head.block.4.bias", "auxlayer.block.0.weight"} <= set(names)
    batch_norms = [n for n, m in build(arch).named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(batch_norms) > 50
    torch_only = {f"{bn}.{leaf}" for bn in batch_norms for leaf in ("weight", "bias", "num_batches_tracked")}
    assert not torch_only & set(names)
    gluon = {f"{bn}.{leaf}" for bn in batch_norms for leaf in ("gamma", "beta", "running_mean", "running_var")}
    assert gluon <= set(names)


@pytest.fixture(scope="module")
def resnet18():
    return Architecture("psp", "resnet-18", 5, "v1b", "seg", aux=False)


@pytest.fixture(scope="module")
def weights(resnet18):
    """Random arrays (BatchNorm statistics included) under GluonCV's names, as a file would hold them."""
    rng = np.random.default_rng(0)
    return {name: rng.uniform(0.5, 1.5, shape).astype(np.float32) for name, shape in expected_shapes(resnet18).items()}


def test_from_gluon_loads_every_array_and_to_gluon_gives_them_back(resnet18, weights):
    net = build(resnet18)
    from_gluon(net, weights, "model.params")
    back = to_gluon(net)
    assert list(back) == list(weights)
    for name in weights:
        np.testing.assert_array_equal(back[name], weights[name])
    assert net.state_dict()["bn1.running_var"].numpy().tolist() == weights["bn1.running_var"].tolist()


def test_from_gluon_strips_mxnet_arg_and_aux_prefixes(resnet18, weights):
    net = build(resnet18)
    prefixed = {("aux:" if "running" in n else "arg:") + n: a for n, a in weights.items()}
    from_gluon(net, prefixed, "model.params")
    np.testing.assert_array_equal(to_gluon(net)["layer4.1.bn2.gamma"], weights["layer4.1.bn2.gamma"])


def refusal(net, arrays) -> str:
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ModelError) as error:
        from_gluon(net, arrays, "/models/model_algo-1")
    message = str(error.value)
    assert "\n" not in message and message.startswith("/models/model_algo-1 ")
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # nothing half-loaded
    return message


def test_from_gluon_refuses_a_torch_state_dict_naming_what_is_missing_and_unexpected(resnet18):
    """A torchvision-style checkpoint (torch's BatchNorm names, num_batches_tracked, a classifier `fc`)."""
    net = build(resnet18)
    state = {k: v.numpy() for k, v in build(resnet18).state_dict().items()}
    state["fc.weight"] = np.zeros((1000, 512), np.float32)
    message = refusal(net, state)
    assert "missing (bn1.gamma, bn1.beta, layer1.0.bn1.gamma, ...)" in message
    assert "unexpected (bn1.weight, bn1.bias, bn1.num_batches_tracked, ...)" in message


def test_from_gluon_refuses_missing_extra_and_reshaped_parameters_naming_each(resnet18, weights):
    net = build(resnet18)
    arrays = dict(weights)
    del arrays["head.classifier.block.2.bias"]
    arrays["head.extra.weight"] = np.zeros(3, np.float32)
    arrays["head.classifier.block.2.weight"] = np.zeros((7, 256, 1, 1), np.float32)
    message = refusal(net, arrays)
    assert "1 missing (head.classifier.block.2.bias)" in message
    assert "1 unexpected (head.extra.weight)" in message
    assert "1 of another shape (head.classifier.block.2.weight (7, 256, 1, 1) vs (5, 256, 1, 1))" in message


def test_from_gluon_names_at_most_three_of_each_kind(resnet18, weights):
    arrays = {n: a for n, a in weights.items() if not n.startswith("layer4.")}
    message = refusal(build(resnet18), arrays)
    missing = sum(n.startswith("layer4.") for n in weights)
    assert f"{missing} missing (layer4.0.conv1.weight, layer4.0.bn1.gamma, layer4.0.bn1.beta, ...)" in message
