"""seg export: the symbol + params pair (with its signature) of a seg or built-in model, or one ONNX file."""
import json

import click

from seg.cli.options import classes_option, engine_option


@click.command("export")
@click.argument("model")
@click.argument("out", type=click.Path(file_okay=False))
@classes_option()
@click.option("--format", "fmt", type=click.Choice(["mxnet", "onnx"]), default="mxnet", show_default=True,
              help="mxnet: symbol + params + signature (MXNet's format: the mxnet engine writes it); onnx: "
                   "OUT/model.onnx (any H×W, seg's metadata inside), from --engine.")
@click.option("--quantize", type=click.Choice(["int8"]),
              help="With --format onnx: also OUT/model-int8.onnx (ONNX Runtime quantization).")
@click.option("--calibration", type=click.Path(exists=True, file_okay=False),
              help="Layout whose train images calibrate INT8 (static) and whose validation split measures its "
                   "mIOU against FP32; without it INT8 is dynamic and unmeasured.")
@click.option("--calibration-images", type=click.IntRange(1),
              help="How many train images calibrate (with --calibration).  [default: 32]")
@engine_option()
def export(model, out, classes_path, fmt, quantize, calibration, calibration_images, engine):
    """Write OUT/model-symbol.json + OUT/model-0000.params (any input H×W) and OUT/model-signature.json for
    MODEL: a folder, a model.tar.gz or an s3:// URI, written by seg or by SageMaker's built-in algorithm.
    With --format onnx: OUT/model.onnx instead (and OUT/model-int8.onnx with --quantize int8).

    Prints one JSON object; with --quantize int8 the accuracy cost also goes to stderr as one line.
    """
    if fmt == "mxnet":
        if quantize or calibration or calibration_images is not None:
            raise click.UsageError("--quantize, --calibration and --calibration-images need --format onnx")
        from seg.models.export import export_model

        result = export_model(model, out, classes_path, engine)
        click.echo(json.dumps({"symbol": str(result.symbol), "params": str(result.params),
                               "signature": str(result.signature), "architecture": result.architecture}))
        return
    if calibration and not quantize:
        raise click.UsageError("--calibration needs --quantize int8")
    if calibration_images is not None and not calibration:
        raise click.UsageError("--calibration-images needs --calibration LAYOUT")
    from dataclasses import asdict

    from seg.models.export import export_onnx

    result = export_onnx(model, out, classes_path, quantize, calibration, calibration_images, engine)
    report = {"onnx": str(result.onnx), "architecture": result.architecture}
    if result.quantization is not None:
        report.update(int8=str(result.int8), quantization=asdict(result.quantization))
        click.echo(result.quantization.summary(), err=True)
    click.echo(json.dumps(report))
