"""Given the same weights, the torch networks compute what GluonCV's own networks and seg's MXNet networks compute.

Weights: random (Xavier) with random BatchNorm statistics (gamma, beta, running mean and variance), so every
eval-mode BatchNorm matters; copied MXNet → numpy → `from_gluon`. Random ResNet-50/101 reach logits of 10^3-10^4,
where float32 rounding (relative ~1e-6, different summation orders) moves a softmax by more than 1e-4: each
classifier (the last, linear convolution of the head and of the auxiliary head) is scaled on both sides so the
largest logit is 20, as in trained models and as tests/seg/models/test_onnx_export.py does.
GluonCV's side: its stock forward at its crop size (both outputs) and its `demo()` (its own inference, which resizes
to the input) at an odd and an even size; seg's MXNet side (`assemble`): seg's heads, ResNet-18/34, the 7×7 stem.
"""
import numpy as np
import pytest

mx = pytest.importorskip("mxnet")
torch = pytest.importorskip("torch")

from builtin_models import gluoncv_net  # noqa: E402
from seg.engines.torch.nets import build  # noqa: E402
from seg.engines.torch.weights import from_gluon  # noqa: E402
from seg.models.arch import Architecture  # noqa: E402
from seg.engines.mxnet.nets import assemble  # noqa: E402

pytestmark = [pytest.mark.mxnet, pytest.mark.torch]
CLASSES = 5  # no head has 5 channels but the classifiers
CROP = 64  # GluonCV's crop size: its stock forward resizes to it
SIZES = [(67, 93), (64, 96)]
LARGEST = 20.0
ALGORITHMS = ["fcn", "psp", "deeplab"]


def image(height, width):
    return np.random.default_rng(height * width).normal(size=(1, 3, height, width)).astype(np.float32)


def randomize_batch_norm(net, seed=0):
    """gamma, beta, running mean and variance drawn at random (fresh ones are 1, 0, 0, 1: BatchNorm a no-op)."""
    rng = np.random.default_rng(seed)
    draws = {"gamma": lambda s: rng.uniform(0.5, 1.5, s), "beta": lambda s: rng.normal(0, 0.1, s),
             "running_mean": lambda s: rng.normal(0, 0.1, s), "running_var": lambda s: rng.uniform(0.5, 1.5, s)}
    for name, param in net._collect_params_with_prefix().items():
        kind = name.rsplit(".", 1)[-1]
        if kind in draws:
            param.set_data(mx.nd.array(draws[kind](param.shape)))


def copy_weights(mxnet_net, torch_net):
    from_gluon(torch_net, {name: p.data().asnumpy() for name, p in mxnet_net._collect_params_with_prefix().items()},
               "the MXNet network")


def scale_classifiers(mxnet_net, torch_net, inputs):
    """Scale each classifier so the largest logit torch computes on `inputs` is LARGEST; copy the weights again."""
    with torch.no_grad():
        outputs = [torch_net(torch.from_numpy(x)) for x in inputs]
    outputs = [out if isinstance(out, tuple) else (out,) for out in outputs]
    for i, name in enumerate(("head", "auxlayer")[:len(outputs[0])]):
        top = max(float(out[i].abs().max()) for out in outputs)
        for param in getattr(mxnet_net, name).collect_params().values():
            if param.shape[0] == CLASSES:
                param.set_data(param.data() * (LARGEST / top))
    copy_weights(mxnet_net, torch_net)


def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def assert_agree(mxnet_logits, torch_logits):
    """Probabilities within 1e-4, masks ≥ 99.9% equal, on logits of a trained model's range."""
    expected, got = np.asarray(mxnet_logits), torch_logits.numpy()
    assert got.shape == expected.shape
    assert 10 < np.abs(expected).max() < 40  # scaled, not vanished
    np.testing.assert_allclose(softmax(got), softmax(expected), atol=1e-4, rtol=0)
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).mean() >= 0.999


def torch_outputs(net, inputs):
    with torch.no_grad():
        return [net(torch.from_numpy(x)) for x in inputs]


# ---- GluonCV's FCN / PSPNet / DeepLabV3 (the built-in's classes), ResNet-50/101, aux head ------------------

@pytest.fixture(scope="module", params=[(a, b) for b in ("resnet-50", "resnet-101") for a in ALGORITHMS],
                ids=lambda p: "-".join(p))
def gluoncv_and_torch(request):
    """(GluonCV's outputs, torch's outputs): stock forward (main, aux) at the crop size, then demo() per size."""
    algorithm, backbone = request.param
    gluon = gluoncv_net(algorithm, num_classes=CLASSES, size=CROP, backbone=backbone.replace("-", ""))
    randomize_batch_norm(gluon)
    net = build(Architecture(algorithm, backbone, CLASSES), aux_output=True).eval()
    copy_weights(gluon, net)
    inputs = [image(CROP, CROP)] + [image(h, w) for h, w in SIZES]
    scale_classifiers(gluon, net, inputs)
    # the stock forward first: demo() resizes GluonCV's fixed sizes to its input's for good
    stock = [out.asnumpy() for out in gluon(mx.nd.array(inputs[0]))]
    demos = [gluon.demo(mx.nd.array(x)).asnumpy() for x in inputs[1:]]
    return [stock] + demos, torch_outputs(net, inputs)


def test_torch_equals_gluoncv_stock_forward_at_its_crop_size_main_and_auxiliary(gluoncv_and_torch):
    (main, aux), got = gluoncv_and_torch[0][0], gluoncv_and_torch[1][0]
    assert_agree(main, got[0])
    assert_agree(aux, got[1])


@pytest.mark.parametrize("size", range(len(SIZES)), ids=[f"{h}x{w}" for h, w in SIZES])
def test_torch_equals_gluoncv_demo_at_odd_and_even_sizes(gluoncv_and_torch, size):
    expected, got = gluoncv_and_torch[0][1 + size], gluoncv_and_torch[1][1 + size]
    assert_agree(expected, got[0])


# ---- seg's MXNet networks: seg's heads (ResNet-18/34, older ResNet-50 models), GluonCV's heads on the 7×7 stem --

SEG_ARCHS = ([Architecture(a, b, CLASSES, "v1b", "seg", aux=False) for b in ("resnet-18", "resnet-34") for a in ALGORITHMS]
             + [Architecture(a, "resnet-50", CLASSES, "v1s", "seg", aux=False) for a in ALGORITHMS]
             + [Architecture(a, "resnet-50", CLASSES, "v1b", "gluoncv", aux=True) for a in ALGORITHMS])


@pytest.mark.parametrize("arch", SEG_ARCHS, ids=lambda a: f"{a.algorithm}-{a.backbone}-{a.stem}-{a.heads}")
def test_torch_equals_seg_mxnet_network(arch):
    mx.random.seed(2)
    mxnet_net = assemble(arch, aux_output=arch.aux)
    mxnet_net.initialize(mx.init.Xavier(magnitude=2))
    mxnet_net(mx.nd.zeros((1, 3, 32, 32)))
    randomize_batch_norm(mxnet_net)
    net = build(arch, aux_output=arch.aux).eval()
    copy_weights(mxnet_net, net)
    inputs = [image(h, w) for h, w in SIZES]
    scale_classifiers(mxnet_net, net, inputs)
    for x, got in zip(inputs, torch_outputs(net, inputs)):
        expected = mxnet_net(mx.nd.array(x))
        for e, g in zip(*((expected, got) if arch.aux else ((expected,), (got,)))):
            assert_agree(e.asnumpy(), g)
