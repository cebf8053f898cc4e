"""seg predict: masks and overlays, or Batch Transform outputs, for image files."""
from __future__ import annotations

import json
import sys

import click

from seg.errors import ContractError, DataError, HyperparameterError


def _known_errors():
    from gt2seg.errors import Gt2SegError
    from seg.errors import ModelError, TrainingError

    return (HyperparameterError, ContractError, DataError, ModelError, TrainingError, Gt2SegError, OSError)


@click.command()
@click.argument("model")
@click.argument("images")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for <stem>.png and <stem>_overlay.png.")
@click.option("--batch-out", type=click.Path(file_okay=False),
              help="Folder for Batch Transform outputs <input name>.out (the /invocations response bodies).")
@click.option("--accept", default="image/png", show_default=True,
              help="With --batch-out: image/png or application/x-recordio-protobuf.")
@click.option("--max-side", default=1024, show_default=True, help="Long side above which images are scaled down for the network.")
@click.option("--classes", "classes_path", type=click.Path(exists=True, dir_okay=False),
              help="classes.json naming the model's classes (default: the model's own, else class_0..C-1).")
@click.option("--json", "as_json", is_flag=True, help="Print the written files as JSON.")
def predict(model, images, out, batch_out, accept, max_side, classes_path, as_json):
    """Predict IMAGES (a file, a folder or an s3:// prefix): class-index PNG masks the size of each input
    plus overlays (--out), and/or Batch Transform outputs (--batch-out)."""
    import tempfile

    from seg.errors import ClientError, ServeConfigError
    from seg.serve.batch import list_images, predict_files, transform_files
    from seg.serve.predictor import Predictor

    if not (out or batch_out):
        raise click.UsageError("give --out (masks + overlays), --batch-out (Batch Transform outputs), or both")
    result = {}
    try:
        with tempfile.TemporaryDirectory(prefix="seg-predict-") as scratch:
            if images.startswith("s3://"):
                from gt2seg.storage import download_tree

                download_tree(images, scratch, progress=sys.stderr.isatty())
                images = scratch
            predictor = Predictor.load(model, max_side=max_side, classes_path=classes_path)
            if out:
                result["predictions"] = predict_files(predictor, images, out)
            if batch_out:
                report = transform_files(predictor, list_images(images), batch_out, accept=accept,
                                         progress=sys.stderr.isatty())
                result["batch"] = report.to_json()
    except (ClientError, ServeConfigError) as exc:
        raise click.ClickException(getattr(exc, "message", str(exc))) from None
    except _known_errors() as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result if batch_out else result["predictions"], indent=2))
    else:
        for item in result.get("predictions", []):
            click.echo(f"{item['image']} -> {item['mask']}")
        for path in result.get("batch", {}).get("written", []):
            click.echo(path)
    failed = result.get("batch", {}).get("failed", [])
    if failed:
        raise click.ClickException("; ".join(f"{f['input']}: {f['error']}" for f in failed))
