"""The SageMaker inference contract (SAGEMAKER_SPEC §5): a WSGI app run by gunicorn, plus Batch Transform files.

One request = one image. ``POST /invocations`` decodes the body (JPEG or PNG, checked against a pixel
limit *before* the pixels are decoded), runs the worker's Predictor and answers with a class-index PNG or
the RecordIO-framed ``aialgs.data.Record`` of class probabilities. Every client fault is a 4xx with a
one-line message; only a fault of ours is a 5xx, and neither ends the worker.

Pre-processing is the Predictor's, i.e. training's: RGB (transparency flattened on white, as gt2seg does
for training images), ImageNet mean/std. Large images: the network runs at a long side of at most
``Predictor.max_side`` (1024) and the logits are resized back, so the outputs always have the input's
H x W; what grows with the image is the (C, H, W) probability tensor, about 12 x C x H x W bytes at peak.
``--max-pixels`` (default 4096 x 4096; about 4 GB at 21 classes) bounds that: larger images get a 413.

Each gunicorn worker loads its own Predictor in a background thread right after the fork (MXNet's engine
threads do not survive a fork, so the master never imports MXNet); ``/ping`` answers 503 until then.
"""
from __future__ import annotations

import io
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
from PIL import Image

from seg.contract import write_atomic
from seg.data import load_strict, mask_image
from seg.recordio import pack
from seg.records import probability_record

log = logging.getLogger(__name__)

PNG = "image/png"
RECORDIO_PROTOBUF = "application/x-recordio-protobuf"
PROTOBUF = "application/x-protobuf"
REQUEST_TYPES = ("image/jpeg", "image/png", "application/x-image")
RESPONSE_TYPES = (PNG, RECORDIO_PROTOBUF, PROTOBUF)
DEFAULT_MAX_PAYLOAD_MB = 6  # the real-time InvokeEndpoint limit
DEFAULT_MAX_PIXELS = 4096 * 4096
_MB = 1024 * 1024
_DRAIN_LIMIT = 64 * _MB  # read (and drop) an oversized body up to this much so the client sees the 413
_BATCH_STRATEGIES = ("SINGLE_RECORD", "MULTI_RECORD")
_TEXT = "text/plain; charset=utf-8"


class ClientError(Exception):
    """A request the client must fix; ``status`` is the HTTP code it maps to."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class ServeConfigError(ValueError):
    """A server setting (option or SAGEMAKER_* variable) that cannot be used."""


@dataclass(frozen=True)
class Limits:
    """What one request may carry: body bytes (413 above) and image pixels (413 above)."""

    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_MB * _MB
    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class ExecutionParameters:
    """The answer to ``GET /execution-parameters``, which Batch Transform asks before sending records."""

    max_concurrent_transforms: int
    batch_strategy: str
    max_payload_in_mb: int

    def to_json(self) -> dict:
        return {"MaxConcurrentTransforms": self.max_concurrent_transforms,
                "BatchStrategy": self.batch_strategy, "MaxPayloadInMB": self.max_payload_in_mb}


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ServeConfigError(f"{name}={text!r} is not a positive integer; unset it or give e.g. {name}={default}")
    return value


def execution_parameters(environ: Mapping[str, str], workers: int) -> ExecutionParameters:
    """SAGEMAKER_MAX_PAYLOAD_IN_MB, _BATCH_STRATEGY, _MAX_CONCURRENT_TRANSFORMS (defaults: 6, SINGLE_RECORD, workers).

    MULTI_RECORD is accepted: an image has no record delimiter, so each request still holds one image.
    """
    strategy = environ.get("SAGEMAKER_BATCH_STRATEGY", "").strip().upper() or "SINGLE_RECORD"
    if strategy not in _BATCH_STRATEGIES:
        raise ServeConfigError(f"SAGEMAKER_BATCH_STRATEGY={strategy!r}: use SINGLE_RECORD or MULTI_RECORD")
    return ExecutionParameters(
        max_concurrent_transforms=_positive_int(environ, "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", workers),
        batch_strategy=strategy,
        max_payload_in_mb=_positive_int(environ, "SAGEMAKER_MAX_PAYLOAD_IN_MB", DEFAULT_MAX_PAYLOAD_MB))


def _media_type(header: str) -> str:
    return header.split(";", 1)[0].strip().lower()


def request_type(content_type: Optional[str]) -> str:
    """The request's media type, or 415 naming the accepted ones."""
    media = _media_type(content_type or "")
    if media not in REQUEST_TYPES:
        shown = repr(content_type) if content_type else "missing"
        raise ClientError(415, f"Content-Type {shown} is not supported; send the image as one of "
                               f"{', '.join(REQUEST_TYPES)}")
    return media


