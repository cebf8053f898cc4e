"""Oxford-IIIT Pet as distributed: images/*.jpg, annotations/trimaps/*.png, annotations/list.txt.

Trimap values: 1 = pet, 2 = background, 3 = border ("unclassified"). The border defaults to the ignore label
255: it is the band where the annotators could not tell pet from background, so scoring it either way teaches
the model the annotators' guess. list.txt rows are `Image CLASS-ID SPECIES BREED-ID` (species 1 = cat,
2 = dog); a breed's name is its images' stem without the trailing number (`Abyssinian`, `american_bulldog`).
"""
from __future__ import annotations

from gt2seg.classes import BACKGROUND, IGNORE_NAME, ClassTable
from gt2seg.errors import SourceError
from gt2seg.importers.base import Importer, Items, Param, Source, is_resource_fork, list_rows
from gt2seg.manifest import ColorEntry

IMAGES, TRIMAPS, LIST = "images", "annotations/trimaps", "annotations/list.txt"
OFFICIAL = {"annotations/trainval.txt": "train", "annotations/test.txt": "validation"}
LAYOUT = ("the Oxford-IIIT Pet layout: images/*.jpg, annotations/trimaps/*.png, annotations/list.txt "
          "(and annotations/trainval.txt, annotations/test.txt for --split official)")
SPECIES = {"1": "cat", "2": "dog"}
BORDER_CLASS = "border"
PET, BG, BORDER = 1, 2, 3


def _row(number: int, fields: list[str]) -> tuple[str, int, str]:
    """(image stem, class id, species name) of one list.txt row."""
    if len(fields) != 4 or not all(f.isdigit() for f in fields[1:]) or fields[2] not in SPECIES:
        raise SourceError(f"{LIST} line {number}: expected 'Image CLASS-ID SPECIES BREED-ID' with SPECIES 1 (cat) "
                          f"or 2 (dog), got {' '.join(fields)!r}")
    return fields[0], int(fields[1]), SPECIES[fields[2]]


def _classes(rows, classes: str, border: str) -> tuple[list[str], dict]:
    """The class names (index order) and each row's pet class name."""
    if classes == "binary":
        names, pet_of = [BACKGROUND, "pet"], {image: "pet" for image, _, _ in rows}
    elif classes == "species":
        names, pet_of = [BACKGROUND, "cat", "dog"], {image: species for image, _, species in rows}
    else:
        breeds: dict[int, str] = {}
        for image, class_id, _ in rows:
            breeds.setdefault(class_id, image.rsplit("_", 1)[0])
        names = [BACKGROUND, *(breeds[i] for i in sorted(breeds))]
        pet_of = {image: breeds[class_id] for image, class_id, _ in rows}
    if border == "class":
        names.append(BORDER_CLASS)
    return names, pet_of


def _border_name(border: str, pet: str) -> str:
    return {"ignore": IGNORE_NAME, "pet": pet, "background": BACKGROUND, "class": BORDER_CLASS}[border]


def read(source: Source, settings: dict):
    if not source.has_folder(IMAGES) or not source.has_folder(TRIMAPS):
        missing = IMAGES if not source.has_folder(IMAGES) else TRIMAPS
        raise SourceError(f"{source.root}: no {missing}/ folder; expected {LAYOUT}")
    rows = [(number, *_row(number, fields)) for number, fields in list_rows(source, LIST, LAYOUT)]
    official = settings["split"] == "official"
    sides = {}
    if official:  # test.txt comes last: an image in both lists stays in validation, as VOC's importer does
        for relative, side in OFFICIAL.items():
            for _, fields in list_rows(source, relative, LAYOUT):
                sides[fields[0]] = side
    names, pet_of = _classes([r[1:] for r in rows], settings["classes"], settings["border"])
    items = Items("pets")
    seen = set()
    for number, image, _, _ in rows:
        image_ref, trimap_ref = f"{IMAGES}/{image}.jpg", f"{TRIMAPS}/{image}.png"
        pet = pet_of[image]
        if image in seen:
            items.skip(number, "duplicate-source", f"{image} is listed twice in {LIST}")
        elif image_ref not in source.files:
            items.skip(number, "missing-object", f"{image_ref} is listed in {LIST} but does not exist")
        elif trimap_ref not in source.files:
            items.skip(number, "no-trimap", f"{image_ref} has no {trimap_ref}")
        elif official and image not in sides:
            items.skip(number, "not-in-split", f"{image} is in neither {' nor '.join(OFFICIAL)}")
        else:
            color_map = (ColorEntry(PET, pet, None), ColorEntry(BG, BACKGROUND, None),
                         ColorEntry(BORDER, _border_name(settings["border"], pet), None))
            items.add(number, image_ref, trimap_ref, color_map, sides.get(image))
        seen.add(image)
    listed_images = {f"{IMAGES}/{image}.jpg" for _, image, _, _ in rows}
    for path in [*source.under(IMAGES), *source.under(TRIMAPS)]:
        if is_resource_fork(path):
            items.skip(0, "resource-fork", f"{path} is a macOS resource-fork file, not an image")
        elif path.startswith(IMAGES + "/") and path not in listed_images:
            items.skip(0, "unlisted", f"{path} is not in {LIST}")
    return items.job(source, ClassTable.fixed(names), official)


def detect(source: Source) -> bool:
    return LIST in source.files and source.has_folder(TRIMAPS)


IMPORTER = Importer(
    name="pets",
    help="Import Oxford-IIIT Pet (images/, annotations/trimaps/, annotations/list.txt) from SRC into OUT.",
    params=(
        Param("classes", "background + pet, background + cat + dog, or background + the 37 breeds.",
              "breed", ("binary", "species", "breed")),
        Param("border", "Trimap border (value 3): the ignore label 255, the pet's class, background, "
                        "or a class of its own.", "ignore", ("ignore", "pet", "background", "class")),
        Param("split", "stratified: gt2seg's seeded split; official: trainval.txt -> train, test.txt -> "
                       "validation.", "stratified", ("stratified", "official")),
    ),
    read=read,
    detect=detect,
)
