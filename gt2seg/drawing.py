"""Masks given as shapes rather than files: what an importer of a labeling tool's export hands the pipeline.

COCO's polygons and RLE, and Label Studio's brush strokes and polygons, are not mask files: each item's mask
has to be drawn. The seam: an importer reads the export into records as usual and gives each record a
`Drawing` (its image's size, its shapes in the export's order, the overlap rule) in `Job.drawings`; the pool
worker that converts the item renders the drawing into an array of colour-map keys (`render`) where it would
otherwise decode a mask file, and from there the item goes the same way as a decoded mask (the index route of
gt2seg.masks, the PNG encoder, the cache). So the per-item work stays in the workers, nothing is written
outside OUT (no intermediate mask files at all), and a drawing's digest stands in for the mask file's version
in the item's cache fingerprint. The parent only checks what is cheap and structural (`polygon_problem`,
`rle_problem`, `brush_problem`), so bad shapes are listed before any item converts. The other seam, the
importer writing class-index PNGs into OUT's `.gt2seg/` for the pipeline to read back, was left aside: the
importer runs in the parent before OUT is claimed, so it would draw every mask serially, unlocked, and
`gt2seg inspect` (which reads through the same importers) would have to write.

Decoders: COCO polygons are rasterised by pycocotools (`frPyObjects`, `merge`: exactly what its
`COCO.annToMask` does; it is the `importers` extra), and RLE, uncompressed, compressed or pycocotools', is
expanded here run by run, so masks are pycocotools' own pixels (tests/gt2seg/test_drawing.py compares them with
pycocotools' `decode`, the importers' tests with `annToMask`). Label Studio's brush RLE (thi.ng's rle-pack of
the RGBA stroke picture) is decoded here (`decode_brush`, compared with Label Studio's own
`label_studio_converter.brush.decode_rle` in the tests); its alpha channel is the stroke, and a pixel belongs
to it where alpha >= the conversion's alpha threshold (`--alpha-threshold`, 128), as for the transparency of
Ground Truth masks.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gt2seg.classes import IGNORE
from gt2seg.errors import Gt2SegError, install_extra_hint

if TYPE_CHECKING:
    import numpy as np

# What a pixel two shapes cover becomes: the later one's class (the export's order: the tools draw later
# objects on top), the smaller's (by pixel count), the larger's, or the ignore label where their classes differ.
OVERLAPS = ("later", "smaller", "larger", "ignore")
KINDS = ("polygons", "rle", "brush")


@dataclass(frozen=True)
class Shape:
    """One object: the colour-map key it paints, and its outline.

    kind polygons: data is a tuple of flat (x0, y0, x1, y1, ...) pixel-coordinate tuples, one per part
    (COCO's polygon list; their union is the object). kind rle: data is COCO's `counts`, a tuple of ints
    (uncompressed) or a str (compressed), column-major at the drawing's size. kind brush: data is Label
    Studio's RLE bytes of the H x W x 4 RGBA stroke picture."""

    key: int
    kind: str
    data: tuple | str | bytes
    what: str  # names the shape in messages: "annotation 12", "result 'k3Jx'"


@dataclass(frozen=True)
class Drawing:
    width: int
    height: int
    shapes: tuple[Shape, ...]
    overlap: str = "later"
    what: str = ""  # the export file and the item, for messages

    @property
    def digest(self) -> str:
        """What the drawn mask depends on: a cached item is drawn again when it changes."""
        digest = hashlib.sha256(json.dumps([self.width, self.height, self.overlap]).encode())
        for s in self.shapes:
            data = s.data.hex() if isinstance(s.data, bytes) else s.data
            digest.update(json.dumps([s.key, s.kind, data]).encode())
        return digest.hexdigest()


def require_decoder() -> None:
    """pycocotools is importable, or a Gt2SegError saying which extra brings it."""
    try:
        import pycocotools.mask  # noqa: F401
    except ImportError:
        raise Gt2SegError("drawing COCO and Label Studio masks needs pycocotools; "
                          f"{install_extra_hint('importers')}") from None


def polygon_problem(points) -> str | None:
    """Why a flat x, y list cannot be a polygon (None: it can)."""
    # set(map(type)) and one sum: a large export has millions of coordinates, checked in the parent
    if not isinstance(points, (list, tuple)) or not set(map(type, points)) <= {int, float} or not math.isfinite(
            sum(points)):
        return "a polygon must be a list of finite numbers x0, y0, x1, y1, ..."
    if len(points) % 2:
        return f"a polygon has an odd count of coordinates ({len(points)})"
    if len(points) < 6:
        return f"a polygon needs at least 3 points, this one has {len(points) // 2}"
    return None


def rle_problem(counts, width: int, height: int) -> str | None:
    """Why uncompressed COCO counts cannot be a W x H mask (compressed ones are checked when drawn)."""
    if isinstance(counts, str):
        return None
    if not isinstance(counts, (list, tuple)) or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0
                                                        for c in counts):
        return "RLE counts must be a list of non-negative integers or a compressed string"
    if sum(counts) != width * height:
        return f"RLE counts add up to {sum(counts)} pixels, its image has {width} x {height} = {width * height}"
    return None


