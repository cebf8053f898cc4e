"""The reduce: one global step over the finished shards' caches -> the layout, manifests and report.

`convert` runs it over its own single shard, `gt2seg merge` over N shards' outputs; the code and its
input (the shard records and results, see gt2seg.shards) are the same, so N shards merged write the
bytes one machine writes. It reads the results front to back, twice (the split, then the placement),
keeping per item only what the split needs (its name, image hash and classes present).
"""
from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from gt2seg import layout
from gt2seg.classes import CLASSES_JSON
from gt2seg.errors import ManifestError, ShardError
from gt2seg.shards import ShardRecord, merged_results
from gt2seg.split import VALIDATION, assign_positions


@dataclass
class Report:
    manifest: str
    output: str
    label_attributes: list[str]
    lines: int
    converted: int
    splits: dict[str, int]
    classes: list[dict]
    pixels_per_class: dict[str, int]
    images_per_class: dict[str, int]
    skipped_by_reason: dict[str, int]
    skipped: list[dict]
    expanded_masks: int
    resized_masks: int
    reencoded_images: int
    routes: dict[str, int]
    warnings: list[str]
    resumed: int = 0  # items reused from the cache: differs between identical runs, not in report.json

    def to_dict(self, run_fields: bool = True) -> dict:
        """run_fields=False drops what differs between identical runs (for report.json)."""
        out = asdict(self)
        if not run_fields:
            out.pop("resumed")
        return out


def _uri_base(out: Path, s3_prefix: str | None) -> str:
    """What a layout file's URI starts with (then '/' and its path in the layout): OUT resolved once."""
    return s3_prefix.rstrip("/") if s3_prefix else str(out.resolve())


class _Totals:
    """The report's sums, added up item by item."""

    def __init__(self, classes: int):
        self.pixels = np.zeros(classes, np.int64)
        self.images = np.zeros(classes, np.int64)
        self.converted = self.ignored = self.expanded = self.resized = self.reencoded = 0
        self.routes: Counter = Counter()
        self.rotated: list[str] = []

    def add(self, item: dict) -> None:
        pixels = np.asarray(item["pixels"], np.int64)
        self.pixels += pixels
        self.images += pixels > 0
        self.converted += 1
        self.ignored += item["ignore_pixels"]
        self.expanded += item["expanded"]
        self.resized += item["resized"]
        self.reencoded += item["reencoded"]
        self.routes[item["route"]] += 1
        if item["exif_rotated"]:
            self.rotated.append(item["name"])


class _Sources(Mapping):
    """Layout path -> its file in a shard's cache. Stored as the cache folder, one object per shard:
    the cached file has the layout file's name, so a path per item is not kept twice."""

    def __init__(self):
        self._folders: dict[str, Path] = {}

    def __setitem__(self, relative: str, folder: Path) -> None:
        self._folders[relative] = folder

    def __getitem__(self, relative: str) -> str:
        return os.path.join(self._folders[relative], relative.rsplit("/", 1)[-1])

    def __iter__(self):
        return iter(self._folders)

    def __len__(self) -> int:
        return len(self._folders)


def _checked(item: dict, record: ShardRecord) -> dict:
    """The item as its shard's cache holds it now: a later run into that folder with other options
    would have replaced it, and placing it would mix two runs."""
    try:
        cached = json.loads((record.cache / f"{item['name']}.json").read_text())
    except (OSError, ValueError):
        cached = {}
    if cached.get("fingerprint") != item["fingerprint"]:
        raise ShardError(f"shard {record.label} in {record.folder}: item {item['name']} was changed or removed "
                         "after that shard finished (another run into the same folder?); run that shard again")
    return item


