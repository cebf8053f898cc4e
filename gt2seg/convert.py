"""Convert a Ground Truth job into the SageMaker layout: the whole data flow.

manifest -> class table -> map: per item (fetch ahead, decode, remap, encode; in worker
processes, streamed to the on-disk cache) -> shard record -> reduce: split -> layout
(gt2seg.reduce). `convert` is the map over every item followed by the reduce over that one
shard; `convert --shard I/N` is the map only, and `gt2seg merge` the reduce over N shards.
Nothing is placed in the layout until every item has been converted, so a failure leaves the
previous layout (if any) as it was.
"""
from __future__ import annotations

import gc
import hashlib
import json
import multiprocessing
import os
import re
import sys
import threading
from array import array
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

from PIL import Image

from gt2seg import layout, png, storage
from gt2seg.classes import IGNORE, ClassTable
from gt2seg.errors import ConversionError, Gt2SegError, ItemError, MissingObjectError, StorageError
from gt2seg.images import prepare_image
from gt2seg.manifest import Manifest, Record, Skipped, read_manifest
from gt2seg.drawing import Drawing, render, require_decoder
from gt2seg.masks import UNKNOWN_POLICIES, Entry, MaskPolicy, decode_mask, drawn_mask, line_entries
from gt2seg.reduce import Report, reduce
from gt2seg.shards import ItemResult, ShardRecord, result_line, results_name, write_record, write_results

FORMAT_VERSION = 2  # part of every cached item's fingerprint: 2 = mask PNGs from gt2seg.png (older caches are reconverted)
# What the layout does not depend on: left out of the options a shard record compares.
# What only says how or where this run works, not what the layout holds: shards may differ in these
# (ref_roots: each machine mounts the job's files where it can).
_RUN_OPTIONS = ("workers", "shard", "progress", "prefetch", "ref_roots")


@dataclass(frozen=True)
class ConvertOptions:
    """How items are converted, split and placed (the fields are `gt2seg convert`'s options).

    `workers` defaults to 1 here and to every core (os.cpu_count()) on the command line, on purpose: a
    library call converts in the calling process unless asked, so a notebook, a test or a caller with its
    own pool never gets a pool of processes it did not ask for; the command line owns its machine and uses
    all of it. Pass workers=os.cpu_count() for the command line's speed.
    """

    label_attributes: tuple[str, ...] = ()
    validation_fraction: float = 0.2
    seed: int = 0
    ref_roots: tuple[tuple[str, str], ...] = ()
    unknown_color: str = "error"
    alpha_threshold: int = 128
    resize_masks: bool = False
    s3_prefix: str | None = None
    workers: int = 1
    prefetch: int = 16  # items read ahead per worker (two reads each): enough for 30 ms round trips
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
        """The options the layout depends on, as JSON values, and the mask encoder: what shards must agree on."""
        options = {k: v for k, v in asdict(self).items() if k not in _RUN_OPTIONS}
        return json.loads(json.dumps({**options, "mask_png": png.CODEC}))


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
    # line -> the shapes a worker draws as that line's mask (gt2seg.drawing); its mask_ref then only names them
    drawings: dict[int, Drawing] | None = None
    # bad input found while reading (a shape, an id, a file): refused, or with --on-error skip left out and
    # counted under each one's reason
    errors: tuple[Skipped, ...] = ()
    ref_roots: tuple[tuple[str, str], ...] = ()  # the source's own PREFIX=DIR rewrites, after --ref-root's


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
    drawing: Drawing | None = None


@dataclass(frozen=True)
class _Context:
    """What every item of a run shares, sent with each chunk: an item itself travels as a short tuple
    (name, line, source ref, mask ref, index in `maps`, fixed side or None, drawing or None), from which
    the worker builds its task (see _task)."""

    manifest: str
    root: str | None
    ref_roots: tuple[tuple[str, str], ...]
    maps: tuple[tuple[tuple[Entry, ...], str], ...]  # (entries, settings) per distinct colour map
    policy: MaskPolicy
    palette: bytes
    num_classes: int
    cache: str
    reuse: bool  # whether the cache may hold items (a first run looks none up)


_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _stem(ref: str) -> str:
    """The ref's stem as a safe output name."""
    return (_NAME.sub("_", storage.stem(ref)).strip("._-") or "image")[:120]


def parse_ref_root(value: str) -> tuple[str, str]:
    """(PREFIX, DIR) of a `PREFIX=DIR` ref rewrite (--ref-root)."""
    prefix, sep, root = value.partition("=")
    if not sep or not prefix or not root:
        raise Gt2SegError(f"{value!r}: expected PREFIX=DIR, e.g. s3://bucket/=./bucket-copy/")
    return prefix, root


