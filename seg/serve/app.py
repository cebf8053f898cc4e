"""The SageMaker inference contract (docs/CONTRACTS.md): the WSGI app that gunicorn runs.

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

import json
import logging
import os
import threading
from http import HTTPStatus
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from gt2seg.classes import palette_for
from gt2seg.png import encode_indexed
from seg.errors import ClientError
from seg.pipe.recordio import pack
from seg.serve.protocol import (
    _TEXT,
    PNG,
    ExecutionParameters,
    Limits,
    _read_body,
    decode_image,
    request_type,
    response_type,
)
from seg.serve.record import probability_record

log = logging.getLogger(__name__)


def encode_mask_png(mask: np.ndarray, classes: Sequence[Mapping]) -> bytes:
    """Single-channel class-index PNG (mode P, the class colours as palette), like the training labels:
    gt2seg's own mask encoder, so a served mask is the same PNG as a converted one."""
    return encode_indexed(np.asarray(mask, dtype=np.uint8), palette_for(classes))


def render(predictor, rgb: np.ndarray, accept: str) -> bytes:
    """The response body for one decoded image: a mask PNG or the framed probability Record."""
    if accept == PNG:
        return encode_mask_png(predictor.predict(rgb), predictor.classes)
    return pack(probability_record(predictor.probabilities(rgb)))


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
