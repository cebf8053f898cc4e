"""One decode path: `seg predict`, `seg evaluate` and `/invocations` give the identical mask for the same bytes.

The inputs are the awkward ones: RGBA with fully and half transparent pixels (whose hidden colour is red),
grayscale, palette with and without a transparent index, gray+alpha, and a JPEG with an EXIF rotation (not
applied: the mask has the stored size), on the default engine. Every process runs it on one thread, so equal
pixels in mean equal masks out, and a difference can only come from decoding.
"""
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import requests
from PIL import Image

from gt2seg.images import EXIF_ORIENTATION
from test_serve_http import Server

CLASSES = [{"index": 0, "name": "BACKGROUND", "color": "#ffffff"}, {"index": 1, "name": "a", "color": "#ff0000"},
           {"index": 2, "name": "b", "color": "#0000ff"}]
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def _png(image, **params):
    out = io.BytesIO()
    image.save(out, format="PNG", **params)
    return out.getvalue()


def _inputs():
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    rgba = np.dstack([rgb, np.full((48, 64), 255, np.uint8)])
    rgba[:, :24] = (200, 0, 0, 0)  # fully transparent; the hidden colour must not reach the model
    rgba[:, 24:32, 3] = 128
    palette = Image.fromarray(rng.integers(0, 6, (48, 64), dtype=np.uint8), "L").convert("P")
    palette.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tolist())
    gray_alpha = np.dstack([rgb[..., 0], np.where(np.arange(64) < 32, 0, 255).astype(np.uint8)[None].repeat(48, 0)])
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    jpeg = io.BytesIO()
    Image.fromarray(rgb).save(jpeg, format="JPEG", quality=95, exif=exif.tobytes())
    return {
        "rgba.png": _png(Image.fromarray(rgba, "RGBA")),
        "gray.png": _png(Image.fromarray(rgb[..., 1], "L")),
        "palette.png": _png(palette),
        "palette_transparent.png": _png(palette, transparency=3),
        "gray_alpha.png": _png(Image.fromarray(gray_alpha, "LA")),
        "rotated.jpg": jpeg.getvalue(),
    }


def seg(*args):
    result = subprocess.run([sys.executable, "-m", "seg.cli", *map(str, args)], capture_output=True, text=True,
                            env=ONE_THREAD)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def model_dir(module_tmp):
    from artifacts import save_random_artifact

    # seed 2: random weights whose masks follow the input (most seeds give one class nearly everywhere, which
    # would let any decode pass); test_the_model_sees_its_input checks it
    return save_random_artifact(module_tmp("model") / "model", num_classes=3, classes=CLASSES, seed=2)


def test_the_model_sees_its_input(model_dir):
    from seg.data.decode import decode_image
    from seg.serve.predictor import Predictor

    predictor = Predictor.load(model_dir)
    for name, data in _inputs().items():
        counts = np.bincount(predictor.predict(decode_image(data)).ravel(), minlength=3)
        assert (counts >= 0.05 * counts.sum()).sum() >= 2, (name, counts)


@pytest.fixture(scope="module")
def served(model_dir):
    server = Server(model_dir, workers=1).wait_ready()
    try:
        yield server
    finally:
        server.stop()


def test_predict_evaluate_and_invocations_give_the_identical_mask(tmp_path, model_dir, served):
    inputs = _inputs()
    images = tmp_path / "images"
    images.mkdir()
    for name, data in inputs.items():
        (images / name).write_bytes(data)

    seg("predict", model_dir, images, "--out", tmp_path / "predicted")
    layout = tmp_path / "layout"
    (layout / "validation").mkdir(parents=True)
    (layout / "validation_annotation").mkdir()
    for name, data in inputs.items():
        content_type = "image/jpeg" if name.endswith(".jpg") else "image/png"
        response = requests.post(f"{served.url}/invocations", data=data, timeout=60,
                                 headers={"Content-Type": content_type, "Accept": "image/png"})
        assert response.status_code == 200, response.text
        from_server = np.asarray(Image.open(io.BytesIO(response.content)))
        from_predict = np.asarray(Image.open(tmp_path / "predicted" / f"{name.rsplit('.', 1)[0]}.png"))
        assert from_server.shape == (48, 64), name  # the stored grid: EXIF orientation is not applied
        np.testing.assert_array_equal(from_predict, from_server, err_msg=name)
        # seg evaluate scores the model against the served masks: every pixel must agree
        (layout / "validation" / name).write_bytes(data)
        (layout / "validation_annotation" / f"{name.rsplit('.', 1)[0]}.png").write_bytes(response.content)

    report = json.loads(seg("evaluate", model_dir, layout, "--json"))
    assert report["pixel_accuracy"] == 1.0, report


def test_the_test_sees_a_wrong_decode_the_hidden_colour_of_transparent_pixels_changes_the_mask(model_dir):
    from seg.data.decode import decode_image
    from seg.serve.predictor import Predictor

    data = _inputs()["rgba.png"]
    predictor = Predictor.load(model_dir)
    right = predictor.predict(decode_image(data))
    alpha_dropped = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))  # the old seg.data decode
    assert (right[:, :24] != predictor.predict(alpha_dropped)[:, :24]).any()


def test_an_undecodable_body_gets_a_400_that_says_what_the_bytes_start_with(served):
    response = requests.post(f"{served.url}/invocations", data=b"hello" * 100, timeout=60,
                             headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 400
    assert response.text == ("the body is not a decodable JPEG or PNG image (starts with b'hellohel')\n")
