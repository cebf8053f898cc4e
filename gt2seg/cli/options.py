"""What several gt2seg commands share: error mapping, output, and option groups.

`convert_options` is the one definition of how items are converted, split and
placed; every command that writes a layout (convert, import ...) takes it.
"""
from __future__ import annotations

import json
import os
from functools import wraps

import click

from gt2seg.errors import Gt2SegError


def friendly(func):
    """Any gt2seg error becomes one message on stderr and exit 1."""
    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Gt2SegError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def emit(data: dict, as_json: bool, summary) -> None:
    """The result on stdout: JSON with --json, else the summary's lines."""
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        for line in summary(data):
            click.echo(line)


def _ref_root(ctx, param, values):
    from gt2seg.convert import parse_ref_root

    try:
        return tuple(parse_ref_root(value) for value in values)
    except Gt2SegError as exc:
        raise click.BadParameter(str(exc)) from None


def _shard(ctx, param, value):
    if value is None:
        return None
    if value == "auto":
        from gt2seg.processing import shard_of_this_host

        try:
            return shard_of_this_host()
        except Gt2SegError as exc:
            raise click.BadParameter(str(exc)) from None
    index, sep, count = value.partition("/")
    if not (sep and index.isdigit() and count.isdigit()):
        raise click.BadParameter(f"{value!r}: expected I/N, e.g. 0/4, or auto")
    return int(index), int(count)


class ForwardingCommand(click.Command):
    """A command that passes what follows `--` on, untouched, as the keyword argument `forwarded`.

    Its own options and arguments, before `--`, are parsed strictly: a misspelt option is a usage error
    naming it rather than something silently passed on (click's `ignore_unknown_options` would pass it).
    """

    def __init__(self, *args, forwarded_metavar: str = "[-- OPTIONS...]", **kwargs):
        super().__init__(*args, **kwargs)
        self.forwarded_metavar = forwarded_metavar

    def parse_args(self, ctx, args):
        forwarded = ()
        if "--" in args:
            at = args.index("--")
            args, forwarded = args[:at], tuple(args[at + 1:])
        rest = super().parse_args(ctx, args)
        ctx.params["forwarded"] = forwarded
        return rest

    def collect_usage_pieces(self, ctx):
        return [*super().collect_usage_pieces(ctx), self.forwarded_metavar]


def json_option(help="Print the report as JSON."):
    return click.option("--json", "as_json", is_flag=True, help=help)


label_attribute_option = click.option(
    "--label-attribute", "label_attributes", multiple=True, metavar="NAME",
    help="Label attribute to use (auto-detected when there is one). Repeatable: on each line the "
         "first one present wins, e.g. the adjusted attribute, then the original.")


def ref_root_option(help):
    return click.option("--ref-root", "ref_roots", multiple=True, callback=_ref_root, metavar="PREFIX=DIR",
                        help=help)


_CONVERT_OPTIONS = [
    click.option("--validation-fraction", default=0.2, show_default=True, type=float,
                 help="Share of the items in validation when gt2seg splits them (seeded by --seed)."),
    click.option("--seed", default=0, show_default=True, type=int, help="Split seed."),
    click.option("--unknown-color", type=click.Choice(["error", "background", "ignore", "nearest"]),
                 default="error", show_default=True, help="What to do with mask colours not in the line's map."),
    click.option("--alpha-threshold", default=128, show_default=True, type=int,
                 help="Mask pixels with alpha below this are background."),
    click.option("--resize-masks", is_flag=True, help="Resize masks whose size differs from the image (nearest)."),
    click.option("--s3-prefix", metavar="s3://BUCKET/PREFIX",
                 help="Where the layout will be uploaded; the augmented manifests point there."),
    click.option("--workers", type=int, default=lambda: os.cpu_count() or 1, show_default="all cores"),
    click.option("--prefetch", type=int, default=16, show_default=True,
                 help="Items each worker reads ahead (two objects each), so S3 round trips overlap decoding."),
    click.option("--shard", callback=_shard, metavar="I/N|auto",
                 help="Convert only shard I of N (the map step; `gt2seg merge` writes the layout). auto: this "
                      "SageMaker Processing instance's share, from resourceconfig.json."),
    click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
                 help="fail: stop on a bad image or mask; skip: leave it out and report it."),
    click.option("--max-pixels", type=int, help="Decompression-bomb limit per image (Pillow's default if unset)."),
]


def convert_options(func):
    """The ConvertOptions fields as options; they arrive as keyword arguments of the same names."""
    for option in reversed(_CONVERT_OPTIONS):
        func = option(func)
    return func
