"""Write the SageMaker layout atomically, and keep the resume cache.

Converted items first land in OUT/.gt2seg/items/ (each file written under a
temp name, then renamed). Only when every item is done and split are they
placed in train/, validation/ and their annotation folders (hard links into
the cache, or copies where links are impossible), and the label maps,
classes.json, manifests, channels.json and report.json written, report last.
A run killed at any point leaves no truncated file, and a re-run skips every
cached item and produces the same bytes.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from gt2seg.atomic import atomic_write  # noqa: F401  (layout.atomic_write is what convert and merge call)
from gt2seg.split import TRAIN, VALIDATION


def annotation_dir(split: str) -> str:
    """The folder (and channel) of a split's masks."""
    return f"{split}_annotation"


def label_map_file(split: str) -> str:
    """A split's label map, inside LABEL_MAP_DIR."""
    return f"{split}_label_map.json"


CACHE = ".gt2seg"
SIDES = (TRAIN, VALIDATION)
LAYOUT_DIRS = (TRAIN, annotation_dir(TRAIN), VALIDATION, annotation_dir(VALIDATION))
LABEL_MAP_DIR = "label_map"
CHANNELS = LAYOUT_DIRS + (LABEL_MAP_DIR,)  # the File-mode channels: one per layout folder, same names


def write_json(path: Path, obj) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def cache_dir(out: Path) -> Path:
    return Path(out) / CACHE / "items"


def check_output_dir(out: Path, inputs: list[str]) -> None:
    """Refuse an OUT that holds the inputs, or a non-empty folder gt2seg did not make."""
    from gt2seg.errors import Gt2SegError

    out = Path(out).resolve()
    for uri in inputs:
        if not str(uri).startswith("s3://"):
            path = Path(uri).resolve()
            if path == out or out in path.parents:
                raise Gt2SegError(f"output folder {out} contains the input {uri}; choose another folder")
    if out.exists() and any(out.iterdir()) and not (out / CACHE).is_dir():
        raise Gt2SegError(
            f"{out} is not empty and was not written by gt2seg; choose a new or empty folder "
            "(gt2seg never deletes files it did not write)"
        )


def place(src: Path, dst: Path) -> None:
    """Make dst the same bytes as src: a hard link where possible, else a copy."""
    if dst.exists() and os.path.samefile(src, dst):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.link.tmp")
    if tmp.exists():
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def materialize(out: Path, sides: dict[str, str], image_ext: dict[str, str]) -> None:
    """Place every cached item on its side; remove layout files no longer wanted."""
    out, cache = Path(out), cache_dir(out)
    wanted = set()
    for name, side in sorted(sides.items()):
        image = Path(side) / f"{name}{image_ext[name]}"
        mask = Path(f"{side}_annotation") / f"{name}.png"
        place(cache / f"{name}{image_ext[name]}", out / image)
        place(cache / f"{name}.png", out / mask)
        wanted |= {image, mask}
    for folder in LAYOUT_DIRS:
        for path in (out / folder).glob("*") if (out / folder).is_dir() else ():
            if path.relative_to(out) not in wanted and path.is_file():
                path.unlink()


def label_map() -> dict:
    """Masks hold class indices, so the identity form of the SageMaker label map."""
    return {"scale": 1}


def channels(manifest_uris: dict[str, str], attribute: str) -> list[dict]:
    """The Pipe-mode InputDataConfig for CreateTrainingJob, ready to paste."""
    return [
        {
            "ChannelName": side,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "AugmentedManifestFile",
                    "S3Uri": manifest_uris[side],
                    "S3DataDistributionType": "FullyReplicated",
                    "AttributeNames": ["source-ref", attribute],
                }
            },
            "ContentType": "application/x-recordio",
            "RecordWrapperType": "RecordIO",
            "InputMode": "Pipe",
            "CompressionType": "None",
        }
        for side in SIDES
    ]


def manifest_text(lines: list[dict]) -> str:
    return "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
