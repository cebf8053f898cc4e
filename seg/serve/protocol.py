"""The endpoint's wire contract: media types, limits, execution parameters, request bodies (docs/CONTRACTS.md)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

from gt2seg.errors import ImageError
from gt2seg.images import decode_rgb
from seg.errors import ClientError, ServeConfigError


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

_FORMATS = ("JPEG", "PNG")

_TEXT = "text/plain; charset=utf-8"


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
    """JPEG/PNG bytes -> HxWx3 uint8 RGB through gt2seg's one decoder; 400 if empty, undecodable or
    truncated, 413 above max_pixels.

    The size is read from the header before any pixel is decoded, so a small file that claims a huge
    image costs nothing. Transparency is flattened on white and EXIF orientation is not applied, exactly
    as for training images, `seg predict` and `seg evaluate`.
    """
    try:
        return decode_rgb(body, max_pixels=max_pixels, formats=_FORMATS)
    except ImageError as exc:
        if exc.kind == "too_large":
            raise ClientError(413, f"the image is {exc.reason}; downscale it or raise --max-pixels") from None
        message = {"empty": "the request body is empty; send the image bytes",
                   "unreadable": f"the body is not a decodable JPEG or PNG image ({exc.reason})"}.get(
            exc.kind, f"the image data is corrupt or truncated ({exc.reason})")
        raise ClientError(400, message) from None


def payload_too_large(limit: int, declared: Optional[object] = None) -> str:
    """The 413 message, the app's and the proxy's alike; ``declared`` is the Content-Length, if any."""
    size = f"the body is {declared} bytes, over" if declared is not None else "the body is over"
    return f"{size} the {limit}-byte payload limit (SAGEMAKER_MAX_PAYLOAD_IN_MB); send a smaller image"


def _read_body(environ: Mapping, limit: int) -> bytes:
    """The request body; 413 when longer than ``limit`` (drained, so the client gets the answer), 400 when
    shorter than its Content-Length (a client that stopped sending: the image would be judged on a part)."""
    stream = environ["wsgi.input"]
    try:
        declared = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        raise ClientError(400, f"Content-Length {environ.get('CONTENT_LENGTH')!r} is not a number") from None
    if declared > limit:
        remaining = min(declared, _DRAIN_LIMIT)
        while remaining > 0 and stream.read(min(remaining, 1 << 16)):
            remaining -= 1 << 16
        raise ClientError(413, payload_too_large(limit, declared))
    body = stream.read(declared) if declared >= 0 else stream.read(limit + 1)
    if len(body) > limit:
        raise ClientError(413, payload_too_large(limit))
    if len(body) < declared:
        raise ClientError(400, f"the body ended after {len(body)} bytes, short of its Content-Length of "
                               f"{declared}; send the whole image")
    return body
