"""seg export: the symbol + params pair (with its signature) of a seg or built-in model."""
import json

import click


@click.command("export")
@click.argument("model")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--classes", "classes_path", type=click.Path(exists=True, dir_okay=False),
              help="classes.json naming the model's classes (default: the model's own, else class_0..C-1).")
def export(model, out, classes_path):
    """Write OUT/model-symbol.json + OUT/model-0000.params (any input H×W) and OUT/model-signature.json for
    MODEL: a folder, a model.tar.gz or an s3:// URI, written by seg or by SageMaker's built-in algorithm."""
    from gt2seg.errors import Gt2SegError
    from seg.errors import SegError
    from seg.models.export import export_model

    try:
        result = export_model(model, out, classes_path)
    except (SegError, Gt2SegError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"symbol": str(result.symbol), "params": str(result.params),
                           "signature": str(result.signature), "architecture": result.architecture}))
