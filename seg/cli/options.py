"""Options several `seg` commands share, defined once: `--json`, `--hp-file`, `--opt-ml`, `--workers`, `--classes`."""
from __future__ import annotations

import json

import click


def json_option(help: str = "Print the report as JSON."):
    return click.option("--json", "as_json", is_flag=True, help=help)


def _read_hp_file(ctx, param, handle) -> dict:
    """The file's JSON object of hyperparameters (SageMaker's hyperparameters.json shape); {} without one."""
    if handle is None:
        return {}
    try:
        values = json.load(handle)
    except ValueError as exc:
        raise click.BadParameter(f"{handle.name} is not JSON: {exc}") from None
    if not isinstance(values, dict):
        raise click.BadParameter(f'{handle.name} must hold a JSON object like {{"epochs": "10", "crop_size": "240"}}')
    return values


def hp_file_option(help: str):
    """`--hp-file FILE` (or `-` for stdin), parsed to a dict before the command runs."""
    return click.option("--hp-file", "hyperparameters", type=click.File("r"), callback=_read_hp_file, help=help)


def opt_ml_option(help: str = "Root of the SageMaker contract (default: $SEG_OPT_ML, else /opt/ml)."):
    """`--opt-ml DIR`; unset, `seg.jobs.contract.OptML` falls back to $SEG_OPT_ML, then /opt/ml."""
    return click.option("--opt-ml", envvar="SEG_OPT_ML", type=click.Path(file_okay=False), help=help)


def workers_option(default: int, help: str, **kwargs):
    return click.option("--workers", default=default, show_default=True, type=click.IntRange(min=1), help=help,
                        **kwargs)


def classes_option():
    """`--classes FILE`: class names for a model that carries none (the built-in's)."""
    return click.option("--classes", "classes_path", type=click.Path(exists=True, dir_okay=False),
                        help="classes.json naming the model's classes (default: the model's own, else class_0..C-1).")


def engine_option():
    """`--engine torch|mxnet` (env SEG_ENGINE; default torch): which framework runs the network."""
    from seg.engines import ENGINES, ENV

    return click.option("--engine", type=click.Choice(ENGINES), envvar=ENV, default=None,
                        help="Framework that runs the network: torch (default) or mxnet, the built-in's own "
                             f"(needs the cpu/gpu extra, Python <= 3.11). Env {ENV}.")


def device_option(default: str = "auto"):
    """`--device auto|cpu|gpu`: auto takes the GPUs the engine sees, else the CPU; gpu without one fails."""
    return click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default=default, show_default=True,
                        envvar="SEG_DEVICE", help="auto: the GPU(s) when the engine sees one, else the CPU; gpu "
                        "without CUDA fails (env SEG_DEVICE).")
