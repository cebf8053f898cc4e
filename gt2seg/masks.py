"""Decode one Ground Truth mask into an array of global class indices.

The hot path. Three routes, chosen per mask:
- by index: a palette (or grayscale) PNG whose used values are colour-map keys
  with matching palette colours and no transparency -- what Ground Truth
  writes -- or any mask of a job without hex-colors;
- by palette colour: any other palette PNG; the 256 palette entries (with
  their tRNS alpha) are classified once;
- by pixel colour: RGB/RGBA (and grayscale that is not keys); the distinct
  colours are classified once.
Masks are long runs of one value, so each route works per run, not per pixel:
one compare of neighbouring pixels finds the runs, and the used values, their
exact counts, the classification and the output come from the runs (per
1024 x 768 mask: 0.26 ms where Pillow's histogram() takes 1.4 ms). Any number
of colours takes the same route.
Alpha below the threshold is background. Colours or values outside the
line's map follow the unknown policy; the default names them and fails.

8-bit RGB/RGBA PNGs are decoded by libspng (pyspng) where it is installed: 1.2 ms
where Pillow takes 3.4 ms, the same pixels (PNG is lossless). Pillow still reads
the header first (the size limit), and decodes whatever libspng refuses, so
damaged bytes get Pillow's error.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from gt2seg.classes import IGNORE, ClassTable
from gt2seg.errors import ItemError
from gt2seg.images import load, open_image
from gt2seg.manifest import Record
from gt2seg.png import decode_unfiltered

try:
    import pyspng
except ImportError:  # no wheel for linux aarch64: Pillow decodes those masks (same pixels, slower)
    pyspng = None

UNKNOWN_POLICIES = ("error", "background", "ignore", "nearest")
_BYTES = [bytes([value]) for value in range(256)]


@dataclass(frozen=True)
class MaskPolicy:
    unknown: str = "error"
    alpha_threshold: int = 128
    resize: bool = False


@dataclass(frozen=True)
class Entry:
    """One colour-map entry of a line, translated to the global table."""

    key: int
    index: int
    color: int | None  # 0xRRGGBB


def line_entries(record: Record, table: ClassTable) -> tuple[Entry, ...]:
    return tuple(
        Entry(e.key, table.index_of(e.name), int(e.color[1:], 16) if e.color else None)
        for e in record.color_map
    )


@dataclass(frozen=True)
class DecodedMask:
    array: np.ndarray  # H x W uint8 global class indices (may be read-only)
    route: str  # index | palette-colour | colour
    expanded: bool
    resized: bool
    transparent_pixels: int
    unknown_pixels: int
    counts: tuple[int, ...]  # pixels per value 0..255 of `array`, known from the decode (no second pass)
    decoder: str  # what gave the pixels: unfiltered (gt2seg.png's inflate) | libspng | pillow | drawing (no file)


def _hex(color: int) -> str:
    return f"#{color:06x}"


def _resolve_unknown(found, entries, policy, line, ref, kind) -> dict:
    """Targets for unknown colours/values: found is [(value, pixel count)]."""
    listing = ", ".join(
        f"{_hex(v) if kind == 'colour' else v} ({n:,} px)" for v, n in sorted(found, key=lambda t: -t[1])[:10]
    )
    if policy.unknown == "error":
        what = "colours that are not in" if kind == "colour" else "values that are not keys of"
        raise ItemError(
            line,
            f"mask {ref} has {what} the line's internal-color-map: {listing}. Fix the mask, or "
            "choose --unknown-color background|ignore|nearest",
        )
    if policy.unknown == "background":
        return {v: 0 for v, _ in found}
    if policy.unknown == "ignore":
        return {v: IGNORE for v, _ in found}
    colored = [e for e in entries if e.color is not None]
    if kind != "colour" or not colored:
        raise ItemError(
            line, f"mask {ref} has {listing} outside the colour map and the line has no hex-colors, so "
            "--unknown-color nearest cannot apply; use background or ignore",
        )
    rgb = np.array([[(e.color >> s) & 255 for s in (16, 8, 0)] for e in colored], dtype=np.int32)
    out = {}
    for value, _ in found:
        px = np.array([(value >> s) & 255 for s in (16, 8, 0)], dtype=np.int32)
        out[value] = colored[int(np.argmin(((rgb - px) ** 2).sum(axis=1)))].index
    return out


def _color_targets(entries, line, ref) -> dict[int, int]:
    targets = {}
    for e in entries:
        if e.color is None:
            continue
        if targets.get(e.color, e.index) != e.index:
            raise ItemError(line, f"two classes of the line's colour map share colour {_hex(e.color)}; "
                                  f"mask {ref} cannot be read by colour")
        targets[e.color] = e.index
    return targets


def _classify(colours, entries, policy, line, ref):
    """colours: [(count, rgb 0xRRGGBB, alpha)] -> (targets per colour, transparent px, unknown px)."""
    known = _color_targets(entries, line, ref)
    targets, unknown = [], {}
    transparent = 0
    for count, rgb, alpha in colours:
        if alpha < policy.alpha_threshold:
            targets.append(0)
            transparent += count
        elif rgb in known:
            targets.append(known[rgb])
        else:
            targets.append(None)
            unknown[rgb] = unknown.get(rgb, 0) + count
    if unknown:
        resolved = _resolve_unknown(list(unknown.items()), entries, policy, line, ref, "colour")
        targets = [resolved[rgb] if t is None else t for t, (_, rgb, _) in zip(targets, colours)]
    return targets, transparent, sum(unknown.values())


@dataclass(frozen=True)
class _Runs:
    """The pixels of an H x W (x C) uint8 array, row after row, as runs of equal neighbours."""

    starts: np.ndarray  # flat pixel index where each run begins
    lengths: np.ndarray

    @classmethod
    def of(cls, pixels: np.ndarray) -> "_Runs":
        """One compare of each byte with the same byte of the next pixel: C channels are compared as
        bytes, not packed first (packing costs more than the compare)."""
        channels = pixels.shape[2] if pixels.ndim == 3 else 1
        flat = pixels.reshape(-1)
        changed = np.flatnonzero(flat[channels:] != flat[:-channels]) // channels + 1  # the pixel after a change
        if channels > 1:
            changed = changed[np.diff(changed, prepend=-1) != 0]  # a change of several channels counts once
        starts = np.concatenate(([0], changed))
        return cls(starts, np.diff(starts, append=flat.size // channels))

    def expand(self, targets: np.ndarray) -> np.ndarray:
        """The flat uint8 array whose runs have these values (one per run). numpy's repeat copies a
        byte at a time; joining one bytes object per run is 4x faster while runs are long."""
        pixels = int(self.starts[-1] + self.lengths[-1])
        if 32 * targets.size > pixels:  # short runs (noise): the loop would cost more than the repeat
            return np.repeat(targets, self.lengths)
        return np.frombuffer(b"".join([_BYTES[t] * n for t, n in zip(targets.tolist(), self.lengths.tolist())]),
                             np.uint8)


def _histogram(values: np.ndarray, weights) -> np.ndarray:
    """Pixels per value 0..255 (exact: float64 sums of integers far below 2**53)."""
    return np.bincount(values, weights=weights, minlength=256).astype(np.int64)


def _single(arr: np.ndarray):
    """Runs of a single-channel 8-bit mask, each run's value, the pixels per value and the used values."""
    runs = _Runs.of(arr)
    values = arr.reshape(-1)[runs.starts]
    counts = _histogram(values, runs.lengths)
    return runs, values, counts, np.flatnonzero(counts).tolist()