def resolve_ref(ref: str, manifest_uri: str, ref_roots, root: str | None = None, links: bool = True) -> str:
    """Where a manifest ref is read from: --ref-root rewrites first, then s3://
    as is, relative paths under `root` (default: the manifest's folder); nothing may escape.
    links=False: without the symbolic-link check (see storage.join), which the workers make."""
    if "\0" in ref:
        raise StorageError(f"{ref!r} holds a NUL character, which no file or object name can; fix the ref")
    for prefix, folder in ref_roots:  # not `root`: a loop without a match must leave it as given
        if ref.startswith(prefix):
            return storage.join(folder, ref[len(prefix):], links)
    if storage.is_s3(ref):
        return ref
    if "://" in ref:
        raise StorageError(f"{ref!r}: only s3:// URIs and relative paths are supported")
    if os.path.isabs(ref):
        raise StorageError(
            f"{ref!r} is an absolute local path; refs must be s3:// URIs or relative to the manifest. "
            "To read local absolute paths on purpose, map them with --ref-root /=/"
        )
    return storage.join(root or storage.parent(manifest_uri), ref, links)


def _assign_names(records: list[Record]) -> Callable[[Record], str]:
    """The output name of each of `records`: the image's stem; stems shared by different sources
    get a short hash of the source ref, so every name is unique and stable. Only the shared stems
    are kept (a name is derived again when wanted), so naming holds nothing per line."""
    first: dict[str, str] = {}  # lower-cased stem -> the first source ref with it
    shared: set[str] = set()
    for r in records:
        stem = _stem(r.source_ref).lower()
        if first.setdefault(stem, r.source_ref) != r.source_ref:
            shared.add(stem)
    del first

    def name(record: Record) -> str:
        stem = _stem(record.source_ref)
        if stem.lower() in shared:
            return f"{stem}-{hashlib.sha1(record.source_ref.encode()).hexdigest()[:8]}"
        return stem

    return name


def _in_shard(name: str, shard) -> bool:
    return shard is None or int(hashlib.sha1(name.encode()).hexdigest(), 16) % shard[1] == shard[0]


def _init_worker(max_pixels):
    if max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels


_pool_run: tuple = ()  # a pool worker's (context, prefetch): sent once, when it starts, not with every chunk


def _init_pool_worker(max_pixels, aws_environment, context: _Context, prefetch: int):
    """Keep the run's context (its colour maps can be many), read S3 as the caller does now (the
    forkserver keeps the environment it started with), and end this worker when the main process
    ends, even by kill -9: an idle pool worker would otherwise wait on its queue forever, and keep
    the forkserver alive with it. What the worker was forked with is frozen out of its garbage
    collections, which would otherwise touch (and so copy) every page it shares with the
    forkserver: its memory stays flat however long it runs."""
    global _pool_run
    gc.freeze()
    _pool_run = (context, prefetch)
    _init_worker(max_pixels)
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(aws_environment)
    threading.Thread(target=_exit_with, args=(multiprocessing.parent_process(),), daemon=True).start()


def _exit_with(parent):
    parent.join()
    os._exit(1)


def _convert_item(task: _Task, image_read, mask_read):
    """Worker: converts one item from its reads (futures of bytes) into the cache; returns the cache
    record it wrote (a dict), or ('missing'|'error', line, message)."""
    try:
        image_bytes = image_read.result()
        image = prepare_image(image_bytes, line=task.line, ref=task.source)
        if task.drawing is None:
            decoded = decode_mask(mask_read.result(), task.entries, task.policy, image.size, line=task.line,
                                  ref=task.mask)
        else:
            decoded = drawn_mask(render(task.drawing, task.policy.alpha_threshold), task.entries, task.policy,
                                 image.size, line=task.line, ref=task.mask)
    except MissingObjectError as exc:
        return ("missing", task.line, str(exc))
    except (ItemError, StorageError) as exc:
        return ("error", task.line, getattr(exc, "detail", str(exc)))
    except ValueError as exc:  # a shape the drawing's decoders refuse (gt2seg.drawing.render)
        return ("error", task.line, f"{task.drawing.what}: {exc}")
    counts = decoded.counts
    cache = Path(task.cache)
    layout.atomic_write(cache / f"{task.name}.jpg", image.data)
    layout.atomic_write(cache / f"{task.name}.png", png.encode_indexed(decoded.array, task.palette))
    result = ItemResult(
        name=task.name, line=task.line, fingerprint=task.fingerprint, image_ext=".jpg",
        sha256=hashlib.sha256(image_bytes).hexdigest(),
        pixels=list(counts[: task.num_classes]), ignore_pixels=counts[IGNORE],
        route=decoded.route, expanded=decoded.expanded, resized=decoded.resized,
        reencoded=image.reencoded, exif_rotated=image.exif_rotated,
        transparent_pixels=decoded.transparent_pixels, unknown_pixels=decoded.unknown_pixels,
    )
    # Compact: an internal record, and json's C encoder only runs without indent (0.03 ms, not 0.4).
    record = vars(result)
    layout.atomic_write(cache / f"{task.name}.json", json.dumps(record) + "\n")
    return record


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


