"""seg evaluate: metrics of a model on a layout split."""
from __future__ import annotations

import json
import sys

import click

from seg.cli.options import classes_option, device_option, engine_option, json_option


@click.command()
@click.argument("model")
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--split", type=click.Choice(["validation", "train"]), default="validation", show_default=True)
@click.option("--max-side", default=1024, show_default=True)
@classes_option()
@json_option("Print the metrics as JSON.")
@click.option("--report", "report_dir", metavar="DIR|s3://BUCKET/PREFIX",
              help="Also write the HTML evaluation report (confusion, per-image mIOU, worst images, curves) there.")
@engine_option()
@device_option()
def evaluate(model, data, split, max_side, classes_path, as_json, report_dir, engine, device):
    """mIOU, pixel accuracy and per-class IoU of MODEL on a layout folder's split, at full image size."""
    from seg.evaluate import evaluate_layout
    from seg.serve.predictor import Predictor

    predictor = Predictor.load(model, engine, device, max_side=max_side, classes_path=classes_path)
    if report_dir:
        from seg.report import build_evaluation_report, write_evaluation_report

        full = build_evaluation_report(predictor, model, data, split, progress=sys.stderr.isatty())
        metrics = full.summary
        click.echo(f"report written to {write_evaluation_report(full, report_dir)}", err=True)
    else:
        metrics = evaluate_layout(predictor, data, split, progress=sys.stderr.isatty())
    report = metrics.to_json([c["name"] for c in predictor.classes])
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"mIOU            {report['mIOU']:.4f}")
    click.echo(f"pixel accuracy  {report['pixel_accuracy']:.4f}")
    for name, iou in report["per_class_iou"].items():
        click.echo(f"  IoU {name:<20} {'n/a' if iou is None else f'{iou:.4f}'}")