def _by_value(arr, runs, values, counts, lut, used):
    """arr (8-bit values) through lut (256 targets; None, unresolved, is 0), and the output's counts;
    arr itself where lut is the identity on the used values."""
    if all(lut[u] == u for u in used):
        return arr, counts
    table = np.array([0 if t is None else t for t in lut], np.uint8)
    return runs.expand(table[values]).reshape(arr.shape), _histogram(table, counts)


def _index_lut(entries) -> list:
    lut = [None] * 256
    for e in entries:
        lut[e.key] = e.index
    return lut


def _by_index(arr, runs, values, counts, used, entries, alpha, policy, line, ref):
    """The index route: values are colour-map keys; those outside follow the unknown policy."""
    lut = _index_lut(entries)
    transparent = 0
    if alpha is not None:
        for u in used:
            if alpha[u] < policy.alpha_threshold:
                lut[u] = 0
                transparent += int(counts[u])
    missing = [(u, int(counts[u])) for u in used if lut[u] is None]
    if missing:
        for value, target in _resolve_unknown(missing, entries, policy, line, ref, "value").items():
            lut[value] = target
    out, out_counts = _by_value(arr, runs, values, counts, lut, used)
    return out, "index", transparent, sum(n for _, n in missing), out_counts


def _by_value_colour(arr, runs, values, counts, used, packed, alpha, route, entries, policy, line, ref):
    """8-bit values that stand for colours (a palette's, or gray levels): the used ones are classified."""
    targets, transparent, unknown = _classify([(int(counts[u]), packed[u], alpha[u]) for u in used],
                                              entries, policy, line, ref)
    lut = [None] * 256
    for u, target in zip(used, targets):
        lut[u] = target
    out, out_counts = _by_value(arr, runs, values, counts, lut, used)
    return out, route, transparent, unknown, out_counts


