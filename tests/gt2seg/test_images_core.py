"""The one decoder of both packages (gt2seg.images' core): strict opening, alpha on white, no EXIF rotation."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from gt2seg.errors import ImageError
from gt2seg.images import EXIF_ORIENTATION, decode_rgb, load_strict, open_strict, to_rgb


def encode(image, fmt="PNG", **params):
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def png_header_only(width, height):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def noise(height=24, width=32, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def kind_of(data, **kwargs):
    with pytest.raises(ImageError) as err:
        load_strict(open_strict(data, **kwargs))
    return err.value


def test_each_failure_has_a_kind_and_a_message_naming_what_without_pillow_internals():
    empty = kind_of(b"", what="image a.jpg")
    assert (empty.kind, str(empty)) == ("empty", "image a.jpg is empty (0 bytes)")
    html = kind_of(b"<html>AccessDenied</html>", what="mask m.png")
    assert html.kind == "unreadable" and str(html) == "mask m.png is not an image Pillow can read (starts with b'<html>Ac')"
    assert "BytesIO" not in str(html) and "0x" not in str(html)
    full = encode(Image.fromarray(noise()))
    cut = kind_of(full[: len(full) // 2])
    assert cut.kind == "truncated" and str(cut).startswith("image is damaged or truncated (")


def test_a_format_restriction_names_the_formats():
    gif = kind_of(encode(Image.fromarray(noise()), "GIF"), formats=("JPEG", "PNG"))
    assert gif.kind == "unreadable" and "not a JPEG or PNG image" in str(gif) and "GIF87a" in gif.reason


def test_the_pixel_limit_is_checked_from_the_header_before_any_pixel_is_decoded():
    err = kind_of(png_header_only(5000, 4000), max_pixels=4096 * 4096)  # IDAT holds 100 bytes: never decoded
    assert err.kind == "too_large" and err.reason == "5000x4000 = 20000000 pixels, over the limit of 16777216"
    bomb = kind_of(png_header_only(30000, 30000))  # no explicit limit: Pillow's bomb guard is the limit
    assert bomb.kind == "too_large" and "too large to decode safely" in str(bomb)
    assert open_strict(png_header_only(5000, 4000), max_pixels=5000 * 4000).size == (5000, 4000)


def test_truncation_is_refused_even_after_gluoncv_relaxed_pillow():
    full = encode(Image.fromarray(noise(48, 64)), "JPEG")
    ImageFile.LOAD_TRUNCATED_IMAGES = True  # what `import gluoncv` does to the whole process
    try:
        assert kind_of(full[: len(full) // 2]).kind == "truncated"
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def test_transparency_of_every_kind_is_flattened_on_white_and_opaque_pixels_are_kept():
    rgba = noise(channels=4)
    rgba[..., 3] = 255
    rgba[:, :8] = (200, 0, 0, 0)  # fully transparent red: white, never red
    rgba[:, 8:16, 3] = 128
    out = decode_rgb(encode(Image.fromarray(rgba, "RGBA")))
    assert (out[:, :8] == 255).all()
    np.testing.assert_array_equal(out[:, 16:], rgba[:, 16:, :3])
    half = out[:, 8:16].astype(int)
    assert np.abs(half - (rgba[:, 8:16, :3].astype(int) * 128 + 255 * 127) / 255).max() <= 1

    palette = Image.fromarray(np.arange(24 * 32, dtype=np.uint32).reshape(24, 32).astype(np.uint8) % 4, "L")
    palette = palette.convert("P")
    palette.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120] + [0] * 756)
    keyed = decode_rgb(encode(palette, transparency=2))  # tRNS on palette index 2
    indices = np.asarray(palette)
    assert (keyed[indices == 2] == 255).all() and (keyed[indices == 1] == (40, 50, 60)).all()

    gray_alpha = Image.fromarray(np.dstack([noise(channels=1)[..., 0], np.zeros((24, 32), np.uint8)]), "LA")
    assert (decode_rgb(encode(gray_alpha)) == 255).all()


def test_grayscale_becomes_three_equal_channels():
    gray = noise(channels=1)[..., 0]
    np.testing.assert_array_equal(decode_rgb(encode(Image.fromarray(gray, "L"))), np.repeat(gray[..., None], 3, 2))
    assert to_rgb(Image.fromarray(gray, "L")).mode == "RGB"


def test_exif_orientation_is_not_applied():
    image = Image.fromarray(noise(24, 32))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # "rotate 90 CW to display"
    data = encode(image, "JPEG", exif=exif.tobytes(), quality=95)
    assert open_strict(data).getexif()[EXIF_ORIENTATION] == 6
    assert decode_rgb(data).shape == (24, 32, 3)  # the stored grid, the one the masks are drawn on
    np.testing.assert_array_equal(decode_rgb(data), np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


def test_overlapping_strict_loads_keep_truncation_refused_until_the_last_one_ends():
    from gt2seg.images import _truncation_refused

    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        first, second = _truncation_refused(), _truncation_refused()
        first.__enter__()
        second.__enter__()  # another decoding thread
        first.__exit__(None, None, None)  # ends first: the second is still decoding
        assert ImageFile.LOAD_TRUNCATED_IMAGES is False
        second.__exit__(None, None, None)
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
