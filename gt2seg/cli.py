"""`gt2seg` command line: each command is a few lines over a library call.

stdout carries the result (a short summary, or JSON with --json); logging and
the progress bar go to stderr. Any gt2seg error becomes one message and exit 1.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from functools import wraps

import click

from gt2seg.errors import Gt2SegError


def _friendly(func):
    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Gt2SegError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def _emit(data: dict, as_json: bool, summary) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        for line in summary(data):
            click.echo(line)


def _ref_root(ctx, param, values):
    pairs = []
    for value in values:
        prefix, sep, root = value.partition("=")
        if not sep or not prefix or not root:
            raise click.BadParameter(f"{value!r}: expected PREFIX=DIR, e.g. s3://bucket/=./bucket-copy/")
        pairs.append((prefix, root))
    return tuple(pairs)


def _shard(ctx, param, value):
    if value is None:
        return None
    index, sep, count = value.partition("/")
    if not (sep and index.isdigit() and count.isdigit()):
        raise click.BadParameter(f"{value!r}: expected I/N, e.g. 0/4")
    return int(index), int(count)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gt2seg")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging on stderr.")
def main(verbose):
    """Ground Truth semantic-segmentation jobs -> the SageMaker segmentation layout."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


label_attribute_option = click.option(
    "--label-attribute", "label_attributes", multiple=True, metavar="NAME",
    help="Label attribute to use (auto-detected when there is one). Repeatable: on each line the "
         "first one present wins, e.g. the adjusted attribute, then the original.")


@main.command()
@click.argument("manifest")
@label_attribute_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_friendly
def inspect(manifest, label_attributes, as_json):
    """Count lines, label attributes, classes and problems in MANIFEST (path or s3:// URI)."""
    from gt2seg.inspect import inspect_manifest

    report = inspect_manifest(manifest, label_attributes).to_dict()

    def summary(r):
        yield f"{r['manifest']}: {r['lines']} lines, {r['labeled']} labeled, {r['unlabeled']} unlabeled, {r['failed']} failed"
        for reason, n in r["failure_reasons"].items():
            yield f"  failed: {n} x {reason}"
        for a in r["attributes"]:
            mark = "*" if a["name"] in r["chosen"] else " "
            yield f" {mark} attribute {a['name']} ({a['type']}): {a['lines']} lines, {a['failed']} failed"
        for c in r["classes"]:
            yield f"    class {c['index']:3d} {c['color']} {c['name']}"
        for w in r["warnings"]:
            yield f"  warning: {w}"
        for p in r["problems"]:
            yield f"  problem: {p}"

    _emit(report, as_json, summary)
    if report["problems"]:
        sys.exit(1)


@main.command()
@click.argument("manifest")
@click.argument("out", type=click.Path(file_okay=False))
@label_attribute_option
@click.option("--validation-fraction", default=0.2, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True, type=int, help="Split seed.")
@click.option("--ref-root", "ref_roots", multiple=True, callback=_ref_root, metavar="PREFIX=DIR",
              help="Read refs starting with PREFIX from DIR instead (repeatable), "
                   "e.g. s3://bucket/=./local-copy/. Relative refs resolve against the manifest's folder.")
@click.option("--unknown-color", type=click.Choice(["error", "background", "ignore", "nearest"]),
              default="error", show_default=True, help="What to do with mask colours not in the line's map.")
@click.option("--alpha-threshold", default=128, show_default=True, type=int,
              help="Mask pixels with alpha below this are background.")
@click.option("--resize-masks", is_flag=True, help="Resize masks whose size differs from the image (nearest).")
@click.option("--s3-prefix", metavar="s3://BUCKET/PREFIX",
              help="Where the layout will be uploaded; the augmented manifests point there.")
