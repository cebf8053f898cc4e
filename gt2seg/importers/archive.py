"""A zipped export as SRC (CVAT and Label Studio hand out .zip files; any format may be zipped).

`gt2seg import` unpacks it once into OUT's own `.gt2seg/unpacked/` (never outside OUT; a temp name, then a
rename) and reads that folder like an unpacked export; the next run reuses it while the zip is unchanged
(same size and mtime, or ETag on S3), so the item cache still resumes. `gt2seg inspect` unpacks into a
temporary folder it removes. A member named with an absolute path or `..` is refused, not unpacked.
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from gt2seg import layout, storage
from gt2seg.errors import SourceError

UNPACKED = "unpacked"


def is_archive(src) -> bool:
    src = str(src)
    return src.lower().endswith(".zip") and (storage.is_s3(src) or Path(src).is_file())


def _version(src: str) -> str:
    return storage.stat(src).etag if storage.is_s3(src) else storage.version(src)


def unpack(src: str, folder: Path) -> str:
    """The folder holding the zip `src`'s files, under `folder` (created; reused while the zip is unchanged)."""
    src, folder = str(src), Path(folder)
    target, marker = folder / UNPACKED, folder / f"{UNPACKED}.json"
    stamp = json.dumps({"zip": storage.canonical(src), "version": _version(src)})
    with contextlib.suppress(OSError):
        if target.is_dir() and marker.read_text() == stamp:
            return str(target)
    data = storage.read_bytes(src) if storage.is_s3(src) else None
    try:
        with zipfile.ZipFile(io.BytesIO(data) if data is not None else src) as archive:
            for name in archive.namelist():
                path = PurePosixPath(name.replace("\\", "/"))
                if path.is_absolute() or ".." in path.parts:
                    raise SourceError(f"{src}: member {name!r} leads outside the archive's folder; not unpacked")
            with layout.writing(folder, "create"):
                folder.mkdir(parents=True, exist_ok=True)
                temp = Path(tempfile.mkdtemp(prefix=f".{UNPACKED}.", suffix=".tmp", dir=folder))
            try:
                with layout.writing(temp, "unpack into"):
                    archive.extractall(temp)
                    marker.unlink(missing_ok=True)
                    if target.exists():
                        shutil.rmtree(target)
                    temp.rename(target)
            finally:
                shutil.rmtree(temp, ignore_errors=True)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as exc:
        raise SourceError(f"{src} is not a zip archive that can be read ({exc})") from None
    layout.atomic_write(marker, stamp)
    return str(target)


@contextlib.contextmanager
def readable(src):
    """`src` itself, or for a zip a temporary folder holding its files (removed afterwards): for reading only."""
    if not is_archive(src):
        yield str(src)
        return
    with tempfile.TemporaryDirectory(prefix="gt2seg-inspect-") as temp:
        yield unpack(src, Path(temp))
