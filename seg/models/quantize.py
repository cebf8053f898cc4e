"""INT8 ONNX models with ONNX Runtime's quantization tools, and what the quantization cost in mIOU.

Static (QDQ: int8 weights per channel, uint8 activations whose ranges come from calibration images) when a
layout is given: its train images calibrate, its validation split measures FP32 vs INT8 mIOU (`seg.evaluate`
on both `OnnxPredictor`s) and how many pixels the two masks agree on. Without one, dynamic quantization (weights
only, activation ranges computed per image at run time): nothing to calibrate with, nothing to measure on.
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from gt2seg.atomic import atomic_path
from seg.data.files import FileSource
from seg.errors import ExportError
from seg.evaluate import evaluate_layout
from seg.serve.onnx_predictor import INPUT, OnnxPredictor
from seg.serve.sizing import network_input

log = logging.getLogger(__name__)


@dataclass
class QuantizationReport:
    method: str  # "static" (QDQ, calibrated) or "dynamic"
    calibration_images: int
    validation_images: int = 0
    fp32_miou: Optional[float] = None
    int8_miou: Optional[float] = None
    pixel_agreement: Optional[float] = None  # share of validation pixels where the INT8 mask equals the FP32 mask

    def summary(self) -> str:
        if self.fp32_miou is None:
            return (f"INT8 ({self.method}): accuracy not measured; pass a layout as calibration to calibrate on its "
                    "train images and measure on its validation split")
        return (f"INT8 ({self.method}, {self.calibration_images} calibration images): validation mIOU "
                f"{self.int8_miou:.4f} vs FP32 {self.fp32_miou:.4f} ({100 * (self.int8_miou - self.fp32_miou):+.2f} "
                f"points) on {self.validation_images} images; masks agree on {100 * self.pixel_agreement:.2f}% "
                "of pixels")


class LayoutCalibration(CalibrationDataReader):
    """ONNX Runtime's CalibrationDataReader over the first `limit` train images of a layout, each scaled so its
    long side is at most `max_side` (the training crop size: ranges as in training, calibration time bounded)."""

    def __init__(self, layout, input_name: str, limit: int, max_side: int):
        self.source = FileSource(layout, "train", transform=None, batch_size=1)
        self.count = min(limit, len(self.source))
        self.input_name, self.max_side, self._next = input_name, max_side, 0

    def get_next(self):
        if self._next >= self.count:
            return None
        rgb, _ = self.source.load(self._next)
        self._next += 1
        return {self.input_name: network_input(rgb, self.max_side)}


CALIBRATION_IMAGES = 32  # train images read for static calibration unless told otherwise


def quantize_int8(fp32_path: Path, int8_path: Path, layout=None, limit: int = CALIBRATION_IMAGES,
                  max_side: int = 512) -> QuantizationReport:
    """Write `int8_path` from `fp32_path` (static with `layout`'s train images, else dynamic) and report its cost."""
    with tempfile.TemporaryDirectory(prefix="seg-quantize-") as scratch, atomic_path(int8_path) as tmp:
        prepared = Path(scratch) / "prepared.onnx"  # shapes inferred, BatchNorm folded: what the quantizer expects
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        if layout is None:
            quantize_dynamic(prepared, tmp, weight_type=QuantType.QUInt8)  # ConvInteger takes uint8 weights
            return QuantizationReport("dynamic", 0)
        reader = LayoutCalibration(layout, INPUT, limit, max_side)
        if reader.count == 0:
            raise ExportError(f"calibration={layout} has no train images to calibrate with")
        quantize_static(prepared, tmp, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    report = QuantizationReport("static", reader.count)
    return measure(fp32_path, int8_path, layout, report)


def measure(fp32_path: Path, int8_path: Path, layout, report: QuantizationReport) -> QuantizationReport:
    """FP32 and INT8 validation mIOU of `layout`, and the share of pixels where their masks agree."""
    fp32_masks = []
    fp32 = evaluate_layout(OnnxPredictor.load(fp32_path), layout,
                           on_image=lambda pair, rgb, mask, prediction, confusion: fp32_masks.append(prediction))
    agreement = []  # (pixels equal to the FP32 mask, pixels) per image, in the same order
    int8 = evaluate_layout(OnnxPredictor.load(int8_path), layout,
                           on_image=lambda pair, rgb, mask, prediction, confusion: agreement.append(
                               (np.count_nonzero(prediction == fp32_masks[len(agreement)]), prediction.size)))
    report.validation_images = len(fp32_masks)
    report.fp32_miou, report.int8_miou = fp32.miou, int8.miou
    report.pixel_agreement = sum(a for a, _ in agreement) / max(1, sum(n for _, n in agreement))
    return report
