import io
import platform
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from ci_skips import require
from gt2seg.errors import ImageError, ItemError
from gt2seg.images import load_strict, prepare_image
from gt2seg import masks
from gt2seg.masks import Entry, MaskPolicy, decode_mask
from gt2seg.png import encode_indexed
from gtjob import blocks, color_png, gt_palette, jpeg, palette_png, rgb

# key -> (global index, colour): a line whose key 0 is background and 1, 2 are classes
ENTRIES = (Entry(0, 0, 0xFFFFFF), Entry(1, 1, 0x2CA02C), Entry(2, 2, 0x1F77B4))
STRICT = MaskPolicy()


def decode(data, entries=ENTRIES, policy=STRICT, size=(32, 24)):
    return decode_mask(data, entries, policy, size, line=7, ref="m.png")


def test_ground_truth_palette_mask_is_read_by_index():
    mask = blocks()
    out = decode(palette_png(mask))
    assert out.route == "index"
    assert np.array_equal(out.array, mask)


def test_palette_indices_are_remapped_to_global_indices():
    # This line numbers road as 1 and building as 2; globally building=1, road=2.
    entries = (Entry(0, 0, 0xFFFFFF), Entry(1, 2, 0x2CA02C), Entry(2, 1, 0x1F77B4))
    out = decode(palette_png(blocks()), entries)
    assert np.array_equal(out.array, np.array([0, 2, 1], np.uint8)[blocks()])


def test_unused_palette_entries_do_not_matter():
    # Ground Truth's palette carries default colours for classes that are not on the line.
    out = decode(palette_png(blocks(classes=(0, 1))), ENTRIES[:2])
    assert out.route == "index" and set(np.unique(out.array)) == {0, 1}


def test_palette_with_other_colours_is_read_by_colour():
    pal = gt_palette()
    pal[3:6], pal[6:9] = list(rgb("#1f77b4")), list(rgb("#2ca02c"))  # indices 1 and 2 swapped
    out = decode(palette_png(blocks(), palette=pal))
    assert out.route == "palette-colour"
    assert np.array_equal(out.array, np.array([0, 2, 1], np.uint8)[blocks()])


def test_transparent_palette_mask_uses_alpha_threshold():
    # Lookout-for-Vision style: every entry is the class colour; alpha carries the shape;
    # background is black with alpha 0 (a colour not in the map).
    idx = np.zeros((24, 32), np.uint8)
    idx[5:10, 5:10] = 2  # opaque
    idx[12:14, 5:10] = 1  # alpha 100: below threshold -> background
    pal = [0, 0, 0] + list(rgb("#23a436")) * 255
    entries = (Entry(0, 1, 0x23A436),)  # key 0 is the foreground class "cracked", no BACKGROUND entry
    out = decode(palette_png(idx, palette=pal, transparency=bytes([0, 100, 255])), entries)
    assert out.route == "palette-colour"
    expected = np.zeros_like(idx)
    expected[5:10, 5:10] = 1
    assert np.array_equal(out.array, expected)
    assert out.transparent_pixels == 24 * 32 - 25


def test_alpha_threshold_is_configurable():
    idx = np.full((24, 32), 1, np.uint8)
    pal = [0, 0, 0] + list(rgb("#23a436")) * 255
    data = palette_png(idx, palette=pal, transparency=bytes([0, 100]))
    entries = (Entry(0, 1, 0x23A436),)
    assert decode(data, entries, MaskPolicy(alpha_threshold=50)).array.max() == 1
    assert decode(data, entries, MaskPolicy(alpha_threshold=128)).array.max() == 0


def test_rgba_mask_matches_colours_case_insensitively_and_drops_transparent_pixels():
    mask = blocks()
    alpha = np.full(mask.shape, 255)
    alpha[0, :] = 0
    data = color_png(mask, {0: "#FFFFFF", 1: "#2CA02C", 2: "#1F77B4"}, alpha=alpha)
    out = decode(data)
    expected = mask.copy()
    expected[0, :] = 0
    assert out.route == "colour" and np.array_equal(out.array, expected)


def test_rgb_mask_is_matched_by_colour():
    out = decode(color_png(blocks(), {0: "#ffffff", 1: "#2ca02c", 2: "#1f77b4"}))
    assert np.array_equal(out.array, blocks())


