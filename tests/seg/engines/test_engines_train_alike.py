"""Training parity: from the same weights and the same batches, the torch and MXNet engines take the same steps
where MXNet's gradients are right, and the torch engine's gradients are the loss's own everywhere.

Both sessions start from one set of weights, see the same four batches and update with the built-in's SGD
(momentum 0.9, weight decay, poly schedule, 10× rate for the heads). Dropout is switched off on both sides (its
random masks are each framework's own); everything else is the training path itself. Tolerance: losses agree to
1e-3 relative at every step and the weights to 10% of how far they moved. Float32 convolutions summed in
another order differ by ~1e-6 relative per layer; each step feeds those differences into the next, and four
steps of a ResNet-18 keep the losses within 1e-4 (measured); a wrong learning rate, momentum rule, weight decay,
loss or BatchNorm mode moves the second loss by more than 1e-2.

Only FCN on ResNet-18 is compared step for step. Elsewhere MXNet 1.9.1's CPU backward disagrees with the loss
itself: central differences in float64 match the torch engine's gradients to 1e-7 relative, while MXNet's
layer3/layer4 gradients of FCN on ResNet-50 differ by 10–20% and PSP's backbone gradients by up to 100× (they
change from run to run, with or without MKL-DNN: a backward that adds into memory it never cleared). The second
test checks the torch engine's gradients against finite differences for every algorithm.
"""
import numpy as np
import pytest

pytest.importorskip("torch")
mx = pytest.importorskip("mxnet")

from artifacts import random_weights  # noqa: E402
from seg.config import parse_hyperparameters  # noqa: E402
from seg.engines import load_engine  # noqa: E402
from seg.models.arch import architecture_for  # noqa: E402
from synthdata import training_batches  # noqa: E402

pytestmark = [pytest.mark.mxnet, pytest.mark.torch]
STEPS = 4


def _no_dropout(session):
    """Dropout rate 0 in the session's network (each framework draws its own masks)."""
    if hasattr(session, "model"):
        for module in session.model.modules():
            if module.__class__.__name__ == "Dropout":
                module.p = 0.0
    else:
        for block in _blocks(session.net):
            if isinstance(block, mx.gluon.nn.Dropout):
                block._rate = 0.0


def _blocks(block):
    yield block
    for child in block._children.values():
        yield from _blocks(child)


def _losses(engine, hp, arch, weights, batches):
    session = load_engine(engine).TrainingSession(hp, arch, per_epoch=STEPS, weights=weights, device="cpu")
    _no_dropout(session)
    losses = []
    for data, label in batches:
        session.step(data, label)
        losses.append(session.epoch_loss())
    return np.array(losses), session.weights()


def test_k_sgd_steps_give_the_same_losses_and_weights_on_both_engines(backbone="resnet-18", algorithm="fcn"):
    hp = parse_hyperparameters({"num_classes": 3, "num_training_samples": 16, "backbone": backbone,
                                "algorithm": algorithm, "use_pretrained_model": False, "crop_size": 48,
                                "mini_batch_size": 4, "epochs": 1, "learning_rate": 0.01, "hybridize": False})
    arch = architecture_for(hp)
    weights, batches = random_weights(arch, seed=3), training_batches(STEPS)
    torch_losses, torch_weights = _losses("torch", hp, arch, weights, batches)
    mxnet_losses, mxnet_weights = _losses("mxnet", hp, arch, weights, batches)
    np.testing.assert_allclose(torch_losses, mxnet_losses, rtol=1e-3)
    assert torch_losses[-1] < torch_losses[0]  # the steps did learn
    for name in ("layer4.1.conv2.weight", next(n for n in weights if n.startswith("head."))):
        moved = np.abs(mxnet_weights[name] - weights[name]).max()
        assert moved > 0 and np.abs(torch_weights[name] - mxnet_weights[name]).max() < 0.1 * moved


@pytest.mark.parametrize("backbone,algorithm", [("resnet-18", "fcn"), ("resnet-18", "psp"), ("resnet-18", "deeplab"),
                                                ("resnet-50", "fcn")])
def test_the_torch_engines_gradients_are_the_losss_own(backbone, algorithm):
    """Central differences in float64 on layer4's largest gradient (the layer the pooled branches feed back
    into; on ResNet-50 also through the auxiliary head's loss) agree with autograd's to 1e-5 relative."""
    import torch

    from seg.engines.torch.engine import loss, network

    hp = parse_hyperparameters({"num_classes": 3, "num_training_samples": 4, "backbone": backbone,
                                "algorithm": algorithm, "use_pretrained_model": False})
    arch = architecture_for(hp)
    model = network(arch, random_weights(arch, seed=3), "random weights", aux_output=arch.aux)
    model = model.double().train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    (data, label), = training_batches(1)
    x, y = torch.tensor(data, dtype=torch.float64), torch.tensor(label.astype(np.int64))
    loss(model(x), y, hp.aux_loss_weight).backward()
    weight = dict(model.named_parameters())["layer4.1.conv2.weight"]
    index = tuple(np.unravel_index(weight.grad.abs().argmax().item(), weight.shape))
    eps, grad = 1e-6, weight.grad[index].item()
    with torch.no_grad():
        weight[index] += eps
        above = loss(model(x), y, hp.aux_loss_weight).item()
        weight[index] -= 2 * eps
        below = loss(model(x), y, hp.aux_loss_weight).item()
    assert grad != 0 and abs((above - below) / (2 * eps) - grad) < 1e-5 * abs(grad)