def reduce(records: list[ShardRecord], out: Path, resumed: int = 0, check: bool = True) -> Report:
    """Write the layout of the complete shard set `records` (see gt2seg.shards.complete_set) at `out`,
    which the caller holds (layout.claim). check=False: the caller wrote the shards under that same
    hold (convert), so no other run can have changed their items since (see _checked)."""
    first = records[0]
    options = first.options
    table = json.loads(first.classes_json)
    names = [c["name"] for c in table]
    totals = _Totals(len(table))
    # Per item in name order (both passes read the results in that order): its image hash (raw bytes) and
    # classes for the split, then its side as one byte (1: validation). Identical class sets are one object.
    groups, item_classes, class_sets, validation = [], [], {}, bytearray()
    for item, _ in merged_results(records):
        totals.add(item)
        if first.fixed_sides:
            validation.append(item["side"] == VALIDATION)
        else:
            classes = frozenset(np.flatnonzero(item["pixels"]).tolist())
            groups.append(bytes.fromhex(item["sha256"]))
            item_classes.append(class_sets.setdefault(classes, classes))
    skipped = sorted(first.skipped + [s for r in records for s in r.item_skipped],
                     key=lambda s: (s["line"], s["reason"], s["detail"]))
    if not totals.converted:
        raise ManifestError(f"{first.manifest}: no item could be converted (see the skipped reasons: "
                            f"{dict(Counter(s['reason'] for s in skipped))})")
    if not first.fixed_sides:
        validation = assign_positions(groups, item_classes, options["validation_fraction"], options["seed"])
    del groups, item_classes, class_sets

    base = _uri_base(out, options["s3_prefix"])
    wanted = _Sources()
    present = {side: np.zeros(len(table), bool) for side in layout.SIDES}
    with contextlib.ExitStack() as stack:  # manifests streamed to temp files, renamed once placed
        manifests = {side: stack.enter_context(layout.streamed(out / f"{side}.manifest")) for side in layout.SIDES}
        for position, (item, record) in enumerate(merged_results(records)):
            if check:
                _checked(item, record)
            name, side = item["name"], layout.SIDES[validation[position]]
            image, mask = f"{side}/{name}{item['image_ext']}", f"{layout.annotation_dir(side)}/{name}.png"
            wanted[image] = wanted[mask] = record.cache
            manifests[side].write(layout.manifest_text([
                {"source-ref": f"{base}/{image}", first.attribute: f"{base}/{mask}"}]))
            present[side] |= np.asarray(item["pixels"]) > 0
        layout.materialize(out, wanted)
        del wanted
    for side in layout.SIDES:
        layout.write_json(out / layout.LABEL_MAP_DIR / layout.label_map_file(side), layout.label_map())
    layout.atomic_write(out / CLASSES_JSON, first.classes_json)
    layout.write_json(out / "channels.json", layout.channels(
        {side: f"{base}/{side}.manifest" for side in layout.SIDES}, first.attribute))

    warnings = list(first.class_warnings)
    if totals.rotated:
        warnings.append(f"{len(totals.rotated)} JPEG(s) carry an EXIF rotation (copied as is; check that masks "
                        f"match the stored pixel orientation): {', '.join(totals.rotated[:5])}")
    if totals.ignored:
        warnings.append(f"{totals.ignored:,} pixels carry the ignore label 255 (--unknown-color ignore, or the "
                        "source's own ignore values: Pet trimap borders, VOC boundaries)")
    for side in layout.SIDES:
        missing = [n for i, n in enumerate(names[1:], 1) if not present[side][i]]
        if missing:
            warnings.append(f"classes absent from {side}: {', '.join(missing)}")
    report = Report(
        manifest=first.manifest, output=str(out.resolve()), label_attributes=first.label_attributes,
        lines=first.lines, converted=totals.converted,
        splits={side: validation.count(code) for code, side in enumerate(layout.SIDES)},
        classes=table,
        pixels_per_class=dict(zip(names, totals.pixels.tolist())),
        images_per_class=dict(zip(names, totals.images.tolist())),
        skipped_by_reason=dict(sorted(Counter(s["reason"] for s in skipped).items())),
        skipped=skipped,
        expanded_masks=totals.expanded, resized_masks=totals.resized, reencoded_images=totals.reencoded,
        routes=dict(sorted(totals.routes.items())), warnings=warnings, resumed=resumed,
    )
    layout.write_json(out / "report.json", report.to_dict(run_fields=False))
    return report