def test_unknown_colours_fail_naming_colour_pixels_and_line():
    mask = blocks()
    mask[0, :4] = 3
    data = color_png(mask, {0: "#ffffff", 1: "#2ca02c", 2: "#1f77b4", 3: "#abcdef"})
    with pytest.raises(ItemError) as err:
        decode(data)
    assert err.value.line == 7
    assert "#abcdef (4 px)" in str(err.value) and "--unknown-color" in str(err.value)
    assert "colours that are not in the line's internal-color-map" in str(err.value)


@pytest.mark.parametrize("policy, value", [("background", 0), ("ignore", 255), ("nearest", 1)])
def test_unknown_colour_policies(policy, value):
    mask = blocks()
    mask[0, :4] = 3
    data = color_png(mask, {0: "#ffffff", 1: "#2ca02c", 2: "#1f77b4", 3: "#2ca030"})  # near building
    out = decode(data, policy=MaskPolicy(unknown=policy))
    assert (out.array[0, :4] == value).all()
    assert out.unknown_pixels == 4


def test_mask_values_outside_the_colour_map_are_an_error():
    mask = blocks()
    mask[3, 3] = 9
    with pytest.raises(ItemError, match=r"values that are not keys of the line's internal-color-map: 9 \(1 px\)"):
        decode(palette_png(mask), tuple(Entry(e.key, e.index, None) for e in ENTRIES))


def test_jobs_without_hex_color_use_indices_even_with_another_palette():
    pal = [7] * 768
    out = decode(palette_png(blocks(), palette=pal), tuple(Entry(e.key, e.index, None) for e in ENTRIES))
    assert out.route == "index" and np.array_equal(out.array, blocks())


def test_grayscale_mask_of_indices_is_read_by_index():
    data = io.BytesIO()
    Image.fromarray(blocks(), "L").save(data, format="PNG")
    assert np.array_equal(decode(data.getvalue()).array, blocks())


def test_single_value_mask_of_another_size_is_expanded():
    # Lookout-for-Vision "normal" lines point at one 16x16 all-white dummy mask.
    data = color_png(np.zeros((16, 16), np.uint8), {0: "#ffffff"})
    out = decode(data, size=(64, 48))
    assert out.expanded and out.array.shape == (48, 64) and out.array.max() == 0


def test_other_size_mismatch_is_rejected_with_the_fix():
    with pytest.raises(ItemError, match="is 32x24 but its image is 64x48; pass --resize-masks"):
        decode(palette_png(blocks()), size=(64, 48))


def test_resize_masks_uses_nearest_neighbour():
    out = decode(palette_png(blocks()), policy=MaskPolicy(resize=True), size=(64, 48))
    assert out.resized and out.array.shape == (48, 64)
    assert set(np.unique(out.array)) == {0, 1, 2}


