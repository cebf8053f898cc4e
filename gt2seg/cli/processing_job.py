"""`gt2seg processing-job`: convert on N SageMaker Processing instances, then merge on one."""
from __future__ import annotations

import json

import click

from gt2seg.cli.options import ForwardingCommand, friendly


@click.command("processing-job", cls=ForwardingCommand, forwarded_metavar="[-- CONVERT OPTIONS...]")
@click.argument("manifest")
@click.argument("out")
@click.option("--instances", type=int, default=2, show_default=True, help="Processing instances that convert.")
@click.option("--image", "image_uri", metavar="URI", help="Container image with gt2seg installed (ECR URI).")
@click.option("--role", "role_arn", metavar="ARN", help="Execution role (needed to submit, not for --dry-run).")
@click.option("--instance-type", default="ml.m5.xlarge", show_default=True)
@click.option("--volume-gb", type=int, default=30, show_default=True)
@click.option("--job-name", help="Name of the convert job (the merge job adds -merge); default gt2seg-DATE-TIME.")
@click.option("--dry-run", is_flag=True, help="Print the two CreateProcessingJob requests as JSON; submit nothing.")
@friendly
def processing_job(manifest, out, forwarded, dry_run, **options):
    """Convert the labeling job MANIFEST (s3://) on N Processing instances (`convert --shard auto`), then
    merge their shards on one into the layout at OUT/layout/ (shards in OUT/shards/). Only what follows
    `--` goes to every `gt2seg convert`, e.g. `-- --unknown-color ignore`; an unknown option before it is
    an error."""
    from gt2seg.processing import ProcessingOptions, processing_requests, run_processing_jobs

    requests = processing_requests(ProcessingOptions(manifest=manifest, output=out,
                                                     convert_args=forwarded, **options))
    if dry_run:
        click.echo(json.dumps(requests.to_dict(), indent=2))
        return
    run_processing_jobs(requests, lambda name, status: click.echo(f"{name}: {status}", err=True))
    click.echo(f"layout written to {out.rstrip('/')}/layout/")
