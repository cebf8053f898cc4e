"""Read a Ground Truth output manifest into typed records.

Pure: no image I/O. A line is usable when it carries a semantic-segmentation
label attribute (found by its metadata `type`, never by `job-name`) without a
`failure-reason`. Unusable lines are skipped with a reason; a line that is not
valid JSON, or whose metadata cannot be interpreted, is a problem that stops a
conversion (it means the file is damaged, not that labeling is unfinished).
"""
from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass, field

from gt2seg import jsonl, storage
from gt2seg.errors import JsonLineError, ManifestError

SEG_TYPE = "groundtruth/semantic-segmentation"
_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")
_KEY = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also accepts "¹", which int() refuses


@dataclass(frozen=True)
class ColorEntry:
    """One `internal-color-map` entry of one line."""

    key: int
    name: str
    color: str | None  # '#rrggbb' lower-case, None for pre-hex-color jobs


@dataclass(frozen=True)
class Record:
    """A usable line: an image, its mask, and that line's own colour map. Slots: one is held per line."""

    __slots__ = ("line", "source_ref", "attribute", "mask_ref", "color_map")  # slots=True needs Python 3.10

    line: int
    source_ref: str
    attribute: str
    mask_ref: str
    color_map: tuple[ColorEntry, ...]

    def __reduce__(self):  # a frozen class with slots pickles through its constructor
        return Record, (self.line, self.source_ref, self.attribute, self.mask_ref, self.color_map)


@dataclass(frozen=True)
class Skipped:
    line: int
    reason: str  # unlabeled | failed | no-source-ref | missing-object | duplicate-source | invalid
    detail: str = ""


@dataclass
class Attribute:
    """A label attribute seen in the manifest, with its metadata type."""

    name: str
    type: str
    lines: int = 0
    failed: int = 0


@dataclass
class Manifest:
    uri: str
    lines: int
    records: list[Record]
    skipped: list[Skipped]
    attributes: dict[str, Attribute]
    chosen: list[str]
    problems: list[str] = field(default_factory=list)

    def skipped_by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(s.reason for s in self.skipped).items()))


def _attributes_of(obj: dict) -> dict[str, tuple[str | None, dict]]:
    """Map canonical attribute name -> (label key present on the line or None, metadata).

    Metadata may sit under `<attr>-metadata` (label key `<attr>`) or, in the
    docs' example, under `<name>-metadata` for the label key `<name>-ref`.
    """
    found = {}
    for key, meta in obj.items():
        if not key.endswith("-metadata") or not isinstance(meta, dict):
            continue
        base = key[: -len("-metadata")]
        if base in obj:
            found[base] = (base, meta)
        elif base + "-ref" in obj:
            found[base + "-ref"] = (base + "-ref", meta)
        else:  # a failed line keeps its metadata but has no label
            name = base if base.endswith("-ref") or meta.get("type") != SEG_TYPE else base + "-ref"
            found[name] = (None, meta)
    return found


def _color_map(meta: dict, line: int) -> tuple[ColorEntry, ...]:
    cmap = meta.get("internal-color-map")
    if not isinstance(cmap, dict) or not cmap:
        raise ManifestError(f"line {line}: the segmentation metadata has no 'internal-color-map'")
    entries, keys = [], {}
    for key, value in cmap.items():
        if not _KEY.fullmatch(key) or not isinstance(value, dict) or "class-name" not in value:
            raise ManifestError(
                f"line {line}: internal-color-map entry {key!r} must be "
                '"<integer>": {"class-name": ..., "hex-color": "#rrggbb"}'
            )
        color = value.get("hex-color")
        if color is not None:
            match = _HEX.match(str(color))
            if not match:
                raise ManifestError(f"line {line}: hex-color {color!r} of class {value['class-name']!r} is not #rrggbb")
            color = "#" + match.group(1).lower()
        if int(key) > 255:
            raise ManifestError(f"line {line}: color-map key {key} does not fit an 8-bit mask")
        if int(key) in keys:
            raise ManifestError(f"line {line}: internal-color-map keys {keys[int(key)]!r} and {key!r} are both "
                                f"mask value {int(key)}; keep one")
        keys[int(key)] = key
        entries.append(ColorEntry(int(key), str(value["class-name"]), color))
    return tuple(sorted(entries, key=lambda e: e.key))


