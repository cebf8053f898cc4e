"""`gt2seg report`: a static HTML page about a layout folder."""
from __future__ import annotations

import click

from gt2seg.cli.options import emit, friendly, json_option, ref_root_option


@click.command()
@click.argument("layout", type=click.Path(file_okay=False))
@click.option("--out", metavar="DIR|s3://BUCKET/PREFIX", help="Where index.html goes  [default: LAYOUT/report]")
@ref_root_option("As for convert: where skipped lines' images are read for their thumbnails.")
@json_option("Print the report's data as JSON.")
@friendly
def report(layout, out, ref_roots, as_json):
    """Write a static HTML report of the layout folder LAYOUT: classes, split balance, gallery, skipped lines."""
    from gt2seg.report import build_dataset_report, write_dataset_report

    data = build_dataset_report(layout, ref_roots=ref_roots, progress=True)
    result = dict(data.to_dict(), html_report=write_dataset_report(data, out))
    emit(result, as_json, lambda r: [f"report written to {r['html_report']}"]
         + [f"  problem: {p}" for p in r["problems"]])