def brush_problem(rle: bytes, width: int, height: int) -> str | None:
    """Why Label Studio brush RLE cannot be a W x H RGBA picture, from its header."""
    if len(rle) < 7:
        return f"brush RLE of {len(rle)} bytes is shorter than its header"
    values = int.from_bytes(rle[:4], "big")
    if values != 4 * width * height:
        return (f"brush RLE holds {values} values, its image {width} x {height} x 4 (RGBA) = "
                f"{4 * width * height}")
    return None


def compressed_counts(text: str | bytes) -> list[int]:
    """COCO's compressed RLE string as counts: 6-bit digits (chr(48 + d)), 5 value bits and a continuation bit
    each, least significant first, sign-extended; from the fourth count on, each is stored as its difference
    to the count two before (so each parity's counts are a running sum). Raises ValueError when the string is
    not one. Worked on all digits at once: a mask's string has thousands."""
    import numpy as np

    data = text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)
    if not data:
        return []
    digits = np.frombuffer(data, np.uint8).astype(np.int64) - 48
    bad = np.flatnonzero((digits < 0) | (digits >= 64))
    if bad.size:
        raise ValueError(f"character {chr(data[bad[0]])!r} is not in a compressed RLE")
    last = (digits & 0x20) == 0  # a count's last digit
    if not last[-1]:
        raise ValueError("the compressed RLE ends inside a count")
    ends = np.flatnonzero(last)
    starts = np.concatenate(([0], ends[:-1] + 1))
    place = np.arange(digits.size) - np.repeat(starts, ends - starts + 1)  # digit's place within its count
    if place.max() > 11:  # more than 60 bits: not a count pycocotools writes
        raise ValueError("a count is longer than 12 digits")
    values = np.add.reduceat((digits & 0x1F) << (5 * place), starts)
    negative = (digits[ends] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * (place[ends[negative]] + 1))
    values[3::2] = np.cumsum(values[1::2])[1:]  # x[i] + c[i - 2], from the fourth count on
    values[4::2] = np.cumsum(values[2::2])[1:]
    return values.tolist()


_RUNS = (b"\0", b"\1")


def _expand(counts: list[int], width: int, height: int, what: str):
    """The W x H (transposed) boolean mask of column-major counts: alternate runs of 0 and 1, from 0."""
    import numpy as np

    if min(counts, default=0) < 0 or sum(counts) != width * height:
        raise ValueError(f"{what} RLE counts add up to {sum(counts)} pixels (or hold a negative count), its image "
                         f"has {width} x {height} = {width * height}")
    return np.frombuffer(b"".join([_RUNS[i & 1] * n for i, n in enumerate(counts)]), bool).reshape(width, height)