def _eight_bit(img, data, line, ref) -> tuple[np.ndarray, bytes, str]:
    """A P or L mask's values, palette and decoder: an unfiltered PNG's straight from the inflate, else Pillow's."""
    if img.format == "PNG" and not getattr(img, "is_animated", False):
        simple = decode_unfiltered(data)
        if simple is not None:
            return (*simple, "unfiltered")
    load(img, line=line, ref=ref, what="mask")
    return np.asarray(img), bytes(img.getpalette("RGB") or b"") if img.mode == "P" else b"", "pillow"


def _decode_palette(img, arr, palette, entries, policy, line, ref):
    runs, values, counts, used = _single(arr)
    rgb = np.frombuffer(palette[:768].ljust(768, b"\0"), np.uint8).reshape(256, 3)
    packed = (rgb[:, 0].astype(np.int64) << 16 | rgb[:, 1].astype(np.int64) << 8 | rgb[:, 2]).tolist()
    alpha = [255] * 256
    trans = img.info.get("transparency")
    if isinstance(trans, (bytes, bytearray)):
        alpha[: len(trans)] = list(trans[:256])
    elif isinstance(trans, int):
        alpha[trans] = 0

    by_key = {e.key: e for e in entries}
    colored = all(e.color is not None for e in entries)
    if not colored or all(u in by_key and alpha[u] == 255 and packed[u] == by_key[u].color for u in used):
        return _by_index(arr, runs, values, counts, used, entries, alpha, policy, line, ref)
    return _by_value_colour(arr, runs, values, counts, used, packed, alpha, "palette-colour", entries, policy, line, ref)


def _gray_values(img, data, line, ref) -> tuple[np.ndarray, str]:
    """A single-channel mask's values as uint8 (16-bit or 1-bit ones too, when they fit), and the decoder."""
    if img.mode == "L":
        arr, _, decoder = _eight_bit(img, data, line, ref)
        return arr, decoder
    load(img, line=line, ref=ref, what="mask")
    arr = np.asarray(img.convert("L") if img.mode == "1" else img)
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ItemError(line, f"mask {ref} has values outside 0..255 ({arr.min()}..{arr.max()})")
    return arr.astype(np.uint8), "pillow"


def _decode_gray(img, arr, entries, policy, line, ref):
    """Single-channel masks: keys by index; an 8-bit L mask of a coloured map whose values are not all
    keys is read by colour (its gray levels, with a tRNS gray as transparent)."""
    runs, values, counts, used = _single(arr)
    keys = {e.key for e in entries}
    if img.mode != "L" or not all(e.color is not None for e in entries) or all(u in keys for u in used):
        return _by_index(arr, runs, values, counts, used, entries, None, policy, line, ref)
    alpha = [255] * 256
    trans = img.info.get("transparency")
    if isinstance(trans, int) and 0 <= trans < 256:
        alpha[trans] = 0
    return _by_value_colour(arr, runs, values, counts, used, [v * 0x010101 for v in range(256)], alpha, "colour",
                            entries, policy, line, ref)


def _colour_pixels(img, data, line, ref) -> tuple[np.ndarray, str]:
    """H x W x 3 (RGB) or x 4 (RGBA: the mask has alpha or a tRNS colour key) uint8 pixels, and the decoder."""
    if pyspng is not None and _spng_decodes(img, data):
        try:
            pixels = pyspng.load(data)
        except Exception:  # libspng refuses the bytes: Pillow decodes them below, and says what is wrong
            pixels = None
        if pixels is not None and pixels.dtype == np.uint8 and pixels.shape == (img.height, img.width, len(img.mode)):
            return pixels, "libspng"
    load(img, line=line, ref=ref, what="mask")
    if img.mode not in ("RGB", "RGBA") or "transparency" in img.info:
        img = img.convert("RGBA" if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info else "RGB")
    return np.asarray(img), "pillow"


