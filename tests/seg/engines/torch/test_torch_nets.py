"""The torch networks on their own: any input size, the auxiliary output, channels-last, autocast, training."""
import pytest

torch = pytest.importorskip("torch")

from seg.engines.torch.nets import build  # noqa: E402
from seg.models.arch import Architecture  # noqa: E402

pytestmark = pytest.mark.torch
RESNET18 = [Architecture(a, "resnet-18", 5, "v1b", "seg", aux=False) for a in ("fcn", "psp", "deeplab")]


@pytest.fixture(scope="module", params=RESNET18 + [Architecture("deeplab", "resnet-50", 5)],
                ids=lambda a: f"{a.algorithm}-{a.backbone}")
def net_and_logits(request):
    torch.manual_seed(0)
    net = build(request.param).eval()
    x = torch.randn(2, 3, 67, 93)
    with torch.no_grad():
        return net, x, net(x)


@pytest.mark.parametrize("size", [(67, 93), (8, 8), (1, 1), (33, 120)])
def test_logits_have_the_input_size_at_any_size(size):
    net = build(RESNET18[1]).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, *size)).shape == (1, 5) + size


def test_channels_last_gives_the_same_logits_in_channels_last(net_and_logits):
    net, x, logits = net_and_logits
    with torch.no_grad():
        got = net.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    net.to(memory_format=torch.contiguous_format)
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, logits, rtol=0, atol=1e-5 * float(logits.abs().max()))


def test_autocast_bfloat16_computes_nearly_the_same_masks(net_and_logits):
    net, x, logits = net_and_logits
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = net(x)
    assert got.dtype == torch.bfloat16 and got.shape == logits.shape
    assert float((got.float() - logits).abs().max()) < 0.05 * float(logits.abs().max())
    assert float((got.float().argmax(1) == logits.argmax(1)).float().mean()) > 0.97


def test_the_auxiliary_output_is_returned_only_when_asked_and_every_parameter_learns():
    net = build(Architecture("fcn", "resnet-50", 5), aux_output=True).train()
    x = torch.randn(2, 3, 17, 23)
    main, aux = net(x)
    assert main.shape == aux.shape == (2, 5, 17, 23)
    (main.logsumexp(1).mean() + 0.4 * aux.logsumexp(1).mean()).backward()
    assert [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum()] == []
    assert int(net.bn1.num_batches_tracked) == 1
    net.aux_output = False
    assert net.eval()(x).shape == (2, 5, 17, 23)
    assert build(Architecture("fcn", "resnet-50", 5, aux=False), aux_output=True).aux_output is False


def test_dilation_keeps_output_stride_8_and_gluoncv_padding():
    net = build(Architecture("psp", "resnet-50", 5))
    first, later = net.layer4[0].conv2, net.layer4[1].conv2
    assert (first.dilation, first.padding, later.dilation, later.padding) == ((2, 2), (2, 2), (4, 4), (4, 4))
    assert (net.layer3[0].conv2.dilation, net.layer3[1].conv2.dilation) == ((1, 1), (2, 2))
    assert net.layer3[0].downsample[0].stride == net.layer4[0].conv2.stride == (1, 1)
    basic = build(RESNET18[0])  # GluonCV's basic block: conv2 takes the stage's dilation from the first block on
    assert (basic.layer4[0].conv1.dilation, basic.layer4[0].conv2.dilation) == ((2, 2), (4, 4))
    with torch.no_grad():
        c3, c4 = net.eval().features(torch.randn(1, 3, 64, 96))
    assert c3.shape[-2:] == c4.shape[-2:] == (8, 12)
