"""Convert a Ground Truth job into the SageMaker layout: the whole data flow.

manifest -> class table -> per item (fetch, decode, remap, encode; in worker
processes, streamed, cached) -> split -> layout. Nothing is placed in the
layout until every item has been converted, so a failure leaves the previous
layout (if any) as it was.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import sys
import threading
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from gt2seg import layout, storage
from gt2seg.classes import CLASSES_JSON, IGNORE, ClassTable
from gt2seg.errors import ConversionError, Gt2SegError, ItemError, ManifestError, MissingObjectError, StorageError
from gt2seg.images import prepare_image
from gt2seg.manifest import Manifest, Record, Skipped, read_manifest
from gt2seg.masks import UNKNOWN_POLICIES, Entry, MaskPolicy, decode_mask, encode_mask, line_entries
from gt2seg.split import SplitItem, assign

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ConvertOptions:
    label_attributes: tuple[str, ...] = ()
    validation_fraction: float = 0.2
    seed: int = 0
    ref_roots: tuple[tuple[str, str], ...] = ()
    unknown_color: str = "error"
    alpha_threshold: int = 128
    resize_masks: bool = False
    s3_prefix: str | None = None
    workers: int = 1
    shard: tuple[int, int] | None = None  # (index, count)
    on_error: str = "fail"  # fail | skip
    max_pixels: int | None = None
    progress: bool = False

    def __post_init__(self):
        if self.unknown_color not in UNKNOWN_POLICIES:
            raise Gt2SegError(f"--unknown-color must be one of {', '.join(UNKNOWN_POLICIES)}")
        if not 0 <= self.alpha_threshold <= 256:
            raise Gt2SegError("--alpha-threshold must be between 0 and 256")
        if self.on_error not in ("fail", "skip"):
            raise Gt2SegError("--on-error must be fail or skip")
        if self.s3_prefix is not None and not storage.is_s3(self.s3_prefix):
            raise Gt2SegError(f"--s3-prefix must be an s3:// URI, got {self.s3_prefix!r}")
        if self.shard is not None and not 0 <= self.shard[0] < self.shard[1]:
            raise Gt2SegError(f"--shard I/N needs 0 <= I < N, got {self.shard[0]}/{self.shard[1]}")
        if self.workers < 1:
            raise Gt2SegError("--workers must be at least 1")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise Gt2SegError(f"max_pixels must be a positive number of pixels, got {self.max_pixels}")


@dataclass
class ItemResult:
    """One converted item; also its cache record in OUT/.gt2seg/items/<name>.json."""

    name: str
    line: int
    fingerprint: str
    image_ext: str
    sha256: str
    pixels: list[int]  # per class index
    ignore_pixels: int
    route: str
    expanded: bool
    resized: bool
    reencoded: bool
    exif_rotated: bool
    transparent_pixels: int
    unknown_pixels: int


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
    shard: str | None = None
    resumed: int = 0  # items reused from the cache: differs between identical runs, not in report.json

    def to_dict(self, run_fields: bool = True) -> dict:
        """run_fields=False drops what differs between identical runs (for report.json)."""
        out = asdict(self)
        if not run_fields:
            out.pop("resumed")
        return out


@dataclass(frozen=True)
class Job:
    """What a layout is written from, whatever the source: its records (a Ground Truth manifest's
    lines, or what an importer read from a public dataset), their class table and, when the
    source fixes it, each line's side. `inputs` are the folders/URIs the run reads (OUT must not
    be inside them)."""

    manifest: Manifest
    table: ClassTable
    inputs: tuple[str, ...]
    sides: dict[int, str] | None = None  # line -> train | validation; None: gt2seg's seeded split
    root: str | None = None  # where relative refs resolve (an importer's SRC); None: the manifest's folder


@dataclass(frozen=True)
class _Task:
    name: str
    line: int
    source: str
    mask: str
    entries: tuple[Entry, ...]
    policy: MaskPolicy
    palette: bytes
    num_classes: int
    cache: str
    fingerprint: str


_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _stem(ref: str) -> str:
    base = ref.rstrip("/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
    return (_NAME.sub("_", stem).strip("._-") or "image")[:120]


def resolve_ref(ref: str, manifest_uri: str, ref_roots, root: str | None = None) -> str:
    """Where a manifest ref is read from: --ref-root rewrites first, then s3://
    as is, relative paths under `root` (default: the manifest's folder); nothing may escape."""
    if "\0" in ref:
        raise StorageError(f"{ref!r} holds a NUL character, which no file or object name can; fix the ref")
    for prefix, root in ref_roots:
        if ref.startswith(prefix):
            return storage.join(root, ref[len(prefix):])
    if storage.is_s3(ref):
        return ref
    if "://" in ref:
        raise StorageError(f"{ref!r}: only s3:// URIs and relative paths are supported")
    if os.path.isabs(ref):
        raise StorageError(
            f"{ref!r} is an absolute local path; refs must be s3:// URIs or relative to the manifest. "
            "To read local absolute paths on purpose, map them with --ref-root /=/"
        )
    return storage.join(root or storage.parent(manifest_uri), ref)


def _assign_names(records: list[Record]) -> dict[int, str]:
    """Output name per line: the image's stem; stems shared by different sources
    get a short hash of the source ref, so every name is unique and stable."""
    by_stem: dict[str, set] = {}
    for r in records:
        by_stem.setdefault(_stem(r.source_ref).lower(), set()).add(r.source_ref)
    names = {}
    for r in records:
        stem = _stem(r.source_ref)
        if len(by_stem[stem.lower()]) > 1:
            stem = f"{stem}-{hashlib.sha1(r.source_ref.encode()).hexdigest()[:8]}"
        names[r.line] = stem
    return names


def _in_shard(name: str, shard) -> bool:
    return shard is None or int(hashlib.sha1(name.encode()).hexdigest(), 16) % shard[1] == shard[0]


def _init_worker(max_pixels):
    if max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels


def _init_pool_worker(max_pixels):
    """Also end this worker when the main process ends, even by kill -9: an idle pool worker
    would otherwise wait on its queue forever, and keep the forkserver alive with it."""
    _init_worker(max_pixels)
    threading.Thread(target=_exit_with, args=(multiprocessing.parent_process(),), daemon=True).start()


def _exit_with(parent):
    parent.join()
    os._exit(1)


def _convert_item(task: _Task):
    """Worker: returns ItemResult, or ('missing'|'error', line, message)."""
    try:
        image_bytes = storage.read_bytes(task.source)
        mask_bytes = storage.read_bytes(task.mask)
        image = prepare_image(image_bytes, line=task.line, ref=task.source)
        decoded = decode_mask(mask_bytes, task.entries, task.policy, image.size, line=task.line, ref=task.mask)
    except MissingObjectError as exc:
        return ("missing", task.line, str(exc))
    except (ItemError, StorageError) as exc:
        return ("error", task.line, getattr(exc, "detail", str(exc)))
    counts = decoded.image.histogram()
    cache = Path(task.cache)
    layout.atomic_write(cache / f"{task.name}.jpg", image.data)
    layout.atomic_write(cache / f"{task.name}.png", encode_mask(decoded.image, task.palette))
    result = ItemResult(
        name=task.name, line=task.line, fingerprint=task.fingerprint, image_ext=".jpg",
        sha256=hashlib.sha256(image_bytes).hexdigest(),
        pixels=counts[: task.num_classes], ignore_pixels=counts[IGNORE],
        route=decoded.route, expanded=decoded.expanded, resized=decoded.resized,
        reencoded=image.reencoded, exif_rotated=image.exif_rotated,
        transparent_pixels=decoded.transparent_pixels, unknown_pixels=decoded.unknown_pixels,
    )
    layout.write_json(cache / f"{task.name}.json", asdict(result))
    return result


def _cached(task: _Task) -> ItemResult | None:
    cache = Path(task.cache)
    try:
        data = json.loads((cache / f"{task.name}.json").read_text())
    except (OSError, ValueError):
        return None
    if data.get("fingerprint") != task.fingerprint:
        return None
    if not ((cache / f"{task.name}.jpg").is_file() and (cache / f"{task.name}.png").is_file()):
        return None
    return ItemResult(**data)


def _fingerprint(record: Record, source: str, mask: str, settings: str) -> str:
    """What an item's cached output depends on: its refs and, for local files, their size and
    mtime (a file changed in place under the same ref is converted again), and the colour
    map, options and palette."""
    files = f"{record.source_ref}\0{record.mask_ref}\0{storage.version(source)}\0{storage.version(mask)}"
    return hashlib.sha256(f"{files}\0{settings}".encode()).hexdigest()


def _settings(entries, policy, palette) -> str:
    return json.dumps([FORMAT_VERSION, [(e.key, e.index, e.color) for e in entries],
                       [policy.unknown, policy.alpha_threshold, policy.resize], palette.hex()])


def _run(tasks: list[_Task], options: ConvertOptions):
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), unit="img", desc="convert", file=sys.stderr, disable=not options.progress)
    try:
        if options.workers == 1 or len(tasks) < 2:
            _init_worker(options.max_pixels)
            for task in tasks:
                yield _convert_item(task)
                bar.update()
            return
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        chunk = max(1, min(16, len(tasks) // (options.workers * 8)))
        with ProcessPoolExecutor(options.workers, multiprocessing.get_context(method), _init_pool_worker,
                                 (options.max_pixels,)) as pool:
            for result in pool.map(_convert_item, tasks, chunksize=chunk):
                yield result
                bar.update()
    finally:
        bar.close()


def _attribute_key(manifest: Manifest) -> str:
    name = manifest.chosen[0]
    return name if name.endswith("-ref") else name + "-ref"


def _uri(out: Path, s3_prefix: str | None, relative: str) -> str:
    if s3_prefix:
        return f"{s3_prefix.rstrip('/')}/{relative}"
    return str((out / relative).resolve())


def convert(manifest_uri: str, out_dir, options: ConvertOptions = ConvertOptions()) -> Report:
    """Convert `manifest_uri` into the layout at `out_dir`; returns the Report.

    Raises ManifestError (the manifest is unusable), ConversionError (items
    failed, with every line listed), OutputError (OUT is unwritable, held by
    another run, or has the user's files where the layout goes), SplitError
    or StorageError.
    """
    manifest_uri = str(manifest_uri)
    manifest = read_manifest(manifest_uri, options.label_attributes)
    job = Job(manifest, ClassTable.build(manifest.records), (manifest_uri,) + tuple(r for _, r in options.ref_roots))
    return convert_job(job, out_dir, options)


def convert_job(job: Job, out_dir, options: ConvertOptions = ConvertOptions()) -> Report:
    """Write the layout of `job` at `out_dir`: the one pipeline behind `convert` and every importer."""
    out = Path(out_dir)
    with layout.claim(out, list(job.inputs)):
        return _convert(job, out, options)


def _convert(job: Job, out: Path, options: ConvertOptions) -> Report:
    manifest, table = job.manifest, job.table
    manifest_uri = manifest.uri
    policy = MaskPolicy(options.unknown_color, options.alpha_threshold, options.resize_masks)
    palette, cache = table.palette(), layout.cache_dir(out)

    skipped: list[Skipped] = list(manifest.skipped)
    errors: list[ItemError] = []
    names = _assign_names(manifest.records)
    seen_sources: dict[str, int] = {}
    entries_by_map: dict = {}  # lines with the same colour map share their entries and settings
    tasks, results = [], []
    for record in manifest.records:
        if record.source_ref in seen_sources:
            skipped.append(Skipped(record.line, "duplicate-source",
                                   f"same source-ref as line {seen_sources[record.source_ref]}"))
            continue
        seen_sources[record.source_ref] = record.line
        name = names[record.line]
        if not _in_shard(name, options.shard):
            continue
        try:
            source = resolve_ref(record.source_ref, manifest_uri, options.ref_roots, job.root)
            mask = resolve_ref(record.mask_ref, manifest_uri, options.ref_roots, job.root)
        except StorageError as exc:
            errors.append(ItemError(record.line, str(exc)))
            continue
        if record.color_map not in entries_by_map:
            entries = line_entries(record, table)
            entries_by_map[record.color_map] = (entries, _settings(entries, policy, palette))
        entries, settings = entries_by_map[record.color_map]
        fingerprint = _fingerprint(record, source, mask, settings)
        task = _Task(name, record.line, source, mask, entries, policy, palette, len(table.classes),
                     str(cache), fingerprint)
        cached = _cached(task)
        if cached is not None:
            results.append(cached)
        else:
            tasks.append(task)
    resumed = len(results)
    if errors and options.on_error == "fail":
        raise ConversionError(errors)

    with layout.writing(cache, "create"):
        cache.mkdir(parents=True, exist_ok=True)
    for outcome in _run(tasks, options):
        if isinstance(outcome, ItemResult):
            results.append(outcome)
        elif outcome[0] == "missing":
            skipped.append(Skipped(outcome[1], "missing-object", outcome[2]))
        else:
            errors.append(ItemError(outcome[1], outcome[2]))
    if errors:
        if options.on_error == "fail":
            raise ConversionError(sorted(errors, key=lambda e: e.line))
        skipped += [Skipped(e.line, "invalid", e.detail) for e in errors]
    if not results:
        raise ManifestError(f"{manifest_uri}: no item could be converted (see the skipped reasons: "
                            f"{dict(Counter(s.reason for s in skipped))})")

    results.sort(key=lambda r: r.name)
    if job.sides is not None:
        sides = {r.name: job.sides[r.line] for r in results}
    else:
        sides = assign(
            [SplitItem(r.name, r.sha256, frozenset(np.flatnonzero(r.pixels).tolist())) for r in results],
            options.validation_fraction, options.seed,
        )
    wanted = {}
    for r in results:
        wanted[f"{sides[r.name]}/{r.name}{r.image_ext}"] = cache / f"{r.name}{r.image_ext}"
        wanted[f"{layout.annotation_dir(sides[r.name])}/{r.name}.png"] = cache / f"{r.name}.png"
    layout.materialize(out, wanted)

    attribute = _attribute_key(manifest)
    for side in layout.SIDES:
        lines = [
            {"source-ref": _uri(out, options.s3_prefix, f"{side}/{r.name}{r.image_ext}"),
             attribute: _uri(out, options.s3_prefix, f"{layout.annotation_dir(side)}/{r.name}.png")}
            for r in results if sides[r.name] == side
        ]
        layout.atomic_write(out / f"{side}.manifest", layout.manifest_text(lines))
        layout.write_json(out / layout.LABEL_MAP_DIR / layout.label_map_file(side), layout.label_map())
    layout.atomic_write(out / CLASSES_JSON, table.to_json())
    layout.write_json(out / "channels.json", layout.channels(
        {side: _uri(out, options.s3_prefix, f"{side}.manifest") for side in layout.SIDES}, attribute))

    report = _report(manifest, out, table, results, sides, skipped, options, resumed)
    layout.write_json(out / "report.json", report.to_dict(run_fields=False))
    return report


def _report(manifest, out, table, results, sides, skipped, options, resumed) -> Report:
    names = table.names
    pixels = np.sum([r.pixels for r in results], axis=0).tolist()
    images = np.sum([np.asarray(r.pixels) > 0 for r in results], axis=0).tolist()
    warnings = list(table.warnings)
    rotated = [r.name for r in results if r.exif_rotated]
    if rotated:
        warnings.append(f"{len(rotated)} JPEG(s) carry an EXIF rotation (copied as is; check that masks "
                        f"match the stored pixel orientation): {', '.join(rotated[:5])}")
    ignored = sum(r.ignore_pixels for r in results)
    if ignored:
        warnings.append(f"{ignored:,} pixels carry the ignore label 255 (--unknown-color ignore, or the "
                        "source's own ignore values: Pet trimap borders, VOC boundaries)")
    for side in layout.SIDES:
        missing = [n for i, n in enumerate(names[1:], 1)
                   if not any(r.pixels[i] for r in results if sides[r.name] == side)]
        if missing:
            warnings.append(f"classes absent from {side}: {', '.join(missing)}")
    skipped = sorted(skipped, key=lambda s: s.line)
    return Report(
        manifest=manifest.uri, output=str(out.resolve()), label_attributes=manifest.chosen,
        lines=manifest.lines, converted=len(results),
        splits={side: sum(1 for s in sides.values() if s == side) for side in layout.SIDES},
        classes=[c.to_dict() for c in table.classes],
        pixels_per_class=dict(zip(names, pixels)), images_per_class=dict(zip(names, images)),
        skipped_by_reason=dict(sorted(Counter(s.reason for s in skipped).items())),
        skipped=[asdict(s) for s in skipped],
        expanded_masks=sum(r.expanded for r in results), resized_masks=sum(r.resized for r in results),
        reencoded_images=sum(r.reencoded for r in results),
        routes=dict(sorted(Counter(r.route for r in results).items())),
        warnings=warnings,
        shard=f"{options.shard[0]}/{options.shard[1]}" if options.shard else None,
        resumed=resumed,
    )
