"""seg export: the symbol + params pair (with its signature) of a seg or built-in model."""
import json

import click

from seg.cli.options import classes_option


@click.command("export")
@click.argument("model")
@click.argument("out", type=click.Path(file_okay=False))
@classes_option()
def export(model, out, classes_path):
    """Write OUT/model-symbol.json + OUT/model-0000.params (any input H×W) and OUT/model-signature.json for
    MODEL: a folder, a model.tar.gz or an s3:// URI, written by seg or by SageMaker's built-in algorithm."""
    from seg.models.export import export_model

    result = export_model(model, out, classes_path)
    click.echo(json.dumps({"symbol": str(result.symbol), "params": str(result.params),
                           "signature": str(result.signature), "architecture": result.architecture}))
