"""`gt2seg upload`: a written layout -> S3, skipping what is already there."""
from __future__ import annotations

import click

from gt2seg.cli.options import emit, friendly, json_option


@click.command()
@click.argument("out", type=click.Path(exists=True, file_okay=False))
@click.argument("destination", metavar="s3://BUCKET/PREFIX")
@click.option("--workers", default=8, show_default=True, type=int, help="Concurrent transfers.")
@json_option()
@friendly
def upload(out, destination, workers, as_json):
    """Upload the layout in OUT to DESTINATION, skipping objects already there (same size and ETag)."""
    from gt2seg.upload import upload_layout

    report = upload_layout(out, destination, workers=workers, progress=True).to_dict()

    def summary(r):
        yield f"{r['uploaded']} uploaded, {r['skipped']} already there, {r['bytes']:,} bytes -> {r['destination']}"
        for w in r["warnings"]:
            yield f"  warning: {w}"

    emit(report, as_json, summary)
