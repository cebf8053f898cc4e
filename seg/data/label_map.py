"""Pixel value to class index, from a SageMaker label_map JSON (docs/CONTRACTS.md)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gt2seg.classes import IGNORE
from gt2seg.layout import label_map_file
from seg.errors import DataError


class LabelMap:
    """Pixel value → class index, from a SageMaker label_map JSON (docs/CONTRACTS.md, "label_map JSON").

    `{"scale": n}` (int or string): class = pixel // n. `{"map": {"<class index>": <pixel value>}}`: the key is
    the *class*, the value the *pixel* found in the PNG (AWS's example: map {"0": 5, "1": 0, "2": 2} turns
    encoded [0, 5, 2] into [1, 0, 2]). Pixel 255 stays IGNORE unless a map names it; any other pixel a map
    does not name is an error rather than a silent guess.
    """

    def __init__(self, lut: np.ndarray, source: str = "identity"):
        self.lut = lut  # int16[256]; -1 = not mapped
        self.source = source
        self._identity = bool(np.array_equal(lut, np.arange(256)))  # scale 1, the usual case: nothing to map

    @classmethod
    def identity(cls) -> "LabelMap":
        return cls(np.arange(256, dtype=np.int16))

    @classmethod
    def from_json(cls, data, source: str = "label map") -> "LabelMap":
        if not isinstance(data, dict) or len(set(data) & {"scale", "map"}) != 1:
            raise DataError(f'{source}: expected {{"scale": n}} or {{"map": {{"<class>": <pixel>}}}}, got {data!r}')
        if "scale" in data:
            try:
                scale = int(str(data["scale"]).strip())
            except ValueError:
                scale = 0
            if scale < 1:
                raise DataError(f"{source}: scale must be a positive integer, got {data['scale']!r}")
            lut = (np.arange(256) // scale).astype(np.int16)
            lut[IGNORE] = IGNORE
            return cls(lut, source)
        mapping = data["map"]
        if not isinstance(mapping, dict) or not mapping:
            raise DataError(f'{source}: "map" must be a non-empty object {{"<class index>": <pixel value>}}')
        lut = np.full(256, -1, dtype=np.int16)
        lut[IGNORE] = IGNORE
        seen = {}
        for key, value in mapping.items():
            try:
                klass, pixel = int(key), int(value)
            except (TypeError, ValueError):
                raise DataError(f"{source}: map entry {key!r}: {value!r} is not <class index>: <pixel value>") from None
            if not (0 <= klass < IGNORE and 0 <= pixel <= 255):
                raise DataError(f"{source}: map entry {key!r}: {value!r} out of range (class 0..254, pixel 0..255)")
            if pixel in seen:
                raise DataError(f"{source}: pixel value {pixel} is mapped to both class {seen[pixel]} and {klass}")
            seen[pixel] = klass
            lut[pixel] = klass
        return cls(lut, source)

    @classmethod
    def load(cls, path) -> "LabelMap":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable label map JSON ({exc})") from None
        return cls.from_json(data, str(path))

    def apply(self, mask: np.ndarray) -> np.ndarray:
        """Class indices of an 8-bit mask (the mask itself when the map is the identity)."""
        if self._identity and mask.dtype == np.uint8:
            return mask
        mapped = self.lut[mask]
        if (mapped < 0).any():
            values = sorted(set(np.unique(mask[mapped < 0]).tolist()))
            raise DataError(f"pixel value(s) {values} are not in the label map {self.source}; add them to its \"map\"")
        return mapped.astype(np.uint8)


def load_label_map(label_map_dir, split: str) -> LabelMap:
    """`<split>_label_map.json` in the label_map folder; scale 1 when there is none (as the built-in does)."""
    if label_map_dir is None:
        return LabelMap.identity()
    path = Path(label_map_dir) / label_map_file(split)
    return LabelMap.load(path) if path.exists() else LabelMap.identity()
