"""Merge the outputs of `gt2seg convert --shard I/N` runs into one layout.

Shards share one class table (every shard reads the whole manifest) and
globally unique names, so merging is: place every shard's files side by side,
concatenate the augmented manifests (local paths rewritten to the merged
folder; s3:// refs kept), and add up the reports. Lines skipped while reading
the manifest appear in every shard's report and are counted once.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from gt2seg import layout
from gt2seg.classes import CLASSES_JSON
from gt2seg.convert import Report
from gt2seg.errors import Gt2SegError


def _load(shard: Path) -> dict:
    try:
        return json.loads((shard / "report.json").read_text())
    except (OSError, ValueError):
        raise Gt2SegError(f"{shard} has no readable report.json: is it a finished gt2seg convert output?") from None


def merge_shards(shards: list, out) -> Report:
    shards, out = [Path(s) for s in shards], Path(out)
    if len(shards) < 2:
        raise Gt2SegError("merge needs at least two shard folders")
    reports = [_load(s) for s in shards]
    classes = {(s / CLASSES_JSON).read_text() for s in shards}
    if len(classes) != 1:
        raise Gt2SegError("the shards have different classes.json: were they converted from the same manifest "
                          "with the same options?")
    owner: dict[str, Path] = {}
    for shard in shards:
        for folder in layout.LAYOUT_DIRS:
            for path in sorted((shard / folder).glob("*")):
                key = f"{folder}/{path.name}"
                if key in owner:
                    raise Gt2SegError(f"{key} is in both {owner[key]} and {shard}: shards must not overlap")
                owner[key] = shard
    with layout.claim(out, [str(s) for s in shards]):
        layout.materialize(out, {key: shard / key for key, shard in owner.items()})
        for side in layout.SIDES:
            text = ""
            for shard in shards:
                part = (shard / f"{side}.manifest").read_text()
                text += part.replace(str(shard.resolve()) + "/", str(out.resolve()) + "/")
            layout.atomic_write(out / f"{side}.manifest", text)
            name = Path(layout.LABEL_MAP_DIR) / layout.label_map_file(side)
            layout.atomic_write(out / name, (shards[0] / name).read_text())
        layout.atomic_write(out / CLASSES_JSON, classes.pop())
        channels = (shards[0] / "channels.json").read_text().replace(str(shards[0].resolve()) + "/",
                                                                      str(out.resolve()) + "/")
        layout.atomic_write(out / "channels.json", channels)
        report = _sum(reports, out)
        layout.write_json(out / "report.json", report.to_dict(run_fields=False))
    return report


def _sum(reports: list[dict], out: Path) -> Report:
    first = reports[0]
    skipped = {(s["line"], s["reason"]): s for r in reports for s in r["skipped"]}
    add = lambda key: dict(sum((Counter(r[key]) for r in reports), Counter()))
    names = [c["name"] for c in first["classes"]]
    return Report(
        manifest=first["manifest"], output=str(out.resolve()), label_attributes=first["label_attributes"],
        lines=first["lines"], converted=sum(r["converted"] for r in reports),
        splits={side: sum(r["splits"][side] for r in reports) for side in layout.SIDES},
        classes=first["classes"],
        pixels_per_class={n: add("pixels_per_class").get(n, 0) for n in names},
        images_per_class={n: add("images_per_class").get(n, 0) for n in names},
        skipped_by_reason=dict(sorted(Counter(s["reason"] for s in skipped.values()).items())),
        skipped=[skipped[k] for k in sorted(skipped)],
        expanded_masks=sum(r["expanded_masks"] for r in reports),
        resized_masks=sum(r["resized_masks"] for r in reports),
        reencoded_images=sum(r["reencoded_images"] for r in reports),
        routes=dict(sorted(add("routes").items())),
        # per-side class coverage is a property of each shard's split, not of the merge
        warnings=sorted({w for r in reports for w in r["warnings"] if not w.startswith("classes absent from")}),
        shard=None,
    )
