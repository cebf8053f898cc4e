"""seg pipe-feed / pipe-check: thin click wrappers over seg.pipe.feed.feed and seg.pipe.check.check_manifest."""
import json
import signal
import sys

import click

from seg.cli.options import json_option, workers_option

_SHOWN = 50
_NAMES_HELP = "Comma-separated, image first: source-ref,<label>-ref"


def _names(ctx, param, value):
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise click.BadParameter("give the attribute names, e.g. source-ref,my-labels-ref")
    return names


@click.command("pipe-feed")
@click.argument("manifest")
@click.option("--fifo-dir", required=True, type=click.Path(file_okay=False), help="Folder for <channel>_<epoch>.")
@click.option("--channel", default="train", show_default=True)
@click.option("--epochs", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--attribute-names", required=True, callback=_names, help=_NAMES_HELP)
@click.option("--wait-timeout", type=float, help="Seconds to wait for a reader (default: $SEG_PIPE_WAIT_TIMEOUT, 600).")
@workers_option(8, "Parallel object fetches.")
@json_option("Print the feed report as JSON.")
def pipe_feed(manifest, fifo_dir, channel, epochs, attribute_names, wait_timeout, workers, as_json):
    """Stream MANIFEST into FIFOs as SageMaker Pipe mode does, one epoch per FIFO, so `seg train` runs locally."""
    from seg.pipe.feed import feed

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup of FIFOs on `kill`
    report = feed(manifest, fifo_dir, channel, epochs, attribute_names, wait_timeout=wait_timeout, workers=workers,
                  progress=True)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(f"fed {report.epochs} epoch(s) of {report.lines} lines ({report.bytes_written} bytes) "
                   f"to {fifo_dir}/{channel}_*")


@click.command("pipe-check")
@click.argument("manifest")
@click.option("--attribute-names", required=True, callback=_names, help=_NAMES_HELP)
@click.option("--num-classes", type=int, help="Also check that mask values are < C or 255.")
@workers_option(8, "Parallel object reads.")
@json_option()
def pipe_check(manifest, attribute_names, num_classes, workers, as_json):
    """Check an augmented manifest before a Pipe-mode job; exit 1 if any line would be dropped or fail."""
    from seg.pipe.check import check_manifest

    report = check_manifest(manifest, attribute_names, num_classes=num_classes, workers=workers, progress=True)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for problem in report.problems[:_SHOWN]:
            click.echo(str(problem))
        if len(report.problems) > _SHOWN:
            click.echo(f"... and {len(report.problems) - _SHOWN} more (see --json)")
        click.echo(f"{report.ok_lines}/{report.lines} lines ok; channel config: "
                   f"{json.dumps(report.channel_config())}")
    if not report.ok:
        sys.exit(1)
