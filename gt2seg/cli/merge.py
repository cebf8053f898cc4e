"""`gt2seg merge`: the reduce over the outputs of `convert --shard I/N` runs -> one layout."""
from __future__ import annotations

import click

from gt2seg.cli.convert import emit_layout, html_report_option
from gt2seg.cli.options import friendly, json_option


@click.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.argument("shards", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@json_option("Print the merged report as JSON.")
@html_report_option
@friendly
def merge(out, shards, as_json, html_report):
    """Write the layout in OUT from the finished shards in SHARDS... (each the OUT of a
    `convert --shard I/N` run, or one folder holding several): the split, placement, manifests and
    report over all of them, as one `convert` would write them. Refuses an incomplete set."""
    from gt2seg.merge import merge_shards

    emit_layout(merge_shards(shards, out).to_dict(), as_json, html_report)
