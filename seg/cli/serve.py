"""seg serve: the SageMaker hosting contract (/ping, /invocations, /execution-parameters): nginx in front of gunicorn."""

import click

from seg.cli.options import classes_option, device_option, engine_option, opt_ml_option, workers_option
from seg.serve.protocol import DEFAULT_MAX_PIXELS


@click.command()
@click.argument("model", required=False)
@opt_ml_option("Container root; without MODEL the model is read from <opt-ml>/model "
               "(default: $SEG_OPT_ML, else /opt/ml).")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@workers_option(1, "Worker processes, each with its own copy of the model "
                "(env SEG_WORKERS or SAGEMAKER_MODEL_SERVER_WORKERS).",
                envvar=["SEG_WORKERS", "SAGEMAKER_MODEL_SERVER_WORKERS"])
@click.option("--max-pixels", default=DEFAULT_MAX_PIXELS, show_default=True, envvar="SEG_MAX_PIXELS",
              type=click.IntRange(1), help="Larger images are refused with 413.")
@click.option("--read-timeout", default=60, show_default=True, envvar="SEG_READ_TIMEOUT", type=click.IntRange(1),
              help="Seconds a client has to send its request header, and between two reads of its body.")
@click.option("--proxy/--no-proxy", default=True, show_default=True,
              help="nginx in front of gunicorn (needs nginx); --no-proxy lets slow clients hold workers: debugging only.")
@classes_option()
@click.option("--runtime", type=click.Choice(["engine", "onnx"]), default="engine", show_default=True,
              envvar="SEG_RUNTIME", help="engine: --engine runs the model file; onnx: serve a .onnx file from "
              "`seg export --format onnx` (or a folder's model.onnx) with ONNX Runtime, no framework (env SEG_RUNTIME).")
@engine_option()
@device_option()
@click.option("--strict-device", is_flag=True, envvar="SEG_STRICT_DEVICE",
              help="With --runtime onnx --device gpu: fail instead of falling back to the CPU.")
def serve(model, opt_ml, host, port, workers, max_pixels, read_timeout, proxy, classes_path, runtime, engine, device,
          strict_device):
    """Serve MODEL (a folder, model.tar.gz or s3:// URI; seg's or the built-in's; with --runtime onnx an .onnx
    file or a folder holding one) over HTTP until SIGTERM.

    POST /invocations takes image/jpeg, image/png or application/x-image and answers a class-index
    PNG (Accept image/png, the default) or class probabilities (application/x-recordio-protobuf).
    """
    from seg.jobs.contract import OptML
    from seg.serve.server import ServeConfig, run_server

    model_dir = model if model is not None else OptML(opt_ml).model_dir
    run_server(ServeConfig(model_dir, host, port, workers, max_pixels, read_timeout=read_timeout, proxy=proxy,
                           classes_path=classes_path, runtime=runtime, device=device,
                           strict_device=strict_device, engine=engine))
