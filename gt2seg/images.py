"""Open untrusted image bytes safely: the one decoder of both packages, and training-JPEG preparation.

`open_strict` and `to_rgb` are the core every door uses: gt2seg's conversion, seg's training (File and
Pipe), `seg predict`, `seg evaluate`, `/invocations`, Batch Transform and `seg invoke`. So the same bytes
give the same pixels, and a truncated file, bytes that are not an image, or a decompression bomb is one
ImageError with a `kind`, never a Pillow traceback (or its `<_io.BytesIO object at ...>` text).

EXIF orientation is never applied, at any door: pixels are used as stored. Training JPEGs are shipped
byte for byte and their masks are checked against the stored size, so rotating at one door would pair
rotated images with unrotated masks; SageMaker's built-in reads images with MXNet's imdecode (OpenCV 3.x
in MXNet 1.x builds), which ignores the tag too. gt2seg reports such JPEGs (`exif_rotated`) instead.
"""
from __future__ import annotations

import io
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from gt2seg.errors import ImageError, ItemError

EXIF_ORIENTATION = 0x0112
WHITE = (255, 255, 255)
_HINTS = {"empty": "; re-export it", "truncated": "; re-export it",
          "too_large": "; if it is genuine, raise the limit with --max-pixels"}
_strict_lock = threading.Lock()
_strict_loads, _saved_tolerance = 0, False


def open_strict(data: bytes, *, max_pixels: Optional[int] = None, what: str = "image",
                formats: Optional[Sequence[str]] = None) -> Image.Image:
    """The header only: refuses empty or unreadable bytes and images over `max_pixels` (default: Pillow's
    bomb guard, Image.MAX_IMAGE_PIXELS) before any pixel is decoded; `load_strict` decodes."""
    if not data:
        raise ImageError(what, "empty", "empty", "0 bytes")
    limit = max_pixels or Image.MAX_IMAGE_PIXELS
    # No warnings.catch_warnings here: it swaps process-wide filters and seg decodes in threads. The size
    # check below is the limit; Pillow raises by itself only far above it (2 x MAX_IMAGE_PIXELS).
    try:
        image = Image.open(io.BytesIO(data), formats=formats)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(what, "too_large", "too large to decode safely",
                         f"over the pixel limit of {limit}: {exc}") from None
    except UnidentifiedImageError:
        kind = "an image" if formats is None else f"a {' or '.join(formats)} image"
        raise ImageError(what, "unreadable", f"not {kind} Pillow can read", f"starts with {data[:8]!r}") from None
    except Exception as exc:  # a damaged header: OSError, SyntaxError, struct.error...
        raise ImageError(what, "truncated", "damaged or truncated", str(exc)) from None
    width, height = image.size
    if limit and width * height > limit:
        raise ImageError(what, "too_large", "too large to decode safely",
                         f"{width}x{height} = {width * height} pixels, over the limit of {limit}")
    return image


@contextmanager
def _truncation_refused():
    """LOAD_TRUNCATED_IMAGES off while any thread is inside; the first in saves it, the last out restores
    it (a plain save/restore per call lets one thread restore True under another's decode)."""
    global _strict_loads, _saved_tolerance
    with _strict_lock:
        if _strict_loads == 0:
            _saved_tolerance, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
        _strict_loads += 1
    try:
        yield
    finally:
        with _strict_lock:
            _strict_loads -= 1
            if _strict_loads == 0:
                ImageFile.LOAD_TRUNCATED_IMAGES = _saved_tolerance


def load_strict(image: Image.Image, *, what: str = "image") -> Image.Image:
    """Decode fully. Truncation is always an error here, even in a process where another library
    (GluonCV does, on import) has set Pillow's process-wide LOAD_TRUNCATED_IMAGES."""
    with _truncation_refused():
        try:
            image.load()
        except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for damaged files
            raise ImageError(what, "truncated", "damaged or truncated", str(exc)) from None
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB with any transparency (alpha band, palette or colour-key tRNS) composited on white."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", image.size, WHITE)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image if image.mode == "RGB" else image.convert("RGB")


def decode_rgb(data: bytes, *, max_pixels: Optional[int] = None, what: str = "image",
               formats: Optional[Sequence[str]] = None) -> np.ndarray:
    """H x W x 3 uint8 RGB of image bytes, as every door feeds the model; raises ImageError."""
    image = open_strict(data, max_pixels=max_pixels, what=what, formats=formats)
    return np.asarray(to_rgb(load_strict(image, what=what)))


def open_image(data: bytes, *, line: int, ref: str, what: str = "image") -> Image.Image:
    """`open_strict` for a manifest line: errors become ItemErrors naming the line and the ref."""
    try:
        return open_strict(data, what=f"{what} {ref}")
    except ImageError as exc:
        raise ItemError(line, f"{exc}{_HINTS.get(exc.kind, '')}") from None


def load(img: Image.Image, *, line: int, ref: str, what: str) -> Image.Image:
    """`load_strict` for a manifest line."""
    try:
        return load_strict(img, what=f"{what} {ref}")
    except ImageError as exc:
        raise ItemError(line, f"{exc}{_HINTS.get(exc.kind, '')}") from None


@dataclass(frozen=True)
class PreparedImage:
    data: bytes
    size: tuple[int, int]
    reencoded: bool
    exif_rotated: bool


def prepare_image(data: bytes, *, line: int, ref: str) -> PreparedImage:
    """RGB JPEGs pass byte for byte (after a full, cheap 1/8-scale decode that catches
    truncation); anything else (other formats, greyscale or CMYK JPEGs) becomes an RGB JPEG with
    alpha composited on white, so every training image decodes to the same 3 channels everywhere."""
    img = open_image(data, line=line, ref=ref)
    size = img.size
    rotated = img.format in ("JPEG", "MPO") and img.getexif().get(EXIF_ORIENTATION, 1) not in (1, None)
    if img.format == "JPEG" and img.mode == "RGB":
        img.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
        load(img, line=line, ref=ref, what="image")
        return PreparedImage(data, size, False, rotated)
    load(img, line=line, ref=ref, what="image")
    out = io.BytesIO()
    to_rgb(img).save(out, format="JPEG", quality=95)
    return PreparedImage(out.getvalue(), size, True, rotated)