def _spng_decodes(img, data: bytes) -> bool:
    """An 8-bit RGB/RGBA PNG without a colour-key tRNS, one frame: libspng gives Pillow's pixels."""
    return (img.format == "PNG" and img.mode in ("RGB", "RGBA") and data[12:16] == b"IHDR" and data[24] == 8
            and "transparency" not in img.info and not getattr(img, "is_animated", False))


def _decode_colour(img, pixels, entries, policy, line, ref):
    runs = _Runs.of(pixels)
    first = pixels.reshape(-1, pixels.shape[2])[runs.starts].astype(np.int64)  # each run's colour
    keys = first[:, 0] << 16 | first[:, 1] << 8 | first[:, 2]  # 0xRRGGBB, alpha above
    if pixels.shape[2] == 4:
        keys |= first[:, 3] << 24
    keys, inverse = np.unique(keys, return_inverse=True)
    counts = np.bincount(inverse, weights=runs.lengths)
    colours = [(int(n), k & 0xFFFFFF, k >> 24 if pixels.shape[2] == 4 else 255)
               for n, k in zip(counts.tolist(), keys.tolist())]
    targets, transparent, unknown = _classify(colours, entries, policy, line, ref)
    targets = np.array(targets, np.uint8)
    out = runs.expand(targets[inverse]).reshape(pixels.shape[:2])
    return out, "colour", transparent, unknown, _histogram(targets, counts)


def decode_mask(data: bytes, entries, policy: MaskPolicy, image_size, *, line: int, ref: str) -> DecodedMask:
    """Global-index mask at the image's size (see the module docstring for the routes)."""
    img = open_image(data, line=line, ref=ref, what="mask")  # the header: size limit before any decode
    if img.mode == "P":
        arr, palette, decoder = _eight_bit(img, data, line, ref)
        out, route, transparent, unknown, counts = _decode_palette(img, arr, palette, entries, policy, line, ref)
    elif img.mode in ("L", "I", "I;16", "1"):
        arr, decoder = _gray_values(img, data, line, ref)
        out, route, transparent, unknown, counts = _decode_gray(img, arr, entries, policy, line, ref)
    else:
        pixels, decoder = _colour_pixels(img, data, line, ref)
        out, route, transparent, unknown, counts = _decode_colour(img, pixels, entries, policy, line, ref)

    return _fitted(out, route, decoder, transparent, unknown, counts, policy, image_size, line, ref)


def drawn_mask(keys: np.ndarray, entries, policy: MaskPolicy, image_size, *, line: int, ref: str) -> DecodedMask:
    """Global-index mask of an array of colour-map keys an importer drew (gt2seg.drawing): the index route,
    without a file."""
    runs, values, counts, used = _single(keys)
    out, _, transparent, unknown, counts = _by_index(keys, runs, values, counts, used, entries, None, policy, line, ref)
    return _fitted(out, "drawn", "drawing", transparent, unknown, counts, policy, image_size, line, ref)


def _fitted(out, route, decoder, transparent, unknown, counts, policy, image_size, line, ref) -> DecodedMask:
    """The mask at the image's size: one value spread over it, resized when asked, else an error."""
    expanded = resized = False
    width, height = image_size
    if out.shape != (height, width):
        used = np.flatnonzero(counts)
        if used.size == 1:
            out, expanded = np.full((height, width), used[0], np.uint8), True
            counts = _histogram(used, [width * height])
        elif policy.resize:
            out, resized = np.asarray(Image.fromarray(out, "L").resize((width, height), Image.NEAREST)), True
            counts = np.bincount(out.reshape(-1), minlength=256)
        else:
            raise ItemError(
                line,
                f"mask {ref} is {out.shape[1]}x{out.shape[0]} but its image is {width}x{height}; "
                "pass --resize-masks to resize masks (nearest neighbour)",
            )
    return DecodedMask(out, route, expanded, resized, transparent, unknown, tuple(counts.tolist()), decoder)
