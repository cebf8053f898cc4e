"""Atomic file writes: a temp name in the target's folder, then os.replace, so a reader (or a re-run after
a crash) sees the old file or the new one, never half of one. The one implementation for both packages."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence


@contextmanager
def atomic_path(path) -> Iterator[Path]:
    """A temp path beside `path` for writers that want a file name (MXNet's save_parameters,
    save_states); renamed onto `path` when the block ends cleanly, removed when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(path, data: bytes | str) -> None:
    """Write `data` (str as UTF-8) to `path` atomically, creating its folder."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


@contextmanager
def atomic_files(folder, names: Sequence[str]) -> Iterator[Path]:
    """A temp folder inside `folder` for writers that make several files at once (MXNet's export);
    each of `names` is renamed into `folder` when the block ends cleanly."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".atomic-", dir=folder))
    try:
        yield tmp
        for name in names:
            os.replace(tmp / name, folder / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
