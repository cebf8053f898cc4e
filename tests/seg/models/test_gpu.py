"""The GPU guard: which compute capabilities MXNet 1.9.1's CUDA wheels run on, and detection on this host."""
import pytest

mx = pytest.importorskip("mxnet")

from seg.engines.mxnet.gpu import check_gpus, gpu_capabilities, unsupported_gpus  # noqa: E402
from seg.engines.mxnet.engine import contexts  # noqa: E402

NO_GPU = pytest.mark.skipif(mx.context.num_gpus() > 0, reason="checks the GPU-less path")


@pytest.mark.parametrize("capability", [50, 52, 61, 70, 75, 80, 86, 89])
def test_maxwell_to_ada_gpus_pass(capability):  # 8.9 runs the wheels' 8.6 code (same major)
    assert unsupported_gpus({0: capability}, environ={}) is None


@pytest.mark.parametrize("capability", [37, 90, 100, 120])
def test_kepler_hopper_and_blackwell_gpus_are_refused_naming_what_works(capability):
    message = unsupported_gpus({0: 75, 1: capability}, environ={})
    assert f"gpu(1) has compute capability {capability // 10}.{capability % 10}" in message
    assert "gpu(0)" not in message and "\n" not in message
    for hint in ("5.0 to 8.x", "V100", "A100", "--engine torch", "from a checkout of gt2seg: pip install -e '.[torch]'",
                 "SEG_SKIP_GPU_CHECK=1", "--format onnx",
                 "--runtime onnx --device gpu"):
        assert hint in message


def test_every_refused_gpu_is_named():
    message = unsupported_gpus({2: 90, 0: 90}, environ={})
    assert "gpu(0) has compute capability 9.0, gpu(2) has compute capability 9.0" in message


def test_an_mxnet_built_for_the_gpu_can_skip_the_check():
    assert unsupported_gpus({0: 90}, environ={"SEG_SKIP_GPU_CHECK": "1"}) is None
    assert unsupported_gpus({0: 90}, environ={"SEG_SKIP_GPU_CHECK": "0"}) is not None


@NO_GPU
def test_without_gpus_detection_finds_none_and_the_check_passes():
    assert gpu_capabilities(contexts()) == {} and gpu_capabilities([mx.gpu(0), mx.cpu()]) == {}
    check_gpus([mx.gpu(0), mx.cpu()])