def decode_brush(rle: bytes) -> np.ndarray:
    """Label Studio's brush RLE (thi.ng rle-pack) -> the flat uint8 values it holds. The header: 32 bits of
    value count, 5 bits of word size - 1, four 4-bit run-length field sizes - 1; then chunks: a flag bit (1: one
    value repeated, 0: literal values), 2 bits choosing the length field, the length - 1, then the value(s).
    Raises ValueError on RLE that ends early or overruns its count."""
    import numpy as np  # the importers read exports without it; the workers draw with it

    bits = format(int.from_bytes(rle, "big"), f"0{8 * len(rle)}b") if rle else ""
    if len(bits) < 53:
        raise ValueError("shorter than its header")
    count, word = int(bits[:32], 2), int(bits[32:37], 2) + 1
    if word > 8:
        raise ValueError(f"{word}-bit values; a brush stroke is 8-bit RGBA")
    sizes = [int(bits[37 + 4 * i:41 + 4 * i], 2) + 1 for i in range(4)]
    values, lengths, done, pos, end = [], [], 0, 53, len(bits)
    while done < count:
        if pos + 3 > end:
            raise ValueError(f"ends after {done} of {count} values")
        size = sizes[int(bits[pos + 1:pos + 3], 2)]
        if pos + 3 + size > end:
            raise ValueError(f"ends after {done} of {count} values")
        run = int(bits[pos + 3:pos + 3 + size], 2) + 1
        series, pos = bits[pos] == "1", pos + 3 + size
        words = 1 if series else run
        if pos + words * word > end or (not series and done + run > count):
            raise ValueError(f"ends after {done} of {count} values" if pos + words * word > end
                             else f"literal values run past its count of {count}")
        if series:
            values.append(int(bits[pos:pos + word], 2))
            lengths.append(run)
        else:
            values.extend(int(bits[p:p + word], 2) for p in range(pos, pos + run * word, word))
            lengths.extend([1] * run)
        pos += words * word
        done += run
    return np.repeat(np.array(values, np.uint8), lengths)[:count]  # a repeat past the count is cut, as LS does


def _mask(shape: Shape, width: int, height: int, alpha_threshold: int):
    """The shape's mask, transposed (W x H, row-major: COCO's column-major order), boolean.

    Polygons: pycocotools rasterises them into RLE (`frPyObjects`, and `merge` for the parts' union, exactly
    as `COCO.annToMask`); every RLE is then expanded here, one bytes run per count, which gives the same pixels
    as pycocotools' `decode` (tests/gt2seg/test_drawing.py) at a tenth of its time."""
    import numpy as np

    if shape.kind == "polygons":
        from pycocotools import mask as coco

        rle = coco.merge(coco.frPyObjects([list(p) for p in shape.data], height, width))
        return _expand(compressed_counts(rle["counts"]), width, height, f"{shape.what}:")
    if shape.kind == "rle":
        if isinstance(shape.data, str):
            try:
                counts = compressed_counts(shape.data)
            except ValueError as exc:
                raise ValueError(f"{shape.what}: compressed RLE: {exc}") from None
            return _expand(counts, width, height, f"{shape.what}: compressed")
        return _expand(list(shape.data), width, height, f"{shape.what}:")
    try:
        rgba = decode_brush(shape.data)
    except ValueError as exc:
        raise ValueError(f"{shape.what}: brush RLE {exc}") from None
    if rgba.size != 4 * width * height:
        raise ValueError(f"{shape.what}: brush RLE holds {rgba.size} values, its image {4 * width * height}")
    return np.ascontiguousarray((rgba.reshape(height, width, 4)[:, :, 3] >= alpha_threshold).T)


def render(drawing: Drawing, alpha_threshold: int = 128) -> np.ndarray:
    """The H x W uint8 array of colour-map keys the drawing paints (0 where no shape is), by its overlap rule.
    Raises ValueError naming the shape when one cannot be decoded.

    COCO's masks are column-major, so the shapes are painted into the transposed (W x H, row-major) array,
    where `copyto` paints each mask in one contiguous pass (a sixth of the time of painting across the
    strides), and the result is transposed back once."""
    import numpy as np

    painted = np.zeros((drawing.width, drawing.height), np.uint8)  # transposed
    masks = [(s.key, _mask(s, drawing.width, drawing.height, alpha_threshold)) for s in drawing.shapes]
    if drawing.overlap in ("smaller", "larger"):  # paint the winner last; equal areas keep the export's order
        areas = [int(np.count_nonzero(m)) for _, m in masks]
        order = sorted(range(len(masks)), key=lambda i: -areas[i] if drawing.overlap == "smaller" else areas[i])
        masks = [masks[i] for i in order]
    if drawing.overlap != "ignore":
        for key, mask in masks:
            np.copyto(painted, key, where=mask)
    else:
        claimed = np.zeros_like(painted, bool)
        for key, mask in masks:
            conflict = mask & claimed & (painted != key)
            np.copyto(painted, key, where=mask & ~claimed)
            np.copyto(painted, IGNORE, where=conflict)
            claimed |= mask
    return np.ascontiguousarray(painted.T)
