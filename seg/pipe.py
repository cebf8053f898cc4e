"""SageMaker Pipe mode, the reading side: `<channel>_<epoch>` FIFOs -> training batches.

SageMaker streams each augmented-manifest line as one RecordIO record per AttributeNames entry (image, then
mask) into `input/data/<channel>_<epoch>`, one FIFO per epoch (SAGEMAKER_SPEC §2.3-2.5). The service drops
bad records silently and times out opaquely, so every wait here is bounded and every error names the
channel, epoch and record. Waits are Linux FIFO semantics: a reader opened before its writer sees neither
data nor hang-up until a writer arrives, which lets one poll() bound "writer never came" and "writer stalled".
"""
from __future__ import annotations

import io
import logging
import os
import select
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from seg.data import DataError, collate, decode_pair
from seg.recordio import RecordIOError, iter_records

log = logging.getLogger(__name__)

#: Seconds a reader waits for `<channel>_<epoch>` to appear or for its writer to send more bytes (and a
#: feeder for a reader to open the pipe or drain it). Override per call or with $SEG_PIPE_WAIT_TIMEOUT.
DEFAULT_WAIT_TIMEOUT = 600.0
POLL_INTERVAL = 0.02
PIPE_BUFFER = 1 << 20  # F_SETPIPE_SZ target: fewer wake-ups than the 64 KiB default
#: Written by a failing feeder so the reader fails too instead of training on a silently short epoch.
ABORT_MARKER = b"SEG!ABRT"
ABORT_MAGIC = int.from_bytes(ABORT_MARKER[:4], "little")


class PipeError(DataError):
    """Pipe-mode input is unusable; the message names channel, epoch, record and the fix."""


class PipeTimeout(PipeError):
    """A bounded wait on a FIFO ran out."""


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


# ----------------------------------------------------------------------------------------------- reading
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
                                  "(SageMaker or `seg pipe-feed`) still running? (raise --wait-timeout / "
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


def _shuffled(items: Iterable, size: int, rng: np.random.Generator) -> Iterator:
    """Reservoir-style shuffle buffer: bounded memory, the order depends only on the rng."""
    buffer: list = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        pick = int(rng.integers(size))
        buffer[pick], item = item, buffer[pick]
        yield item
    rng.shuffle(buffer)
    yield from buffer


def ordered_map(fn: Callable, items: Iterable, pool: ThreadPoolExecutor, window: int) -> Iterator:
    """pool.map with at most `window` items in flight, so a long epoch never piles up in memory."""
    pending: deque = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _chunks(items: Iterable, size: int, drop_last: bool) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk and not drop_last:
        yield chunk


def _sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """One generator per sample, so augmentation does not depend on thread scheduling."""
    return np.random.default_rng([seed, epoch, index])


class PipeSource:
    """Batches of (data float32 NCHW, label NHW) from a Pipe-mode channel: the seg.data.FileSource contract.

    Memory is bounded by `shuffle_buffer` compressed samples plus the decode window, never the epoch.
    Shuffling is local to the buffer (SageMaker streams in manifest order); 0 or 1 keeps stream order.
    Sample i of the stream is augmented with the RNG (seed, epoch, i), as FileSource does for its i-th
    sorted pair, so a manifest listed in stem order yields the same samples as File mode; only the batch
    composition differs when shuffling (a buffer-local shuffle is not FileSource's full permutation).
    """

    def __init__(self, fifo_dir, channel: str, *, transform, batch_size: int, shuffle_buffer: int = 256,
                 seed: int = 0, wait_timeout: float | None = None, label_map=None, workers: int = 2,
                 drop_last: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.fifo_dir, self.channel = Path(fifo_dir), channel
        self.transform, self.batch_size = transform, batch_size
        self.shuffle_buffer, self.seed = shuffle_buffer, seed
        self.wait_timeout, self.label_map, self.workers = wait_timeout, label_map, max(1, workers)
        self.drop_last = drop_last
        self._first_epoch: int | None = None

    def _prepare(self, epoch: int, sample: tuple[int, bytes, bytes]):
        index, image, mask = sample
        where = f"channel '{self.channel}' epoch {epoch}: sample {index} (records {2 * index} and {2 * index + 1})"
        try:
            rgb, labels = decode_pair(image, mask)
        except DataError as exc:
            raise PipeError(f"{where}: {exc}; AttributeNames must name the image first, then the mask") from None
        try:
            if self.label_map is not None:
                labels = self.label_map.apply(labels)
            return self.transform(rgb, labels, _sample_rng(self.seed, epoch, index))
        except DataError as exc:
            raise PipeError(f"{where}: {exc}") from None

    def epoch(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Training epoch `epoch`, read from the next pipe: SageMaker numbers a process's pipes from
        `<channel>_0` whatever epoch a resumed job starts at; augmentation follows the training epoch."""
        if self._first_epoch is None:
            self._first_epoch = epoch
        pairs = iter_pairs(self.fifo_dir, self.channel, epoch - self._first_epoch, wait_timeout=self.wait_timeout)
        samples: Iterable = pairs
        if self.shuffle_buffer > 1:
            samples = _shuffled(pairs, self.shuffle_buffer, np.random.default_rng([self.seed, epoch]))
        with ThreadPoolExecutor(self.workers, thread_name_prefix=f"pipe-{self.channel}") as pool:
            try:
                groups = _chunks(samples, self.batch_size, self.drop_last)
                yield from ordered_map(lambda group: collate([self._prepare(epoch, s) for s in group]),
                                        groups, pool, self.workers + 1)
            finally:
                pairs.close()
