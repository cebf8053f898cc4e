"""CVAT's "Segmentation mask 1.1" export: labelmap.txt, SegmentationClass/*.png, JPEGImages/, ImageSets/Segmentation/.

labelmap.txt names each label and its colour (`name:R,G,B:parts:actions`, `#` lines are comments); the class
masks in SegmentationClass/ are painted in those colours, so they are read by colour as Ground Truth masks are
(`--unknown-color`, `--alpha-threshold` apply): the masks are CVAT's own pixels. A label named `background`
(CVAT writes one, black) is index 0; the others keep labelmap.txt's order. ImageSets/Segmentation/*.txt list
the images of each subset (names without extension, subfolders kept): every listed image is imported, and
with `--split official` the subset `train` goes to train and `val`, `validation` or `test` to validation.
Without lists, every mask with an image is imported. SRC is the unpacked export, or a folder holding it; a
zipped export is unpacked first (see gt2seg.importers.archive).
"""
from __future__ import annotations

import posixpath

from gt2seg.errors import SourceError
from gt2seg.importers.base import Importer, Items, Param, Source, class_table, is_resource_fork, list_rows

LABELMAP, MASKS, IMAGES, SETS = "labelmap.txt", "SegmentationClass", "JPEGImages", "ImageSets/Segmentation"
LAYOUT = ("CVAT's Segmentation mask 1.1 export: labelmap.txt, SegmentationClass/*.png, JPEGImages/ "
          "(exported with images) and ImageSets/Segmentation/*.txt")
SIDES = {"train": "train", "val": "validation", "validation": "validation", "test": "validation"}


def _root(source: Source) -> str:
    """'' or the one folder holding labelmap.txt (a zip's top folder)."""
    found = sorted(posixpath.dirname(f) for f in source.files if posixpath.basename(f) == LABELMAP
                   and f.count("/") <= 1)
    if not found:
        raise SourceError(f"{source.root}: no {LABELMAP}; expected {LAYOUT}")
    if len(found) > 1 and "" not in found:
        raise SourceError(f"{source.root}: several exports ({', '.join(found)}); give one of them as SRC")
    return "" if "" in found else found[0] + "/"


def _labels(source: Source, relative: str) -> list[tuple[str, str]]:
    """[(name, '#rrggbb')] of labelmap.txt."""
    expected = "lines 'name:R,G,B:parts:actions'"
    out = []
    for number, raw in enumerate(source.read_text(relative, expected).splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        rgb = fields[1].split(",") if len(fields) >= 2 else []
        if not fields[0] or len(rgb) != 3 or not all(v.strip().isdigit() and int(v) < 256 for v in rgb):
            raise SourceError(f"{relative} line {number}: expected 'name:R,G,B:parts:actions', got {line!r}")
        out.append((fields[0], "#" + "".join(f"{int(v):02x}" for v in rgb)))
    return out


def _by_name(source: Source, folder: str, items: Items) -> dict[str, str]:
    """name (path under folder without extension) -> file; a name given by two files is a counted skip."""
    found: dict[str, list[str]] = {}
    for path in source.under(folder):
        if is_resource_fork(path):
            items.skip(0, "resource-fork", f"{path} is a macOS resource-fork file, not an image")
        else:
            found.setdefault(posixpath.splitext(path[len(folder) + 1:])[0], []).append(path)
    for name, paths in sorted(found.items()):
        if len(paths) > 1:
            items.skip(0, "duplicate-stem", f"{', '.join(paths)} share the name {name!r}; remove one")
    return {name: paths[0] for name, paths in found.items() if len(paths) == 1}


def read(source: Source, settings: dict):
    root = _root(source)
    for folder in (MASKS, IMAGES):
        if not source.has_folder(root + folder):
            hint = " (export with 'Save images' on)" if folder == IMAGES else ""
            raise SourceError(f"{source.root}: no {root}{folder}/ folder{hint}; expected {LAYOUT}")
    labels = _labels(source, root + LABELMAP)
    if not labels:
        raise SourceError(f"{root}{LABELMAP} names no label")
    table, color_map = class_table(labels)
    items = Items("cvat")
    masks, images = _by_name(source, root + MASKS, items), _by_name(source, root + IMAGES, items)
    lists = [f for f in source.under(root + SETS) if f.endswith(".txt") and posixpath.dirname(f) == root + SETS]
    official = settings["split"] == "official"
    listed: list[tuple[str, str, str | None]] = []  # (name, where, side)
    for relative in lists:
        subset = posixpath.splitext(posixpath.basename(relative))[0]
        if official and subset.lower() not in SIDES:
            raise SourceError(f"{relative}: subset {subset!r} is neither train nor val/validation/test; "
                              "--split official needs those (or use --split stratified)")
        side = SIDES.get(subset.lower()) if official else None
        listed += [(" ".join(fields), f"{relative}:{number}", side)
                   for number, fields in list_rows(source, relative, LAYOUT)]
    if official and not lists:
        raise SourceError(f"{source.root}: no {root}{SETS}/*.txt; --split official reads the subsets from them")
    if not lists:
        listed = [(name, f"{masks[name]}", None) for name in sorted(masks)]
    seen: dict[str, str] = {}
    for line, (name, where, side) in enumerate(listed, 1):
        if name in seen:
            items.skip(line, "duplicate-source", f"{where}: {name} is also listed at {seen[name]}")
        elif name not in images:
            items.invalid(line, "missing-object", f"{where}: {name} has no image in {root}{IMAGES}/")
        elif name not in masks:
            items.invalid(line, "missing-object", f"{where}: {name} has no mask in {root}{MASKS}/")
        else:
            items.add(line, images[name], masks[name], color_map, side)
        seen.setdefault(name, where)
    return items.job(source, table, official)


def detect(source: Source) -> bool:
    try:
        root = _root(source)
    except SourceError:
        return False
    return source.has_folder(root + MASKS)


IMPORTER = Importer(
    name="cvat",
    help="Import CVAT's Segmentation mask 1.1 export (labelmap.txt colours, SegmentationClass/, JPEGImages/) "
         "from SRC into OUT.",
    params=(
        Param("split", "stratified: gt2seg's seeded split (--validation-fraction); official: ImageSets/Segmentation's "
                       "train.txt -> train, val.txt (or validation.txt, test.txt) -> validation.", "stratified",
              ("stratified", "official")),
    ),
    read=read,
    detect=detect,
)
