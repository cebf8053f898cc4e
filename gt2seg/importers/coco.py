"""COCO instances: annotations JSON (`images`, `annotations`, `categories`) and the image files, as CVAT, Label
Studio, Datumaro and most tools export them. Every `annotations/instances_<subset>.json` is read (image ids are
per file), and `--split official` sends the train subset to train and val/test to validation.

Classes: BACKGROUND is index 0, then the categories' names in category-id order (ids of any spacing; two ids
with one name are one class; a category named `background`, any case, is BACKGROUND). Masks are drawn, not
read (gt2seg.drawing): every annotation of an image is a shape (its polygons, or its RLE, uncompressed or
compressed), drawn by the pool workers to the pixels `COCO.annToMask` gives (polygons through pycocotools),
and painted in the file's order: where objects overlap, the later one wins (`--overlap later`, the order the tools draw
in), or the smaller, or the larger, or the ignore label 255 where their classes differ. Crowd regions
(`iscrowd` 1) take their category's class, or 255 with `--crowd ignore`. An image without annotations is all
background, or skipped with `--empty skip`.

Bad input (an annotation on an image or category the file does not list, a polygon of fewer than 3 points, an
RLE whose size is not its image's, image ids or file names given twice, an image file that is not there)
refuses the import, naming the item; `--on-error skip` leaves those images out and counts them.
"""
from __future__ import annotations

import json
import posixpath

from gt2seg.classes import BACKGROUND, IGNORE, IGNORE_NAME, is_background
from gt2seg.drawing import OVERLAPS, Drawing, Shape, polygon_problem, rle_problem
from gt2seg.errors import SourceError
from gt2seg.importers.base import Importer, Items, Param, Source, class_table
from gt2seg.manifest import ColorEntry

LAYOUT = ("a COCO export: an annotations JSON (annotations/instances_*.json, or Label Studio's result.json) "
          "listing images, annotations and categories, and the image files")


def _annotations_files(source: Source, given: str | None) -> list[str]:
    """--annotations FILE; else every annotations/instances_*.json (one per subset, as CVAT, Datumaro and COCO
    itself export them), else the one annotations/*.json or result.json."""
    if given:
        return [source.relative(given)]
    found = sorted(f for f in source.files if f == "result.json"
                   or (posixpath.dirname(f) == "annotations" and f.endswith(".json")))
    instances = [f for f in found if posixpath.basename(f).startswith("instances")]
    if instances or len(found) == 1:
        return instances or found
    if not found:
        raise SourceError(f"{source.root}: no annotations/*.json nor result.json; expected {LAYOUT}")
    raise SourceError(f"{source.root}: several annotation files ({', '.join(found)}); "
                      "name one with --annotations FILE")


def _subset(relative: str) -> str:
    return posixpath.splitext(posixpath.basename(relative))[0].removeprefix("instances_")


