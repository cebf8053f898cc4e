"""`seg serve`: nginx in front of gunicorn's workers (seg/serve/proxy.py says why), or the workers alone."""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from seg.errors import ServeConfigError
from seg.serve.protocol import _MB, DEFAULT_MAX_PIXELS, execution_parameters

log = logging.getLogger(__name__)

STOP_BUDGET = 25  # seconds from SIGTERM to exit; SageMaker kills the container at 30


@dataclass(frozen=True)
class ServeConfig:
    """How ``seg serve`` runs: where the model is, where to listen, how many workers (one model each)."""

    model_dir: Path
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = 1
    max_pixels: int = DEFAULT_MAX_PIXELS
    timeout: int = 120  # seconds one request may take before gunicorn replaces the worker
    read_timeout: int = 60  # seconds a client has for its header, and between two reads of its body
    proxy: bool = True  # nginx in front; without it a slow client holds a worker
    classes_path: Optional[Path] = None  # classes.json naming the classes of a model that has none
    runtime: str = "engine"  # "onnx": ONNX Runtime serves a file from `seg export --format onnx`, no framework
    device: str = "auto"  # "auto" (engine: a GPU when one is seen; ONNX: the CPU), "cpu", or "gpu" (CUDA; the CPU
    #                       with a warning when absent)
    strict_device: bool = False  # "gpu" without CUDA fails instead of falling back to the CPU
    engine: Optional[str] = None  # runtime "engine": torch or mxnet (default $SEG_ENGINE, else torch)


RUNTIMES, DEVICES = ("engine", "onnx"), ("auto", "cpu", "gpu")


def run_server(config: ServeConfig, environ: Mapping[str, str] = os.environ) -> None:
    """Serve until SIGTERM (graceful: requests in flight finish, 25 s at most; SageMaker kills at 30 s).

    On CPU with OMP_NUM_THREADS unset the cores are shared out between the workers so they do not
    oversubscribe it. Raises ServeConfigError for bad settings, a missing nginx, and when the workers
    cannot load the model or the port cannot be bound.
    """
    model_dir = str(config.model_dir)  # a path, or an s3:// URI that each worker fetches
    if not model_dir.startswith("s3://") and not Path(model_dir).exists():
        raise ServeConfigError(f"model {model_dir} does not exist; pass a model folder, a model.tar.gz or an "
                               f"s3:// URI of one (or opt_ml whose model/ holds it)")
    if config.workers < 1 or config.max_pixels < 1 or config.read_timeout < 1:
        raise ServeConfigError(f"workers={config.workers}, max_pixels={config.max_pixels}, "
                               f"read_timeout={config.read_timeout}: each must be at least 1")
    _check_runtime(config, model_dir)
    import gunicorn  # noqa: F401  (here, so a missing `cpu` extra is named before any child starts)

    parameters = execution_parameters(environ, config.workers)
    if config.workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // config.workers))
    if config.proxy:
        _run_behind_nginx(config, model_dir, parameters.max_payload_in_mb * _MB)
        return
    from seg.serve.workers import run_workers

    try:
        run_workers(model_dir, f"{config.host}:{config.port}", config.workers, config.max_pixels, config.timeout,
                    graceful_timeout=STOP_BUDGET, classes_path=_str(config.classes_path), **_runtime(config))
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise ServeConfigError(f"the server stopped (gunicorn exit {exc.code}): the workers could not load "
                                   f"the model in {model_dir} or bind {config.host}:{config.port}; "
                                   f"see the log above") from None


def _check_runtime(config: ServeConfig, model_dir: str) -> None:
    """Runtime and device settings that go together; for ONNX, a readable seg ONNX file (checked once, here,
    so a foreign file gets one clear error instead of every worker failing)."""
    if config.runtime not in RUNTIMES or config.device not in DEVICES:
        raise ServeConfigError(f"runtime={config.runtime!r}, device={config.device!r}: use runtime engine or onnx, "
                               "device auto, cpu or gpu")
    if config.runtime == "engine":
        from seg.engines import load_engine

        load_engine(config.engine)  # a missing extra is named once, here, before any child starts
        if config.strict_device:
            raise ServeConfigError("strict_device applies to runtime=onnx; an engine given device=gpu without a "
                                   "GPU always fails")
        return
    if model_dir.startswith("s3://"):
        raise ServeConfigError(f"runtime=onnx serves a local .onnx file or folder, not {model_dir}; download it "
                               "first (SageMaker extracts model.tar.gz into /opt/ml/model)")
    from seg.serve.onnx_predictor import check_onnx_model, providers

    check_onnx_model(model_dir)
    if config.strict_device:
        providers(config.device, strict=True)


def _runtime(config: ServeConfig) -> dict:
    return {"runtime": config.runtime, "device": config.device, "strict_device": config.strict_device,
            "engine": config.engine}


def _str(path) -> Optional[str]:
    return None if path is None else str(path)


def _run_behind_nginx(config: ServeConfig, model_dir: str, max_body_bytes: int) -> None:
    """gunicorn on a private unix socket, then nginx on host:port; SIGTERM stops nginx first (it finishes the
    requests it holds), then the workers. Either dying stops the other and raises ServeConfigError."""
    from seg.serve.proxy import ProxySettings, find_nginx, nginx_argv, nginx_conf
    from seg.serve.supervisor import Child, Stopped, Supervisor

    nginx = find_nginx()
    with tempfile.TemporaryDirectory(prefix="seg-serve-") as tmp:
        rundir = Path(tmp)
        rundir.chmod(0o711)  # nginx's workers drop root: they must reach the socket
        socket, conf, ready = rundir / "gunicorn.sock", rundir / "nginx.conf", rundir / "ready"
        conf.write_text(nginx_conf(ProxySettings(config.host, config.port, socket, config.read_timeout,
                                                 max_body_bytes, config.timeout + 10, ready), rundir))
        settings = {"model_dir": str(model_dir), "bind": f"unix:{socket}", "workers": config.workers,
                    "max_pixels": config.max_pixels, "timeout": config.timeout, "graceful_timeout": 5,
                    "ready_file": str(ready), "classes_path": _str(config.classes_path),
                    "log_level": logging.getLogger().getEffectiveLevel(), **_runtime(config)}
        supervisor = Supervisor()
        try:
            supervisor.start(Child("gunicorn", [sys.executable, "-m", "seg.serve.workers", json.dumps(settings)]))
            exited = supervisor.wait(until=socket.exists, deadline=time.monotonic() + 120)
            if exited is None and not socket.exists():
                raise ServeConfigError(f"gunicorn did not bind {socket} within 120 s; see the log above")
            if exited is None:
                supervisor.start(Child("nginx", nginx_argv(nginx, conf, rundir), stop_signal=signal.SIGQUIT))
                exited = supervisor.wait()
        except Stopped as stop:
            log.info("%s: stopping nginx, then the workers", stop)
            exited = None
        finally:
            supervisor.stop(STOP_BUDGET)
            supervisor.close()
    if exited is not None:
        raise ServeConfigError(_death_message(exited.name, exited.proc.returncode, config, model_dir))


def _death_message(name: str, code: int, config: ServeConfig, model_dir: str) -> str:
    from seg.serve.workers import APP_LOAD_ERROR

    if name == "gunicorn":
        why = f"the workers could not load the model in {model_dir}" if code == APP_LOAD_ERROR else "it died"
    else:
        why = f"it could not listen on {config.host}:{config.port} (in use?)" if code == 1 else "it died"
    return f"the server stopped ({name} exit {code}): {why}; see the log above"
