"""What is in a manifest or a dataset to import, before converting: counts, attributes, classes, problems."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from gt2seg.classes import ClassTable
from gt2seg.errors import ManifestError, StorageError
from gt2seg.layout import SIDES
from gt2seg.manifest import read_manifest


@dataclass
class InspectReport:
    manifest: str
    lines: int
    labeled: int
    unlabeled: int
    failed: int
    skipped_by_reason: dict[str, int]
    failure_reasons: dict[str, int]
    attributes: list[dict]
    chosen: list[str]
    classes: list[dict]
    problems: list[str]  # stop a conversion
    warnings: list[str]  # worth a look, harmless

    def to_dict(self) -> dict:
        return asdict(self)


def inspect_manifest(uri: str, label_attributes: tuple[str, ...] = ()) -> InspectReport:
    manifest = read_manifest(uri, tuple(label_attributes), strict=False)
    problems = list(manifest.problems)
    classes, failures, warnings = [], {}, []
    for s in manifest.skipped:
        if s.reason == "failed":
            failures[s.detail or "(no reason given)"] = failures.get(s.detail or "(no reason given)", 0) + 1
    if manifest.records:
        try:
            table = ClassTable.build(manifest.records)
            classes = [c.to_dict() for c in table.classes]
            warnings = list(table.warnings)
        except ManifestError as exc:
            problems.append(str(exc))
    elif not problems:
        problems.append("no usable line: nothing to convert")
    by_reason = manifest.skipped_by_reason()
    return InspectReport(
        manifest=manifest.uri, lines=manifest.lines, labeled=len(manifest.records),
        unlabeled=by_reason.get("unlabeled", 0), failed=by_reason.get("failed", 0),
        skipped_by_reason=by_reason, failure_reasons=failures,
        attributes=[asdict(a) for a in sorted(manifest.attributes.values(), key=lambda a: a.name)],
        chosen=manifest.chosen, classes=classes, problems=problems, warnings=warnings,
    )


@dataclass
class SourceReport:
    """What a dataset to import holds, read as `gt2seg import FORMAT` would read it (no image is decoded)."""

    source: str
    format: str
    items: int
    splits: dict[str, int] | None  # the official sides, when --split official
    classes: list[dict]
    skipped_by_reason: dict[str, int]
    skipped: list[dict]  # the first MAX_LISTED
    problems: list[str]  # stop an import
    warnings: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


MAX_LISTED = 20


def inspect_source(src: str, format: str | None = None, settings: dict | None = None) -> SourceReport:
    """Read dataset `src` (format detected when not given) as its importer would; layout errors are problems."""
    from gt2seg.errors import SourceError
    from gt2seg.importers import archive, detect, read_source

    try:
        with archive.readable(src) as folder:
            format = format or detect(folder)
            job = read_source(format, folder, settings)
    except (SourceError, StorageError) as exc:
        return SourceReport(str(src), format or "unknown", 0, None, [], {}, [], [str(exc)], [])
    manifest = job.manifest
    splits = None
    if job.sides is not None:
        splits = {side: sum(1 for s in job.sides.values() if s == side) for side in SIDES}
    return SourceReport(
        source=str(src) if archive.is_archive(src) else manifest.uri, format=format, items=len(manifest.records),
        splits=splits,
        classes=[c.to_dict() for c in job.table.classes], skipped_by_reason=manifest.skipped_by_reason(),
        skipped=[asdict(s) for s in manifest.skipped[:MAX_LISTED]],
        problems=[f"line {e.line}: {e.detail}" for e in job.errors[:MAX_LISTED]]  # refused unless --on-error skip
        + ([f"... and {len(job.errors) - MAX_LISTED} more"] if len(job.errors) > MAX_LISTED else []),
        warnings=list(job.table.warnings),
    )
