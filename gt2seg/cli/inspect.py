"""`gt2seg inspect`: what a manifest, or a dataset to import, holds, without writing anything."""
from __future__ import annotations

import sys

import click

from gt2seg.cli.importers import format_option
from gt2seg.cli.options import emit, friendly, json_option, label_attribute_option
from gt2seg.importers import FORMATS, importers


def _format_params():
    """Every importer's options, once by name (--split is both pets' and voc's)."""
    params = {}
    for importer in importers().values():
        for p in importer.params:
            params.setdefault(p.name, p)
    return list(params.values())


def _is_manifest(src: str) -> bool:
    from pathlib import Path

    from gt2seg import storage

    from gt2seg.importers.archive import is_archive

    if is_archive(src):  # a zipped export
        return False
    return storage.exists(src) if storage.is_s3(src) else Path(src).is_file()


def _manifest_summary(r):
    yield (f"{r['manifest']}: {r['lines']} lines, {r['labeled']} labeled, {r['unlabeled']} unlabeled, "
           f"{r['failed']} failed")
    for reason, n in r["failure_reasons"].items():
        yield f"  failed: {n} x {reason}"
    for a in r["attributes"]:
        mark = "*" if a["name"] in r["chosen"] else " "
        yield f" {mark} attribute {a['name']} ({a['type']}): {a['lines']} lines, {a['failed']} failed"
    for c in r["classes"]:
        yield f"    class {c['index']:3d} {c['color']} {c['name']}"
    yield from _notes(r)


def _source_summary(r):
    splits = f" (official: train {r['splits']['train']}, validation {r['splits']['validation']})" if r["splits"] else ""
    yield f"{r['source']}: {r['format']} dataset, {r['items']} items to import{splits}"
    for reason, n in r["skipped_by_reason"].items():
        yield f"  skipped {n} {reason}"
    for s in r["skipped"]:
        yield f"    {s['reason']}: {s['detail']}"
    for c in r["classes"]:
        yield f"    class {c['index']:3d} {c['color']} {c['name']}"
    yield from _notes(r)


def _notes(r):
    for w in r["warnings"]:
        yield f"  warning: {w}"
    for p in r["problems"]:
        yield f"  problem: {p}"


def _command(func):
    for param in reversed(_format_params()):
        func = format_option(param, with_default=False)(func)
    return func


@click.command()
@click.argument("source")
@click.option("--format", "format_", type=click.Choice(["manifest", *FORMATS]),
              help="What SOURCE is  [default: a file is a manifest; a folder's format is detected]")
@label_attribute_option
@_command
@json_option()
@friendly
def inspect(source, format_, label_attributes, as_json, **settings):
    """Count items, classes and problems in SOURCE: a labeling job's manifest, or a dataset folder (path or
    s3:// URI, or a .zip of one) that `gt2seg import` reads; the import options read it as the import would."""
    from gt2seg.inspect import inspect_manifest, inspect_source

    if format_ == "manifest" or (format_ is None and _is_manifest(source)):
        given = [f"--{name.replace('_', '-')}" for name, value in settings.items() if value not in (None, ())]
        if given:
            raise click.UsageError(f"{', '.join(given)} read a dataset folder; {source} is a manifest")
        report, summary = inspect_manifest(source, label_attributes).to_dict(), _manifest_summary
    elif label_attributes:
        raise click.UsageError(f"--label-attribute reads a manifest; {source} is a dataset folder")
    else:
        report, summary = inspect_source(source, format_, settings).to_dict(), _source_summary
    emit(report, as_json, summary)
    if report["problems"]:
        sys.exit(1)
