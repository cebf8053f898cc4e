"""gunicorn's master and sync workers over the WSGI app, one Predictor per worker.

`seg serve` runs them in its own process with ``--no-proxy``, else as a child behind nginx
(``python -m seg.serve.workers SETTINGS_JSON``, bound to a unix socket only nginx talks to).
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional

from seg import LOG_FORMAT
from seg.serve.app import InferenceApp
from seg.serve.protocol import _MB, Limits, execution_parameters

APP_LOAD_ERROR = 4  # gunicorn's exit code when a worker cannot load the app


def _exit_worker(exc: BaseException) -> None:
    """A worker without a model is useless: exit with gunicorn's APP_LOAD_ERROR so the master halts."""
    logging.shutdown()
    os._exit(APP_LOAD_ERROR)


def _engine_predictor(model_dir: str, worker_number: int, classes_path: Optional[str], engine: Optional[str],
                      device: str):
    """The engine's Predictor (its framework imported here, in the worker, after the fork); with several GPUs
    worker N takes GPU N % count."""
    from seg.serve.predictor import Predictor

    if device != "cpu":
        device = f"{device}:{worker_number}"  # the engine takes this worker's share of its GPUs
    return Predictor.load(model_dir, engine, device, classes_path=classes_path)


def run_workers(model_dir: str, bind: str, workers: int, max_pixels: int, timeout: int,
                graceful_timeout: int, ready_file: Optional[str] = None, classes_path: Optional[str] = None,
                runtime: str = "engine", device: str = "auto", strict_device: bool = False,
                engine: Optional[str] = None) -> None:
    """Run gunicorn until SIGTERM; raises SystemExit with gunicorn's code when it stops on an error.

    Each worker loads its own predictor: the engine's (``runtime="engine"``: ``engine`` torch or mxnet, on a GPU
    when ``device`` allows and one is seen) or ONNX Runtime's (``runtime="onnx"``, on ``device``; no framework is
    imported); the first to succeed creates ``ready_file`` (nginx then answers /ping). ``model_dir`` may be an
    s3:// URI for an engine (each worker fetches it); ``classes_path`` names the classes when the model has none. Limits and execution parameters come from
    the SAGEMAKER_* variables, checked by the caller.
    """
    from gunicorn.app.base import BaseApplication

    parameters = execution_parameters(os.environ, workers)
    limits = Limits(parameters.max_payload_in_mb * _MB, max_pixels)
    worker = {}  # filled in each worker by the post_fork hook

    def remember_worker(server, child):
        worker["number"] = child.age

    def load_predictor():
        if runtime == "onnx":
            from seg.serve.onnx_predictor import OnnxPredictor

            onnx_device = "cpu" if device == "auto" else device
            predictor = OnnxPredictor.load(model_dir, onnx_device, strict_device, classes_path=classes_path)
        else:
            predictor = _engine_predictor(model_dir, worker.get("number", 0), classes_path, engine, device)
        if ready_file:
            Path(ready_file).touch()
        return predictor

    class Server(BaseApplication):
        def load_config(self):
            settings = {"bind": bind, "workers": workers, "worker_class": "sync", "timeout": timeout,
                        "graceful_timeout": graceful_timeout, "proc_name": "seg-serve", "errorlog": "-",
                        "loglevel": "info", "post_fork": remember_worker,
                        "control_socket_disable": True}  # else gunicorn>=25 shares ~/.gunicorn/gunicorn.ctl
            for key, value in settings.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self):
            return InferenceApp(load_predictor, limits=limits, parameters=parameters, on_load_error=_exit_worker)

    Server().run()


def main(argv=None) -> None:
    """Entry of the child `seg serve` starts behind nginx: one JSON object of run_workers' arguments."""
    settings = json.loads((argv or sys.argv[1:])[0])
    logging.basicConfig(level=settings.pop("log_level"), format=LOG_FORMAT)
    run_workers(settings.pop("model_dir"), **settings)


if __name__ == "__main__":
    main()
