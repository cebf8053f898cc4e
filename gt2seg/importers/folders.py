"""An image folder and a mask folder paired by file stem, with either a class list or a colour table.

- `--class-list FILE`: masks hold class indices; line i of FILE (blank and '#' lines left out) names value i.
- `--color-table FILE`: masks are colour pictures; FILE is JSON `{"name": "#rrggbb", ...}` or CamVid's
  `label_colors.txt` (`R G B<tab>Name` per line). Colours are read by Ground Truth masks' rules, so
  `--unknown-color`, `--alpha-threshold` and `--resize-masks` apply unchanged.
Either way the first class is index 0 (the background), unless a class is named `background` (any case),
which then takes index 0 and the others keep their order.
"""
from __future__ import annotations

import re

from gt2seg import jsonl, storage
from gt2seg.errors import JsonLineError, SourceError
from gt2seg.importers.base import Importer, Items, Param, Source, class_table, is_resource_fork, list_rows

_HEX = re.compile(r"#[0-9a-fA-F]{6}")
LAYOUT = "an image folder and a mask folder whose files pair by stem (see --images, --masks)"


def _class_list(source: Source, relative: str) -> list[tuple[str, str | None]]:
    rows = list_rows(source, relative, "a class list: one class name per line, line i naming mask value i")
    return [(" ".join(fields), None) for _, fields in rows]


def _color_table(source: Source, relative: str) -> list[tuple[str, str | None]]:
    """[(name, '#rrggbb')] of a JSON colour table or CamVid's label_colors.txt."""
    expected = 'a colour table: JSON {"name": "#rrggbb", ...} or lines "R G B<tab>Name" (CamVid)'
    text = source.read_text(relative, expected)
    if text.lstrip().startswith("{"):
        try:  # as strict as manifests: a class named twice is an error, not "the last one wins"
            table = jsonl.parse_object(text, 1)
        except JsonLineError as exc:
            raise SourceError(f"{relative}: {exc.detail}; expected {expected}") from None
        bad = [k for k, v in table.items() if not (isinstance(v, str) and _HEX.fullmatch(v))]
        if bad:
            raise SourceError(f"{relative}: colour of {bad[0]!r} is not '#rrggbb'; expected {expected}")
        return [(name, color.lower()) for name, color in table.items()]
    out = []
    for number, fields in list_rows(source, relative, expected):
        if len(fields) < 4 or not all(f.isdigit() and int(f) < 256 for f in fields[:3]):
            raise SourceError(f"{relative} line {number}: expected 'R G B<tab>Name', got {' '.join(fields)!r}")
        out.append((" ".join(fields[3:]), "#" + "".join(f"{int(f):02x}" for f in fields[:3])))
    return out


def _by_stem(source: Source, folder: str, items: Items, what: str) -> dict[str, str]:
    """stem -> file under folder; stems found twice are counted skips naming both files."""
    found: dict[str, list[str]] = {}
    for path in source.under(folder):
        if is_resource_fork(path):
            items.skip(0, "resource-fork", f"{path} is a macOS resource-fork file, not an image")
        else:
            found.setdefault(storage.stem(path), []).append(path)
    for name, paths in found.items():
        if len(paths) > 1:
            items.skip(0, "duplicate-stem", f"{what} {', '.join(paths)} share the stem {name!r}; rename one")
    return {name: paths[0] for name, paths in found.items() if len(paths) == 1}


def read(source: Source, settings: dict):
    if bool(settings["class_list"]) == bool(settings["color_table"]):
        raise SourceError("give one of --class-list FILE (index masks) or --color-table FILE (colour masks)")
    for option in ("images", "masks"):
        if not source.has_folder(settings[option]):
            raise SourceError(f"{source.root}: no {settings[option]}/ folder; expected {LAYOUT}")
    classes = (_class_list(source, settings["class_list"]) if settings["class_list"]
               else _color_table(source, settings["color_table"]))
    if not classes:
        raise SourceError("the class list or colour table names no class")
    table, color_map = class_table(classes)
    items = Items("mask")
    images = _by_stem(source, settings["images"], items, "images")
    masks = _by_stem(source, settings["masks"], items, "masks")
    for name in sorted(set(images) - set(masks)):
        items.skip(0, "no-mask", f"{images[name]} has no mask in {settings['masks']}/")
    for name in sorted(set(masks) - set(images)):
        items.skip(0, "no-image", f"{masks[name]} has no image in {settings['images']}/")
    for number, name in enumerate(sorted(set(images) & set(masks)), 1):
        items.add(number, images[name], masks[name], color_map)
    return items.job(source, table, official=False)


def detect(source: Source) -> bool:
    return source.has_folder("images") and source.has_folder("masks")


IMPORTER = Importer(
    name="folders",
    help="Import an image folder and a mask folder paired by stem, with a class list or colour table, into OUT.",
    params=(
        Param("images", "Image folder, relative to SRC.", "images", (), "DIR"),
        Param("masks", "Mask folder, relative to SRC.", "masks", (), "DIR"),
        Param("class_list", "Index masks: a text file (relative to SRC) naming value i on line i.", None, (), "FILE"),
        Param("color_table", 'Colour masks: JSON {"name": "#rrggbb"} or CamVid label_colors.txt (relative to SRC).',
              None, (), "FILE"),
    ),
    read=read,
    detect=detect,
)