@click.option("--workers", type=int, default=lambda: os.cpu_count() or 1, show_default="all cores")
@click.option("--shard", callback=_shard, metavar="I/N", help="Convert only shard I of N (for N machines).")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="fail: stop on a bad image or mask; skip: leave it out and report it.")
@click.option("--max-pixels", type=int, help="Decompression-bomb limit per image (Pillow's default if unset).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--report", "html_report", is_flag=True, help="Also write the HTML dataset report to OUT/report/.")
@_friendly
def convert(manifest, out, as_json, html_report, **options):
    """Convert the labeling job MANIFEST (path or s3:// URI) into the SageMaker layout in OUT."""
    from gt2seg.convert import ConvertOptions, convert as run

    report = run(manifest, out, ConvertOptions(progress=True, **options)).to_dict()
    if html_report:
        from gt2seg.report import build_dataset_report, write_dataset_report

        report["html_report"] = write_dataset_report(build_dataset_report(out, ref_roots=options["ref_roots"],
                                                                          progress=True))

    def summary(r):
        yield (f"{r['converted']} images converted into {r['output']} "
               f"(train {r['splits']['train']}, validation {r['splits']['validation']}; "
               f"{r['resumed']} reused from a previous run)")
        for reason, n in r["skipped_by_reason"].items():
            yield f"  skipped {n} {reason}"
        for c in r["classes"]:
            yield (f"  class {c['index']:3d} {c['name']:<20} {r['images_per_class'][c['name']]:6d} images "
                   f"{r['pixels_per_class'][c['name']]:12,d} px")
        for w in r["warnings"]:
            yield f"  warning: {w}"
        if r.get("html_report"):
            yield f"report written to {r['html_report']}"

    _emit(report, as_json, summary)


@main.command()
@click.argument("out", type=click.Path(exists=True, file_okay=False))
@click.argument("destination", metavar="s3://BUCKET/PREFIX")
@click.option("--workers", default=8, show_default=True, type=int, help="Concurrent transfers.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_friendly
def upload(out, destination, workers, as_json):
    """Upload the layout in OUT to DESTINATION, skipping objects already there (same size and ETag)."""
    from gt2seg.upload import upload_layout

    report = upload_layout(out, destination, workers=workers, progress=True).to_dict()

    def summary(r):
        yield f"{r['uploaded']} uploaded, {r['skipped']} already there, {r['bytes']:,} bytes -> {r['destination']}"
        for w in r["warnings"]:
            yield f"  warning: {w}"

    _emit(report, as_json, summary)


@main.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.argument("shards", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the merged report as JSON.")
@_friendly
def merge(out, shards, as_json):
    """Merge the outputs of `convert --shard I/N` runs (SHARDS...) into one layout in OUT."""
    from gt2seg.merge import merge_shards

    report = merge_shards(shards, out).to_dict()
    _emit(report, as_json, lambda r: [
        f"{r['converted']} images from {len(shards)} shards merged into {r['output']} "
        f"(train {r['splits']['train']}, validation {r['splits']['validation']})"])


@main.command()
@click.argument("layout", type=click.Path(file_okay=False))
@click.option("--out", metavar="DIR|s3://BUCKET/PREFIX", help="Where index.html goes  [default: LAYOUT/report]")
@click.option("--ref-root", "ref_roots", multiple=True, callback=_ref_root, metavar="PREFIX=DIR",
              help="As for convert: where skipped lines' images are read for their thumbnails.")
@click.option("--json", "as_json", is_flag=True, help="Print the report's data as JSON.")
@_friendly
def report(layout, out, ref_roots, as_json):
    """Write a static HTML report of the layout folder LAYOUT: classes, split balance, gallery, skipped lines."""
    from gt2seg.report import build_dataset_report, write_dataset_report

    data = build_dataset_report(layout, ref_roots=ref_roots, progress=True)
    result = dict(data.to_dict(), html_report=write_dataset_report(data, out))
    _emit(result, as_json, lambda r: [f"report written to {r['html_report']}"]
          + [f"  problem: {p}" for p in r["problems"]])


if __name__ == "__main__":
    main()
