"""seg train: a local layout (--data) or the SageMaker /opt/ml contract."""
import json

import click

from seg.cli.options import device_option, engine_option, hp_file_option, opt_ml_option


def _parse_hp(ctx, param, pairs) -> dict:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not key=value")
        values[key.strip()] = value
    return values


@click.command()
@click.option("--data", help="Layout folder or s3:// prefix (gt2seg convert output). Omit for the /opt/ml contract.")
@click.option("--model-dir", type=click.Path(file_okay=False), help="Where the model artifact goes (with --data).")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False), help="Checkpoints, resumed when present.")
@hp_file_option("JSON object of hyperparameters (with --data); --hp wins.")
@click.option("--hp", "hps", multiple=True, metavar="KEY=VALUE", callback=_parse_hp,
              help="A hyperparameter (SageMaker name); repeat.")
@opt_ml_option()
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: on with --data).")
@engine_option()
@device_option()
def train(data, model_dir, checkpoint_dir, hyperparameters, hps, opt_ml, progress, engine, device):
    """Train FCN/PSP/DeepLabV3: from --data, or as a SageMaker training job (no data arguments)."""
    if data and not model_dir:
        raise click.UsageError("--data needs --model-dir")
    from seg.jobs.contract import OptML
    from seg.train import entry as training

    if data:
        result = training.train_layout(data, model_dir, {**hyperparameters, **hps}, checkpoint_dir,
                                       progress=progress is not False, engine=engine, device=device)
    else:
        result = training.run_training_job(OptML(opt_ml), progress=bool(progress), engine=engine)
    click.echo(json.dumps({"model_dir": str(result.model_dir), "best_epoch": result.best_epoch,
                           "validation:mIOU": result.best_miou, "epochs_run": result.epochs_run}))
