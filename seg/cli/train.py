"""seg train / predict / evaluate: thin click layers over seg.train and seg.predict (MXNet imported lazily)."""
import json
import sys

import click

from seg.config import HyperparameterError
from seg.contract import ContractError
from seg.data import DataError


def _known_errors():
    from gt2seg.errors import Gt2SegError
    from seg.model import ModelError
    from seg.train import TrainingError

    return (HyperparameterError, ContractError, DataError, ModelError, TrainingError, Gt2SegError, OSError)


def _parse_hp(pairs):
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="--hp")
        values[key.strip()] = value
    return values


def _load_hp_file(handle):
    try:
        values = json.load(handle)
    except ValueError as exc:
        raise click.BadParameter(f"{handle.name} is not JSON: {exc}", param_hint="--hp-file") from None
    if not isinstance(values, dict):
        raise click.BadParameter(f"{handle.name} must hold a JSON object", param_hint="--hp-file")
    return values


@click.command()
@click.option("--data", help="Layout folder or s3:// prefix (gt2seg convert output). Omit for the /opt/ml contract.")
@click.option("--model-dir", type=click.Path(file_okay=False), help="Where the model artifact goes (with --data).")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False), help="Checkpoints, resumed when present.")
@click.option("--hp-file", type=click.File("r"), help="JSON object of hyperparameters (with --data); --hp wins.")
@click.option("--hp", "hps", multiple=True, metavar="KEY=VALUE", help="A hyperparameter (SageMaker name); repeat.")
@click.option("--opt-ml", envvar="SEG_OPT_ML", help="Root of the SageMaker contract (default /opt/ml).")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: on with --data).")
def train(data, model_dir, checkpoint_dir, hp_file, hps, opt_ml, progress):
    """Train FCN/PSP/DeepLabV3: from --data, or as a SageMaker training job (no data arguments)."""
    from seg import train as training
    from seg.contract import OptML

    try:
        if data:
            if not model_dir:
                raise click.UsageError("--data needs --model-dir")
            values = _load_hp_file(hp_file) if hp_file else {}
            values.update(_parse_hp(hps))
            result = training.train_layout(data, model_dir, values, checkpoint_dir, progress=progress is not False)
        else:
            result = training.run_training_job(OptML(opt_ml), progress=bool(progress))
    except _known_errors() as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        raise click.ClickException(f"internal error: {type(exc).__name__}: {exc}") from None
    click.echo(json.dumps({"model_dir": str(result.model_dir), "best_epoch": result.best_epoch,
                           "validation:mIOU": result.best_miou, "epochs_run": result.epochs_run}))


@click.command()
@click.argument("model", type=click.Path(exists=True))
@click.argument("images")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for <stem>.png and <stem>_overlay.png.")
@click.option("--batch-out", type=click.Path(file_okay=False),
              help="Folder for Batch Transform outputs <input name>.out (the /invocations response bodies).")
@click.option("--accept", default="image/png", show_default=True,
              help="With --batch-out: image/png or application/x-recordio-protobuf.")
@click.option("--max-side", default=1024, show_default=True, help="Long side above which images are scaled down for the network.")
@click.option("--json", "as_json", is_flag=True, help="Print the written files as JSON.")
def predict(model, images, out, batch_out, accept, max_side, as_json):
    """Predict IMAGES (a file, a folder or an s3:// prefix): class-index PNG masks the size of each input
    plus overlays (--out), and/or Batch Transform outputs (--batch-out)."""
    import tempfile

    from seg.predict import Predictor, list_images, predict_files
    from seg.serve import ClientError, ServeConfigError, transform_files

    if not (out or batch_out):
        raise click.UsageError("give --out (masks + overlays), --batch-out (Batch Transform outputs), or both")
    result = {}
    try:
        with tempfile.TemporaryDirectory(prefix="seg-predict-") as scratch:
            if images.startswith("s3://"):
                from gt2seg.storage import download_tree

                download_tree(images, scratch, progress=sys.stderr.isatty())
                images = scratch
            predictor = Predictor.load(model, max_side=max_side)
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


@click.command()
@click.argument("model", type=click.Path(exists=True))
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--split", type=click.Choice(["validation", "train"]), default="validation", show_default=True)
@click.option("--max-side", default=1024, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def evaluate(model, data, split, max_side, as_json):
    """mIOU, pixel accuracy and per-class IoU of MODEL on a layout folder's split, at full image size."""
    from seg.predict import Predictor, evaluate_layout

    try:
        predictor = Predictor.load(model, max_side=max_side)
        metrics = evaluate_layout(predictor, data, split, progress=sys.stderr.isatty())
    except _known_errors() as exc:
        raise click.ClickException(str(exc)) from None
    report = metrics.to_json([c["name"] for c in predictor.classes])
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"mIOU            {report['mIOU']:.4f}")
    click.echo(f"pixel accuracy  {report['pixel_accuracy']:.4f}")
    for name, iou in report["per_class_iou"].items():
        click.echo(f"  IoU {name:<20} {'n/a' if iou is None else f'{iou:.4f}'}")
