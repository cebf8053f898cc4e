"""`seg` command line: a click group; each command lives in its own module and
imports MXNet only inside the command body, so `seg --help` stays instant. Errors are mapped once, in
`seg.cli.errors.SegGroup`; options several commands share live in `seg.cli.options`."""
import logging

import click

from seg import LOG_FORMAT
from seg.cli.errors import SegGroup
from seg.cli.evaluate import evaluate
from seg.cli.export import export
from seg.cli.invoke import invoke
from seg.cli.jobs import job_manifest, local_job, sagemaker_job
from seg.cli.pipe import pipe_check, pipe_feed
from seg.cli.predict import predict
from seg.cli.serve import serve
from seg.cli.train import train


@click.group(cls=SegGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gt2seg", prog_name="seg", message="%(prog)s (gt2seg) %(version)s")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging on stderr; the traceback of an unexpected error.")
def main(verbose):
    """Train, evaluate and serve semantic-segmentation models (SageMaker-compatible)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format=LOG_FORMAT,
    )


for command in (train, predict, evaluate, pipe_feed, pipe_check, serve, sagemaker_job, local_job, job_manifest,
                invoke, export):
    main.add_command(command)
