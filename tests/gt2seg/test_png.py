"""gt2seg.png: the one class-mask PNG encoder of both packages, read back by Pillow and by zlib."""
import io
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gt2seg.classes import palette_for
from gt2seg.png import SIGNATURE, decode_unfiltered, encode_indexed


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of each chunk, checking every CRC."""
    assert data[:8] == SIGNATURE
    out, at = [], 8
    while at < len(data):
        (length,), kind = struct.unpack(">I", data[at: at + 4]), data[at + 4: at + 8]
        body = data[at + 8: at + 8 + length]
        assert struct.unpack(">I", data[at + 8 + length: at + 12 + length])[0] == zlib.crc32(kind + body)
        out.append((kind, body))
        at += 12 + length
    return out


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (5, 4097), (2, 4096), (768, 1024)])
def test_pillow_reads_back_the_same_indices_and_palette(shape):
    rng = np.random.default_rng(sum(shape))
    indices = rng.integers(0, 256, shape, dtype=np.uint8)
    indices[:, : shape[1] // 2] = 3  # long runs too, as in real masks
    palette = rng.integers(0, 256, 768, dtype=np.uint8).tobytes()
    image = Image.open(io.BytesIO(encode_indexed(indices, palette)))
    assert image.format == "PNG" and image.mode == "P" and image.size == (shape[1], shape[0])
    np.testing.assert_array_equal(np.asarray(image), indices)
    assert bytes(image.getpalette("RGB")) == palette and "transparency" not in image.info


def test_chunks_are_ihdr_plte_idat_iend_and_the_idat_is_a_zlib_stream_of_unfiltered_rows():
    indices = np.arange(15, dtype=np.uint8).reshape(3, 5)
    data = encode_indexed(indices, bytes(range(30)))
    kinds = chunks(data)
    assert [k for k, _ in kinds] == [b"IHDR", b"PLTE", b"IDAT", b"IEND"]
    assert kinds[0][1] == struct.pack(">IIBBBBB", 5, 3, 8, 3, 0, 0, 0)  # 8-bit, colour type 3 (palette)
    assert kinds[1][1] == bytes(range(30)).ljust(768, b"\0")  # short palettes are padded with black
    assert zlib.decompress(kinds[2][1]) == b"".join(b"\0" + row.tobytes() for row in indices)


def test_the_same_input_gives_the_same_bytes():
    indices = np.random.default_rng(0).integers(0, 5, (200, 301), dtype=np.uint8)
    palette = palette_for([{"index": 1, "color": "#ff0000"}])
    first = encode_indexed(indices, palette)
    assert encode_indexed(indices.copy(), palette) == first
    assert encode_indexed(np.asfortranarray(indices), palette) == first  # any memory layout of the same values


def test_another_process_writes_the_same_bytes_as_one_whose_heap_has_been_churned():
    """Shards on other machines and a single run must agree byte for byte: no state the encoder might keep
    (hash tables, work buffers, freed memory it reads) may change the stream."""
    masks = [np.roll(np.repeat(np.arange(6, dtype=np.uint8), 40 * 64).reshape(240, 64), k, axis=0) for k in range(6)]
    palette = palette_for([{"index": i, "color": f"#{i * 40:02x}0000"} for i in range(1, 6)])
    for size in (1 << 12, 1 << 16, 1 << 20, 1 << 22):  # freed blocks full of bytes an encoder might pick up
        junk = [bytearray(np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)) for _ in range(4)]
        del junk
    here = [encode_indexed(m, palette) for m in masks]
    script = ("import sys, numpy as np\nfrom gt2seg.png import encode_indexed\n"
              "masks, palette = np.load(sys.argv[1])['masks'], bytes.fromhex(sys.argv[2])\n"
              "sys.stdout.write('\\n'.join(encode_indexed(m, palette).hex() for m in masks))")
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "m.npz", masks=np.stack(masks))
        out = subprocess.run([sys.executable, "-c", script, str(Path(tmp) / "m.npz"), palette.hex()],
                             capture_output=True, text=True, check=True).stdout
    assert [bytes.fromhex(h) for h in out.split("\n")] == here


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 3, 3), np.uint8), "2-D uint8 array of class indices, not a 3-D uint8"),
    (np.zeros((2, 3), np.uint16), "not a 2-D uint16"),
    (np.zeros((2, 3), np.int64), "not a 2-D int64"),
    ([[0, 1]], "not a list"),
    (np.zeros((0, 3), np.uint8), "1 to 2147483647 pixels on each side, not 3x0"),
])
def test_refuses_what_is_not_a_2d_uint8_array(bad, message):
    with pytest.raises(ValueError, match=message):
        encode_indexed(bad, bytes(768))


@pytest.mark.parametrize("size", [769, 5])
def test_refuses_a_palette_that_is_not_up_to_256_triples(size):
    with pytest.raises(ValueError, match=f"not {size} bytes"):
        encode_indexed(np.zeros((2, 2), np.uint8), bytes(size))



def png(width, height, rows: bytes, *, colour=3, depth=8, interlace=0, palette=bytes(range(30)), between=b"",
        split=1) -> bytes:
    """A PNG with exactly these (filter byte + values) rows, deflated by zlib, its IDAT in `split` chunks."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    stream = zlib.compress(rows)
    cut = -(-len(stream) // split)
    idat = [chunk(b"IDAT", stream[i: i + cut]) for i in range(0, len(stream), cut)]
    return b"".join([SIGNATURE, chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)),
                     chunk(b"PLTE", palette) if colour == 3 else b"", idat[0], between, *idat[1:], chunk(b"IEND", b"")])


