"""`gt2seg inspect`: what a manifest holds, without writing anything."""
from __future__ import annotations

import sys

import click

from gt2seg.cli.options import emit, friendly, json_option, label_attribute_option


@click.command()
@click.argument("manifest")
@label_attribute_option
@json_option()
@friendly
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

    emit(report, as_json, summary)
    if report["problems"]:
        sys.exit(1)