def _choose(attributes: dict[str, Attribute], requested: tuple[str, ...]) -> list[str]:
    seg = sorted(name for name, a in attributes.items() if a.type == SEG_TYPE)
    listing = ", ".join(f"{n} ({attributes[n].lines} lines)" for n in seg) or "none"
    if not requested:
        if len(seg) == 1:
            return seg
        if not seg:
            others = ", ".join(f"{n} ({a.type})" for n, a in sorted(attributes.items())) or "none"
            raise ManifestError(
                f"no semantic-segmentation label attribute (metadata type {SEG_TYPE}) in the manifest; "
                f"attributes found: {others}"
            )
        raise ManifestError(
            f"several semantic-segmentation label attributes: {listing}. Choose with --label-attribute "
            "NAME; repeat it to give a priority (the first one present on each line wins, e.g. the "
            "adjusted attribute, then the original)"
        )
    chosen = []
    for name in requested:
        resolved = name if name in attributes else name + "-ref" if name + "-ref" in attributes else None
        if resolved is None:
            hint = difflib.get_close_matches(name, list(attributes), n=1)
            raise ManifestError(
                f"label attribute {name!r} is not in the manifest"
                + (f"; did you mean {hint[0]!r}?" if hint else "")
                + f" Segmentation attributes: {listing}"
            )
        if attributes[resolved].type != SEG_TYPE:
            raise ManifestError(
                f"label attribute {resolved!r} has type {attributes[resolved].type!r}, not {SEG_TYPE}; "
                f"segmentation attributes: {listing}"
            )
        chosen.append(resolved)
    return chosen


def _objects(lines, problems: list[str] | None):
    """(line number, object) for each JSON-object line; problems collects the others."""
    for number, raw in lines:
        try:
            yield number, jsonl.parse_object(raw, number)
        except JsonLineError as exc:
            if problems is not None:
                problems.append(str(exc))


def parse_manifest(text: str, uri: str = "<manifest>", label_attributes: tuple[str, ...] = ()) -> Manifest:
    """Parse manifest text. Problems are collected, not raised (see read_manifest)."""
    return _parse(lambda: jsonl.lines(text), uri, label_attributes)


def _parse(lines, uri: str, label_attributes: tuple[str, ...]) -> Manifest:
    """`lines()` gives a fresh iterator of (number, line) for each of the two passes (attribute
    statistics, then records), so that no parsed line outlives its turn: memory stays flat for large jobs.
    """
    problems: list[str] = []
    attributes: dict[str, Attribute] = {}
    for _, obj in _objects(lines(), problems):
        for name, (label_key, meta) in _attributes_of(obj).items():
            attr = attributes.setdefault(name, Attribute(name, "unknown"))
            if attr.type == "unknown" and "type" in meta:  # failed lines may lack a type
                attr.type = str(meta["type"])
            attr.lines += 1
            attr.failed += bool(label_key is None or "failure-reason" in meta)

    manifest = Manifest(uri, sum(1 for _ in lines()), [], [], attributes, [], problems)
    if not attributes and manifest.lines == len(problems):
        return manifest
    try:
        manifest.chosen = _choose(attributes, tuple(label_attributes))
    except ManifestError as exc:
        problems.append(str(exc))
        return manifest

    color_maps: dict = {}  # identical colour maps share one tuple
    for number, obj in _objects(lines(), None):
        found = _attributes_of(obj)
        candidates = [(name, *found[name]) for name in manifest.chosen if name in found]
        usable = [(n, k, m) for n, k, m in candidates if k is not None and "failure-reason" not in m]
        if not usable:
            metas = [m for _, _, m in candidates] or [m for _, m in found.values()]
            failed = [m for m in [*metas, obj] if "failure-reason" in m]
            if failed:
                manifest.skipped.append(Skipped(number, "failed", str(failed[0]["failure-reason"])))
            else:
                manifest.skipped.append(Skipped(number, "unlabeled", "no label attribute on this line"))
            continue
        name, label_key, meta = usable[0]
        source, mask = obj.get("source-ref"), obj.get(label_key)
        if not isinstance(source, str) or not source:
            manifest.skipped.append(Skipped(number, "no-source-ref", "the line has no 'source-ref'"))
            continue
        if not isinstance(mask, str) or not mask:
            problems.append(f"line {number}: {label_key!r} must be the mask's URI, got {mask!r}")
            continue
        try:
            cmap = _color_map(meta, number)
        except ManifestError as exc:
            problems.append(str(exc))
            continue
        manifest.records.append(Record(number, source, name, mask, color_maps.setdefault(cmap, cmap)))
    return manifest


def read_manifest(uri: str, label_attributes: tuple[str, ...] = (), strict: bool = True) -> Manifest:
    """Read a manifest from a path or s3:// URI. strict: raise on any problem."""
    uri = str(uri)
    if storage.is_s3(uri):
        data = storage.read_bytes(uri)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ManifestError(f"{uri} is not UTF-8 text (byte {exc.start}); is it a manifest?") from None
        del data  # the text is all that is needed: an S3 manifest is not held twice
        manifest = parse_manifest(text, uri, tuple(label_attributes))
    else:  # a local manifest is streamed, twice: memory does not grow with its length
        with storage.local_errors(uri):
            manifest = _parse(lambda: jsonl.file_lines(uri), uri, tuple(label_attributes))
    if strict:
        if manifest.problems:
            raise ManifestError(f"{uri}: " + "\n  ".join(manifest.problems))
        if not manifest.records:
            reasons = ", ".join(f"{n} {r}" for r, n in manifest.skipped_by_reason().items()) or "it is empty"
            raise ManifestError(f"{uri} has no usable line ({reasons}); nothing to convert")
    return manifest
