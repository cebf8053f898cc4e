"""PipeSource: training batches from a Pipe-mode channel, with FileSource's contract."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from seg.data.batching import chunks, collate, ordered_map, sample_rng, shuffled
from seg.data.decode import decode_pair
from seg.errors import DataError, PipeError
from seg.pipe.fifo import iter_pairs


class PipeSource:
    """Batches of (data float32 NCHW, label NHW) from a Pipe-mode channel: the seg.data.files.FileSource contract.

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
            return self.transform(rgb, labels, sample_rng(self.seed, epoch, index))
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
            samples = shuffled(pairs, self.shuffle_buffer, np.random.default_rng([self.seed, epoch]))
        with ThreadPoolExecutor(self.workers, thread_name_prefix=f"pipe-{self.channel}") as pool:
            try:
                groups = chunks(samples, self.batch_size, self.drop_last)
                yield from ordered_map(lambda group: collate([self._prepare(epoch, s) for s in group]),
                                        groups, pool, self.workers + 1)
            finally:
                pairs.close()
