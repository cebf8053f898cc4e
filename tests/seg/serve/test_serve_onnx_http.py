"""`seg serve --runtime onnx` over real HTTP: the MXNet server's contract, byte for byte, with no MXNet at all.

The model is tests/onnx_models.py's 1×1 convolution (the contract does not depend on the network), so these
tests run in the `serve` extra's own virtualenv (`make test-serve-onnx`, Python 3.12+) as well as in the main
suite. Bodies are compared with what `seg.serve.app.render` makes from an in-process `OnnxPredictor`, and the
masks and probabilities with numpy's own computation of the model. (Probability bodies are compared decoded:
protobuf may write a map's entries in any order.)
"""
import io
import subprocess
import sys

import numpy as np
import pytest
import requests
from PIL import Image

from onnx_models import logits, write_onnx_model
from test_serve_http import BAD_REQUESTS, ENV, MAX_PIXELS, Server, encode, free_port, random_image
from test_serve_records import decode_features

pytestmark = pytest.mark.serve_onnx


@pytest.fixture(scope="module")
def model_path(module_tmp):
    return write_onnx_model(module_tmp("onnx") / "model.onnx")


@pytest.fixture(scope="module")
def server(model_path):
    srv = Server(model_path.parent, workers=2, extra_args=["--runtime", "onnx", "--max-pixels", str(MAX_PIXELS)],
                 env=ENV)
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()


def invoke(server, body, content_type, accept):
    return requests.post(f"{server.url}/invocations", data=body, timeout=60,
                         headers={"Content-Type": content_type, "Accept": accept})


def expected_logits(rgb):
    from seg.data.transforms import normalize

    return logits(normalize(rgb))


def test_png_mask_is_the_models_argmax_and_the_mxnet_servers_encoding(server, model_path):
    from seg.serve.app import PNG, render
    from seg.serve.onnx_predictor import OnnxPredictor

    rgb = random_image(1)
    response = invoke(server, encode(rgb, "PNG"), "image/png", "image/png")
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
    mask = np.asarray(Image.open(io.BytesIO(response.content)))
    assert mask.shape == (48, 64) and set(np.unique(mask)) == {0, 1, 2}
    np.testing.assert_array_equal(mask, expected_logits(rgb).argmax(axis=0))
    assert response.content == render(OnnxPredictor.load(model_path), rgb, PNG)


@pytest.mark.parametrize("accept", ["application/x-recordio-protobuf", "application/x-protobuf"])
def test_probabilities_are_the_recordio_framed_record_of_the_softmax(server, model_path, accept):
    from seg.pipe.recordio import iter_records
    from seg.serve.app import render
    from seg.serve.onnx_predictor import OnnxPredictor

    rgb = random_image(2, 40, 56)
    response = invoke(server, encode(rgb, "PNG"), "image/png", accept)
    assert response.status_code == 200 and response.headers["Content-Type"] == accept
    (payload,) = list(iter_records(io.BytesIO(response.content), source="response"))
    features = decode_features(payload)
    shape = features["shape"][1].tolist()
    assert shape == [1, 3, 40, 56]
    z = expected_logits(rgb)
    softmax = np.exp(z - z.max(axis=0)) / np.exp(z - z.max(axis=0)).sum(axis=0)
    np.testing.assert_allclose(features["target"][1].reshape(shape)[0], softmax, atol=1e-5)
    # byte for byte in format: the same Record as the MXNet server's (map order inside may differ by protobuf build)
    (reference,) = list(iter_records(io.BytesIO(render(OnnxPredictor.load(model_path), rgb, accept)), source="app"))
    assert decode_features(reference).keys() == features.keys()


def test_execution_parameters_and_ping_as_with_mxnet(server):
    assert requests.get(f"{server.url}/ping", timeout=5).status_code == 200
    response = requests.get(f"{server.url}/execution-parameters", timeout=5)
    assert response.json() == {"MaxConcurrentTransforms": 3, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 1}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_client_faults_get_the_same_4xx_as_with_mxnet(server, case):
    make, status, message = BAD_REQUESTS[case]
    headers, body = make()
    response = requests.post(f"{server.url}/invocations", data=body, headers=headers, timeout=60)
    assert response.status_code == status, response.text
    assert message in response.text and response.headers["Content-Type"].startswith("text/plain")
    assert requests.get(f"{server.url}/ping", timeout=5).status_code == 200


def test_the_serving_workers_never_import_mxnet(server):
    workers = server.worker_pids()
    assert len(workers) == server.workers == 2, workers
    for pid in workers:
        with open(f"/proc/{pid}/maps") as maps:
            assert "libmxnet" not in maps.read()


def serve_to_failure(*args):
    """`seg serve ARGS` that must exit by itself: (exit code, stderr)."""
    cmd = [sys.executable, "-c", "import sys; from seg.cli import main; sys.exit(main())", "serve", *map(str, args),
           "--host", "127.0.0.1", "--port", str(free_port())]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return run.returncode, run.stderr


def test_an_onnx_file_without_seg_metadata_is_refused_in_one_line(tmp_path):
    foreign = write_onnx_model(tmp_path / "foreign.onnx", seg_metadata=False)
    code, stderr = serve_to_failure(foreign, "--runtime", "onnx")
    assert code == 1 and stderr == (f"Error: {foreign} is not an ONNX model seg exported (no 'seg.format' metadata): "
                                    "its normalisation and classes are unknown; export it with seg export MODEL OUT "
                                    "--format onnx\n")


def test_gpu_without_cuda_falls_back_to_the_cpu_with_a_warning(model_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: nothing to fall back from")
    srv = Server(model_path, workers=1, extra_args=["--runtime", "onnx", "--device", "gpu", "--no-proxy"])
    try:
        srv.wait_ready()
        assert any("no CUDAExecutionProvider" in line and "running on the CPU" in line for line in srv.lines)
        assert invoke(srv, encode(random_image(3), "PNG"), "image/png", "image/png").status_code == 200
    finally:
        srv.stop()


def test_gpu_without_cuda_fails_when_the_device_is_strict(model_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: nothing to fall back from")
    code, stderr = serve_to_failure(model_path, "--runtime", "onnx", "--device", "gpu", "--strict-device", "--no-proxy")
    assert code == 1 and "--device gpu: ONNX Runtime has no CUDAExecutionProvider" in stderr, stderr
    assert "pip install onnxruntime-gpu" in stderr, stderr


def test_the_container_entry_takes_the_runtime_from_seg_runtime(model_path):
    """docs/container/serve runs `seg serve` with no flags: SEG_RUNTIME=onnx must be enough."""
    srv = Server(model_path.parent, workers=1, env={"SEG_RUNTIME": "onnx"})
    try:
        srv.wait_ready()
        assert invoke(srv, encode(random_image(4), "JPEG"), "image/jpeg", "image/png").status_code == 200
    finally:
        srv.stop()
