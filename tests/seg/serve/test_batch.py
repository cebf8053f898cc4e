"""`predict_images`: masks + overlays and Batch Transform outputs from a file, folder or s3:// prefix."""
import numpy as np
import pytest
from PIL import Image

from seg.errors import ServeConfigError
from seg.serve.batch import predict_images

pytestmark = pytest.mark.mxnet


@pytest.fixture(scope="module")
def predictor(module_tmp):
    from seg.serve.predictor import Predictor
    from artifacts import save_random_artifact

    return Predictor.load(save_random_artifact(module_tmp("model"), num_classes=3), max_side=64)


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(folder / "a.jpg")
    (folder / "b.png").write_bytes(b"broken")
    return folder


def test_without_an_output_nothing_is_predicted(predictor, images):
    with pytest.raises(ServeConfigError, match="out"):
        predict_images(predictor, images)


def test_masks_only_report_is_the_list_of_written_files(predictor, images, tmp_path):
    (images / "b.png").unlink()
    report = predict_images(predictor, images, out=tmp_path / "masks")
    assert report.to_json() == [{"image": str(images / "a.jpg"), "mask": str(tmp_path / "masks" / "a.png"),
                                 "overlay": str(tmp_path / "masks" / "a_overlay.png")}]
    assert report.failed == [] and Image.open(tmp_path / "masks" / "a.png").size == (30, 20)


def test_batch_failures_are_collected_not_raised(predictor, images, tmp_path):
    report = predict_images(predictor, images, batch_out=tmp_path / "batch")
    assert [p.name for p in report.batch.written] == ["a.jpg.out"]
    assert [p.name for p, _ in report.failed] == ["b.png"]
    assert report.failure_summary().startswith(f"{images / 'b.png'}: ")
    assert set(report.to_json()) == {"batch"}
