"""`--classes FILE`: class names for a model that ships none (the built-in's) or other ones."""
import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.mxnet


def seg(*args):
    return subprocess.run([sys.executable, "-m", "seg.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def layout(module_tmp):
    from synthdata import write_layout

    return write_layout(module_tmp("layout"), n_train=1, n_val=2, size=32, seed=1)


def test_evaluate_reports_the_classes_file_names(tmp_path, layout):
    from artifacts import save_random_artifact

    model = save_random_artifact(tmp_path / "model", num_classes=3)
    names = [{"index": i, "name": n, "color": "#000000"} for i, n in enumerate(("sky", "road", "car"))]
    (tmp_path / "names.json").write_text(json.dumps(names))
    result = seg("evaluate", model, layout, "--classes", tmp_path / "names.json", "--json")
    assert result.returncode == 0, result.stderr
    assert list(json.loads(result.stdout)["per_class_iou"]) == ["sky", "road", "car"]


def test_classes_file_of_another_count_fails_in_one_line(tmp_path, layout):
    from artifacts import save_random_artifact

    model = save_random_artifact(tmp_path / "model", num_classes=3)
    (tmp_path / "two.json").write_text(json.dumps([{"index": 0, "name": "a"}, {"index": 1, "name": "b"}]))
    result = seg("predict", model, layout / "validation", "--out", tmp_path / "out", "--classes", tmp_path / "two.json")
    assert result.returncode != 0 and "has 2 classes but the model has 3" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
