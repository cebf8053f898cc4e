"""`seg serve`: gunicorn workers, each with its own model, over the WSGI app."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from seg.errors import ServeConfigError
from seg.serve.app import InferenceApp
from seg.serve.protocol import _MB, DEFAULT_MAX_PIXELS, Limits, execution_parameters

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeConfig:
    """How ``seg serve`` runs: where the model is, where to listen, how many workers (one model each)."""

    model_dir: Path
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = 1
    max_pixels: int = DEFAULT_MAX_PIXELS
    timeout: int = 120  # seconds one request may take before gunicorn replaces the worker
    classes_path: Optional[Path] = None  # classes.json overriding the model's own


def _exit_worker(exc: BaseException) -> None:
    """A worker without a model is useless: exit with gunicorn's APP_LOAD_ERROR so the master halts."""
    logging.shutdown()
    os._exit(4)


def run_server(config: ServeConfig, environ: Mapping[str, str] = os.environ) -> None:
    """Run gunicorn until SIGTERM (graceful: requests in flight finish, 25 s at most; SageMaker kills at 30 s).

    Each of ``workers`` processes loads its own Predictor: on GPU ``worker_number % gpus`` when MXNet sees
    GPUs, else on the CPU, where (when OMP_NUM_THREADS is unset) the cores are shared out between workers
    so they do not oversubscribe it. Raises ServeConfigError for bad settings and when the workers cannot
    load the model.
    """
    from gunicorn.app.base import BaseApplication

    model_dir = config.model_dir  # a path, or an s3:// URI that each worker fetches
    if not str(model_dir).startswith("s3://") and not Path(model_dir).exists():
        raise ServeConfigError(f"model {model_dir} does not exist; pass the folder `seg train` wrote or its "
                               f"model.tar.gz (or --opt-ml DIR whose model/ holds it)")
    if config.workers < 1 or config.max_pixels < 1:
        raise ServeConfigError("--workers and --max-pixels must be at least 1")
    parameters = execution_parameters(environ, config.workers)
    limits = Limits(parameters.max_payload_in_mb * _MB, config.max_pixels)
    if config.workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // config.workers))

    worker = {}  # filled in each worker by the post_fork hook

    def remember_worker(server, child):
        worker["number"] = child.age

    def load_predictor():
        import mxnet as mx  # imported here, in the worker, after the fork

        from seg.serve.predictor import Predictor

        gpus = mx.context.num_gpus()
        return Predictor.load(model_dir, ctx=mx.gpu(worker.get("number", 0) % gpus) if gpus else mx.cpu(),
                              classes_path=config.classes_path)

    class Server(BaseApplication):
        def load_config(self):
            settings = {"bind": f"{config.host}:{config.port}", "workers": config.workers,
                        "worker_class": "sync", "timeout": config.timeout, "graceful_timeout": 25,
                        "proc_name": "seg-serve", "errorlog": "-", "loglevel": "info",
                        "post_fork": remember_worker,
                        "control_socket_disable": True}  # else gunicorn>=25 shares ~/.gunicorn/gunicorn.ctl
            for key, value in settings.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self):
            return InferenceApp(load_predictor, limits=limits, parameters=parameters,
                                on_load_error=_exit_worker)

    try:
        Server().run()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise ServeConfigError(f"the server stopped (gunicorn exit {exc.code}): the workers could not load "
                                   f"the model in {model_dir} or bind {config.host}:{config.port}; "
                                   f"see the log above") from None
