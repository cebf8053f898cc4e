"""Pascal VOC 2012 segmentation: VOCdevkit/VOC2012/{JPEGImages, SegmentationClass, ImageSets/Segmentation}.

Masks are palette (or, in SBD's SegmentationClassAug, greyscale) PNGs of class indices 0..20 with 255 on
object boundaries; 255 stays the ignore label, as the built-in algorithm and VOC's own scoring treat it.
SRC may be the folder holding VOCdevkit, VOCdevkit itself, or VOC2012.
"""
from __future__ import annotations

from gt2seg import storage
from gt2seg.classes import IGNORE, IGNORE_NAME, ClassTable
from gt2seg.errors import SourceError
from gt2seg.importers.base import Importer, Items, Param, Source, list_rows
from gt2seg.manifest import ColorEntry

CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
           "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
           "tvmonitor")
ROOTS = ("", "VOC2012/", "VOCdevkit/VOC2012/")
SETS = "ImageSets/Segmentation/"
LAYOUT = ("Pascal VOC 2012: VOCdevkit/VOC2012/JPEGImages/*.jpg, SegmentationClass/*.png and "
          "ImageSets/Segmentation/{train,val,trainval}.txt")
COLOR_MAP = (*(ColorEntry(i, name, None) for i, name in enumerate(CLASSES)), ColorEntry(IGNORE, IGNORE_NAME, None))


def colors() -> list[str]:
    """VOC's own class colours (bits of the index spread over R, G and B), so written masks look like VOC's."""
    out = []
    for index in range(len(CLASSES)):
        r = g = b = 0
        for bit in range(8):
            r |= ((index >> (3 * bit)) & 1) << (7 - bit)
            g |= ((index >> (3 * bit + 1)) & 1) << (7 - bit)
            b |= ((index >> (3 * bit + 2)) & 1) << (7 - bit)
        out.append(f"#{r:02x}{g:02x}{b:02x}")
    return out


def _root(source: Source) -> str:
    for root in ROOTS:
        if source.has_folder(root + "JPEGImages"):
            return root
    raise SourceError(f"{source.root}: no JPEGImages/ folder; expected {LAYOUT}")


def _listed(source: Source, relative: str) -> list[tuple[str, int, str]]:
    """(image id, line, file) of a list: VOC ids, or DeepLab's '/JPEGImages/x.jpg /SegmentationClassAug/x.png'."""
    return [(storage.stem(fields[0]), number, relative) for number, fields in list_rows(source, relative, LAYOUT)]


def read(source: Source, settings: dict):
    root = _root(source)
    masks = root + ("SegmentationClassAug" if settings["sbd_list"] else "SegmentationClass")
    if not source.has_folder(masks):
        raise SourceError(f"{source.root}: no {masks}/ folder; expected {LAYOUT}"
                          + (" plus SBD's SegmentationClassAug/ for --sbd-list" if settings["sbd_list"] else ""))
    official = settings["split"] == "official"
    val = [(i, n, f, "validation") for i, n, f in _listed(source, root + SETS + "val.txt")]
    if settings["sbd_list"]:
        train = [(i, n, f, "train") for i, n, f in _listed(source, settings["sbd_list"])]
    elif official or root + SETS + "trainval.txt" not in source.files:
        train = [(i, n, f, "train") for i, n, f in _listed(source, root + SETS + "train.txt")]
    else:
        train, val = [(i, n, f, "train") for i, n, f in _listed(source, root + SETS + "trainval.txt")], []
    items = Items("voc")
    seen: dict[str, str] = {}
    for ordinal, (image_id, number, listing, side) in enumerate(val + train, 1):
        image, mask, where = f"{root}JPEGImages/{image_id}.jpg", f"{masks}/{image_id}.png", f"{listing}:{number}"
        if image_id in seen:
            items.skip(ordinal, "duplicate-source", f"{where}: {image_id} is also listed at {seen[image_id]}")
        elif image not in source.files:
            items.skip(ordinal, "missing-object", f"{where}: {image} does not exist")
        elif mask not in source.files:
            items.skip(ordinal, "missing-object", f"{where}: {mask} does not exist")
        else:
            items.add(ordinal, image, mask, COLOR_MAP, side)
        seen.setdefault(image_id, where)
    return items.job(source, ClassTable.fixed(["BACKGROUND", *CLASSES[1:]], colors()), official)


def detect(source: Source) -> bool:
    """VOC's folders without a labelmap.txt (with one, it is a CVAT export: gt2seg.importers.cvat)."""
    return any(source.has_folder(root + "JPEGImages") and source.has_folder(root + SETS)
               and root + "labelmap.txt" not in source.files for root in ROOTS)


IMPORTER = Importer(
    name="voc",
    help="Import Pascal VOC 2012 segmentation (VOCdevkit/VOC2012) from SRC into OUT; 255 stays the ignore label.",
    params=(
        Param("split", "official: train.txt (or the --sbd-list) -> train, val.txt -> validation; stratified: "
                       "gt2seg's seeded split of them all.", "official",
              ("official", "stratified")),
        Param("sbd_list", "Use SBD's SegmentationClassAug masks: FILE (relative to SRC, e.g. train_aug.txt) lists "
                          "the training ids; val.txt stays the validation set.", None, (), "FILE"),
    ),
    read=read,
    detect=detect,
)
