"""Batch outputs over image files: predicted masks + overlays, and Batch Transform .out files."""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from PIL import Image

from gt2seg.atomic import atomic_write
from gt2seg.render import mask_image, overlay
from seg.data.decode import decode_image as decode_file
from seg.data.files import IMAGE_SUFFIXES
from seg.errors import ClientError, DataError, ServeConfigError
from seg.serve.app import encode_mask_png, render
from seg.serve.protocol import PNG, Limits, decode_image, payload_too_large, response_type

if TYPE_CHECKING:
    from seg.serve.predictor import Predictor


def list_images(path) -> list:
    """`path` itself if it is a file, else the images directly inside the folder, sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist")
    return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def predict_files(predictor: Predictor, images, out_dir) -> list:
    """Masks and overlays for each image; each PNG is written to a temp name then renamed into place."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in list_images(images):
        try:
            rgb = decode_file(path.read_bytes())
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None
        mask = predictor.predict(rgb)
        outputs = {"mask": out_dir / f"{path.stem}.png", "overlay": out_dir / f"{path.stem}_overlay.png"}
        atomic_write(outputs["mask"], encode_mask_png(mask, predictor.classes))  # the /invocations bytes
        buffer = io.BytesIO()
        Image.fromarray(overlay(rgb, mask_image(mask, predictor.classes))).save(buffer, format="PNG")
        atomic_write(outputs["overlay"], buffer.getvalue())
        written.append({"image": str(path), **{k: str(v) for k, v in outputs.items()}})
    return written


@dataclass
class TransformReport:
    """What ``transform_files`` wrote, and which inputs failed (with the client-error message)."""

    written: list = field(default_factory=list)
    failed: list = field(default_factory=list)  # (input path, message)

    def to_json(self) -> dict:
        return {"written": [str(p) for p in self.written],
                "failed": [{"input": str(p), "error": m} for p, m in self.failed]}


def transform_files(predictor, paths: Sequence[Path], out_dir: Path, *, accept: str = PNG,
                    limits: Limits = Limits(), progress: bool = True) -> TransformReport:
    """Batch Transform outputs: ``out_dir/<input name>.out`` holding exactly the /invocations response body.

    Inputs that fail (undecodable, too large) are listed in the report and get no output; each output
    is written to a temporary name and renamed, so a partial file never carries the final name.
    """
    from tqdm import tqdm

    accept = response_type(accept)
    names = [Path(p).name for p in paths]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ServeConfigError(f"inputs share the output names {duplicates}; transform each folder separately")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = TransformReport()
    for path in tqdm([Path(p) for p in paths], desc="transform", unit="image", disable=not progress):
        try:
            body = path.read_bytes()
            if len(body) > limits.max_payload_bytes:
                raise ClientError(413, payload_too_large(limits.max_payload_bytes, len(body)))
            data = render(predictor, decode_image(body, limits.max_pixels), accept)
        except ClientError as exc:
            report.failed.append((path, exc.message))
            continue
        target = out_dir / f"{path.name}.out"
        atomic_write(target, data)
        report.written.append(target)
    return report


@dataclass
class PredictReport:
    """What ``predict_images`` wrote: masks + overlays (``predictions``), Batch Transform outputs (``batch``)."""

    predictions: Optional[list] = None  # [{"image", "mask", "overlay"}], with ``out``
    batch: Optional[TransformReport] = None  # with ``batch_out``

    @property
    def failed(self) -> list:
        """(input path, message) of every Batch Transform input that got no output."""
        return self.batch.failed if self.batch else []

    def failure_summary(self) -> str:
        return "; ".join(f"{path}: {message}" for path, message in self.failed)

    def to_json(self):
        """``{"predictions": [...], "batch": {...}}``; just the predictions list when there is no batch output."""
        if self.batch is None:
            return self.predictions
        return {**({"predictions": self.predictions} if self.predictions is not None else {}),
                "batch": self.batch.to_json()}


def predict_images(predictor: Predictor, images, *, out=None, batch_out=None, accept: str = PNG,
                   progress: bool = False) -> PredictReport:
    """Masks + overlays into ``out`` and/or Batch Transform outputs into ``batch_out`` for ``images``: a file,
    a folder, or an s3:// prefix (downloaded to a temporary folder first, removed afterwards)."""
    import tempfile

    if not (out or batch_out):
        raise ServeConfigError("give out (masks + overlays), batch_out (Batch Transform outputs), or both")
    report = PredictReport()
    with tempfile.TemporaryDirectory(prefix="seg-predict-") as scratch:
        if str(images).startswith("s3://"):
            from gt2seg.storage import download_tree

            download_tree(str(images), scratch, progress=progress)
            images = scratch
        if out:
            report.predictions = predict_files(predictor, images, out)
        if batch_out:
            report.batch = transform_files(predictor, list_images(images), batch_out, accept=accept,
                                           progress=progress)
    return report
