"""Decode one Ground Truth mask into an image of global class indices.

The hot path. Three routes, chosen per mask:
- by index: a palette (or grayscale) PNG whose used values are colour-map keys
  with matching palette colours and no transparency -- what Ground Truth
  writes -- or any mask of a job without hex-colors;
- by palette colour: any other palette PNG; the 256 palette entries (with
  their tRNS alpha) are classified once;
- by pixel colour: RGB/RGBA; the distinct colours are classified once.
Either way the classification becomes a 256-entry table applied by Pillow to
one 8-bit channel (the indices, or a colour channel that tells the mask's
colours apart), so no per-pixel Python or wide numpy temporaries are needed;
masks with colours no single channel separates take a numpy fallback.
Alpha below the threshold is background. Colours or values outside the
line's map follow the unknown policy; the default names them and fails.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from gt2seg.classes import IGNORE, ClassTable
from gt2seg.errors import ItemError
from gt2seg.images import load, open_image
from gt2seg.manifest import Record

UNKNOWN_POLICIES = ("error", "background", "ignore", "nearest")
PNG_COMPRESS_LEVEL = 3  # 3.7x faster than zlib's default 6 for ~1.5x the bytes of a mostly flat mask
MAX_DISTINCT_COLOURS = 4096


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
    image: Image.Image  # mode L or P; pixel values are global class indices
    route: str  # index | palette-colour | colour
    expanded: bool
    resized: bool
    transparent_pixels: int
    unknown_pixels: int
    counts: tuple[int, ...]  # pixels per value 0..255 of `image`, known from the decode (no second pass)

    @property
    def array(self) -> np.ndarray:
        return np.asarray(self.image)


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


def _index_lut(entries) -> list:
    lut = [None] * 256
    for e in entries:
        lut[e.key] = e.index
    return lut


def _mapped(pairs) -> tuple[int, ...]:
    """Pixels per output value, from (input count, output value) pairs: what histogram() of the mapped
    image would say, without reading its pixels again."""
    out = [0] * 256
    for n, value in pairs:
        out[value or 0] += n
    return tuple(out)


def _apply(img: Image.Image, lut: list, used) -> Image.Image:
    """Map an 8-bit single-channel image through lut (skipped when it is the identity)."""
    if all(lut[u] == u for u in used):
        return img
    return img.point([0 if t is None else t for t in lut])


def _decode_palette(img, entries, policy, line, ref):
    counts = img.histogram()
    used = [i for i, n in enumerate(counts) if n]
    raw = bytes(img.getpalette("RGB") or b"")
    packed = [int.from_bytes(raw[3 * i: 3 * i + 3].ljust(3, b"\0"), "big") for i in range(256)]
    alpha = [255] * 256
    trans = img.info.get("transparency")
    if isinstance(trans, (bytes, bytearray)):
        alpha[: len(trans)] = list(trans[:256])
    elif isinstance(trans, int):
        alpha[trans] = 0

    by_key = {e.key: e for e in entries}
    colored = all(e.color is not None for e in entries)
    if not colored or (all(u in by_key and alpha[u] == 255 and packed[u] == by_key[u].color for u in used)):
        lut = _index_lut(entries)
        for u in used:
            if alpha[u] < policy.alpha_threshold:
                lut[u] = 0
        missing = [(u, counts[u]) for u in used if lut[u] is None]
        if missing:
            for value, target in _resolve_unknown(missing, entries, policy, line, ref, "value").items():
                lut[value] = target
        transparent = sum(counts[u] for u in used if alpha[u] < policy.alpha_threshold)
        return (_apply(img, lut, used), "index", transparent, sum(n for _, n in missing),
                _mapped([(counts[u], lut[u]) for u in used]))

    targets, transparent, unknown = _classify([(counts[u], packed[u], alpha[u]) for u in used],
                                              entries, policy, line, ref)
    lut = [None] * 256
    for u, target in zip(used, targets):
        lut[u] = target
    return (_apply(img, lut, used), "palette-colour", transparent, unknown,
            _mapped([(counts[u], lut[u]) for u in used]))


def _decode_gray(img, entries, policy, line, ref):
    if img.mode != "L":
        arr = np.asarray(img.convert("L") if img.mode == "1" else img)
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ItemError(line, f"mask {ref} has values outside 0..255 ({arr.min()}..{arr.max()})")
        img = Image.fromarray(arr.astype(np.uint8), "L")
    counts = img.histogram()
    used = [i for i, n in enumerate(counts) if n]
    lut = _index_lut(entries)
    missing = [(u, counts[u]) for u in used if lut[u] is None]
    if missing:
        for value, target in _resolve_unknown(missing, entries, policy, line, ref, "value").items():
            lut[value] = target
    return (_apply(img, lut, used), "index", 0, sum(n for _, n in missing),
            _mapped([(counts[u], lut[u]) for u in used]))


def _decode_colour(img, entries, policy, line, ref):
    has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
    src = img if img.mode == ("RGBA" if has_alpha else "RGB") else img.convert("RGBA" if has_alpha else "RGB")
    found = src.getcolors(MAX_DISTINCT_COLOURS)
    if found is not None:
        colours = [(n, c[0] << 16 | c[1] << 8 | c[2], c[3] if has_alpha else 255) for n, c in found]
        targets, transparent, unknown = _classify(colours, entries, policy, line, ref)
        for band in range(len(src.getbands())):  # a channel whose values tell the colours apart
            values = [c[band] for _, c in found]
            if len(set(values)) == len(values):
                lut = [0] * 256
                for value, target in zip(values, targets):
                    lut[value] = target
                return (src.getchannel(band).point(lut), "colour", transparent, unknown,
                        _mapped([(n, t) for (n, _), t in zip(found, targets)]))
    # Many colours, or none of the channels separates them: classify the distinct packed values.
    arr = np.asarray(src).astype(np.uint32)
    keys = arr[..., 0] << 16 | arr[..., 1] << 8 | arr[..., 2]
    if has_alpha:
        keys |= arr[..., 3] << 24
    uniq, inverse, counts = np.unique(keys.ravel(), return_inverse=True, return_counts=True)
    colours = [(int(n), int(k) & 0xFFFFFF, int(k) >> 24 if has_alpha else 255) for k, n in zip(uniq, counts)]
    targets, transparent, unknown = _classify(colours, entries, policy, line, ref)
    out = np.asarray(targets, dtype=np.uint8)[inverse].reshape(keys.shape)
    return (Image.fromarray(out, "L"), "colour", transparent, unknown,
            _mapped([(int(n), t) for n, t in zip(counts, targets)]))


def decode_mask(data: bytes, entries, policy: MaskPolicy, image_size, *, line: int, ref: str) -> DecodedMask:
    """Global-index mask at the image's size (see the module docstring for the routes)."""
    img = load(open_image(data, line=line, ref=ref, what="mask"), line=line, ref=ref, what="mask")
    if img.mode == "P":
        out, route, transparent, unknown, counts = _decode_palette(img, entries, policy, line, ref)
    elif img.mode in ("I", "I;16", "1") or (img.mode == "L" and (
            not all(e.color is not None for e in entries) or _fits_keys(img, entries))):
        out, route, transparent, unknown, counts = _decode_gray(img, entries, policy, line, ref)
    else:
        out, route, transparent, unknown, counts = _decode_colour(img, entries, policy, line, ref)

    expanded = resized = False
    width, height = image_size
    if out.size != (width, height):
        extrema = out.getextrema()
        if extrema[0] == extrema[1]:
            out, expanded = Image.new("L", (width, height), extrema[0]), True
            counts = _mapped([(width * height, extrema[0])])
        elif policy.resize:
            out, resized = out.resize((width, height), Image.NEAREST), True
            counts = tuple(out.histogram())
        else:
            raise ItemError(
                line,
                f"mask {ref} is {out.size[0]}x{out.size[1]} but its image is {width}x{height}; "
                "pass --resize-masks to resize masks (nearest neighbour)",
            )
    return DecodedMask(out, route, expanded, resized, transparent, unknown, counts)


def _fits_keys(img, entries) -> bool:
    keys = {e.key for e in entries}
    return all(v in keys for v, n in enumerate(img.histogram()) if n)


def encode_mask(mask: Image.Image | np.ndarray, palette: bytes) -> bytes:
    """Single-channel 8-bit PNG, mode P with the class palette (values are indices)."""
    img = Image.fromarray(mask, "L") if isinstance(mask, np.ndarray) else mask.copy()
    img.putpalette(palette, "RGB")
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return out.getvalue()
