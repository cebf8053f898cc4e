"""Write the SageMaker layout atomically, and keep the resume cache.

Converted items first land in OUT/.gt2seg/items/ (each file written under a
temp name, then renamed). Only when every item is done and split are they
placed in train/, validation/ and their annotation folders (hard links into
the cache, or copies where links are impossible), and the label maps,
classes.json, manifests, channels.json and report.json written, report last.
A run killed at any point leaves no truncated file, and a re-run skips every
cached item and produces the same bytes. One run at a time holds OUT (a lock
in OUT/.gt2seg), and OUT/.gt2seg/placed.json lists the layout files gt2seg
placed: no other file is ever replaced or removed.
"""
from __future__ import annotations

import contextlib
import fcntl
import heapq
import json
import os
import re
import shutil
from pathlib import Path
from typing import Mapping

from gt2seg.atomic import atomic_path
from gt2seg.atomic import atomic_write as _atomic_write
from gt2seg.errors import Gt2SegError, OutputError
from gt2seg.split import TRAIN, VALIDATION


def annotation_dir(split: str) -> str:
    """The folder (and channel) of a split's masks."""
    return f"{split}_annotation"


def label_map_file(split: str) -> str:
    """A split's label map, inside LABEL_MAP_DIR."""
    return f"{split}_label_map.json"


CACHE = ".gt2seg"
PLACED = "placed.json"
# Temp names of atomic_write and atomic_path (8 random characters) and place: left behind only by a killed run.
_TEMP = re.compile(r"\..+\.(link|[a-z0-9_]{8})\.tmp")
SIDES = (TRAIN, VALIDATION)
LAYOUT_DIRS = (TRAIN, annotation_dir(TRAIN), VALIDATION, annotation_dir(VALIDATION))
LABEL_MAP_DIR = "label_map"
CHANNELS = LAYOUT_DIRS + (LABEL_MAP_DIR,)  # the File-mode channels: one per layout folder, same names


@contextlib.contextmanager
def writing(path, action: str = "write"):
    """An OSError in the block (read-only, immutable, full disk, a file in the path) as an OutputError."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"cannot {action} {path}: {exc.strerror or exc}; choose an output folder "
                          "gt2seg can write to") from None


def atomic_write(path: Path, data: bytes | str) -> None:
    """gt2seg.atomic's write, with a disk error said as an OutputError naming the path."""
    with writing(path):
        _atomic_write(path, data)


def write_json(path: Path, obj) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def streamed(path: Path):
    """A text file written line by line under a temp name, renamed onto `path` when the block ends cleanly."""
    with writing(path), atomic_path(path) as tmp, open(tmp, "w") as f:
        yield f


def _write_paths(path: Path, paths) -> None:
    """write_json of the list `paths`, streamed: a large layout's list is never one string in memory."""
    with streamed(path) as f:
        separator = "[\n  "
        for rel in paths:
            f.write(separator + json.dumps(rel))
            separator = ",\n  "
        f.write("[]\n" if separator.startswith("[") else "\n]\n")


def cache_dir(out: Path) -> Path:
    return Path(out) / CACHE / "items"


def check_output_dir(out: Path, inputs: list[str]) -> None:
    """Refuse an OUT that holds the inputs, or a non-empty folder gt2seg did not make."""
    out = Path(out).resolve()
    for uri in inputs:
        if not str(uri).startswith("s3://"):
            path = Path(uri).resolve()
            if path == out or out in path.parents:
                raise Gt2SegError(f"output folder {out} contains the input {uri}; choose another folder")
    with writing(out, "read"):
        if out.exists() and any(out.iterdir()) and not (out / CACHE).is_dir():
            raise OutputError(
                f"{out} is not empty and was not written by gt2seg; choose a new or empty folder "
                "(gt2seg never deletes files it did not write)"
            )


def claim(out: Path, inputs: list[str]):
    """Check OUT (see check_output_dir), create it and lock it for this process.

    Returns the open lock file: OUT is held until it is closed or the process
    ends (killed or not; the kernel drops the lock). A second writer fails at
    once, naming the holder, rather than waiting an unknown time.
    """
    check_output_dir(out, inputs)
    path = Path(out) / CACHE / "lock"
    with writing(path.parent, "create"):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
    try:
        with writing(path, "lock"):
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "pid unknown"
                raise OutputError(f"{out} is being written by another gt2seg run ({holder}); wait for it to "
                                  "end, or choose another folder") from None
            handle.truncate(0)
            handle.write(f"pid {os.getpid()}\n")
            handle.flush()
        _sweep_temps(Path(out))
    except BaseException:
        handle.close()
        raise
    return handle


def _sweep_temps(out: Path) -> None:
    """Remove the temp files a killed run left where gt2seg writes, so a re-run leaves the same tree."""
    for folder in (out, out / LABEL_MAP_DIR, out / CACHE, cache_dir(out), *(out / d for d in LAYOUT_DIRS)):
        for path in folder.glob(".*.tmp") if folder.is_dir() else ():
            if _TEMP.fullmatch(path.name) and path.is_file():
                with writing(path, "remove"):
                    path.unlink()


def place(src: Path | str, dst: Path | str) -> None:
    """Make dst the same bytes as src: a hard link where possible, else a copy. A new name is linked
    in one step (two system calls: a large layout places many); any other through a temp name."""
    with writing(dst):
        if os.path.exists(dst):
            if os.path.samefile(src, dst):
                return
        else:
            with contextlib.suppress(OSError):  # a missing folder, a name taken since, no links here: the long way
                os.link(src, dst)
                return
        dst = Path(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.link.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)


def _placed(out: Path) -> set[str]:
    path = out / CACHE / PLACED
    try:
        return set(json.loads(path.read_text()))
    except ValueError:
        raise OutputError(f"{path} is not gt2seg's JSON (edited?); delete it, and gt2seg takes the layout "
                          "files hard-linked to its cache as its own") from None
    except FileNotFoundError:  # OUT from before placed.json: what is hard-linked to the cache is gt2seg's
        cache = cache_dir(out)
        return {f"{folder}/{path.name}" for folder in LAYOUT_DIRS if (out / folder).is_dir()
                for path in (out / folder).iterdir()
                if (cache / path.name).is_file() and os.path.samefile(path, cache / path.name)}


def materialize(out: Path, wanted: Mapping[str, Path]) -> None:
    """Make the layout files exactly `wanted` (relative path -> source), among those gt2seg placed.

    placed.json is widened before placing and narrowed after removing, so
    after a kill at any point it still lists every file gt2seg placed. A file
    it does not list is the user's: never removed, and never replaced (that
    is an error naming it).
    """
    out = Path(out)
    before = _placed(out)
    order = sorted(wanted)  # keys only: `wanted` may compute its sources (gt2seg.reduce does)
    for rel in order:
        if rel not in before and os.path.lexists(os.path.join(out, rel)):
            raise OutputError(f"{out / rel} was not written by gt2seg, which would replace it; move it "
                              f"out of {out}")
    leaving = sorted(before - wanted.keys())
    del before  # lists and merges below, no set of every path: memory per layout file stays a pointer
    _write_paths(out / CACHE / PLACED, heapq.merge(leaving, order))
    for rel in order:
        place(wanted[rel], os.path.join(out, rel))
    for rel in leaving:
        with writing(out / rel, "remove"):
            (out / rel).unlink(missing_ok=True)
    _write_paths(out / CACHE / PLACED, order)


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
