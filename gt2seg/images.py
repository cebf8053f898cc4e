"""Open untrusted image bytes safely and prepare training JPEGs.

Every decode goes through `open_image`, so a truncated file, bytes that are
not an image, or a decompression bomb all become one ItemError naming the
line and the ref, never a Pillow traceback.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile, UnidentifiedImageError

from gt2seg.errors import ItemError

EXIF_ORIENTATION = 0x0112


def open_image(data: bytes, *, line: int, ref: str, what: str = "image") -> Image.Image:
    """Open (header only) with Pillow's bomb guard turned into an error; `load` decodes."""
    if not data:
        raise ItemError(line, f"{what} {ref} is empty (0 bytes); re-export it")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ItemError(
                line,
                f"{what} {ref} is too large to decode safely ({exc}); if it is genuine, raise the "
                "limit with --max-pixels",
            ) from None
        except UnidentifiedImageError:
            raise ItemError(
                line, f"{what} {ref} is not an image Pillow can read (starts with {data[:8]!r})"
            ) from None
        except Exception as exc:  # a damaged header: OSError, SyntaxError, struct.error...
            raise ItemError(line, f"{what} {ref} is damaged or truncated ({exc}); re-export it") from None
    return img


def load(img: Image.Image, *, line: int, ref: str, what: str) -> Image.Image:
    """Decode fully. Truncation is always an error here, even in a process where another library
    (GluonCV does, on import) has set Pillow's process-wide LOAD_TRUNCATED_IMAGES."""
    tolerant, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        img.load()
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for damaged files
        raise ItemError(line, f"{what} {ref} is damaged or truncated ({exc}); re-export it") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = tolerant
    return img


@dataclass(frozen=True)
class PreparedImage:
    data: bytes
    size: tuple[int, int]
    reencoded: bool
    exif_rotated: bool


def prepare_image(data: bytes, *, line: int, ref: str) -> PreparedImage:
    """JPEGs pass byte for byte (after a full, cheap 1/8-scale decode that catches
    truncation); anything else becomes a JPEG with alpha composited on white."""
    img = open_image(data, line=line, ref=ref)
    size = img.size
    rotated = img.format in ("JPEG", "MPO") and img.getexif().get(EXIF_ORIENTATION, 1) not in (1, None)
    if img.format == "JPEG":
        img.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
        load(img, line=line, ref=ref, what="image")
        return PreparedImage(data, size, False, rotated)
    load(img, line=line, ref=ref, what="image")
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        img = canvas
    elif img.mode != "RGB":
        img = img.convert("RGB")
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=95)
    return PreparedImage(out.getvalue(), size, True, rotated)