def _side(relative: str) -> str:
    """The official side of an annotations file's subset: train..., or val... / test... -> validation."""
    subset = _subset(relative).lower()
    if "train" in subset:
        return "train"
    if "val" in subset or "test" in subset:
        return "validation"
    raise SourceError(f"{relative}: subset {_subset(relative)!r} is neither train nor val/validation/test; "
                      "--split official needs those (or use --split stratified)")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _load(source: Source, relative: str) -> dict:
    try:
        data = json.loads(source.read_text(relative, LAYOUT))
    except ValueError as exc:
        raise SourceError(f"{relative}: not JSON ({exc}); expected {LAYOUT}") from None
    if not isinstance(data, dict):
        raise SourceError(f"{relative}: a JSON {type(data).__name__}, not an object; expected {LAYOUT}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise SourceError(f"{relative}: no {key!r} list; expected {LAYOUT}")
    return data


def _categories(files: list[tuple[str, dict]]):
    """(per file: category id -> key; the class table; the colour map: keys 1.. the class names, 255 the ignore
    label). Classes are named: the files' categories in file, then id, order, each name once."""
    names_of = []
    for relative, data in files:
        names: dict[int, str] = {}
        for n, c in enumerate(data["categories"]):
            if not (isinstance(c, dict) and _is_int(c.get("id")) and isinstance(c.get("name"), str)
                    and c["name"].strip()):
                raise SourceError(f"{relative}: categories[{n}] needs an integer 'id' and a 'name', got {c!r}"[:300])
            if c["id"] in names:
                raise SourceError(f"{relative}: category id {c['id']} is given twice ({names[c['id']]!r}, "
                                  f"{c['name']!r})")
            names[c["id"]] = c["name"]
        names_of.append(names)
    classes = [BACKGROUND]
    for names in names_of:
        for cid in sorted(names):
            if not is_background(names[cid]) and names[cid] not in classes:
                classes.append(names[cid])
    table, color_map = class_table([(name, None) for name in classes])
    keys = [{cid: 0 if is_background(name) else classes.index(name) for cid, name in names.items()}
            for names in names_of]
    return keys, table, (*color_map, ColorEntry(IGNORE, IGNORE_NAME, None))


def _shape(ann: dict, image: dict, key: int) -> Shape | str:
    """The annotation's shape, or why it cannot be one."""
    segmentation, what = ann.get("segmentation"), f"annotation {ann.get('id')}"
    if isinstance(segmentation, list):
        if not segmentation:
            return "has an empty segmentation (a box only?)"
        for part in segmentation:
            problem = polygon_problem(part)
            if problem:
                return problem
        return Shape(key, "polygons", tuple(tuple(p) for p in segmentation), what)
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        size, counts = segmentation["size"], segmentation["counts"]
        if size != [image["height"], image["width"]]:
            return (f"RLE size {size} (height, width) differs from its image's "
                    f"[{image['height']}, {image['width']}]")
        problem = rle_problem(counts, image["width"], image["height"])
        if problem:
            return problem
        return Shape(key, "rle", counts if isinstance(counts, str) else tuple(counts), what)
    return "has no segmentation: expected a list of polygons or an RLE {'size', 'counts'}"


def _image_ref(source: Source, file_name: str, images: str | None, subset: str) -> str | None:
    """Where an image's file_name is under SRC: --images DIR, or the first of the usual places that holds it."""
    if images is not None:
        folders = [source.relative(images)]
    else:
        folders = ["", "images", f"images/{subset}", subset]
    for folder in folders:
        ref = posixpath.normpath(posixpath.join(folder, file_name)) if folder else posixpath.normpath(file_name)
        if ref in source.files:
            return ref
    return None


def _images(data: dict, relative: str, items: Items, first: int) -> dict[int, tuple[int, dict]]:
    """image id -> (line, image) of the well-formed images with unique ids and file names; the rest invalid.
    Lines count on from `first` (the images of the files before)."""
    by_id: dict = {}
    by_name: dict = {}
    usable = {}
    for n, image in enumerate(data["images"]):
        line = first + n + 1
        if not (isinstance(image, dict) and _is_int(image.get("id")) and isinstance(image.get("file_name"), str)
                and _is_int(image.get("width")) and _is_int(image.get("height"))
                and image["width"] > 0 and image["height"] > 0):
            items.invalid(line, "invalid-image", f"{relative}: images[{n}] needs an integer 'id', a 'file_name' and "
                                                 f"positive integer 'width' and 'height', got {image!r}"[:300])
            continue
        by_id.setdefault(image["id"], []).append((line, image))
        by_name.setdefault(image["file_name"], []).append((line, image))
        usable[image["id"]] = (line, image)
    for key, groups, reason in (("id", by_id, "duplicate-id"), ("file_name", by_name, "duplicate-file")):
        for value, entries in groups.items():
            if len(entries) > 1:
                lines = ", ".join(f"images[{line - first - 1}]" for line, _ in entries)
                for line, image in entries:
                    items.invalid(line, reason, f"{relative}: {key} {value!r} is given to {lines}")
                    usable.pop(image["id"], None)
    return usable


def read(source: Source, settings: dict):
    official = settings["split"] == "official"
    files = [(relative, _load(source, relative)) for relative in _annotations_files(source, settings["annotations"])]
    sides = [_side(relative) if official else None for relative, _ in files]
    keys, table, color_map = _categories(files)
    items, first = Items("coco"), 0
    for (relative, data), key_of, side in zip(files, keys, sides):
        _read_file(source, settings, relative, data, key_of, color_map, side, items, first)
        first += len(data["images"])
    return items.job(source, table, official)


def _read_file(source: Source, settings: dict, relative: str, data: dict, key_of: dict, color_map, side,
               items: Items, first: int) -> None:
    """One annotations file's images into items, their lines counted on from `first`."""
    images = _images(data, relative, items, first)
    listed = {i.get("id") for i in data["images"] if isinstance(i, dict) and _is_int(i.get("id"))}
    shapes: dict[int, list] = {image_id: [] for image_id in images}
    bad: dict[int, tuple[str, str]] = {}  # image id -> (reason, detail) of its first bad annotation
    for n, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            items.invalid(0, "invalid-annotation", f"{relative}: annotations[{n}] is not an object")
            continue
        image_id, category = ann.get("image_id"), ann.get("category_id")
        where = f"{relative}: annotation {ann.get('id')} (annotations[{n}])"
        if image_id not in images:
            if image_id not in listed:  # else its image is refused already
                items.invalid(0, "unknown-image", f"{where} is on image {image_id!r}, which 'images' does not list")
            continue
        if image_id in bad:
            continue
        line, image = images[image_id]
        if category not in key_of:
            bad[image_id] = ("unknown-category", f"{where} on {image['file_name']} has category {category!r}, "
                                                 "which 'categories' does not list")
            continue
        crowd = ann.get("iscrowd", 0)
        key = IGNORE if crowd == 1 and settings["crowd"] == "ignore" else key_of[category]
        shape = _shape(ann, image, key)
        if isinstance(shape, str):
            bad[image_id] = ("invalid-annotation", f"{where} on {image['file_name']} {shape}")
        else:
            shapes[image_id].append(shape)
    subset = _subset(relative)
    for image_id, (line, image) in sorted(images.items(), key=lambda kv: kv[1][0]):
        if image_id in bad:
            items.invalid(line, *bad[image_id])
            continue
        ref = _image_ref(source, image["file_name"], settings["images"], subset)
        if ref is None:
            where = f"{settings['images']}/" if settings["images"] else "SRC, images/ or its subset's folder"
            items.invalid(line, "missing-object", f"{relative}: images[{line - first - 1}] {image['file_name']} is "
                                                  f"not in {where}; name the image folder with --images DIR")
        elif not shapes[image_id] and settings["empty"] == "skip":
            items.skip(line, "no-annotation", f"{image['file_name']} has no annotation")
        else:
            drawing = Drawing(image["width"], image["height"], tuple(shapes[image_id]), settings["overlap"],
                              f"{relative} image {image_id} ({image['file_name']})")
            items.add(line, ref, f"{relative}#image-{image_id}", color_map, side, drawing)


def detect(source: Source) -> bool:
    return any(posixpath.dirname(f) == "annotations" and f.endswith(".json") for f in source.files) or (
        "result.json" in source.files and source.has_folder("images"))


IMPORTER = Importer(
    name="coco",
    help="Import a COCO instances export (annotations JSON + images; polygons and RLE drawn with pycocotools) "
         "from SRC into OUT.",
    params=(
        Param("annotations", "The annotations JSON, relative to SRC [default: every annotations/instances_*.json "
                             "(one per subset), else the one annotations/*.json or result.json].", None, (), "FILE"),
        Param("images", "The folder file_name is relative to, relative to SRC [default: the first of SRC, images/, "
                        "images/SUBSET/, SUBSET/ that holds the file].", None, (), "DIR"),
        Param("overlap", "Where objects overlap: the later one in the file wins, the smaller, the larger, or the "
                         "ignore label 255 where their classes differ.", "later", OVERLAPS),
        Param("crowd", "Crowd regions (iscrowd 1): their category's class, or the ignore label 255.", "class",
              ("class", "ignore")),
        Param("empty", "Images without annotations: all background, or left out (counted).", "background",
              ("background", "skip")),
        Param("split", "stratified: gt2seg's seeded split (--validation-fraction); official: each annotations "
                       "file's subset, *train* -> train, *val* or *test* -> validation.", "stratified",
              ("stratified", "official")),
    ),
    read=read,
    detect=detect,
)
