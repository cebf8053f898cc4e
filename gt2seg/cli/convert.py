"""`gt2seg convert`: a labeling job's manifest -> the SageMaker layout."""
from __future__ import annotations

import click

from gt2seg.cli.options import convert_options, emit, friendly, json_option, label_attribute_option, ref_root_option


def emit_layout(report: dict, as_json: bool, html_report: bool, ref_roots=()) -> None:
    """Print a written layout's report (and write its HTML page first when asked); every command
    that writes a layout ends here."""
    if html_report and "shard" not in report:
        from gt2seg.report import build_dataset_report, write_dataset_report

        report["html_report"] = write_dataset_report(build_dataset_report(report["output"], ref_roots=ref_roots,
                                                                          progress=True))

    def summary(r):
        if "shard" in r:  # a map step: no layout yet
            yield (f"shard {r['shard']}: {r['items']} images converted into {r['output']} "
                   f"({r['resumed']} reused from a previous run); once every shard is done, "
                   "`gt2seg merge OUT SHARD_FOLDER...` writes the layout")
            for reason, n in r["skipped_by_reason"].items():
                yield f"  skipped {n} {reason}"
            return
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

    emit(report, as_json, summary)


html_report_option = click.option("--report", "html_report", is_flag=True,
                                  help="Also write the HTML dataset report to OUT/report/.")


@click.command()
@click.argument("manifest")
@click.argument("out", type=click.Path(file_okay=False))
@label_attribute_option
@ref_root_option("Read refs starting with PREFIX from DIR instead (repeatable), e.g. s3://bucket/=./local-copy/. "
                 "Relative refs resolve against the manifest's folder.")
@convert_options
@json_option()
@html_report_option
@friendly
def convert(manifest, out, as_json, html_report, **options):
    """Convert the labeling job MANIFEST (path or s3:// URI) into the SageMaker layout in OUT."""
    from gt2seg.convert import ConvertOptions, convert as run

    report = run(manifest, out, ConvertOptions(progress=True, **options)).to_dict()
    emit_layout(report, as_json, html_report, options["ref_roots"])
