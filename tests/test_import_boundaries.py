"""Which packages may import MXNet: only seg's model, training and serving stages. Checked in a fresh
interpreter per module, so an import added anywhere in the chain fails here."""
import pkgutil
import subprocess
import sys

import pytest

import gt2seg
import seg
from repo import ROOT

HEAVY = ("mxnet", "gluoncv")
# The stages that need MXNet; every other module of both packages must import without it.
MXNET_STAGES = ("seg.models", "seg.train", "seg.serve.predictor")


def _modules(package):
    yield package.__name__
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        yield info.name


LIGHT = sorted(m for p in (gt2seg, seg) for m in _modules(p)
               if not m.startswith(MXNET_STAGES) and not m.endswith("__main__"))


@pytest.mark.parametrize("module", LIGHT)
def test_module_imports_without_mxnet(module):
    if module.startswith("seg.engines.torch"):
        pytest.importorskip("torch")
    code = (f"import sys, {module}; heavy = [m for m in {HEAVY!r} if m in sys.modules]; "
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_gt2seg_never_imports_seg():
    code = ("import sys, pkgutil, importlib, gt2seg\n"
            "for info in pkgutil.walk_packages(gt2seg.__path__, 'gt2seg.'):\n"
            "    if not info.name.endswith('__main__'): importlib.import_module(info.name)\n"
            "assert not [m for m in sys.modules if m == 'seg' or m.startswith('seg.')]")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_light_list_covers_every_stage_package():
    assert {"seg.data", "seg.pipe", "seg.jobs", "seg.cli", "seg.serve.protocol", "seg.serve.app"} <= set(LIGHT)
    assert {"seg.engines.torch.nets", "seg.engines.torch.weights", "seg.engines.torch.onnx"} <= set(LIGHT)


@pytest.mark.serve_onnx
def test_the_onnx_serving_path_is_light():
    """Everything `seg serve --runtime onnx` imports is checked above: the ONNX predictor, the large-image policy,
    the app, the workers and the server."""
    assert {"seg.serve.onnx_predictor", "seg.serve.sizing", "seg.serve.app", "seg.serve.workers",
            "seg.serve.server", "seg.cli.serve"} <= set(LIGHT)


@pytest.mark.serve_onnx
def test_onnx_serving_loads_and_answers_without_mxnet(tmp_path):
    """A worker's whole path (predictor load, inference, the response body) in a fresh interpreter."""
    code = ("import sys, numpy as np\n"
            f"sys.path.append({str(ROOT / 'tests')!r})\n"
            "from onnx_models import write_onnx_model\n"
            "from seg.serve.app import render\n"
            "from seg.serve.protocol import PNG, RECORDIO_PROTOBUF\n"
            "from seg.serve.onnx_predictor import OnnxPredictor\n"
            f"predictor = OnnxPredictor.load(write_onnx_model({str(tmp_path / 'm.onnx')!r}))\n"
            "rgb = np.zeros((20, 30, 3), np.uint8)\n"
            "assert render(predictor, rgb, PNG) and render(predictor, rgb, RECORDIO_PROTOBUF)\n"
            f"heavy = [m for m in {HEAVY!r} if m in sys.modules]; assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
