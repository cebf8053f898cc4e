"""Convert a Ground Truth job into the SageMaker layout: the whole data flow.

manifest -> class table -> map: per item (fetch ahead, decode, remap, encode; in worker
processes, streamed to the on-disk cache) -> shard record -> reduce: split -> layout
(gt2seg.reduce). `convert` is the map over every item followed by the reduce over that one
shard; `convert --shard I/N` is the map only, and `gt2seg merge` the reduce over N shards.
Nothing is placed in the layout until every item has been converted, so a failure leaves the
previous layout (if any) as it was.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import sys
import threading
from collections import Counter, deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from itertools import islice
from pathlib import Path

from PIL import Image

from gt2seg import layout, storage
from gt2seg.classes import IGNORE, ClassTable
from gt2seg.errors import ConversionError, Gt2SegError, ItemError, MissingObjectError, StorageError
from gt2seg.images import prepare_image
from gt2seg.manifest import Manifest, Record, Skipped, read_manifest
from gt2seg.masks import UNKNOWN_POLICIES, Entry, MaskPolicy, decode_mask, encode_mask, line_entries
from gt2seg.reduce import Report, reduce
from gt2seg.shards import ItemResult, ShardRecord, results_name, write_record, write_results

FORMAT_VERSION = 1
# What the layout does not depend on: left out of the options a shard record compares.
# What only says how or where this run works, not what the layout holds: shards may differ in these
# (ref_roots: each machine mounts the job's files where it can).
_RUN_OPTIONS = ("workers", "shard", "progress", "prefetch", "ref_roots")


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
    prefetch: int = 8  # items read ahead per worker (two objects each)
    shard: tuple[int, int] | None = None  # (index, count): the map only
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
        if not 1 <= self.prefetch <= storage.MAX_WORKERS // 2:
            raise Gt2SegError(f"--prefetch must be between 1 and {storage.MAX_WORKERS // 2}, got {self.prefetch}")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise Gt2SegError(f"max_pixels must be a positive number of pixels, got {self.max_pixels}")

    def layout_options(self) -> dict:
        """The options the layout depends on, as JSON values: what shards must agree on."""
        return json.loads(json.dumps({k: v for k, v in asdict(self).items() if k not in _RUN_OPTIONS}))


@dataclass
class ShardReport:
    """What a map step (`--shard I/N`) did; the layout comes from `gt2seg merge`."""

    shard: str
    manifest: str
    output: str
    items: int  # converted items this shard holds
    skipped_by_reason: dict[str, int]
    resumed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


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
    """The ref's stem as a safe output name."""
    return (_NAME.sub("_", storage.stem(ref)).strip("._-") or "image")[:120]


def resolve_ref(ref: str, manifest_uri: str, ref_roots, root: str | None = None) -> str:
    """Where a manifest ref is read from: --ref-root rewrites first, then s3://
    as is, relative paths under `root` (default: the manifest's folder); nothing may escape."""
    if "\0" in ref:
        raise StorageError(f"{ref!r} holds a NUL character, which no file or object name can; fix the ref")
    for prefix, folder in ref_roots:  # not `root`: a loop without a match must leave it as given
        if ref.startswith(prefix):
            return storage.join(folder, ref[len(prefix):])
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


def _init_pool_worker(max_pixels, aws_environment):
    """Read S3 as the caller does now (the forkserver keeps the environment it started with), and
    end this worker when the main process ends, even by kill -9: an idle pool worker would
    otherwise wait on its queue forever, and keep the forkserver alive with it."""
    _init_worker(max_pixels)
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(aws_environment)
    threading.Thread(target=_exit_with, args=(multiprocessing.parent_process(),), daemon=True).start()


def _exit_with(parent):
    parent.join()
    os._exit(1)