def test_unfiltered_palette_and_gray_pngs_are_read_back_as_pillow_reads_them():
    indices = np.random.default_rng(2).integers(0, 10, (9, 13), dtype=np.uint8)
    rows = b"".join(b"\0" + row.tobytes() for row in indices)
    for data in (encode_indexed(indices, bytes(range(30))), png(13, 9, rows), png(13, 9, rows, split=3),
                 png(13, 9, rows, colour=0)):
        values, palette = decode_unfiltered(data)
        pillow = Image.open(io.BytesIO(data))
        np.testing.assert_array_equal(values, np.asarray(pillow))
        assert values.flags.c_contiguous and values.dtype == np.uint8
        if pillow.mode == "P":
            assert palette == bytes(pillow.getpalette("RGB"))


def test_anything_but_an_unfiltered_8_bit_gray_or_palette_png_is_left_to_pillow():
    indices = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rows = b"".join(b"\0" + row.tobytes() for row in indices)
    sub = b"".join(b"\1" + row.tobytes() for row in indices)  # filter 1 (Sub) on every row
    refused = {
        "filtered rows": png(4, 3, sub),
        "interlaced": png(4, 3, rows, interlace=1),
        "16-bit": png(2, 3, rows, colour=0, depth=16),
        "RGB": png(4, 1, rows[:13], colour=2),
        "truncated stream": png(4, 3, rows)[:-20],
        "too few rows": png(4, 3, rows[:10]),
        "no palette": png(4, 3, rows).replace(b"PLTE", b"pLTE"),
        "a chunk between the IDATs": png(4, 3, rows, split=2, between=struct.pack(">I", 0) + b"tEXt" + bytes(4)),
        "not a PNG": b"GIF89a" + bytes(40),
    }
    for why, data in refused.items():
        assert decode_unfiltered(data) is None, why


def test_an_idat_that_inflates_past_the_header_stops_at_the_declared_rows():
    rows = bytes(10 * 11)
    bomb = png(10, 10, rows + bytes(5_000_000))  # 5 MB of zeros after the 10 rows
    values, _ = decode_unfiltered(bomb)
    assert values.shape == (10, 10) and not values.any()
