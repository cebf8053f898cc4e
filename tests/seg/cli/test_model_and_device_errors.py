"""Bad input to what an engine runs, through the CLI in real subprocesses: a file that is not a seg or built-in model,
parameters that contradict hyperparams.json, a GPU that is not there. Each is one line on stderr, exit 1, and no
output written. (An engine whose framework is missing: test_errors.py.)"""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from artifacts import save_random_builtin_model
from seg.engines import ENGINES
from synthdata import write_layout


def seg(*args):
    return subprocess.run([sys.executable, "-m", "seg.cli", *map(str, args)], capture_output=True, text=True)


def one_line_error(result) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.fixture
def images(tmp_path):
    (tmp_path / "images").mkdir()
    Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(tmp_path / "images" / "a.jpg")
    return tmp_path / "images"


@pytest.fixture(scope="module")
def torchvision_state_dict(module_tmp):
    """What torch.save writes for a torchvision ResNet-18's state_dict (its first and last layers suffice)."""
    torch = pytest.importorskip("torch")
    path = module_tmp("state_dict") / "resnet18.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "bn1.running_mean": torch.zeros(64),
                "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}, path)
    return path


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_torch_state_dict_given_as_the_model_is_named_as_such(tmp_path, images, torchvision_state_dict, command):
    out = tmp_path / "out"
    args = ([command, torchvision_state_dict, images, "--out", out] if command == "predict"
            else [command, torchvision_state_dict, write_layout(tmp_path / "data", n_train=1, n_val=2, size=16),
                  "--report", out])
    line = one_line_error(seg(*args))
    assert f"{torchvision_state_dict}: a PyTorch checkpoint (torch.save), not a seg or built-in model" in line
    assert "model_algo-1" in line and not out.exists()


def test_a_torch_state_dict_inside_a_model_folder_is_named_as_such(tmp_path, images, torchvision_state_dict):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model_algo-1").write_bytes(torchvision_state_dict.read_bytes())
    line = one_line_error(seg("predict", tmp_path / "model", images, "--out", tmp_path / "out"))
    assert f"{tmp_path / 'model' / 'model_algo-1'}: a PyTorch checkpoint" in line and not (tmp_path / "out").exists()


def test_a_file_that_is_no_archive_at_all_is_one_line(tmp_path, images):
    (tmp_path / "model.tar.gz").write_bytes(bytes(range(256)) * 4)
    line = one_line_error(seg("predict", tmp_path / "model.tar.gz", images, "--out", tmp_path / "out"))
    assert "not a readable model.tar.gz" in line and not (tmp_path / "out").exists()


def test_parameters_contradicting_hyperparams_json_are_one_line(tmp_path, images):
    """The built-in's hyperparams.json says 3 classes; its model_algo-1 holds a 4-class head."""
    model = save_random_builtin_model(tmp_path / "builtin", "fcn", num_classes=4, crop_size=32, pack=False)
    stated = json.loads((model / "hyperparams.json").read_text())
    (model / "hyperparams.json").write_text(json.dumps({**stated, "num_classes": "3"}))
    line = one_line_error(seg("predict", model, images, "--out", tmp_path / "out"))
    assert "hyperparams.json contradicts the parameter file: num_classes=3 but the parameters are 4" in line
    assert not (tmp_path / "out").exists()


def _no_gpu(engine):
    if engine == "torch":
        import torch

        return not torch.cuda.is_available()
    import mxnet as mx

    return mx.context.num_gpus() == 0


@pytest.mark.parametrize("seg_engine", ENGINES, indirect=True)
def test_device_gpu_without_one_is_a_device_error_in_one_line(tmp_path, images, seg_engine):
    if not _no_gpu(seg_engine):
        pytest.skip(f"{seg_engine} sees a GPU here: this checks the GPU-less path")
    from artifacts import save_random_artifact

    model = save_random_artifact(tmp_path / "model")
    line = one_line_error(seg("predict", "--device", "gpu", model, images, "--out", tmp_path / "out"))
    assert "--device gpu but" in line and "sees no" in line and not (tmp_path / "out").exists()


def test_training_with_device_gpu_without_one_fails_before_any_work(tmp_path):
    """The default hyperparameters ask for ImageNet weights, which the tests' model store cannot give: the device
    is refused before the job looks for them."""
    if not _no_gpu("torch"):
        pytest.skip("torch sees a GPU here: this checks the GPU-less path")
    data = write_layout(tmp_path / "data", n_train=2, n_val=1, size=16)
    line = one_line_error(seg("train", "--engine", "torch", "--device", "gpu", "--data", data, "--model-dir",
                              tmp_path / "model", "--hp", "epochs=1"))
    assert "--device gpu but torch sees no CUDA GPU" in line and not (tmp_path / "model").exists()