def _convert_item(task: _Task, image_read, mask_read):
    """Worker: converts one item from its reads (futures of bytes) into the cache; returns None,
    or ('missing'|'error', line, message)."""
    try:
        image_bytes = image_read.result()
        mask_bytes = mask_read.result()
        image = prepare_image(image_bytes, line=task.line, ref=task.source)
        decoded = decode_mask(mask_bytes, task.entries, task.policy, image.size, line=task.line, ref=task.mask)
    except MissingObjectError as exc:
        return ("missing", task.line, str(exc))
    except (ItemError, StorageError) as exc:
        return ("error", task.line, getattr(exc, "detail", str(exc)))
    counts = decoded.counts
    cache = Path(task.cache)
    layout.atomic_write(cache / f"{task.name}.jpg", image.data)
    layout.atomic_write(cache / f"{task.name}.png", encode_mask(decoded.array, task.palette))
    result = ItemResult(
        name=task.name, line=task.line, fingerprint=task.fingerprint, image_ext=".jpg",
        sha256=hashlib.sha256(image_bytes).hexdigest(),
        pixels=list(counts[: task.num_classes]), ignore_pixels=counts[IGNORE],
        route=decoded.route, expanded=decoded.expanded, resized=decoded.resized,
        reencoded=image.reencoded, exif_rotated=image.exif_rotated,
        transparent_pixels=decoded.transparent_pixels, unknown_pixels=decoded.unknown_pixels,
    )
    # Compact: an internal record, and json's C encoder only runs without indent (0.03 ms, not 0.4).
    layout.atomic_write(cache / f"{task.name}.json", json.dumps(vars(result)) + "\n")
    return None


_fetchers: dict = {}


def _fetcher(prefetch: int) -> storage.Fetcher:
    """This process's read-ahead pool: two reads (image, mask) per item ahead."""
    key = (os.getpid(), prefetch)
    if key not in _fetchers:
        _close_fetchers()
        _fetchers[key] = storage.Fetcher(2 * prefetch)
    return _fetchers[key]


def _close_fetchers() -> None:
    for fetcher in _fetchers.values():
        fetcher.close()
    _fetchers.clear()


def _convert_stream(tasks, prefetch: int):
    """Convert `tasks` in order while the reads of the next `prefetch` items are in flight."""
    fetcher, pending = _fetcher(prefetch), iter(tasks)
    window = deque((t, fetcher.fetch(t.source), fetcher.fetch(t.mask)) for t in islice(pending, prefetch))
    while window:
        task, image, mask = window.popleft()
        following = next(pending, None)
        if following is not None:
            window.append((following, fetcher.fetch(following.source), fetcher.fetch(following.mask)))
        yield _convert_item(task, image, mask)


def _convert_chunk(tasks: list[_Task], prefetch: int) -> list:
    return list(_convert_stream(tasks, prefetch))


def _cached(task: _Task) -> bool:
    """Whether the cache holds this item, converted from the same inputs with the same settings."""
    cache = Path(task.cache)
    try:
        data = json.loads((cache / f"{task.name}.json").read_text())
    except (OSError, ValueError):
        return False
    return (data.get("fingerprint") == task.fingerprint and (cache / f"{task.name}.jpg").is_file()
            and (cache / f"{task.name}.png").is_file())


def _fingerprint(record: Record, source: str, mask: str, settings: str) -> str:
    """What an item's cached output depends on: its refs and, for local files, their size and
    mtime (a file changed in place under the same ref is converted again), and the colour
    map, options and palette."""
    files = f"{record.source_ref}\0{record.mask_ref}\0{storage.version(source)}\0{storage.version(mask)}"
    return hashlib.sha256(f"{files}\0{settings}".encode()).hexdigest()


def _settings(entries, policy, palette) -> str:
    return json.dumps([FORMAT_VERSION, [(e.key, e.index, e.color) for e in entries],
                       [policy.unknown, policy.alpha_threshold, policy.resize], palette.hex()])


