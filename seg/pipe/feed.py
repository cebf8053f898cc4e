"""The local Pipe-mode feeder: stream an augmented manifest into `<channel>_<epoch>` FIFOs as SageMaker does.

One FIFO per epoch, created only after the previous epoch was read; every
wait bounded; on a fetch failure an abort marker makes the reader fail too.
"""
from __future__ import annotations

import errno
import logging
import os
import select
import stat
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from seg.data.batching import ordered_map
from seg.errors import PipeError, PipeTimeout
from seg.pipe.fifo import ABORT_MARKER, PIPE_BUFFER, POLL_INTERVAL, pipe_path, wait_timeout_default
from seg.pipe.manifest import read_manifest
from seg.pipe.recordio import pack

log = logging.getLogger(__name__)
_F_SETPIPE_SZ = 1031  # fcntl: grow the pipe buffer to PIPE_BUFFER


@dataclass
class FeedReport:
    channel: str
    epochs: int
    lines: int
    records_per_epoch: int
    bytes_written: int
    closed_early: list[int] = field(default_factory=list)  # epochs whose reader stopped before EOF

    def to_dict(self) -> dict:
        return asdict(self)


def _fetch(entry: list[tuple[bool, str]], number: int) -> bytes:
    from gt2seg.errors import StorageError
    from gt2seg.storage import read_bytes

    parts = []
    for is_ref, value in entry:
        try:
            parts.append(pack(read_bytes(value) if is_ref else value.encode("utf-8")))
        except StorageError as exc:
            raise PipeError(f"manifest line {number}: {exc}") from None
    return b"".join(parts)


def _open_writer(path: Path, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
        if time.monotonic() >= deadline:
            raise PipeTimeout(f"no reader opened {path} within {timeout:g} s; is the trainer running and reading "
                              f"fifo_dir={path.parent}? (raise wait_timeout=SECONDS if it is busy with another "
                              "channel)")
        time.sleep(POLL_INTERVAL)
    try:
        import fcntl

        fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_BUFFER)
    except OSError:
        pass  # capped by /proc/sys/fs/pipe-max-size: the default size only costs speed
    return fd


def _write_all(fd: int, data: bytes, poller, path: Path, timeout: float) -> None:
    view = memoryview(data)
    while view:
        if not poller.poll(timeout * 1000):
            raise PipeTimeout(f"the reader of {path} took no data for {timeout:g} s; is the trainer stuck?")
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            continue


def _abort(fd: int) -> None:
    try:
        os.write(fd, ABORT_MARKER)
    except OSError:
        pass  # reader gone or pipe full: it sees a truncated record or nothing, both fail loudly enough


def _check_free(path: Path) -> None:
    if path.exists() or path.is_symlink():
        kind = "FIFO" if stat.S_ISFIFO(path.lstat().st_mode) else "file"
        raise PipeError(f"{path} already exists (a {kind}); another feeder may be running, or remove it first")


def feed(manifest, fifo_dir, channel: str, epochs: int, attribute_names: list[str], *,
         wait_timeout: float | None = None, workers: int = 8, progress: bool = False) -> FeedReport:
    """Stream the manifest as SageMaker does: `<channel>_0`, then `<channel>_1` once epoch 0 is consumed.

    Each FIFO is created only after the previous epoch's reader finished (EOF or early close), and every
    FIFO this call created is removed when it returns or fails.
    """
    from tqdm import tqdm

    if epochs < 1:
        raise PipeError(f"epochs must be >= 1, got {epochs}")
    timeout = wait_timeout_default() if wait_timeout is None else wait_timeout
    rows = read_manifest(manifest, attribute_names)
    fifo_dir = Path(fifo_dir)
    if not fifo_dir.is_dir():
        raise PipeError(f"fifo_dir={fifo_dir} is not a folder; create it (SageMaker uses /opt/ml/input/data)")
    report = FeedReport(channel, epochs, len(rows), len(rows) * len(attribute_names), 0)
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="pipe-feed") as pool:
        for epoch in range(epochs):
            path = pipe_path(fifo_dir, channel, epoch)
            _check_free(path)
            try:
                os.mkfifo(path)  # inside the try: a SIGTERM right after it must still remove the FIFO
                fd = _open_writer(path, timeout)
                poller = select.poll()
                poller.register(fd, select.POLLOUT)
                framed = ordered_map(lambda row: _fetch(row[1], row[0]), rows, pool, 2 * max(1, workers))
                try:
                    for chunk in tqdm(framed, total=len(rows), desc=path.name, unit="line",
                                      file=sys.stderr, disable=not progress):
                        _write_all(fd, chunk, poller, path, timeout)
                        report.bytes_written += len(chunk)
                except BrokenPipeError:
                    log.info("reader closed %s before EOF; moving on to the next epoch", path)
                    report.closed_early.append(epoch)
                except BaseException:
                    _abort(fd)
                    raise
                finally:
                    framed.close()
                    os.close(fd)
            finally:
                path.unlink(missing_ok=True)
    return report
