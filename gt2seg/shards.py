"""What a map step (`convert --shard I/N`) leaves for the reduce, and the check that a set of them is whole.

A finished shard I of N holds, in its OUT/.gt2seg/: the converted items (items/<name>.jpg|png|json,
the resume cache), results-I-of-N.jsonl (one converted item per line, sorted by name) and,
written last, shard-I-of-N.json: everything else the reduce needs (class table, attribute key,
skipped lines, options, the job's identity, whether the sides are fixed). The reduce therefore
never reads the source again, and an unfinished shard has no record. Names are per shard, so
the outputs of N machines can share one folder (or S3 prefix) without overwriting each other.

JSON lines on disk rather than sqlite3: the results are written once, in name order, and read
once or twice front to back; N sorted files merge in one streaming pass (heapq.merge), which
is all the reduce needs, with no index to build and nothing to lock.
"""
from __future__ import annotations

import heapq
import json
import re
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator

from gt2seg import layout, storage
from gt2seg.errors import ShardError

FORMAT = 2  # 2: mask PNGs written by gt2seg.png; a merge refuses shards of another format
_RECORD = re.compile(r"shard-(\d+)-of-(\d+)\.json")


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
class ShardRecord:
    """A finished map step: what the reduce reads instead of the source. `folder` is where it lies."""

    shard: list[int]  # [index, count]
    job: str  # identity of the job's records, class table and fixed sides
    options: dict  # what the reduce's output depends on (not workers, shard, progress)
    manifest: str
    lines: int
    label_attributes: list[str]
    attribute: str
    classes_json: str
    class_warnings: list[str]
    fixed_sides: bool
    skipped: list[dict]  # lines left out before converting (the job's own, duplicates): the same in every shard
    item_skipped: list[dict]  # this shard's items left out while converting (missing, invalid with --on-error skip)
    items: int
    format: int = FORMAT
    folder: str = ""

    @property
    def label(self) -> str:
        return f"{self.shard[0]}/{self.shard[1]}"

    @cached_property
    def cache(self) -> Path:
        """One Path object per shard (the reduce refers to it from every item's placement)."""
        return layout.cache_dir(Path(self.folder))

    @property
    def results(self) -> Path:
        return Path(self.folder) / layout.CACHE / results_name(*self.shard)


def record_name(index: int, count: int) -> str:
    return f"shard-{index}-of-{count}.json"


def results_name(index: int, count: int) -> str:
    return f"results-{index}-of-{count}.jsonl"


def write_record(out: Path, record: ShardRecord) -> None:
    data = asdict(record)
    data.pop("folder")
    layout.write_json(Path(out) / layout.CACHE / record_name(*record.shard), data)


def read_records(folder) -> list[ShardRecord]:
    """Every finished shard in `folder` (a shard's OUT, or one several shards' outputs share)."""
    folder = Path(folder)
    found = []
    for path in sorted((folder / layout.CACHE).glob("shard-*-of-*.json")):
        if not _RECORD.fullmatch(path.name):
            continue
        try:
            data = json.loads(path.read_text())
            record = ShardRecord(**data, folder=str(folder))
        except (OSError, ValueError, TypeError):
            raise ShardError(f"{path} is not a gt2seg shard record (edited, or from another version?); "
                             "run that shard again") from None
        if record.format != FORMAT:
            raise ShardError(f"{path} was written by another gt2seg version; run that shard again")
        found.append(record)
    return found


def complete_set(folders) -> list[ShardRecord]:
    """The shards 0..N-1 of one job, one each, with the same options: else a ShardError naming the culprit."""
    records = [r for folder in folders for r in read_records(folder)]
    if not records:
        raise ShardError(f"no finished shard in {', '.join(map(str, folders))}: each shard folder is the OUT "
                         "of a finished `gt2seg convert --shard I/N` run")
    first = records[0]
    by_index: dict[int, ShardRecord] = {}
    for record in records:
        where = f"shard {record.label} in {record.folder}"
        if record.shard[1] != first.shard[1]:
            raise ShardError(f"{where} is one of {record.shard[1]} shards, but shard {first.label} in "
                             f"{first.folder} is one of {first.shard[1]}: give the shards of one run (a folder that holds "
                             f"another run's shards too: remove its {layout.CACHE}/shard-*-of-N.json of the other N)")
        if record.job != first.job or storage.canonical(record.manifest) != storage.canonical(first.manifest):
            raise ShardError(f"{where} was converted from another manifest or class table ({record.manifest}) "
                             f"than shard {first.label} in {first.folder} ({first.manifest})")
        if record.options != first.options:
            changed = sorted(k for k in record.options.keys() | first.options.keys()
                             if record.options.get(k) != first.options.get(k))
            raise ShardError(f"{where} was converted with other options than shard {first.label} in "
                             f"{first.folder} ({', '.join(changed)} differ): run every shard with the same options")
        if record.shard[0] in by_index:
            raise ShardError(f"shard {record.label} is given twice: in {by_index[record.shard[0]].folder} and "
                             f"{record.folder}; give each shard once")
        by_index[record.shard[0]] = record
    missing = [i for i in range(first.shard[1]) if i not in by_index]
    if missing:
        raise ShardError(f"shard(s) {', '.join(f'{i}/{first.shard[1]}' for i in missing)} missing (not given, "
                         "or not finished): nothing was written; finish them and merge again")
    return [by_index[i] for i in range(first.shard[1])]


def result_line(result: dict) -> str:
    """One converted item's line of a results file."""
    return json.dumps(result, separators=(",", ":")) + "\n"


def write_results(path: Path, lines: Iterator[str]) -> int:
    """Stream `lines` (see result_line; in name order) to `path` (temp, then renamed); returns how many."""
    count = 0
    with layout.streamed(path) as f:
        for line in lines:
            f.write(line)
            count += 1
    return count


def _read_results(record: ShardRecord) -> Iterator[tuple[dict, ShardRecord]]:
    try:
        with open(record.results) as f:
            for line in f:
                yield json.loads(line), record
    except (OSError, ValueError):
        raise ShardError(f"shard {record.label} in {record.folder}: {record.results.name} is unreadable; "
                         "run that shard again") from None


def merged_results(records: list[ShardRecord]) -> Iterator[tuple[dict, ShardRecord]]:
    """Every converted item of every shard, in name order, with its shard: one streaming pass."""
    return heapq.merge(*(_read_results(r) for r in records), key=lambda pair: pair[0]["name"])
