"""The global class table: one index per class *name* across all lines.

Ground Truth numbers classes per line, and the same key can mean different
classes on different lines, so lines are joined by name. BACKGROUND is always
index 0. The rest are ordered by the smallest key they have anywhere (that
keeps a normal job's own numbering), then by name: deterministic and
independent of line order.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from gt2seg.errors import ClassesError, ManifestError
from gt2seg.manifest import Record

BACKGROUND = "BACKGROUND"
IGNORE = 255
# The class name a colour-map entry gives to send its mask value to IGNORE (importers: Pet trimap borders,
# VOC's 255). The NUL keeps it apart from any name a person would give a class.
IGNORE_NAME = "\0ignore"
MAX_CLASSES = 254  # the built-in algorithm's num_classes limit; 255 is the ignore label
# Ground Truth's default palette (matplotlib tab10 after white), used for classes
# whose lines carry no hex-color.
DEFAULT_COLORS = (
    "#ffffff", "#2ca02c", "#1f77b4", "#ff7f0e", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)
IGNORE_COLOR = "#000000"
CLASSES_JSON = "classes.json"


@dataclass(frozen=True)
class ClassInfo:
    index: int
    name: str
    color: str

    def to_dict(self) -> dict:
        return {"index": self.index, "name": self.name, "color": self.color}


def is_background(name: str) -> bool:
    return name.strip().upper() == BACKGROUND


@dataclass(frozen=True)
class ClassTable:
    classes: tuple[ClassInfo, ...]
    warnings: tuple[str, ...] = ()

    @classmethod
    def build(cls, records: list[Record]) -> "ClassTable":
        first_key: dict[str, int] = {}
        colors: dict[str, Counter] = defaultdict(Counter)
        for record in records:
            for entry in record.color_map:
                if is_background(entry.name):
                    continue
                first_key[entry.name] = min(entry.key, first_key.get(entry.name, entry.key))
                if entry.color:
                    colors[entry.name][entry.color] += 1
        names = sorted(first_key, key=lambda n: (first_key[n], n))
        if len(names) + 1 > MAX_CLASSES:
            raise ManifestError(
                f"{len(names) + 1} classes found; SageMaker segmentation supports at most {MAX_CLASSES}"
            )
        warnings, table = [], [ClassInfo(0, BACKGROUND, DEFAULT_COLORS[0])]
        for name in names:
            seen = colors[name]
            if len(seen) > 1:
                listing = ", ".join(f"{c} ({n} lines)" for c, n in seen.most_common())
                warnings.append(f"class {name!r} has several colours across lines: {listing}")
            color = min(seen.items(), key=lambda kv: (-kv[1], kv[0]))[0] if seen else None
            table.append(ClassInfo(len(table), name, color))
        used = {c.color for c in table if c.color}
        spare = iter([c for c in DEFAULT_COLORS[1:] if c not in used] + _extra_colors(used))
        table = [c if c.color else ClassInfo(c.index, c.name, next(spare)) for c in table]
        return cls(tuple(table), tuple(warnings))

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def index_of(self, name: str) -> int:
        if is_background(name):
            return 0
        if name == IGNORE_NAME:
            return IGNORE
        for c in self.classes:
            if c.name == name:
                return c.index
        raise KeyError(name)

    def palette(self) -> bytes:
        return palette_for(self.entries())

    def entries(self) -> list[dict]:
        """The classes.json form: [{"index", "name", "color"}, ...]."""
        return [c.to_dict() for c in self.classes]

    def to_json(self) -> str:
        return json.dumps(self.entries(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = CLASSES_JSON) -> "ClassTable":
        return cls(tuple(ClassInfo(c["index"], c["name"], c.get("color")) for c in parse_classes(text, source)))

    @classmethod
    def default(cls, num_classes: int) -> "ClassTable":
        """The table for a dataset without classes.json: BACKGROUND, class_1, ... in the default palette."""
        return cls.fixed([BACKGROUND] + [f"class_{i}" for i in range(1, num_classes)])

    @classmethod
    def fixed(cls, names, colors=()) -> "ClassTable":
        """A table its source fixes (an imported dataset's): names[i] is index i, coloured by `colors`
        ('#rrggbb', in order) where given, else by the default palette."""
        spare = [*DEFAULT_COLORS, *_extra_colors(set(DEFAULT_COLORS))]
        colors = list(colors)
        return cls(tuple(ClassInfo(i, name, colors[i] if i < len(colors) else spare[i])
                         for i, name in enumerate(names)))


def _extra_colors(used: set) -> list[str]:
    """Deterministic distinct colours beyond the default palette."""
    out = []
    for i in range(1, 256):
        r, g, b = (i * 97) % 256, (i * 57 + 80) % 256, (i * 151 + 160) % 256
        color = f"#{r:02x}{g:02x}{b:02x}"
        if color not in used:
            out.append(color)
    return out


def parse_classes(text: str, source: str = CLASSES_JSON) -> list[dict]:
    """The entries of a classes.json, checked: a list of objects with indices 0..C-1 in order."""
    try:
        entries = json.loads(text)
    except ValueError as exc:
        raise ClassesError(f"{source}: not a readable classes.json ({exc})") from None
    if not isinstance(entries, list) or [c.get("index") for c in entries if isinstance(c, dict)] != list(
        range(len(entries))
    ):
        raise ClassesError(f'{source}: expected [{{"index": 0, "name": ..., "color": "#rrggbb"}}, ...] with '
                           "indices 0..C-1")
    return entries


def read_classes(path) -> list[dict]:
    """`parse_classes` of a file."""
    try:
        text = Path(path).read_text()
    except (OSError, ValueError) as exc:
        raise ClassesError(f"{path}: not a readable classes.json ({exc})") from None
    return parse_classes(text, str(path))


def palette_for(entries) -> bytes:
    """768-byte PNG palette of classes.json entries: each class's colour at its index, IGNORE_COLOR at 255,
    black elsewhere (entries without a #rrggbb colour stay black)."""
    pal = bytearray(768)
    for entry in entries:
        color, index = str(entry.get("color") or ""), int(entry["index"])
        if 0 <= index < 256 and len(color) == 7 and color.startswith("#"):
            pal[3 * index: 3 * index + 3] = bytes.fromhex(color[1:])
    pal[3 * IGNORE: 3 * IGNORE + 3] = bytes.fromhex(IGNORE_COLOR[1:])
    return bytes(pal)
