"""`gt2seg merge`: the reduce over the shards that `gt2seg convert --shard I/N` runs (the map) left.

The shards' records say everything the reduce needs (see gt2seg.shards), so the source is not
read again, and the layout is the one a single `convert` of the same job with the same options
writes, byte for byte (with --s3-prefix; without it, the manifests name OUT's local paths, and
report.json's `output` is OUT). Nothing is written unless the shards are one complete set.
"""
from __future__ import annotations

from pathlib import Path

from gt2seg import layout
from gt2seg.reduce import Report, reduce
from gt2seg.shards import complete_set


def merge_shards(folders: list, out) -> Report:
    """Reduce the shards found in `folders` (each a shard's OUT, or one folder several shards'
    outputs were copied into) into the layout at `out`. Raises ShardError naming the shard
    when the set is incomplete, duplicated or inconsistent."""
    folders, out = [Path(f) for f in folders], Path(out)
    records = complete_set(folders)
    with layout.claim(out, [str(f) for f in folders]):
        return reduce(records, out)
