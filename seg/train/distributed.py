"""Multi-process training: what the loop and the engines share about this process's place in the job."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Distributed:
    """This process in a multi-process job: its rank, how many workers train, and the engine's handle (MXNet's
    kvstore; None for torch, whose process group is global)."""

    rank: int
    workers: int
    handle: Any = None
    writes: bool = True  # this process writes checkpoints and the model (one process per host does)

    @property
    def kv(self):
        return self.handle
