"""`gt2seg` command line: each command is a few lines over a library call, in its own module.

stdout carries the result (a short summary, or JSON with --json); logging and
the progress bar go to stderr. Any gt2seg error becomes one message and exit 1
(`gt2seg.cli.options.friendly`); options several commands share live in `gt2seg.cli.options`.
"""
from __future__ import annotations

import logging
import sys

import click

from gt2seg.cli.convert import convert
from gt2seg.cli.importers import import_
from gt2seg.cli.inspect import inspect
from gt2seg.cli.merge import merge
from gt2seg.cli.processing_job import processing_job
from gt2seg.cli.report import report
from gt2seg.cli.upload import upload


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gt2seg")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging on stderr.")
def main(verbose):
    """Ground Truth semantic-segmentation jobs -> the SageMaker segmentation layout."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


for command in (inspect, convert, import_, upload, merge, report, processing_job):
    main.add_command(command)
