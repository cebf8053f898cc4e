"""The torch networks as ONNX: one file for every input size (dynamic N, H, W), computing what torch computes.

PSP's pooling is the hard part: torch's exporter cannot write adaptive pooling at a dynamic size, so the export
takes the pooling as explicit slices and means (`sliced_avg_pool`), proven equal to adaptive pooling here.
Random classifiers are scaled so the largest logit is 20 (as in trained models; see test_onnx_export.py).
"""
import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

import torch.nn.functional as F  # noqa: E402

from seg.engines.torch.nets import build, sliced_avg_pool  # noqa: E402
from seg.engines.torch.onnx import EXAMPLE_SIZE, export_onnx  # noqa: E402
from seg.models.arch import PSP_BINS, Architecture  # noqa: E402

pytestmark = pytest.mark.torch
CLASSES = 5
SIZES = [(45, 61), (64, 48)]  # neither is the traced example's size
assert EXAMPLE_SIZE not in SIZES


@pytest.mark.parametrize("bins", PSP_BINS)
def test_sliced_pooling_equals_adaptive_average_pooling_at_every_size(bins):
    x = torch.randn(2, 3, 20, 20, dtype=torch.float64)
    for height in range(1, 20):
        for width in (1, 2, 5, 6, 7, 13, 19):
            part = x[:, :, :height, :width]
            torch.testing.assert_close(sliced_avg_pool(part, bins), F.adaptive_avg_pool2d(part, bins),
                                       rtol=1e-12, atol=1e-12)


def scale_classifier(net, inputs, largest=20.0):
    """Scale the head's last convolution (the only one with CLASSES outputs) so max |logit| is `largest`."""
    with torch.no_grad():
        top = max(float(net(x).abs().max()) for x in inputs)
        for m in net.head.modules():
            if isinstance(m, torch.nn.Conv2d) and m.out_channels == CLASSES:
                m.weight *= largest / top
                m.bias *= largest / top


ARCHS = [Architecture(a, "resnet-18", CLASSES, "v1b", "seg", aux=False) for a in ("fcn", "psp", "deeplab")] + [
    pytest.param(Architecture(a, "resnet-50", CLASSES), marks=pytest.mark.slow) for a in ("fcn", "psp", "deeplab")]


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: f"{a.algorithm}-{a.backbone}-{a.heads}")
def test_onnx_runtime_computes_what_torch_computes_at_sizes_other_than_the_traced_one(arch, tmp_path):
    torch.manual_seed(0)
    net = build(arch, aux_output=arch.aux)
    with torch.no_grad():  # random BatchNorm statistics: eval-mode BatchNorm must be exported right too
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    net.eval()
    inputs = [torch.randn(2, 3, h, w) for h, w in SIZES]
    net.aux_output = False
    scale_classifier(net, inputs)
    net.aux_output = arch.aux  # the export leaves the auxiliary output out, and the module as it was
    data = export_onnx(net, tmp_path / "model.onnx")
    assert (tmp_path / "model.onnx").read_bytes() == data
    assert net.training is False and net.aux_output is arch.aux
    net.aux_output = False
    model = onnx.load_from_string(data)
    assert [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim] == ["N", "", "H", "W"]
    assert model.opset_import[0].version == 13
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    for x in inputs:
        with torch.no_grad():
            expected = net(x).numpy()
        (got,) = session.run(["logits"], {"data": x.numpy()})
        assert got.shape == expected.shape == (2, CLASSES) + tuple(x.shape[2:])
        np.testing.assert_allclose(softmax(got), softmax(expected), atol=1e-4, rtol=0)
        assert (got.argmax(axis=1) == expected.argmax(axis=1)).mean() >= 0.999


def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_export_writes_to_a_buffer_and_restores_training_mode():
    net = build(Architecture("fcn", "resnet-18", CLASSES, "v1b", "seg", aux=False)).train()
    buffer = io.BytesIO()
    data = export_onnx(net, buffer)
    assert buffer.getvalue() == data and net.training
