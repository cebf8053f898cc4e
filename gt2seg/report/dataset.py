"""What a converted layout holds, for people: class balance per split, a bounded gallery, skipped lines.

One cheap pass over the items: per-class pixel counts come from the conversion cache
(.gt2seg/items/<name>.json) or, where there is none, from a histogram of the mask. Pictures are made
only for the few items the gallery picks, so the cost stays near-flat in the number of items.
"""
from __future__ import annotations

import heapq
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from gt2seg import jsonl, layout, storage
from gt2seg.classes import DEFAULT_COLORS, IGNORE
from gt2seg.errors import Gt2SegError
from gt2seg.report.figures import BarChart

FLAGS = ("expanded", "resized", "exif_rotated")
NEAR_FULL = 0.98  # share of labelled pixels that makes a mask "cover ~everything"
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
CACHE = layout.cache_dir(Path())  # relative: .gt2seg/items


@dataclass(frozen=True)
class Pick:
    """A gallery entry: why it was chosen, and where its files are (layout-relative; None if missing)."""

    group: str
    why: str
    name: str
    split: str
    image: str | None
    mask: str | None


@dataclass
class DatasetReport:
    layout: str
    classes: list  # [{"index", "name", "color"}]
    items: dict  # split -> number of image/mask pairs
    pixels: dict  # split -> pixels per class index
    images: dict  # split -> images per class index
    missing_from: dict  # split -> class names present on the other side only
    totals: dict = field(default_factory=dict)  # "pixels"/"images" -> per class index: report.json's figures
    picks: list = field(default_factory=list)
    flagged: dict | None = None  # flag -> every item name that carries it; None without a conversion cache
    skipped: list = field(default_factory=list)  # report.json's skipped lines, plus "source" where known
    warnings: list = field(default_factory=list)  # the conversion's, as the CLI printed them
    problems: list = field(default_factory=list)  # what is missing or half-written

    def to_dict(self) -> dict:
        return asdict(self)

    def figures(self) -> list:
        names = [c["name"] for c in self.classes]
        colors = [c["color"] for c in self.classes]
        return [BarChart("Pixels per class", names, {s: self.pixels[s] for s in layout.SIDES}, colors),
                BarChart("Images per class", names, {s: self.images[s] for s in layout.SIDES}, colors)]


@dataclass
class _Item:
    name: str
    split: str
    image: str
    mask: str
    pixels: np.ndarray
    flags: tuple | None


def _read_json(path: Path, problems: list, what: str):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        problems.append(f"{path.name} is missing: {what}")
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name} is unreadable ({exc}): {what}")
    return None


def _pairs(root: Path, split: str, problems: list) -> list[tuple[str, str, str]]:
    """(name, image, mask) layout-relative paths; unpaired files become problems."""
    annotations = layout.annotation_dir(split)
    images_dir, masks_dir = root / split, root / annotations
    images = {p.stem: p.name for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS} \
        if images_dir.is_dir() else {}
    masks = {p.stem for p in masks_dir.glob("*.png")} if masks_dir.is_dir() else set()
    for names, there, missing in ((set(images) - masks, split, f"{annotations}/"),
                                  (masks - set(images), annotations, f"{split}/")):
        if names:
            listed = ", ".join(sorted(names)[:5]) + (" ..." if len(names) > 5 else "")
            problems.append(f"{len(names)} file(s) in {there}/ have no partner in {missing}: {listed}")
    return [(n, f"{split}/{images[n]}", f"{annotations}/{n}.png") for n in sorted(masks & set(images))]


def _counts(root: Path, name: str, mask: str, num_classes: int, problems: list) -> tuple[np.ndarray, tuple | None]:
    """Per-class pixel counts and conversion flags: from the cache record, else a histogram of the mask
    (flags then unknown: None)."""
    try:
        cached = json.loads((root / CACHE / f"{name}.json").read_text())
        return np.asarray(cached["pixels"], dtype=np.int64)[:num_classes], tuple(f for f in FLAGS if cached.get(f))
    except (OSError, ValueError, KeyError):
        pass
    try:
        with Image.open(root / mask) as image:
            if image.mode not in ("P", "L"):
                raise ValueError(f"mode {image.mode}, not a class-index mask")
            histogram = np.asarray(image.histogram())  # Pillow's C histogram: no pixel copy
    except (OSError, ValueError) as exc:
        problems.append(f"{mask}: unreadable mask ({exc})")
        return np.zeros(num_classes, dtype=np.int64), None
    beyond = [v for v in np.flatnonzero(histogram) if num_classes <= v != IGNORE]
    if beyond:
        problems.append(f"{mask}: pixel values {beyond[:5]} are not classes in classes.json")
    return histogram[:num_classes].astype(np.int64), None


def _classes(root: Path, problems: list) -> list:
    classes = _read_json(root / "classes.json", problems, "classes are named by index")
    if isinstance(classes, list) and all(isinstance(c, dict) and {"index", "name", "color"} <= set(c) for c in classes):
        return classes
    if classes is not None:
        problems.append("classes.json is not a list of {index, name, color}: classes are named by index")
    return []


