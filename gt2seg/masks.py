"""Decode one Ground Truth mask into a uint8 array of global class indices.

The hot path. Three routes, chosen per mask:
- by index: a palette (or grayscale) PNG whose used values are colour-map keys
  with matching palette colours and no transparency -- what Ground Truth
  writes -- or any mask of a job without hex-colors;
- by palette colour: any other palette PNG; the 256 palette entries (with
  their tRNS alpha) are classified once and applied through a lookup table;
- by pixel colour: RGB/RGBA, matched on packed 24-bit values.
Alpha below the threshold is background. Colours or values outside the line's
map follow the unknown policy; the default names them and fails.
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

UNKNOWN = 254  # never a class index (at most 254 classes: 0..253) nor IGNORE
UNKNOWN_POLICIES = ("error", "background", "ignore", "nearest")


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
    array: np.ndarray  # HxW uint8
    route: str  # index | palette-colour | colour
    expanded: bool
    resized: bool
    transparent_pixels: int
    unknown_pixels: int


def _hex(color: int) -> str:
    return f"#{color:06x}"


def _resolve_unknown(found, entries, policy, line, ref, kind):
    """Targets for unknown colours/values: found is [(value, pixel count)]."""
    listing = ", ".join(
        f"{_hex(v) if kind == 'colour' else v} ({n:,} px)" for v, n in sorted(found, key=lambda t: -t[1])[:10]
    )
    if policy.unknown == "error":
        what = "colours" if kind == "colour" else "values that are not keys"
        raise ItemError(
            line,
            f"mask {ref} has {what} of the line's internal-color-map: {listing}. Fix the mask, or "
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


def _decode_palette(img, entries, policy, line, ref):
    idx = np.asarray(img)
    counts = np.bincount(idx.ravel(), minlength=256)
    used = np.flatnonzero(counts)
    pal = np.zeros((256, 3), dtype=np.uint32)
    raw = np.frombuffer(bytes(img.getpalette("RGB") or b""), dtype=np.uint8).reshape(-1, 3)[:256]
    pal[: len(raw)] = raw
    packed = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
    alpha = np.full(256, 255, dtype=np.uint8)
    trans = img.info.get("transparency")
    if isinstance(trans, (bytes, bytearray)):
        alpha[: len(trans)] = np.frombuffer(bytes(trans), dtype=np.uint8)[:256]
    elif isinstance(trans, int):
        alpha[trans] = 0

    by_key = {e.key: e for e in entries}
    colored = all(e.color is not None for e in entries)
    by_index = not colored or (
        all(int(u) in by_key for u in used)
        and bool((alpha[used] == 255).all())
        and all(int(packed[u]) == by_key[int(u)].color for u in used)
    )
    lut = np.full(256, UNKNOWN, dtype=np.uint8)
    if by_index:
        route, kind = "index", "value"
        for e in entries:
            lut[e.key] = e.index
        values = np.arange(256)
    else:
        route, kind = "palette-colour", "colour"
        for color, target in _color_targets(entries, line, ref).items():
            lut[packed == color] = target
        values = packed
    lut[alpha < policy.alpha_threshold] = 0
    unknown_entries = [int(u) for u in used if lut[u] == UNKNOWN]
    if unknown_entries:
        found: dict[int, int] = {}
        for u in unknown_entries:
            found[int(values[u])] = found.get(int(values[u]), 0) + int(counts[u])
        targets = _resolve_unknown(list(found.items()), entries, policy, line, ref, kind)
        for u in unknown_entries:
            lut[u] = targets[int(values[u])]
    transparent = int(counts[alpha < policy.alpha_threshold].sum())
    unknown = int(sum(counts[u] for u in unknown_entries))
    return lut[idx], route, transparent, unknown


def _decode_gray(img, entries, policy, line, ref):
    arr = np.asarray(img.convert("L") if img.mode == "1" else img)
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ItemError(line, f"mask {ref} has values outside 0..255 ({arr.min()}..{arr.max()})")
        arr = arr.astype(np.uint8)
    return _decode_index_array(arr, entries, policy, line, ref)


def _decode_index_array(arr, entries, policy, line, ref):
    counts = np.bincount(arr.ravel(), minlength=256)
    lut = np.full(256, UNKNOWN, dtype=np.uint8)
    for e in entries:
        lut[e.key] = e.index
    unknown_values = [int(u) for u in np.flatnonzero(counts) if lut[u] == UNKNOWN]
    if unknown_values:
        targets = _resolve_unknown([(u, int(counts[u])) for u in unknown_values], entries, policy, line, ref,
                                   "value")
        for u in unknown_values:
            lut[u] = targets[u]
    return lut[arr], "index", 0, int(sum(counts[u] for u in unknown_values))


def _decode_rgb(img, entries, policy, line, ref):
    rgba = np.asarray(img.convert("RGBA"))
    words = rgba.view(np.uint32)[..., 0]  # little-endian: 0xAABBGGRR
    bgr = words & 0x00FFFFFF
    out = np.full(bgr.shape, UNKNOWN, dtype=np.uint8)
    for color, target in _color_targets(entries, line, ref).items():
        r, g, b = (color >> 16) & 255, (color >> 8) & 255, color & 255
        out[bgr == (b << 16 | g << 8 | r)] = target
    transparent = rgba[..., 3] < policy.alpha_threshold
    n_transparent = int(np.count_nonzero(transparent))
    if n_transparent:
        out[transparent] = 0
    unknown_mask = out == UNKNOWN
    n_unknown = int(np.count_nonzero(unknown_mask))
    if n_unknown:
        values, counts = np.unique(bgr[unknown_mask], return_counts=True)
        rgb_values = [int((v & 255) << 16 | (v >> 8 & 255) << 8 | v >> 16) for v in values]
        targets = _resolve_unknown(list(zip(rgb_values, counts.tolist())), entries, policy, line, ref, "colour")
        fill = np.array([targets[v] for v in rgb_values], dtype=np.uint8)
        out[unknown_mask] = fill[np.searchsorted(values, bgr[unknown_mask])]
    return out, "colour", n_transparent, n_unknown


def decode_mask(data: bytes, entries, policy: MaskPolicy, image_size, *, line: int, ref: str) -> DecodedMask:
    """Global-index mask at the image's size (see the module docstring for the routes)."""
    img = load(open_image(data, line=line, ref=ref, what="mask"), line=line, ref=ref, what="mask")
    if img.mode == "P":
        out, route, transparent, unknown = _decode_palette(img, entries, policy, line, ref)
    elif img.mode in ("L", "I", "I;16", "1") and (
        img.mode != "L" or not all(e.color is not None for e in entries) or _fits_keys(img, entries)
    ):
        out, route, transparent, unknown = _decode_gray(img, entries, policy, line, ref)
    else:
        out, route, transparent, unknown = _decode_rgb(img, entries, policy, line, ref)

    expanded = resized = False
    width, height = image_size
    if out.shape != (height, width):
        if out.size and int(out.min()) == int(out.max()):
            out, expanded = np.full((height, width), out.flat[0], dtype=np.uint8), True
        elif policy.resize:
            out = np.asarray(Image.fromarray(out).resize((width, height), Image.NEAREST))
            resized = True
        else:
            raise ItemError(
                line,
                f"mask {ref} is {out.shape[1]}x{out.shape[0]} but its image is {width}x{height}; "
                "pass --resize-masks to resize masks (nearest neighbour)",
            )
    return DecodedMask(out, route, expanded, resized, transparent, unknown)


def _fits_keys(img, entries) -> bool:
    keys = {e.key for e in entries}
    return all(int(v) in keys for v in np.flatnonzero(np.bincount(np.asarray(img).ravel(), minlength=256)))


def encode_mask(array: np.ndarray, palette: bytes) -> bytes:
    """Single-channel 8-bit PNG, mode P with the class palette (values are indices)."""
    img = Image.fromarray(array, "L")
    img.putpalette(palette, "RGB")
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=6)
    return out.getvalue()
