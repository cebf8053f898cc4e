"""`seg export`'s ONNX options: combinations that cannot work are refused before any model is read."""
import pytest
from click.testing import CliRunner

from seg.cli import main


@pytest.mark.parametrize("args, message", [
    (["--quantize", "int8"], "--quantize, --calibration and --calibration-images need --format onnx"),
    (["--calibration-images", "8"], "--quantize, --calibration and --calibration-images need --format onnx"),
    (["--format", "onnx", "--calibration", "."], "--calibration needs --quantize int8"),
    (["--format", "onnx", "--quantize", "int8", "--calibration-images", "8"], "--calibration-images needs --calibration"),
])
def test_onnx_only_options_are_refused_with_the_mxnet_format(tmp_path, args, message):
    result = CliRunner().invoke(main, ["export", str(tmp_path / "absent-model"), str(tmp_path / "out"), *args])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "out").exists()
