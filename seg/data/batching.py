"""Sample order, per-sample RNG and bounded prefetching: shared by File and Pipe sources, so their parity is structural."""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

import numpy as np


def collate(samples) -> tuple:
    return np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples])


def shuffled(items: Iterable, size: int, rng: np.random.Generator) -> Iterator:
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
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:  # an abandoned epoch (error, early stop) starts no more work
        for future in pending:
            future.cancel()


def chunks(items: Iterable, size: int, drop_last: bool) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk and not drop_last:
        yield chunk


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """One generator per sample, so augmentation does not depend on thread scheduling."""
    return np.random.default_rng([seed, epoch, index])
