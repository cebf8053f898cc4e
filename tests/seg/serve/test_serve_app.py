"""The WSGI app in-process (model-loading states) and Batch Transform outputs, with a real random-weight model."""
import io
import threading
from wsgiref.util import setup_testing_defaults

import numpy as np
import pytest
from PIL import Image

from seg.serve.protocol import ExecutionParameters, Limits, decode_image
from seg.serve.app import InferenceApp, render
from seg.errors import ServeConfigError
from seg.serve.batch import transform_files
from test_serve_records import decode_features

pytestmark = pytest.mark.mxnet
PARAMS = ExecutionParameters(1, "SINGLE_RECORD", 6)


@pytest.fixture(scope="module")
def model_dir(module_tmp):
    from artifacts import save_random_artifact

    return save_random_artifact(module_tmp("model"), num_classes=3, seed=5)


@pytest.fixture(scope="module")
def predictor(model_dir):
    from seg.serve.predictor import Predictor

    return Predictor.load(model_dir)


def call(app, method, path, body=b"", content_type="image/png"):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "CONTENT_TYPE": content_type,
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
    setup_testing_defaults(environ)
    answer = {}

    def start_response(status, headers):
        answer["status"], answer["headers"] = int(status.split()[0]), dict(headers)

    answer["body"] = b"".join(app(environ, start_response))
    return answer


def png(seed, height=48, width=64):
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def test_ping_is_503_while_the_model_loads_and_invocations_wait_for_it(model_dir):
    from seg.serve.predictor import Predictor

    release = threading.Event()

    def gated_load():
        release.wait(60)
        return Predictor.load(model_dir)

    app = InferenceApp(gated_load, limits=Limits(), parameters=PARAMS)
    assert call(app, "GET", "/ping")["status"] == 503
    assert call(app, "POST", "/invocations", b"junk")["status"] == 400  # client faults need no model
    waiting = {}
    invocation = threading.Thread(target=lambda: waiting.update(call(app, "POST", "/invocations", png(0))))
    invocation.start()
    release.set()
    invocation.join(120)
    assert waiting["status"] == 200 and Image.open(io.BytesIO(waiting["body"])).size == (64, 48)
    assert call(app, "GET", "/ping")["status"] == 200


def test_a_model_that_fails_to_load_is_reported_and_ping_stays_503(tmp_path):
    from seg.serve.predictor import Predictor

    errors = []
    app = InferenceApp(lambda: Predictor.load(tmp_path), limits=Limits(), parameters=PARAMS,
                       on_load_error=errors.append, load_wait=5)
    assert not app.wait_loaded(60)
    assert len(errors) == 1 and "holds no model: expected model.params" in str(errors[0])
    assert call(app, "GET", "/ping")["status"] == 503
    assert call(app, "POST", "/invocations", png(0))["status"] == 503


def test_a_failing_forward_is_a_500_with_the_reason_and_the_app_keeps_serving(model_dir):
    from seg.serve.predictor import Predictor

    predictor = Predictor.load(model_dir)
    app = InferenceApp(lambda: predictor, limits=Limits(), parameters=PARAMS)
    assert app.wait_loaded(60)
    working, predictor.inference = predictor.inference, None  # the forward raises (an AttributeError), as a bug would
    broken = call(app, "POST", "/invocations", png(0))
    assert broken["status"] == 500 and broken["body"].startswith(b"internal error: ")
    predictor.inference = working
    assert call(app, "POST", "/invocations", png(0))["status"] == 200


def test_a_body_shorter_than_its_content_length_is_400_naming_both_numbers(predictor):
    app = InferenceApp(lambda: predictor, limits=Limits(), parameters=PARAMS)
    body = png(0)  # a whole, decodable image: only the declared length is wrong
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/invocations", "CONTENT_TYPE": "image/png",
               "CONTENT_LENGTH": str(len(body) + 100), "wsgi.input": io.BytesIO(body)}
    setup_testing_defaults(environ)
    answer = {}
    text = b"".join(app(environ, lambda status, headers: answer.update(status=status)))
    assert answer["status"].startswith("400 ")
    assert f"after {len(body)} bytes, short of its Content-Length of {len(body) + 100}".encode() in text
    assert call(app, "POST", "/invocations", body)["status"] == 200


def test_transform_files_writes_the_invocation_bodies_as_dot_out_files(predictor, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.png").write_bytes(png(1))
    (inputs / "b.jpg").write_bytes(png(2, 40, 40))  # the name says JPEG, the bytes are PNG: decoded by content
    (inputs / "broken.jpg").write_bytes(b"not an image")
    before = {p.name: p.read_bytes() for p in inputs.iterdir()}
    paths = sorted(inputs.iterdir())

    report = transform_files(predictor, paths, tmp_path / "png", progress=False)
    assert sorted(p.name for p in report.written) == ["a.png.out", "b.jpg.out"]
    assert [(p.name, "not a decodable" in m) for p, m in report.failed] == [("broken.jpg", True)]
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["a.png.out", "b.jpg.out"]
    for name in ("a.png", "b.jpg"):
        out = (tmp_path / "png" / f"{name}.out").read_bytes()
        rgb = decode_image(before[name], 10**8)
        assert out == render(predictor, rgb, "image/png")
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(out))), predictor.predict(rgb))

    report = transform_files(predictor, paths[:1], tmp_path / "pb", accept="application/x-protobuf", progress=False)
    framed = (tmp_path / "pb" / "a.png.out").read_bytes()
    from seg.pipe.recordio import iter_records

    (payload,) = list(iter_records(io.BytesIO(framed)))
    assert decode_features(payload)["shape"][1].tolist() == [1, 3, 48, 64]
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == before, "inputs must not change"
    assert report.to_json()["failed"] == []


def test_transform_files_refuses_inputs_that_would_share_an_output_name(predictor, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    for folder in ("x", "y"):
        (tmp_path / folder / "same.png").write_bytes(png(3))
    with pytest.raises(ServeConfigError, match="same.png"):
        transform_files(predictor, [tmp_path / "x" / "same.png", tmp_path / "y" / "same.png"], tmp_path / "out",
                        progress=False)
    assert not (tmp_path / "out").exists()


def test_transform_files_lists_over_limit_inputs_as_failures(predictor, tmp_path):
    (tmp_path / "big.png").write_bytes(png(4, 96, 128))
    report = transform_files(predictor, [tmp_path / "big.png"], tmp_path / "out", limits=Limits(max_pixels=10_000),
                             progress=False)
    assert report.written == [] and "over the limit of 10000" in report.failed[0][1]