def test_truncated_png_is_reported():
    data = palette_png(blocks())
    with pytest.raises(ItemError, match="damaged or truncated"):
        decode(data[: len(data) // 2])


def test_bytes_that_are_not_an_image_are_reported():
    with pytest.raises(ItemError, match="not an image"):
        decode(b"<html>AccessDenied</html>")


def test_decompression_bomb_is_refused_before_decoding():
    # A valid PNG header claiming 30000x30000 pixels, with almost no data.
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    with pytest.raises(ItemError, match="too large to decode safely.*--max-pixels"):
        decode(png)


def test_encoded_mask_is_single_channel_palette_png_with_the_same_values():
    arr = blocks()
    pal = bytes(range(256)) * 3
    img = Image.open(io.BytesIO(encode_indexed(arr, pal)))
    assert img.mode == "P" and np.array_equal(np.asarray(img), arr)


def test_jpeg_source_is_kept_byte_for_byte():
    data = jpeg()
    prepared = prepare_image(data, line=1, ref="a.jpg")
    assert prepared.data == data and not prepared.reencoded and prepared.size == (32, 24)


def test_rgba_png_source_becomes_jpeg_composited_on_white():
    arr = np.zeros((24, 32, 4), np.uint8)
    arr[..., 0] = 200
    arr[:, 16:, 3] = 255  # left half transparent
    buf = io.BytesIO()
    Image.fromarray(arr, "RGBA").save(buf, format="PNG")
    prepared = prepare_image(buf.getvalue(), line=1, ref="a.png")
    out = np.asarray(Image.open(io.BytesIO(prepared.data)))
    assert prepared.reencoded and Image.open(io.BytesIO(prepared.data)).format == "JPEG"
    assert out[:, :12].mean() > 245  # transparent -> white
    assert abs(int(out[:, 20:, 0].mean()) - 200) < 6 and out[:, 20:, 1].mean() < 10


def test_truncated_jpeg_source_is_reported():
    data = jpeg(64, 48)
    with pytest.raises(ItemError, match="line 3: image a.jpg is damaged or truncated"):
        prepare_image(data[: len(data) // 2], line=3, ref="a.jpg")


def test_truncated_jpeg_is_reported_even_after_gluoncv_relaxed_pillow():
    from PIL import ImageFile

    data = jpeg(64, 48)
    ImageFile.LOAD_TRUNCATED_IMAGES = True  # what `import gluoncv` does to the whole process
    try:
        with pytest.raises(ItemError, match="damaged or truncated"):
            prepare_image(data[: len(data) // 2], line=3, ref="a.jpg")
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def _gray(indices):
    data = io.BytesIO()
    Image.fromarray(indices, "L").save(data, format="PNG")
    return data.getvalue()


@pytest.mark.parametrize("data, size, policy", [
    (palette_png(blocks()), (32, 24), STRICT),  # index
    (palette_png(blocks(), palette=[255, 255, 255, 0x1F, 0x77, 0xB4, 0x2C, 0xA0, 0x2C] + [7] * 759), (32, 24),
     STRICT),  # palette-colour
    (color_png(blocks(), {0: "#ffffff", 1: "#2ca02c", 2: "#1f77b4"}), (32, 24), STRICT),  # colour, one channel
    (color_png(blocks(), {0: "#ffffff", 1: "#2ca02c", 2: "#1f77b4"}, alpha=np.full((24, 32), 40, np.uint8)),
     (32, 24), STRICT),  # colour with alpha: all transparent
    (_gray(blocks()), (32, 24), STRICT),  # grayscale index
    (color_png(np.zeros((16, 16), np.uint8), {0: "#ffffff"}), (64, 48), STRICT),  # expanded
    (palette_png(blocks()), (64, 48), MaskPolicy(resize=True)),  # resized
    (color_png(np.array([[0, 1], [2, 2]], np.uint8), {0: "#ffffff", 1: "#123456", 2: "#1f77b4"}), (2, 2),
     MaskPolicy(unknown="ignore")),  # an unknown colour set to ignore (255)
])
def test_the_counts_a_decode_reports_are_the_histogram_of_its_mask(data, size, policy):
    out = decode(data, size=size, policy=policy)
    assert out.counts == tuple(np.bincount(out.array.ravel(), minlength=256).tolist())


def test_every_route_counts_its_output_exactly():
    gray_colours = (Entry(0, 0, 0x000000), Entry(1, 1, 0x808080), Entry(2, 2, 0xFFFFFF))
    cases = [  # (mask bytes, entries, route)
        (palette_png(blocks()), ENTRIES, "index"),
        (palette_png(blocks()), (Entry(0, 0, 0xFFFFFF), Entry(1, 2, 0x2CA02C), Entry(2, 1, 0x1F77B4)), "index"),
        (palette_png(blocks(), palette=[255, 255, 255, 0x1F, 0x77, 0xB4, 0x2C, 0xA0, 0x2C] + [7] * 759), ENTRIES,
         "palette-colour"),
        (_gray(np.array([0, 128, 255], np.uint8)[blocks()]), gray_colours, "colour"),  # gray levels, not keys
        (color_png(blocks(), {0: "#ffffff", 1: "#2ca02c", 2: "#1f77b4"}), ENTRIES, "colour"),
        (color_png(blocks(), {0: "#ffffff", 1: "#2ca02c", 2: "#1f77b4"}, alpha=(blocks() != 1) * 255), ENTRIES,
         "colour"),
    ]
    for data, entries, route in cases:
        out = decode(data, entries)
        assert out.route == route
        assert out.counts == tuple(np.bincount(out.array.ravel(), minlength=256).tolist())
    gray = decode(cases[3][0], gray_colours)
    assert np.array_equal(gray.array, blocks())


def _same(a, b) -> bool:
    """The same decode result, whichever decoder gave the pixels."""
    ignored = {"array": None, "decoder": None}
    return np.array_equal(a.array, b.array) and {**vars(a), **ignored} == {**vars(b), **ignored}


def _pyspng():
    """pyspng, which install_requires pulls in everywhere but on Linux aarch64 (no wheel there)."""
    if platform.machine() == "aarch64":
        return pytest.importorskip("pyspng", reason="pyspng is left out on aarch64: Pillow decodes those masks")
    return require("pyspng", "install_requires pulls it in on this platform")


def _decode_both_ways(data, monkeypatch, **kw):
    """The decode through libspng and through Pillow (as where pyspng has no wheel)."""
    _pyspng()
    fast = decode(data, **kw)
    with monkeypatch.context() as patch:
        patch.setattr(masks, "pyspng", None)
        slow = decode(data, **kw)
    assert (fast.decoder, slow.decoder) == ("libspng", "pillow")
    return fast, slow


@pytest.mark.parametrize("alpha", [None, 255, 40, "half"])
def test_libspng_and_pillow_decode_rgb_and_rgba_masks_alike(alpha, monkeypatch):
    mask = blocks(64, 48)
    if alpha == "half":
        alpha = np.where(np.arange(64) < 32, 127, 128)[None, :].repeat(48, 0)  # either side of the threshold
    elif alpha is not None:
        alpha = np.full(mask.shape, alpha)
    data = color_png(mask, {0: "#ffffff", 1: "#2ca02c", 2: "#1f77b4"}, alpha=alpha)
    fast, slow = _decode_both_ways(data, monkeypatch, size=(64, 48))
    assert _same(fast, slow)
    expected = mask if alpha is None or np.all(alpha == 255) else np.where(alpha < 128, 0, mask)
    assert np.array_equal(fast.array, expected)
    assert fast.transparent_pixels == int((alpha < 128).sum()) if alpha is not None else fast.transparent_pixels == 0


def test_a_mask_of_thousands_of_colours_is_classified_per_pixel(monkeypatch):
    rng = np.random.default_rng(5)
    colours = rng.choice(1 << 24, 6000, replace=False)  # far more than Pillow's getcolors limit of 4096
    ids = rng.integers(0, colours.size, (96, 128))
    ids[:, :10] = 0  # a run or two among the noise
    pixels = np.stack([(colours[ids] >> s) & 255 for s in (16, 8, 0)], axis=-1).astype(np.uint8)
    data = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(data, format="PNG")
    known = 5000  # the other 1000 colours are not in the map: ignored
    entries = tuple(Entry(i % 256, i % 5, int(c)) for i, c in enumerate(colours[:known]))
    fast, slow = _decode_both_ways(data.getvalue(), monkeypatch, entries=entries, policy=MaskPolicy(unknown="ignore"),
                                   size=(128, 96))
    expected = np.where(ids < known, ids % 5, 255).astype(np.uint8)
    assert _same(fast, slow)
    for out in (fast, slow):
        assert out.route == "colour" and np.array_equal(out.array, expected)
        assert out.unknown_pixels == int((ids >= known).sum())
        assert out.counts == tuple(np.bincount(expected.ravel(), minlength=256).tolist())


def test_a_truncated_rgb_png_gives_pillows_error_through_libspng_too(monkeypatch):
    pyspng = _pyspng()
    data = color_png(blocks(256, 192), {0: "#ffffff", 1: "#2ca02c", 2: "#1f77b4"})
    data = data[: len(data) * 2 // 3]
    with pytest.raises(RuntimeError):
        pyspng.load(data)  # libspng refuses these bytes itself, so the error below is Pillow's
    with pytest.raises(ItemError) as fast:
        decode(data, size=(256, 192))
    with monkeypatch.context() as patch:
        patch.setattr(masks, "pyspng", None)
        with pytest.raises(ItemError) as slow:
            decode(data, size=(256, 192))
    assert str(fast.value) == str(slow.value) and "line 7: mask m.png is damaged or truncated" in str(fast.value)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_runs_expand_back_to_the_pixels_they_were_found_in(channels):
    rng = np.random.default_rng(channels)
    for pixels in (rng.integers(0, 3, (40, 50, channels), dtype=np.uint8).repeat(7, axis=1),  # long runs
                   rng.integers(0, 256, (40, 50, channels), dtype=np.uint8),  # noise: numpy's repeat
                   np.zeros((1, 1, channels), np.uint8)):
        pixels = pixels[..., 0] if channels == 1 else pixels
        runs = masks._Runs.of(pixels)
        flat = pixels.reshape(pixels.shape[0] * pixels.shape[1], -1)
        ids = np.unique(flat, axis=0, return_inverse=True)[1].reshape(-1).astype(np.uint8)
        assert np.array_equal(runs.expand(ids[runs.starts]), ids)  # every pixel, through its run
        assert runs.lengths.sum() == flat.shape[0] and (runs.lengths > 0).all()


def _unfiltered_gray(values):
    """An 8-bit grayscale PNG with unfiltered rows (Pillow filters its L images)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    height, width = values.shape
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(b"\0" + row.tobytes() for row in values))) + chunk(b"IEND", b""))


def _outcome(data, **kw):
    try:
        return decode(data, **kw)
    except ItemError as exc:
        return str(exc)


@pytest.mark.parametrize("case", ["gt", "transparency", "short palette", "gray", "gray colours", "extra rows",
                                  "truncated", "chunk between idats", "chunk cut short after the pixels"])
def test_unfiltered_pngs_decode_as_pillow_decodes_them(case, monkeypatch):
    mask = blocks()
    if case in ("gray", "gray colours"):
        data = _unfiltered_gray(np.array([0, 128, 255], np.uint8)[mask] if case == "gray colours" else mask)
    else:
        short = [255, 255, 255, 0x2C, 0xA0, 0x2C, 0x1F, 0x77, 0xB4] + [7] * 51  # 20 entries: still an 8-bit PNG
        data = palette_png(mask, palette=short if case == "short palette" else None,
                           transparency=bytes([255, 100]) if case == "transparency" else None)
    entries = (Entry(0, 0, 0), Entry(1, 1, 0x808080), Entry(2, 2, 0xFFFFFF)) if case == "gray colours" else ENTRIES
    at = data.index(b"IDAT") - 4
    length = int.from_bytes(data[at: at + 4], "big")
    if case == "extra rows":  # the stream holds 3 rows more than the header declares
        stream = zlib.compress(b"".join(b"\0" + row.tobytes() for row in np.vstack([mask, mask[:3]])))
        data = data[:at] + struct.pack(">I", len(stream)) + b"IDAT" + stream + bytes(4) + data[at + 12 + length:]
    elif case == "truncated":
        data = data[: at + 8 + length // 2]
    elif case == "chunk between idats":
        half = length // 2
        idat = data[at + 8: at + 8 + length]
        data = (data[:at] + struct.pack(">I", half) + b"IDAT" + idat[:half] + bytes(4) + struct.pack(">I", 0) + b"tEXt"
                + bytes(4) + struct.pack(">I", length - half) + b"IDAT" + idat[half:] + bytes(4) + data[at + 12 + length:])
    elif case == "chunk cut short after the pixels":  # every row is there, then a whole tEXt, then a cut one
        text = b"Comment\0whole"
        whole = struct.pack(">I", len(text)) + b"tEXt" + text + struct.pack(">I", zlib.crc32(b"tEXt" + text))
        data = data[: at + 12 + length] + whole + struct.pack(">I", 100) + b"tEXtComment\0cut"
    fast = _outcome(data, entries=entries)
    with monkeypatch.context() as patch:
        patch.setattr(masks, "decode_unfiltered", lambda data: None)  # Pillow decodes, as for any other PNG
        slow = _outcome(data, entries=entries)
    if case in ("truncated", "chunk between idats", "chunk cut short after the pixels"):
        # the fast decoder declines these bytes, so Pillow decodes them and its own complaint is the error
        assert masks.decode_unfiltered(data) is None
        with pytest.raises(ImageError) as pillow:
            load_strict(Image.open(io.BytesIO(data)))
        assert fast == slow and "line 7: mask m.png is damaged or truncated" in fast and pillow.value.reason in fast
    else:
        assert (fast.decoder, slow.decoder) == ("unfiltered", "pillow") and _same(fast, slow)
        routes = {"transparency": "palette-colour", "gray colours": "colour"}
        assert fast.route == routes.get(case, "index")


def test_an_rgb_colour_key_makes_its_pixels_transparent_through_pillow():
    mask = blocks()
    arr = np.zeros(mask.shape + (3,), np.uint8)
    for i, colour in {0: "#ffffff", 1: "#2ca02c", 2: "#1f77b4"}.items():
        arr[mask == i] = rgb(colour)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="PNG", transparency=rgb("#2ca02c"))  # a tRNS colour key
    data = buf.getvalue()
    assert not masks._spng_decodes(Image.open(io.BytesIO(data)), data)  # libspng is not asked
    out = decode(data)
    assert out.route == "colour" and out.transparent_pixels == int((mask == 1).sum())
    assert np.array_equal(out.array, np.where(mask == 1, 0, mask))
