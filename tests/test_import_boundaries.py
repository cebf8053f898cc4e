"""Which modules may import which framework: MXNet and GluonCV only the MXNet engine (seg.engines.mxnet), torch
only the torch engine (seg.engines.torch); every other module of both packages imports neither. Checked in a
fresh interpreter per module, so an import added anywhere in the chain fails here."""
import os
import pkgutil
import subprocess
import sys

import pytest

import gt2seg
import seg
from repo import ROOT

FRAMEWORKS = ("mxnet", "gluoncv", "torch")
#: package prefix → the frameworks its modules may import
ALLOWED = {"seg.engines.mxnet": ("mxnet", "gluoncv"), "seg.engines.torch": ("torch",)}


def _modules(package):
    yield package.__name__
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        yield info.name


MODULES = sorted(m for p in (gt2seg, seg) for m in _modules(p) if not m.endswith("__main__"))
LIGHT = [m for m in MODULES if not m.startswith(tuple(ALLOWED))]


def _allowed(module):
    return next((frameworks for prefix, frameworks in ALLOWED.items() if module.startswith(prefix)), ())


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_only_its_own_framework(module):
    allowed = _allowed(module)
    if allowed and not os.environ.get("CI"):  # a venv without this engine's extra; CI has both
        pytest.importorskip(allowed[0])
    code = (f"import sys, {module}; loaded = [m for m in {FRAMEWORKS!r} if m in sys.modules]; "
            f"wrong = [m for m in loaded if m not in {allowed!r}]; assert not wrong, wrong")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_gt2seg_never_imports_seg():
    code = ("import sys, pkgutil, importlib, gt2seg\n"
            "for info in pkgutil.walk_packages(gt2seg.__path__, 'gt2seg.'):\n"
            "    if not info.name.endswith('__main__'): importlib.import_module(info.name)\n"
            "assert not [m for m in sys.modules if m == 'seg' or m.startswith('seg.')]")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_light_list_covers_every_stage_package():
    assert {"seg.data", "seg.pipe", "seg.jobs", "seg.cli", "seg.serve.protocol", "seg.serve.app"} <= set(LIGHT)
    assert {"seg.engines", "seg.models.arch", "seg.models.params", "seg.models.artifact", "seg.models.builtin",
            "seg.models.export", "seg.train.loop", "seg.serve.predictor"} <= set(LIGHT)


@pytest.mark.serve_onnx
def test_the_onnx_serving_path_is_light():
    """Everything `seg serve --runtime onnx` imports is checked above (no framework at all): the ONNX predictor, the
    large-image policy, the app, the workers and the server."""
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
            f"heavy = [m for m in {FRAMEWORKS!r} if m in sys.modules]; assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_torch_engine_predicts_and_exports_without_mxnet(tmp_path):
    """The default engine's whole inference path in a fresh interpreter: not one MXNet module gets in."""
    pytest.importorskip("torch")
    code = ("import sys, numpy as np\n"
            f"sys.path.append({str(ROOT / 'tests')!r})\n"
            "from artifacts import save_random_artifact\n"
            "from seg.serve.predictor import Predictor\n"
            "from seg.models.export import export_onnx\n"
            f"model = save_random_artifact({str(tmp_path / 'm')!r}, algorithm='psp')\n"
            "assert Predictor.load(model, engine='torch').predict(np.zeros((20, 30, 3), np.uint8)).shape == (20, 30)\n"
            f"export_onnx(model, {str(tmp_path / 'onnx')!r}, engine='torch')\n"
            "loaded = [m for m in ('mxnet', 'gluoncv') if m in sys.modules]; assert not loaded, loaded")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