def _picks(items: list[_Item], classes: list, per_class: int) -> list[Pick]:
    def pick(group, why, item):
        return Pick(group, why, item.name, item.split, item.image, item.mask)

    out = []
    for c in classes[1:]:
        k = c["index"]
        share = [(int(it.pixels[k]) / max(1, int(it.pixels.sum())), i) for i, it in enumerate(items) if it.pixels[k]]
        rarest = heapq.nsmallest(per_class, share)
        most = heapq.nlargest(per_class, [s for s in share if s not in rarest])
        for label, chosen in (("rarest", rarest), ("most", most)):
            out += [pick(c["name"], f"{c['name']} {label}: {s:.1%} of pixels", items[i]) for s, i in chosen]
    empty = [it for it in items if it.pixels.sum() and not it.pixels[1:].any()]
    out += [pick("empty masks", "background only", it) for it in empty[: per_class * 4]]
    full = [it for it in items if it.pixels.sum() and it.pixels[1:].sum() >= NEAR_FULL * it.pixels.sum()]
    out += [pick("masks covering ~everything", f"{it.pixels[1:].sum() / it.pixels.sum():.1%} labelled", it)
            for it in full[: per_class * 4]]
    for flag in FLAGS:
        out += [pick(f"{flag.replace('_', ' ')} in conversion", flag, it)
                for it in [it for it in items if flag in (it.flags or ())][: per_class * 6]]
    return out


def _skipped_sources(report: dict, ref_roots) -> dict[int, str]:
    """Line number -> where the skipped line's image is read from, when the manifest can be read."""
    from gt2seg.convert import resolve_ref

    wanted = {s["line"] for s in report.get("skipped", [])}
    if not wanted or not report.get("manifest"):
        return {}
    try:
        lines = dict(jsonl.lines(storage.read_bytes(report["manifest"]).decode("utf-8", "replace")))
    except Gt2SegError:
        return {}
    out = {}
    for number in wanted:  # numbered as convert numbers them: gt2seg.jsonl
        try:
            ref = json.loads(lines[number]).get("source-ref")
            out[number] = resolve_ref(ref, report["manifest"], ref_roots) if isinstance(ref, str) else None
        except (KeyError, ValueError, AttributeError, Gt2SegError):
            continue
    return {k: v for k, v in out.items() if v}


def _totals(converted: dict, classes: list, pixels: dict, images: dict, problems: list) -> dict:
    """Each class's pixels and images over both splits: report.json's figures (pixels_per_class,
    images_per_class) where it has them, else the sums of the splits; a disagreement is a problem."""
    out = {}
    for what, counted in (("pixels", pixels), ("images", images)):
        summed = [int(sum(counted[s][c["index"]] for s in layout.SIDES)) for c in classes]
        recorded = converted.get(f"{what}_per_class")
        if not isinstance(recorded, dict):
            out[what] = summed
            continue
        out[what] = [recorded.get(c["name"]) for c in classes]
        differ = [c["name"] for c, r, n in zip(classes, out[what], summed) if r is not None and r != n]
        if differ:
            problems.append(f"report.json's {what}_per_class differs from the layout's masks for "
                            f"{', '.join(differ)}: the layout changed after the conversion")
    return out


def build_dataset_report(layout_dir, per_class: int = 2, ref_roots=(), progress: bool = False) -> DatasetReport:
    """Class balance, gallery picks, flags, skipped lines and warnings of a layout folder (data only)."""
    from tqdm import tqdm

    root = Path(layout_dir)
    if not root.is_dir():
        raise Gt2SegError(f"{layout_dir}: no such folder")
    if not any((root / s).is_dir() or (root / layout.annotation_dir(s)).is_dir() for s in layout.SIDES):
        raise Gt2SegError(f"{layout_dir} is not a layout: no train/, validation/ or *_annotation/ folder "
                          "(give the OUT folder of gt2seg convert)")
    problems: list[str] = []
    classes = _classes(root, problems)
    converted = _read_json(root / "report.json", problems,
                           "skipped lines and conversion warnings are unknown (unfinished or not a gt2seg conversion)")
    converted = converted if isinstance(converted, dict) else {}
    pairs = {s: _pairs(root, s, problems) for s in layout.SIDES}
    items, bar = [], tqdm(total=sum(map(len, pairs.values())), desc="report", unit="item", disable=not progress)
    for split, found in pairs.items():
        for name, image, mask in found:
            bar.update()
            items.append(_Item(name, split, image, mask, *_counts(root, name, mask, len(classes) or 256, problems)))
    bar.close()
    if not classes:
        top = max([int(np.flatnonzero(it.pixels).max()) for it in items if it.pixels.any()] + [0])
        classes = [{"index": i, "name": f"class_{i}", "color": DEFAULT_COLORS[i % len(DEFAULT_COLORS)]}
                   for i in range(top + 1)]
        items = [_Item(it.name, it.split, it.image, it.mask, it.pixels[: len(classes)], it.flags) for it in items]
    size = len(classes)
    pixels = {s: np.zeros(size, dtype=np.int64) for s in layout.SIDES}
    images = {s: np.zeros(size, dtype=np.int64) for s in layout.SIDES}
    for it in items:
        pixels[it.split] += it.pixels
        images[it.split] += it.pixels > 0
    missing = {s: [c["name"] for c in classes[1:] if not images[s][c["index"]] and images[o][c["index"]]]
               for s, o in zip(layout.SIDES, reversed(layout.SIDES))}
    sources = _skipped_sources(converted, ref_roots)
    totals = _totals(converted, classes, pixels, images, problems)
    return DatasetReport(
        layout=str(root.resolve()), classes=classes, items={s: len(pairs[s]) for s in layout.SIDES},
        pixels={s: v.tolist() for s, v in pixels.items()}, images={s: v.tolist() for s, v in images.items()},
        missing_from=missing, totals=totals, picks=_picks(items, classes, per_class),
        flagged={f: [it.name for it in items if f in (it.flags or ())] for f in FLAGS}
        if any(it.flags is not None for it in items) else None,
        skipped=[dict(s, source=sources.get(s.get("line"))) for s in converted.get("skipped", [])],
        warnings=list(converted.get("warnings", [])), problems=problems,
    )
