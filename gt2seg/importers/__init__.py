"""Public datasets and labeling tools' exports -> the SageMaker layout, through the same `convert_job` as Ground
Truth jobs. SRC is a folder, an s3:// prefix, or a .zip of either (see `archive`).

One module per format registers an `Importer` (see `base`); a new format is a new module named in FORMATS.
gt2seg.convert (numpy, Pillow) is imported only when a dataset is read, so the CLI starts light.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from gt2seg.errors import SourceError
from gt2seg.importers.base import Importer, list_source

if TYPE_CHECKING:
    from gt2seg.convert import ConvertOptions, Job, Report

# modules of this package ("-" as "_"), each defining IMPORTER
FORMATS = ("pets", "voc", "folders", "coco", "cvat", "label-studio")


def importers() -> dict[str, Importer]:
    return {name: importlib.import_module(f"gt2seg.importers.{name.replace('-', '_')}").IMPORTER for name in FORMATS}


def detect(src: str) -> str:
    """The format whose layout SRC has; SourceError if none or several match."""
    source = list_source(src)
    found = [name for name, importer in importers().items() if importer.detect(source)]
    if len(found) != 1:
        what = "none" if not found else "several (" + ", ".join(found) + ")"
        raise SourceError(f"{src}: cannot tell its format ({what} match); name it with --format "
                          f"{'|'.join(FORMATS)}")
    return found[0]


def read_source(format: str, src: str, settings: dict | None = None) -> "Job":
    """The Job of dataset `src` in `format`; settings: the format's options by name (None = default)."""
    if format not in FORMATS:
        raise SourceError(f"unknown format {format!r}; one of {', '.join(FORMATS)}")
    importer = importers()[format]
    resolved = importer.settings(settings or {})
    return importer.read(list_source(src), resolved)


def import_dataset(format: str, src: str, out, settings: dict | None = None,
                   options: "ConvertOptions | None" = None) -> "Report":
    """Write the layout of dataset `src` at `out`, exactly as `gt2seg convert` writes a job's."""
    from dataclasses import replace
    from pathlib import Path

    from gt2seg import layout
    from gt2seg.convert import ConvertOptions, convert_job, start_workers
    from gt2seg.importers import archive

    options = options or ConvertOptions()
    start_workers(options)  # while the source is read
    if not archive.is_archive(src):
        return convert_job(read_source(format, src, settings), out, options)
    layout.check_output_dir(Path(out), [str(src)])  # before anything is unpacked into OUT
    job = read_source(format, archive.unpack(src, Path(out) / layout.CACHE), settings)
    return convert_job(replace(job, inputs=(str(src), *job.inputs[1:])), out, options)
