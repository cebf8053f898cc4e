"""seg train: a local layout (--data) or the SageMaker /opt/ml contract."""
import json

import click

from seg.errors import ContractError, DataError, HyperparameterError


def _known_errors():
    from gt2seg.errors import Gt2SegError
    from seg.errors import ModelError, TrainingError

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
    from seg.jobs.contract import OptML
    from seg.train import entry as training

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


