"""`seg predict` as a batch tool: a folder or an s3:// prefix in, masks and Batch Transform outputs out.

The outputs on each engine; the inputs and failures, which no engine sees, on the default one (torch)."""
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from seg.engines import ENGINES


@pytest.fixture(scope="module")
def model(module_tmp):
    from artifacts import save_random_artifact

    return save_random_artifact(module_tmp("model") / "model", num_classes=3)


def _images(folder, sizes=((40, 30), (24, 32))):
    folder.mkdir(parents=True, exist_ok=True)
    for i, (w, h) in enumerate(sizes):
        rng = np.random.default_rng(i)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / f"img{i}.jpg")
    return folder


def seg(*args):
    return subprocess.run([sys.executable, "-m", "seg.cli", *map(str, args)], capture_output=True, text=True)


@pytest.mark.parametrize("seg_engine", ENGINES, indirect=True)
def test_batch_out_writes_one_png_response_per_input_matching_the_mask(tmp_path, model, seg_engine):
    images = _images(tmp_path / "in")
    result = seg("predict", model, images, "--out", tmp_path / "masks", "--batch-out", tmp_path / "batch", "--json")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "batch").iterdir()) == ["img0.jpg.out", "img1.jpg.out"]
    for i, size in enumerate(((40, 30), (24, 32))):
        served = Image.open(io.BytesIO((tmp_path / "batch" / f"img{i}.jpg.out").read_bytes()))
        mask = Image.open(tmp_path / "masks" / f"img{i}.png")
        assert served.size == size and np.array_equal(np.asarray(served), np.asarray(mask))
    assert len(json.loads(result.stdout)["batch"]["written"]) == 2


def test_predict_reads_an_s3_prefix(tmp_path, model, s3, s3_bucket):
    for path in _images(tmp_path / "in").iterdir():
        s3.upload_file(str(path), s3_bucket, f"batch-in/{path.name}")
    result = seg("predict", model, f"s3://{s3_bucket}/batch-in/", "--out", tmp_path / "masks")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "masks").glob("img?.png")) == ["img0.png", "img1.png"]


def test_predict_needs_an_output(tmp_path, model):
    result = seg("predict", model, _images(tmp_path / "in"))
    assert result.returncode == 2 and "--batch-out" in result.stderr


def test_unsupported_accept_is_a_clear_error(tmp_path, model):
    result = seg("predict", model, _images(tmp_path / "in"), "--batch-out", tmp_path / "b", "--accept", "text/csv")
    assert result.returncode == 1 and "text/csv" in result.stderr


def test_inputs_that_fail_are_listed_after_the_outputs_and_exit_1(tmp_path, model):
    images = _images(tmp_path / "in", sizes=((40, 30),))
    (images / "broken.jpg").write_bytes(b"not an image")
    result = seg("predict", model, images, "--batch-out", tmp_path / "b", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["batch"]["written"] == [str(tmp_path / "b" / "img0.jpg.out")]
    assert result.stderr.startswith(f"Error: {images / 'broken.jpg'}: ") and len(result.stderr.splitlines()) == 1
