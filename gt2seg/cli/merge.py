"""`gt2seg merge`: the outputs of `convert --shard I/N` runs -> one layout."""
from __future__ import annotations

import click

from gt2seg.cli.options import emit, friendly, json_option


@click.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.argument("shards", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@json_option("Print the merged report as JSON.")
@friendly
def merge(out, shards, as_json):
    """Merge the outputs of `convert --shard I/N` runs (SHARDS...) into one layout in OUT."""
    from gt2seg.merge import merge_shards

    report = merge_shards(shards, out).to_dict()
    emit(report, as_json, lambda r: [
        f"{r['converted']} images from {len(shards)} shards merged into {r['output']} "
        f"(train {r['splits']['train']}, validation {r['splits']['validation']})"])