def response_type(accept: Optional[str]) -> str:
    """The best response type for an Accept header (q-values honoured; */*, image/* or none mean PNG), else 406."""
    best, best_q = None, 0.0
    for item in (accept or "*/*").split(","):
        media, *params = [part.strip() for part in item.split(";")]
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        candidate = {"*/*": PNG, "image/*": PNG, "application/*": RECORDIO_PROTOBUF}.get(media, media)
        if candidate in RESPONSE_TYPES and q > best_q:
            best, best_q = candidate, q
    if best is None:
        raise ClientError(406, f"Accept {accept!r} is not supported; ask for one of {', '.join(RESPONSE_TYPES)}")
    return best


def decode_image(body: bytes, max_pixels: int) -> np.ndarray:
    """JPEG/PNG bytes -> HxWx3 uint8 RGB; 400 if empty or undecodable, 413 above max_pixels.

    The size is read from the header before any pixel is decoded, so a small file that claims a huge
    image costs nothing. Transparent images are composited on white, as gt2seg does for training images.
    """
    if not body:
        raise ClientError(400, "the request body is empty; send the image bytes")
    try:
        image = Image.open(io.BytesIO(body), formats=("JPEG", "PNG"))
    except Image.DecompressionBombError as exc:
        raise ClientError(413, f"the image is over the pixel limit of {max_pixels} ({exc}); downscale it") from None
    except Exception as exc:  # PIL raises several types for unreadable headers
        raise ClientError(400, f"the body is not a decodable JPEG or PNG image ({exc})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ClientError(413, f"the image is {width}x{height} = {width * height} pixels, over the limit of "
                               f"{max_pixels}; downscale it or raise --max-pixels")
    try:
        load_strict(image)  # a cut-off upload must be a 400
        if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
            image = image.convert("RGBA")
            canvas = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(canvas, image)
        rgb = np.asarray(image.convert("RGB"))
    except Exception as exc:  # truncated or corrupt pixel data
        raise ClientError(400, f"the image data is corrupt or truncated ({exc})") from None
    return rgb


def encode_mask_png(mask: np.ndarray, classes: Sequence[Mapping]) -> bytes:
    """Single-channel class-index PNG (mode P, the class colours as palette), like the training labels."""
    out = io.BytesIO()
    mask_image(mask, classes).save(out, format="PNG", compress_level=1)  # level 1: ~3x faster than 6, masks compress well anyway
    return out.getvalue()


def render(predictor, rgb: np.ndarray, accept: str) -> bytes:
    """The response body for one decoded image: a mask PNG or the framed probability Record."""
    if accept == PNG:
        return encode_mask_png(predictor.predict(rgb), predictor.classes)
    return pack(probability_record(predictor.probabilities(rgb)))


def _read_body(environ: Mapping, limit: int) -> bytes:
    """The request body, or 413 when it is longer than ``limit`` (drained, so the client gets the answer)."""
    stream = environ["wsgi.input"]
    try:
        declared = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        raise ClientError(400, f"Content-Length {environ.get('CONTENT_LENGTH')!r} is not a number") from None
    if declared > limit:
        remaining = min(declared, _DRAIN_LIMIT)
        while remaining > 0 and stream.read(min(remaining, 1 << 16)):
            remaining -= 1 << 16
        raise ClientError(413, f"the body is {declared} bytes, over the {limit}-byte payload limit "
                               f"(SAGEMAKER_MAX_PAYLOAD_IN_MB); send a smaller image")
    body = stream.read(declared) if declared >= 0 else stream.read(limit + 1)
    if len(body) > limit:
        raise ClientError(413, f"the body is over the {limit}-byte payload limit (SAGEMAKER_MAX_PAYLOAD_IN_MB); "
                               f"send a smaller image")
    return body