def _task(item: tuple, context: _Context) -> _Task | tuple:
    """Worker: the item's task, or its outcome when it needs no conversion (cached) or cannot have one
    (a ref leading outside its folder through a symbolic link)."""
    name, line, source_ref, mask_ref, colour_map, side, drawing = item
    try:
        source = resolve_ref(source_ref, context.manifest, context.ref_roots, context.root)
        mask = mask_ref if drawing else resolve_ref(mask_ref, context.manifest, context.ref_roots, context.root)
    except StorageError as exc:
        return ("error", line, str(exc))
    entries, settings = context.maps[colour_map]
    version = drawing.digest if drawing else storage.version(mask)
    task = _Task(name, line, source, mask, entries, context.policy, context.palette, context.num_classes,
                 context.cache, _fingerprint(source_ref, mask_ref, source, version, settings), drawing)
    cached = _cached(task) if context.reuse else None
    return task if cached is None else ("cached", line, _result_line(cached, side))


def _converted(task: _Task, side: str | None, image_read, mask_read) -> tuple:
    """Worker: converts one task; its outcome ('converted'|'missing'|'error', line, results line or message)."""
    converted = _convert_item(task, image_read, mask_read)
    if isinstance(converted, tuple):
        return converted
    return ("converted", task.line, _result_line(converted, side))


def _result_line(data: dict, side: str | None) -> str:
    """An item's line of the results file: its cache record, with its fixed side when the job has them."""
    if side is not None:
        data["side"] = side
    return result_line(data)


def _convert_stream(items, context: _Context, prefetch: int):
    """Each item's outcome, in order, while the reads of the next `prefetch` items are in flight."""
    fetcher, pending = _fetcher(prefetch), iter(items)

    def started(item):
        task = _task(item, context)
        if isinstance(task, tuple):
            return task, None, None, None
        return task, item[5], fetcher.fetch(task.source), None if task.drawing else fetcher.fetch(task.mask)

    window = deque(started(item) for item in islice(pending, prefetch))
    while window:
        task, side, image, mask = window.popleft()
        following = next(pending, None)
        if following is not None:
            window.append(started(following))
        yield task if isinstance(task, tuple) else _converted(task, side, image, mask)


def _convert_chunk(items: list[tuple]) -> list:
    """Pool worker: one chunk's outcomes, with the context it was started with."""
    return list(_convert_stream(items, *_pool_run))


def _cached(task: _Task) -> dict | None:
    """The item's cache record, if the cache holds it converted from the same inputs with the same settings."""
    cache = Path(task.cache)
    try:
        data = json.loads((cache / f"{task.name}.json").read_text())
    except (OSError, ValueError):
        return None
    if (data.get("fingerprint") == task.fingerprint and (cache / f"{task.name}.jpg").is_file()
            and (cache / f"{task.name}.png").is_file()):
        return data
    return None


def _fingerprint(source_ref: str, mask_ref: str, source: str, mask_version: str, settings: str) -> str:
    """What an item's cached output depends on: its refs and, for local files, their size and
    mtime (a file changed in place under the same ref is converted again; a drawn mask: its
    drawing's digest), and the colour map, options and palette."""
    files = f"{source_ref}\0{mask_ref}\0{storage.version(source)}\0{mask_version}"
    return hashlib.sha256(f"{files}\0{settings}".encode()).hexdigest()


def _settings(entries, policy, palette) -> str:
    return json.dumps([FORMAT_VERSION, png.CODEC, [(e.key, e.index, e.color) for e in entries],
                       [policy.unknown, policy.alpha_threshold, policy.resize], palette.hex()])


