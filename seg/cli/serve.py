"""seg serve: the SageMaker hosting contract (/ping, /invocations, /execution-parameters) on gunicorn."""
from pathlib import Path

import click


@click.command()
@click.argument("model", required=False, type=click.Path(path_type=Path))
@click.option("--opt-ml", type=click.Path(path_type=Path), envvar="SEG_OPT_ML", default="/opt/ml", show_default=True,
              help="Container root; without MODEL the model is read from <opt-ml>/model.")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, envvar=["SEG_WORKERS", "SAGEMAKER_MODEL_SERVER_WORKERS"],
              type=click.IntRange(1), help="Worker processes, each with its own copy of the model "
              "(env SEG_WORKERS or SAGEMAKER_MODEL_SERVER_WORKERS).")
@click.option("--max-pixels", default=4096 * 4096, show_default=True, envvar="SEG_MAX_PIXELS",
              type=click.IntRange(1), help="Larger images are refused with 413.")
@click.option("--read-timeout", default=60, show_default=True, envvar="SEG_READ_TIMEOUT", type=click.IntRange(1),
              help="Seconds a client has to send its request header, and between two reads of its body.")
@click.option("--proxy/--no-proxy", default=True, show_default=True,
              help="nginx in front of gunicorn (needs nginx); --no-proxy lets slow clients hold workers: debugging only.")
def serve(model, opt_ml, host, port, workers, max_pixels, read_timeout, proxy):
    """Serve MODEL (a folder `seg train` wrote) over HTTP until SIGTERM.

    POST /invocations takes image/jpeg, image/png or application/x-image and answers a class-index
    PNG (Accept image/png, the default) or class probabilities (application/x-recordio-protobuf).
    """
    from seg.errors import ServeConfigError
    from seg.jobs.contract import OptML
    from seg.serve.server import ServeConfig, run_server

    model_dir = model if model is not None else OptML(opt_ml).model_dir
    try:
        run_server(ServeConfig(model_dir, host, port, workers, max_pixels, read_timeout=read_timeout, proxy=proxy))
    except ServeConfigError as exc:
        raise click.ClickException(str(exc)) from None