class InferenceApp:
    """The WSGI app of one worker. ``load`` runs once, in a background thread, and returns the Predictor.

    ``/ping`` reports this worker's state; an invocation that arrives while the model is still loading
    waits up to ``load_wait`` seconds for it rather than failing.
    """

    def __init__(self, load: Callable[[], object], *, limits: Limits, parameters: ExecutionParameters,
                 on_load_error: Callable[[BaseException], None] = lambda exc: None, load_wait: float = 60.0):
        self.limits, self.parameters, self.load_wait = limits, parameters, load_wait
        self.predictor = None
        self._load, self._on_load_error = load, on_load_error
        self._loader = threading.Thread(target=self._load_predictor, name="seg-model-loader", daemon=True)
        self._loader.start()

    def _load_predictor(self) -> None:
        try:
            self.predictor = self._load()
        except BaseException as exc:  # report, then let the owner decide (gunicorn: stop the server)
            log.error("could not load the model: %s", exc)
            self._on_load_error(exc)
            return
        log.info("model loaded (pid %d)", os.getpid())

    def wait_loaded(self, timeout: Optional[float] = None) -> bool:
        """Block until loading has finished (or failed); True when a Predictor is ready."""
        self._loader.join(timeout)
        return self.predictor is not None

    def __call__(self, environ, start_response):
        try:
            status, content_type, body = self._route(environ)
        except ClientError as exc:
            log.info("%s %s: %d %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), exc.status, exc.message)
            status, content_type, body = exc.status, _TEXT, (exc.message + "\n").encode()
        except Exception as exc:  # a fault of ours: 500 with the reason, and the worker lives on
            log.exception("inference failed")
            status, content_type = 500, _TEXT
            body = f"internal error: {type(exc).__name__}: {exc}\n".encode()
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if status == 405:
            headers.append(("Allow", "POST" if environ.get("PATH_INFO") == "/invocations" else "GET"))
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [body]

    def _route(self, environ):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        routes = {"/ping": ("GET", self._ping), "/invocations": ("POST", self._invoke),
                  "/execution-parameters": ("GET", self._execution_parameters)}
        if path not in routes:
            raise ClientError(404, f"no such path {path!r}; use GET /ping, POST /invocations "
                                   f"or GET /execution-parameters")
        allowed, handler = routes[path]
        if method != allowed:
            raise ClientError(405, f"{method} {path} is not allowed; use {allowed}")
        return handler(environ)

    def _ping(self, environ):
        if self.predictor is None:
            return 503, _TEXT, b"model loading\n"
        return 200, _TEXT, b""

    def _execution_parameters(self, environ):
        return 200, "application/json", json.dumps(self.parameters.to_json()).encode()

    def _invoke(self, environ):
        request_type(environ.get("CONTENT_TYPE"))
        accept = response_type(environ.get("HTTP_ACCEPT"))
        rgb = decode_image(_read_body(environ, self.limits.max_payload_bytes), self.limits.max_pixels)
        if not self.wait_loaded(self.load_wait):  # another worker may have passed /ping before this one loaded
            return 503, _TEXT, b"the model is not loaded; retry when GET /ping answers 200\n"
        return 200, accept, render(self.predictor, rgb, accept)


@dataclass
class TransformReport:
    """What ``transform_files`` wrote, and which inputs failed (with the client-error message)."""

    written: list = field(default_factory=list)
    failed: list = field(default_factory=list)  # (input path, message)

    def to_json(self) -> dict:
        return {"written": [str(p) for p in self.written],
                "failed": [{"input": str(p), "error": m} for p, m in self.failed]}


def transform_files(predictor, paths: Sequence[Path], out_dir: Path, *, accept: str = PNG,
                    limits: Limits = Limits(), progress: bool = True) -> TransformReport:
    """Batch Transform outputs: ``out_dir/<input name>.out`` holding exactly the /invocations response body.

    Inputs that fail (undecodable, too large) are listed in the report and get no output; each output
    is written to a temporary name and renamed, so a partial file never carries the final name.
    """
    from tqdm import tqdm

    accept = response_type(accept)
    names = [Path(p).name for p in paths]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ServeConfigError(f"inputs share the output names {duplicates}; transform each folder separately")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = TransformReport()
    for path in tqdm([Path(p) for p in paths], desc="transform", unit="image", disable=not progress):
        try:
            body = path.read_bytes()
            if len(body) > limits.max_payload_bytes:
                raise ClientError(413, f"{len(body)} bytes, over the {limits.max_payload_bytes}-byte payload limit")
            data = render(predictor, decode_image(body, limits.max_pixels), accept)
        except ClientError as exc:
            report.failed.append((path, exc.message))
            continue
        target = out_dir / f"{path.name}.out"
        write_atomic(target, data)
        report.written.append(target)
    return report


@dataclass(frozen=True)
class ServeConfig:
    """How ``seg serve`` runs: where the model is, where to listen, how many workers (one model each)."""

    model_dir: Path
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = 1
    max_pixels: int = DEFAULT_MAX_PIXELS
    timeout: int = 120  # seconds one request may take before gunicorn replaces the worker


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

    model_dir = Path(config.model_dir)
    if not model_dir.exists():
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

        from seg.predict import Predictor

        gpus = mx.context.num_gpus()
        return Predictor.load(model_dir, ctx=mx.gpu(worker.get("number", 0) % gpus) if gpus else mx.cpu())

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