def start_workers(options: ConvertOptions) -> None:
    """Start the pool's forkserver now, when the options need a pool: it imports gt2seg in the
    background while the caller reads the job, instead of delaying the first chunk (~0.13 s).
    convert and import_dataset call it before they read; without it the pool starts the server
    itself. A no-op once the server runs."""
    if options.workers > 1:
        _pool_context()


def _pool_context():
    """The workers' start method: a forkserver (Linux), started if it is not running yet."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])  # workers fork with gt2seg already imported
    forkserver.ensure_running()  # starts the server; does not wait for its imports
    return context


def _chunks(items, count: int, workers: int):
    """Lists of items for the pool: up to 16 at a time, fewer as the end nears (the last chunks decide
    when the pool is done; a worker idles while another finishes a long one)."""
    left = count
    while chunk := list(islice(items, max(1, min(16, left // (workers * 4))))):
        left -= len(chunk)
        yield chunk


def _run(items, count: int, context: _Context, options: ConvertOptions):
    """Each of the `count` items' outcome, in order. The parent only hands out items (short tuples) as
    chunks are wanted (a bounded number in flight) and counts: refs, reads, decodes and cache writes
    all happen in the workers."""
    from tqdm import tqdm

    bar = tqdm(total=count, unit="img", desc="convert", file=sys.stderr, disable=not options.progress)
    window: deque = deque()
    try:
        if options.workers == 1 or count < 2:
            _init_worker(options.max_pixels)
            for outcome in _convert_stream(items, context, options.prefetch):
                yield outcome
                bar.update()
            return
        aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
        with ProcessPoolExecutor(options.workers, _pool_context(), _init_pool_worker,
                                 (options.max_pixels, aws, context, options.prefetch)) as pool:
            for chunk in _chunks(items, count, options.workers):
                window.append(pool.submit(_convert_chunk, chunk))
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
    maps: dict[int, str] = {}  # id of a (shared) colour map -> its JSON: each map is dumped once
    for r in manifest.records:
        if id(r.color_map) not in maps:
            maps[id(r.color_map)] = json.dumps([(e.key, e.name, e.color) for e in r.color_map])
        # json.dumps([line, source, attribute, mask, colour map]), the map's part reused
        digest.update(f"{json.dumps([r.line, r.source_ref, r.attribute, r.mask_ref])[:-1]}, {maps[id(r.color_map)]}]"
                      .encode())
    if job.sides is not None:
        digest.update(json.dumps(sorted(job.sides.items())).encode())
    digest.update(json.dumps(["root", job.root]).encode())
    if job.drawings is not None:
        for line in sorted(job.drawings):
            digest.update(f"{line}:{job.drawings[line].digest}".encode())
    if job.errors:
        digest.update(json.dumps([asdict(s) for s in job.errors]).encode())
    return digest.hexdigest()


def convert(manifest_uri: str, out_dir, options: ConvertOptions = ConvertOptions()) -> Report | ShardReport:
    """Convert `manifest_uri` into the layout at `out_dir`; returns the Report (a ShardReport
    for `options.shard`: that shard's items only, no layout).

    Raises ManifestError (the manifest is unusable), ConversionError (items
    failed, with every line listed), OutputError (OUT is unwritable, held by
    another run, or has the user's files where the layout goes), SplitError
    or StorageError.
    """
    start_workers(options)  # the workers' server imports gt2seg while the manifest is read
    return convert_job(_read_job(str(manifest_uri), options), out_dir, options)  # no reference kept: see convert_job


def _read_job(manifest_uri: str, options: ConvertOptions) -> Job:
    manifest = read_manifest(manifest_uri, options.label_attributes)
    return Job(manifest, ClassTable.build(manifest.records), (manifest_uri,) + tuple(r for _, r in options.ref_roots))


def convert_job(job: Job, out_dir, options: ConvertOptions = ConvertOptions()) -> Report | ShardReport:
    """Write the layout of `job` at `out_dir`: the one pipeline behind `convert` and every importer.
    With `options.shard`, only that shard's map step (see gt2seg.shards); `gt2seg merge` reduces."""
    out = Path(out_dir)
    with layout.claim(out, list(job.inputs)):
        record, resumed = _map(job, out, options)
        del job  # the reduce reads the results, not the records: they are freed here unless the caller keeps them
        if options.shard is None:
            return reduce([record], out, resumed, check=False)  # its own shard, written under this claim
    return ShardReport(shard=record.label, manifest=record.manifest, output=str(out.resolve()),
                       items=record.items, resumed=resumed,
                       skipped_by_reason=dict(sorted(Counter(s["reason"] for s in record.skipped + record.item_skipped).items())))


def _map(job: Job, out: Path, options: ConvertOptions) -> tuple[ShardRecord, int]:
    """Convert this shard's items into the cache, then write its results and record (record last).

    Per item the parent keeps only its record's index and checks its refs by their paths: the workers
    build each task (refs, fingerprint, cache look-up) and return its results line. Items go out in
    name order, so their lines are written to the results file as they come back."""
    manifest, table = job.manifest, job.table
    shard = options.shard or (0, 1)
    policy = MaskPolicy(options.unknown_color, options.alpha_threshold, options.resize_masks)
    palette, cache = table.palette(), layout.cache_dir(out)
    root = job.root or storage.parent(manifest.uri)
    ref_roots, drawings = options.ref_roots + job.ref_roots, job.drawings or {}
    if drawings:
        require_decoder()
    maps: dict = {}  # colour map -> its index in the context's maps: lines with the same map share them
    map_of: dict[int, int] = {}  # id of a record's (shared) colour map -> that index: no tuple hashed per line
    shared_maps = []
    skipped: list[Skipped] = list(manifest.skipped)  # the job's own: the same in every shard
    errors: list[ItemError] = []
    if options.on_error == "skip":
        skipped += job.errors
    else:
        errors += [ItemError(s.line, s.detail) for s in job.errors]
    seen_sources: dict[str, int] = {}
    records, name_of = manifest.records, _assign_names(manifest.records)
    members = array("I")  # this shard's items, as indices into records
    for index, record in enumerate(records):
        name = name_of(record)
        if record.source_ref in seen_sources:
            skipped.append(Skipped(record.line, "duplicate-source",
                                   f"same source-ref as line {seen_sources[record.source_ref]}"))
            continue
        seen_sources[record.source_ref] = record.line
        if not _in_shard(name, shard):
            continue
        try:  # every ref is checked by its path before any item converts (symbolic links: by the workers)
            for ref in (record.source_ref, record.mask_ref)[:1 if record.line in drawings else 2]:
                resolve_ref(ref, manifest.uri, ref_roots, root, links=False)
        except StorageError as exc:
            errors.append(ItemError(record.line, str(exc)))
            continue
        members.append(index)
        if id(record.color_map) not in map_of:
            if record.color_map not in maps:
                entries = line_entries(record, table)
                maps[record.color_map] = len(shared_maps)
                shared_maps.append((entries, _settings(entries, policy, palette)))
            map_of[id(record.color_map)] = maps[record.color_map]
    del seen_sources, maps
    if errors and options.on_error == "fail":
        raise ConversionError(errors)

    context = _Context(manifest.uri, root, ref_roots, tuple(shared_maps), policy, palette,
                       len(table.classes), str(cache), cache.is_dir())
    with layout.writing(cache, "create"):
        cache.mkdir(parents=True, exist_ok=True)
    members = array("I", sorted(members, key=lambda index: name_of(records[index])))
    sides = job.sides
    items = ((name_of(r), r.line, r.source_ref, r.mask_ref, map_of[id(r.color_map)],
              None if sides is None else sides[r.line], drawings.get(r.line))
             for r in map(records.__getitem__, members))
    outcomes: Counter = Counter()
    item_skipped: list[Skipped] = []  # this shard's items left out

    def results_lines():
        for kind, line, detail in _run(items, len(members), context, options):
            outcomes[kind] += 1
            if kind in ("converted", "cached"):
                yield detail
            elif kind == "missing":
                item_skipped.append(Skipped(line, "missing-object", detail))
            else:
                errors.append(ItemError(line, detail))
        errors.sort(key=lambda e: e.line)
        if errors and options.on_error == "fail":  # raised inside: the results file is not written
            raise ConversionError(errors)

    count = write_results(out / layout.CACHE / results_name(*shard), results_lines())
    item_skipped.sort(key=lambda s: s.line)
    item_skipped += [Skipped(e.line, "invalid", e.detail) for e in errors]
    record = ShardRecord(
        shard=list(shard), job=_job_identity(job), options=options.layout_options(), manifest=manifest.uri,
        lines=manifest.lines, label_attributes=list(manifest.chosen), attribute=_attribute_key(manifest),
        classes_json=table.to_json(), class_warnings=list(table.warnings), fixed_sides=job.sides is not None,
        skipped=[asdict(s) for s in skipped], item_skipped=[asdict(s) for s in item_skipped], items=count,
        folder=str(out),
    )
    write_record(out, record)
    return record, outcomes["cached"]
