"""`gt2seg import FORMAT SRC OUT`: a public dataset -> the SageMaker layout, one subcommand per registered format.

Each subcommand is built from its importer's options (gt2seg.importers), plus the conversion options every
layout-writing command takes; a new format needs no code here.
"""
from __future__ import annotations

import click

from gt2seg.cli.convert import emit_layout, html_report_option
from gt2seg.cli.options import convert_options, friendly, json_option
from gt2seg.importers import importers
from gt2seg.importers.base import Param


def format_option(param: Param, with_default: bool = True):
    default = f"[default: {param.default}]" if with_default and param.default else ""
    return click.option(param.flag, param.name, default=None, metavar=param.metavar, multiple=param.multiple,
                        type=click.Choice(param.choices) if param.choices else None,
                        help=f"{param.help} {default}".strip())


def _command(importer):
    def command(src, out, as_json, html_report, **options):
        from gt2seg.convert import ConvertOptions
        from gt2seg.importers import import_dataset

        settings = {p.name: options.pop(p.name) for p in importer.params}
        report = import_dataset(importer.name, src, out, settings, ConvertOptions(progress=True, **options))
        emit_layout(report.to_dict(), as_json, html_report)

    for decorate in (friendly, html_report_option, json_option(), convert_options,
                     *(format_option(p) for p in reversed(importer.params)),
                     click.argument("out", type=click.Path(file_okay=False)), click.argument("src")):
        command = decorate(command)
    return click.command(importer.name, help=importer.help)(command)


@click.group("import")
def import_():
    """Import a public dataset or a labeling tool's export (SRC: a folder, s3:// prefix, or a .zip of one) into
    the SageMaker layout in OUT."""


for _importer in importers().values():
    import_.add_command(_command(_importer))
