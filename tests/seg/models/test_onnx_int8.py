"""`seg export --format onnx --quantize int8` on a model that learned something (random weights give a
meaningless argmax): the INT8 masks agree with FP32's, and the accuracy cost is measured on the validation split.

The model is test_seg_learning's FCN/ResNet-18 recipe on the synthetic set (seeded, one thread: reproducible),
trained for fewer epochs.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ci_skips import require
from gt2seg.classes import IGNORE

pytest.importorskip("mxnet")
ort = require("onnxruntime", "the cpu extra installs it")

from synthdata import write_layout  # noqa: E402

pytestmark = [pytest.mark.mxnet, pytest.mark.slow]
SEG = [sys.executable, "-c", "from seg.cli import main; main()"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def trained(module_tmp):
    root = module_tmp("int8")
    data = write_layout(root / "data", n_train=64, n_val=16, size=64, seed=1)
    hps = {"backbone": "resnet-18", "algorithm": "fcn", "use_pretrained_model": "False", "crop_size": 64,
           "base_size": 64, "mini_batch_size": 8, "validation_mini_batch_size": 8, "optimizer": "adam",
           "learning_rate": 0.003, "epochs": 6, "data_workers": 1}
    (root / "hp.json").write_text(json.dumps(hps))
    run = subprocess.run([*SEG, "train", "--data", str(data), "--model-dir", str(root / "model"), "--no-progress",
                          "--hp-file", str(root / "hp.json")], capture_output=True, text=True, env=ENV)
    assert run.returncode == 0, run.stderr[-3000:]
    return root / "model", data


def export(model, out, *args):
    run = subprocess.run([*SEG, "export", str(model), str(out), "--format", "onnx", "--quantize", "int8", *args],
                         capture_output=True, text=True, env=ENV)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout), run.stderr


def validation_masks(onnx_file, data):
    """(predicted mask, label) per validation image, from the ONNX file run with onnxruntime itself."""
    from seg.data.files import FileSource
    from seg.data.transforms import normalize

    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    source = FileSource(data, "validation", transform=None, batch_size=1)
    pairs = []
    for rgb, label in map(source.load, range(len(source))):  # 64×64: the network runs at the image's size
        logits = session.run(None, {name: normalize(rgb)[None]})[0][0]
        pairs.append((logits.argmax(0), label))
    return pairs


def miou(pairs, num_classes):
    """Mean over the classes present (in labels or masks) of intersection / union; IGNORE labels count nowhere."""
    inter, union = np.zeros(num_classes), np.zeros(num_classes)
    for mask, label in pairs:
        keep = label != IGNORE
        for c in range(num_classes):
            inter[c] += np.sum((mask == c) & (label == c) & keep)
            union[c] += np.sum(((mask == c) | (label == c)) & keep)
    return float(np.mean(inter[union > 0] / union[union > 0]))


def test_static_int8_masks_agree_with_fp32_and_the_miou_cost_is_printed(trained, tmp_path):
    model, data = trained
    report, stderr = export(model, tmp_path / "out", "--calibration", str(data), "--calibration-images", "16")
    q = report["quantization"]
    assert q["method"] == "static" and q["calibration_images"] == 16 and q["validation_images"] == 16
    # Measured here, on both files, independently of the exporter's report
    fp32, int8 = validation_masks(report["onnx"], data), validation_masks(report["int8"], data)
    assert len(fp32) == len(int8) == 16
    classes = len(json.loads((data / "classes.json").read_text()))
    fp32_miou, int8_miou = miou(fp32, classes), miou(int8, classes)
    agreement = sum(np.sum(a == b) for (a, _), (b, _) in zip(fp32, int8)) / sum(a.size for a, _ in fp32)
    # measured 0.524 (6 epochs, one thread), against ~0.29 for background everywhere: it learned something
    assert fp32_miou > 0.45, "the model must have learned something for agreement to mean anything"
    assert agreement >= 0.98
    assert abs(int8_miou - fp32_miou) <= 0.02
    # and the exporter reports what was measured
    assert q["fp32_miou"] == pytest.approx(fp32_miou, abs=1e-3)
    assert q["int8_miou"] == pytest.approx(int8_miou, abs=1e-3)
    assert q["pixel_agreement"] == pytest.approx(agreement, abs=1e-3)
    assert f"validation mIOU {q['int8_miou']:.4f} vs FP32 {q['fp32_miou']:.4f}" in stderr
    assert Path(report["int8"]).stat().st_size < Path(report["onnx"]).stat().st_size / 3


def test_dynamic_int8_without_calibration_serves_the_same_masks(trained, tmp_path):
    from seg.data.files import FileSource
    from seg.serve.onnx_predictor import OnnxPredictor

    model, data = trained
    report, stderr = export(model, tmp_path / "out")
    assert report["quantization"]["method"] == "dynamic" and "accuracy not measured" in stderr
    fp32, int8 = OnnxPredictor.load(report["onnx"]), OnnxPredictor.load(report["int8"])
    source = FileSource(data, "validation", transform=None, batch_size=1)
    same = [np.mean(fp32.predict(rgb) == int8.predict(rgb)) for rgb, _ in map(source.load, range(len(source)))]
    assert np.mean(same) >= 0.98
