"""Pipe-mode FIFOs, the reading side: SageMaker streams RecordIO into `<channel>_<epoch>`."""
from __future__ import annotations

import io
import logging
import os
import select
import time
from pathlib import Path
from typing import Iterator

from seg.errors import PipeError, PipeTimeout, RecordIOError
from seg.pipe.recordio import iter_records

log = logging.getLogger(__name__)

#: Seconds a reader waits for `<channel>_<epoch>` to appear or for its writer to send more bytes (and a
#: feeder for a reader to open the pipe or drain it). Override per call or with $SEG_PIPE_WAIT_TIMEOUT.
DEFAULT_WAIT_TIMEOUT = 600.0

POLL_INTERVAL = 0.02

PIPE_BUFFER = 1 << 20  # F_SETPIPE_SZ target: fewer wake-ups than the 64 KiB default

#: Written by a failing feeder so the reader fails too instead of training on a silently short epoch.
ABORT_MARKER = b"SEG!ABRT"

ABORT_MAGIC = int.from_bytes(ABORT_MARKER[:4], "little")


def wait_timeout_default() -> float:
    raw = os.environ.get("SEG_PIPE_WAIT_TIMEOUT")
    if raw is None:
        return DEFAULT_WAIT_TIMEOUT
    try:
        return float(raw)
    except ValueError:
        raise PipeError(f"SEG_PIPE_WAIT_TIMEOUT={raw!r} is not a number of seconds") from None


def pipe_path(fifo_dir, channel: str, epoch: int) -> Path:
    return Path(fifo_dir) / f"{channel}_{epoch}"


class _FifoRaw(io.RawIOBase):
    """Non-blocking FIFO fd whose reads wait at most `timeout` seconds for the writer."""

    def __init__(self, path: Path, timeout: float):
        self.path, self.timeout = path, timeout
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._poll = select.poll()
        self._poll.register(self.fd, select.POLLIN | select.POLLHUP)

    def readable(self):
        return True

    def readinto(self, buffer) -> int:
        while True:
            if not self._poll.poll(self.timeout * 1000):
                raise PipeTimeout(f"{self.path}: no data from the writer for {self.timeout:g} s; is the feeder "
                                  "(SageMaker or `seg pipe-feed`) still running? (raise wait_timeout=SECONDS or "
                                  "$SEG_PIPE_WAIT_TIMEOUT if it is just slow)")
            try:
                return os.readv(self.fd, [buffer])
            except BlockingIOError:
                continue

    def close(self):
        if not self.closed:
            os.close(self.fd)
        super().close()


def _wait_for_path(path: Path, timeout: float, hint: str) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() >= deadline:
            raise PipeTimeout(f"pipe {path} did not appear within {timeout:g} s; {hint}")
        time.sleep(POLL_INTERVAL)


def open_epoch(fifo_dir, channel: str, epoch: int, *, wait_timeout: float | None = None) -> io.BufferedReader:
    """Open `<channel>_<epoch>` for reading once it exists (a FIFO or, for tests and replays, a file)."""
    timeout = wait_timeout_default() if wait_timeout is None else wait_timeout
    path = pipe_path(fifo_dir, channel, epoch)
    _wait_for_path(path, timeout, f"is the feeder running for channel '{channel}' with at least "
                                  f"{epoch + 1} epoch(s)?")
    return io.BufferedReader(_FifoRaw(path, timeout), buffer_size=PIPE_BUFFER)


def _aborted(exc: RecordIOError) -> bool:
    return exc.problem.startswith(f"bad magic 0x{ABORT_MAGIC:08x}")


def iter_pairs(fifo_dir, channel: str, epoch: int, *, wait_timeout: float | None = None
               ) -> Iterator[tuple[int, bytes, bytes]]:
    """(sample index, image bytes, mask bytes) for each manifest line streamed in this epoch's pipe."""
    where = f"channel '{channel}' epoch {epoch}"
    with open_epoch(fifo_dir, channel, epoch, wait_timeout=wait_timeout) as stream:
        records = iter_records(stream, source=f"{where} ({pipe_path(fifo_dir, channel, epoch)})")
        index = 0
        try:
            for image in records:
                mask = next(records, None)
                if mask is None:
                    raise PipeError(
                        f"{where}: odd record count: record {2 * index} (an image) has no mask record after it; "
                        "the channel's AttributeNames must list exactly two attributes, the image then the mask "
                        "(e.g. [\"source-ref\", \"<label>-ref\"])")
                yield index, image, mask
                index += 1
        except RecordIOError as exc:
            if _aborted(exc):
                raise PipeError(f"{where}: the feeder aborted the stream at record {exc.index}; "
                                "its own error says why") from None
            raise PipeError(f"{exc} (epoch {epoch})") from None
