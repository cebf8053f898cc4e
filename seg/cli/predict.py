"""seg predict: masks and overlays, or Batch Transform outputs, for image files."""
from __future__ import annotations

import json
import sys

import click

from seg.cli.options import classes_option, device_option, engine_option, json_option


@click.command()
@click.argument("model")
@click.argument("images")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for <stem>.png and <stem>_overlay.png.")
@click.option("--batch-out", type=click.Path(file_okay=False),
              help="Folder for Batch Transform outputs <input name>.out (the /invocations response bodies).")
@click.option("--accept", default="image/png", show_default=True,
              help="With --batch-out: image/png or application/x-recordio-protobuf.")
@click.option("--max-side", default=1024, show_default=True, help="Long side above which images are scaled down for the network.")
@classes_option()
@json_option("Print the written files as JSON.")
@engine_option()
@device_option()
def predict(model, images, out, batch_out, accept, max_side, classes_path, as_json, engine, device):
    """Predict IMAGES (a file, a folder or an s3:// prefix): class-index PNG masks the size of each input
    plus overlays (--out), and/or Batch Transform outputs (--batch-out)."""
    from seg.serve.batch import predict_images
    from seg.serve.predictor import Predictor

    if not (out or batch_out):
        raise click.UsageError("give --out (masks + overlays), --batch-out (Batch Transform outputs), or both")
    predictor = Predictor.load(model, engine, device, max_side=max_side, classes_path=classes_path)
    report = predict_images(predictor, images, out=out, batch_out=batch_out, accept=accept,
                            progress=sys.stderr.isatty())
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        for item in report.predictions or []:
            click.echo(f"{item['image']} -> {item['mask']}")
        for path in report.batch.written if report.batch else []:
            click.echo(str(path))
    if report.failed:
        raise click.ClickException(report.failure_summary())