def _run(tasks, count: int, options: ConvertOptions):
    """Each of the `count` tasks' outcome, in order. The parent only builds tasks as chunks are
    wanted (a bounded number in flight) and counts: reads, decodes and cache writes all happen in
    the workers."""
    from tqdm import tqdm

    bar = tqdm(total=count, unit="img", desc="convert", file=sys.stderr, disable=not options.progress)
    window: deque = deque()
    try:
        if options.workers == 1 or count < 2:
            _init_worker(options.max_pixels)
            for outcome in _convert_stream(tasks, options.prefetch):
                yield outcome
                bar.update()
            return
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(method)
        if method == "forkserver":  # workers fork with gt2seg already imported (a no-op once the server runs)
            context.set_forkserver_preload([__name__])
        # Small chunks: the last ones decide when the pool is done, so they bound the idle tail.
        size = max(1, min(16, count // (options.workers * 8)))
        aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
        convert_chunk = partial(_convert_chunk, prefetch=options.prefetch)
        with ProcessPoolExecutor(options.workers, context, _init_pool_worker,
                                 (options.max_pixels, aws)) as pool:
            for chunk in iter(lambda: list(islice(tasks, size)), []):
                window.append(pool.submit(convert_chunk, chunk))
                while len(window) > 2 * options.workers or (window and window[0].done()):
                    outcomes = window.popleft().result()
                    yield from outcomes
                    bar.update(len(outcomes))
            while window:
                outcomes = window.popleft().result()
                yield from outcomes
                bar.update(len(outcomes))
    finally:
        for future in window:
            future.cancel()
        _close_fetchers()  # the one-process path's read threads end with the run
        bar.close()


def _attribute_key(manifest: Manifest) -> str:
    name = manifest.chosen[0]
    return name if name.endswith("-ref") else name + "-ref"


def _job_identity(job: Job) -> str:
    """A hash of everything about the job the layout depends on, so shards of different jobs never merge."""
    manifest, digest = job.manifest, hashlib.sha256()
    digest.update(json.dumps([storage.canonical(manifest.uri), manifest.lines, manifest.chosen, job.table.to_json(),
                              [asdict(s) for s in manifest.skipped]]).encode())
    for r in manifest.records:
        digest.update(json.dumps([r.line, r.source_ref, r.attribute, r.mask_ref,
                                  [(e.key, e.name, e.color) for e in r.color_map]]).encode())
    if job.sides is not None:
        digest.update(json.dumps(sorted(job.sides.items())).encode())
    digest.update(json.dumps(["root", job.root]).encode())
    return digest.hexdigest()


def convert(manifest_uri: str, out_dir, options: ConvertOptions = ConvertOptions()) -> Report | ShardReport:
    """Convert `manifest_uri` into the layout at `out_dir`; returns the Report (a ShardReport
    for `options.shard`: that shard's items only, no layout).

    Raises ManifestError (the manifest is unusable), ConversionError (items
    failed, with every line listed), OutputError (OUT is unwritable, held by
    another run, or has the user's files where the layout goes), SplitError
    or StorageError.
    """
    manifest_uri = str(manifest_uri)
    manifest = read_manifest(manifest_uri, options.label_attributes)
    job = Job(manifest, ClassTable.build(manifest.records), (manifest_uri,) + tuple(r for _, r in options.ref_roots))
    return convert_job(job, out_dir, options)


def convert_job(job: Job, out_dir, options: ConvertOptions = ConvertOptions()) -> Report | ShardReport:
    """Write the layout of `job` at `out_dir`: the one pipeline behind `convert` and every importer.
    With `options.shard`, only that shard's map step (see gt2seg.shards); `gt2seg merge` reduces."""
    out = Path(out_dir)
    with layout.claim(out, list(job.inputs)):
        record, resumed = _map(job, out, options)
        if options.shard is None:
            return reduce([record], out, resumed)
    return ShardReport(shard=record.label, manifest=record.manifest, output=str(out.resolve()),
                       items=record.items, resumed=resumed,
                       skipped_by_reason=dict(sorted(Counter(s["reason"] for s in record.skipped + record.item_skipped).items())))


def _map(job: Job, out: Path, options: ConvertOptions) -> tuple[ShardRecord, int]:
    """Convert this shard's items into the cache, then write its results and record (record last).

    Per item the parent keeps only (name, record, cached) until the end: tasks are built as the
    workers ask for them, and results stay in the cache until written, in name order."""
    manifest, table = job.manifest, job.table
    shard = options.shard or (0, 1)
    policy = MaskPolicy(options.unknown_color, options.alpha_threshold, options.resize_masks)
    palette, cache = table.palette(), layout.cache_dir(out)
    entries_by_map: dict = {}  # lines with the same colour map share their entries and settings

    def refs(record: Record) -> tuple[str, str]:
        return (resolve_ref(record.source_ref, manifest.uri, options.ref_roots, job.root),
                resolve_ref(record.mask_ref, manifest.uri, options.ref_roots, job.root))

    def task_of(name: str, record: Record) -> _Task:
        source, mask = refs(record)
        if record.color_map not in entries_by_map:
            entries = line_entries(record, table)
            entries_by_map[record.color_map] = (entries, _settings(entries, policy, palette))
        entries, settings = entries_by_map[record.color_map]
        return _Task(name, record.line, source, mask, entries, policy, palette, len(table.classes),
                     cache_folder, _fingerprint(record, source, mask, settings))

    cache_folder, reuse = str(cache), cache.is_dir()
    skipped: list[Skipped] = list(manifest.skipped)  # the job's own: the same in every shard
    errors: list[ItemError] = []
    names = _assign_names(manifest.records)
    seen_sources: dict[str, int] = {}
    members = []  # (name, record, cached) of this shard's items
    for record in manifest.records:
        if record.source_ref in seen_sources:
            skipped.append(Skipped(record.line, "duplicate-source",
                                   f"same source-ref as line {seen_sources[record.source_ref]}"))
            continue
        seen_sources[record.source_ref] = record.line
        name = names[record.line]
        if not _in_shard(name, shard):
            continue
        try:
            if reuse:
                cached = _cached(task_of(name, record))
            else:  # a first run has no cache to look in; every ref is still checked before any item converts
                refs(record)
                cached = False
            members.append((name, record, cached))
        except StorageError as exc:
            errors.append(ItemError(record.line, str(exc)))
    del seen_sources, names
    if errors and options.on_error == "fail":
        raise ConversionError(errors)

    with layout.writing(cache, "create"):
        cache.mkdir(parents=True, exist_ok=True)
    resumed = sum(cached for _, _, cached in members)
    failed, item_skipped = set(), []  # this shard's items left out
    pending = (task_of(name, record) for name, record, cached in members if not cached)
    for outcome in _run(pending, len(members) - resumed, options):
        if outcome is None:
            continue
        failed.add(outcome[1])
        if outcome[0] == "missing":
            item_skipped.append(Skipped(outcome[1], "missing-object", outcome[2]))
        else:
            errors.append(ItemError(outcome[1], outcome[2]))
    if errors:
        if options.on_error == "fail":
            raise ConversionError(sorted(errors, key=lambda e: e.line))
        item_skipped += [Skipped(e.line, "invalid", e.detail) for e in errors]

    members.sort(key=lambda member: member[0])
    items = write_results(out / layout.CACHE / results_name(*shard),
                          _results(members, failed, cache, job.sides))
    record = ShardRecord(
        shard=list(shard), job=_job_identity(job), options=options.layout_options(), manifest=manifest.uri,
        lines=manifest.lines, label_attributes=list(manifest.chosen), attribute=_attribute_key(manifest),
        classes_json=table.to_json(), class_warnings=list(table.warnings), fixed_sides=job.sides is not None,
        skipped=[asdict(s) for s in skipped], item_skipped=[asdict(s) for s in item_skipped], items=items,
        folder=str(out),
    )
    write_record(out, record)
    return record, resumed


def _results(members, failed: set, cache: Path, sides):
    """The converted members' cache records (those cached before, or converted now), in name order,
    each with its fixed side when the job has them."""
    for name, record, _ in members:
        if record.line in failed:
            continue
        data = json.loads((cache / f"{name}.json").read_text())
        if sides is not None:
            data["side"] = sides[record.line]
        yield data
