"""seg evaluate --report and training curves: the evaluation page, checked in headless Chromium. On the default
engine (torch): the report is made from what any engine's training and prediction return."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser import browser, look  # noqa: F401 (fixture)
from synthdata import CLASSES, write_layout

SEG = str(Path(sys.executable).parent / "seg")
TINY = {"backbone": "resnet-18", "algorithm": "fcn", "use_pretrained_model": "False", "crop_size": "32",
        "base_size": "32", "mini_batch_size": "4", "validation_mini_batch_size": "3", "optimizer": "adam",
        "learning_rate": "0.003", "data_workers": "1"}


def seg(*args):
    return subprocess.run([SEG, *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def layout(module_tmp):
    return write_layout(module_tmp("data"), n_train=12, n_val=10, size=32, seed=3)


@pytest.fixture(scope="module")
def trained(module_tmp, layout):
    """One epoch, then resumed from its checkpoint with early stopping that soon gives up."""
    root = module_tmp("train")
    hp = root / "hp.json"
    for epochs, extra in ((1, {}), (8, {"early_stopping": "True", "early_stopping_min_epochs": "2",
                                        "early_stopping_patience": "1", "early_stopping_tolerance": "1.0"})):
        hp.write_text(json.dumps({**TINY, "epochs": str(epochs), **extra}))
        result = seg("train", "--data", layout, "--model-dir", root / "model", "--checkpoint-dir", root / "ckpt",
                     "--hp-file", hp, "--no-progress")
        assert result.returncode == 0, result.stderr
    return root / "model"


@pytest.mark.slow
def test_resumed_early_stopped_training_draws_every_epoch_and_marks_the_stop(trained):
    from seg.report import training_curves

    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["stopped_early"] and 2 <= len(metrics["epochs"]) < 8
    loss, validation = training_curves(metrics)
    assert loss.x == list(range(1, len(metrics["epochs"]) + 1))
    assert validation.series["validation:mIOU"] == [e["validation:mIOU"] for e in metrics["epochs"]]
    assert "stopped early" in " ".join(loss.marks.values())
    with Image.open(trained / "curves.png") as png:
        assert png.format == "PNG" and png.width > 400


@pytest.mark.slow
def test_evaluation_page_shows_the_metrics_of_seg_evaluate(tmp_path, trained, layout, browser):  # noqa: F811
    plain = seg("evaluate", trained, layout, "--json")
    assert plain.returncode == 0, plain.stderr
    expected = json.loads(plain.stdout)
    result = seg("evaluate", trained, layout, "--json", "--report", tmp_path / "page")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected
    written = json.loads((tmp_path / "page" / "metrics.json").read_text())
    seen = look(browser, (tmp_path / "page" / "index.html").as_uri(), "seg-evaluation-report.png")
    assert seen.console == [] and seen.broken == [] and seen.images == 8
    assert seen.numbers["mIOU"] == f"{expected['mIOU']:.4f}" == f"{written['mIOU']:.4f}"
    assert seen.numbers["pixel_accuracy"] == f"{expected['pixel_accuracy']:.4f}"
    assert int(seen.numbers["images"]) == len(written["images"]) == 10
    for name, iou in expected["per_class_iou"].items():
        assert seen.numbers[f"iou/{name}"] == ("n/a" if iou is None else f"{iou:.4f}")
    for c, row in zip(CLASSES, written["confusion"]):
        assert int(seen.numbers[f"pixels/{c['name']}"].replace(",", "")) == sum(row)
    assert sum(map(sum, written["confusion"])) == expected["pixels"]
    assert "Training loss" in seen.text and "stopped early" in seen.text


@pytest.fixture(scope="module")
def random_model(module_tmp):
    from artifacts import save_random_artifact

    return save_random_artifact(module_tmp("model") / "model", num_classes=3, classes=CLASSES)


def test_worst_images_are_those_with_the_lowest_mIOU(random_model, layout):
    from seg.report import build_evaluation_report
    from seg.serve.predictor import Predictor

    report = build_evaluation_report(Predictor.load(random_model), random_model, layout, worst=3)
    ranked = sorted(report.images, key=lambda s: s.miou)
    assert [s.miou for s, _ in report.worst] == [s.miou for s in ranked[:3]]
    assert np.sum(report.confusion) == report.summary.pixels
    assert report.training == {} and len(report.figures()) == 5


def test_model_and_data_with_other_classes_is_one_clear_line(tmp_path, layout):
    from artifacts import save_random_artifact

    model = save_random_artifact(tmp_path / "model", num_classes=3)  # default class names
    result = seg("evaluate", model, layout, "--report", tmp_path / "page")
    assert result.returncode == 1 and "differ" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "page").exists()


def test_images_missing_on_disk_is_one_clear_line(tmp_path, random_model):
    data = write_layout(tmp_path / "data", n_train=2, n_val=3, size=32)
    (data / "validation" / "validation_0001.jpg").unlink()
    result = seg("evaluate", random_model, data, "--report", tmp_path / "page")
    assert result.returncode == 1 and "validation_0001" in result.stderr and "Traceback" not in result.stderr
