"""What every importer shares: the files of SRC, list-file rows, format options, and the Job it hands to convert.

An importer reads a public dataset's own layout (list files, folders) into a `gt2seg.convert.Job`: records
whose refs are relative to SRC and whose colour map sends each mask value (or colour) to a class name, a fixed
class table, and the dataset's official sides when asked. Everything after that (decode, remap, names, split,
placement, cache, report) is `convert_job`'s, so an imported layout is exactly a converted one.
"""
from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from gt2seg import storage
from gt2seg.classes import BACKGROUND, IGNORE, MAX_CLASSES, ClassTable, is_background
from gt2seg.errors import MissingObjectError, SourceError
from gt2seg.manifest import SEG_TYPE, Attribute, ColorEntry, Manifest, Record, Skipped

if TYPE_CHECKING:
    from gt2seg.convert import Job
    from gt2seg.drawing import Drawing

RESOURCE_FORK = "._"  # macOS AppleDouble files that archives made on a Mac carry next to each file


@dataclass(frozen=True)
class Param:
    """One format option: `--name VALUE` on `gt2seg import FORMAT` and `gt2seg inspect`."""

    name: str  # keyword name; the option is --name with '_' -> '-'
    help: str
    default: str | None = None
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    multiple: bool = False  # repeatable: the value is a tuple of the values given

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Source:
    """The files under SRC (a local folder or an s3:// prefix), listed once, as relative POSIX paths."""

    root: str
    files: frozenset[str]

    def relative(self, path: str) -> str:
        """`path` as the listing names it ('./a/b/' -> 'a/b'; '' for SRC itself); a path that is absolute or
        leads out of SRC is refused: list files, tables and folders are named relative to SRC."""
        rel = posixpath.normpath(path.replace(os.sep, "/")) if path else "."
        if rel.startswith("/") or rel == ".." or rel.startswith("../"):
            raise SourceError(f"{path!r} is not inside {self.root}: name it relative to SRC")
        return "" if rel == "." else rel

    def under(self, folder: str) -> list[str]:
        """Files below `folder` (any depth), sorted."""
        prefix = self.relative(folder)
        prefix = prefix + "/" if prefix else ""
        return sorted(f for f in self.files if f.startswith(prefix))

    def has_folder(self, folder: str) -> bool:
        return bool(self.under(folder))

    def read_text(self, relative: str, expected: str) -> str:
        """A list or table file; missing, it is a SourceError naming it and the layout `expected`."""
        relative = self.relative(relative)
        if relative not in self.files:
            raise SourceError(f"{storage.join(self.root, relative)} does not exist; expected {expected}")
        try:
            data = storage.read_bytes(storage.join(self.root, relative))
        except MissingObjectError:
            raise SourceError(f"{storage.join(self.root, relative)} does not exist; expected {expected}") from None
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SourceError(f"{storage.join(self.root, relative)} is not UTF-8 text (byte {exc.start})") from None


def list_source(root: str) -> Source:
    """Every file under `root`. Links are listed, not followed: reading one that leads outside SRC is refused
    when the item is converted (gt2seg.storage.join)."""
    root = str(root)
    if storage.is_s3(root):
        prefix = storage.folder_key(root).key
        files = frozenset(o.key[len(prefix):] for o in storage.list_objects(root) if not o.key.endswith("/"))
        if not files:
            raise SourceError(f"{root} holds no objects; expected a dataset folder")
        return Source(root.rstrip("/") + "/", files)
    base = Path(root)
    if not base.exists():
        raise SourceError(f"{root} does not exist; expected a dataset folder (or a manifest file)")
    if not base.is_dir():
        raise SourceError(f"{root} is not a folder; expected a dataset folder")
    files = set()
    for folder, _, names in os.walk(base):
        rel = os.path.relpath(folder, base)
        files.update(posixpath.normpath(posixpath.join(rel.replace(os.sep, "/"), n)) for n in names)
    return Source(str(base.resolve()), frozenset(files))


def is_resource_fork(path: str) -> bool:
    return posixpath.basename(path).startswith(RESOURCE_FORK)


def list_rows(source: Source, relative: str, expected: str) -> list[tuple[int, list[str]]]:
    """(line number, whitespace-separated fields) of a list file; blank and '#' lines are left out."""
    rows = []
    for number, line in enumerate(source.read_text(relative, expected).splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            rows.append((number, line.split()))
    return rows


@dataclass
class Items:
    """What an importer collects while reading: records, skips and official sides, in one place."""

    format: str
    records: list[Record] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    sides: dict[int, str] = field(default_factory=dict)
    drawings: dict[int, "Drawing"] = field(default_factory=dict)
    errors: list[Skipped] = field(default_factory=list)
    _maps: dict = field(default_factory=dict)

    @property
    def attribute(self) -> str:
        return f"{self.format}-ref"

    def add(self, line: int, image: str, mask: str, color_map: tuple[ColorEntry, ...], side: str | None = None,
            drawing: "Drawing | None" = None):
        """An item; with a drawing, `mask` only names where its shapes come from (see gt2seg.drawing)."""
        self.records.append(Record(line, image, self.attribute, mask, self._maps.setdefault(color_map, color_map)))
        if side is not None:
            self.sides[line] = side
        if drawing is not None:
            self.drawings[line] = drawing

    def skip(self, line: int, reason: str, detail: str) -> None:
        """Left out and counted, whatever --on-error says (what the dataset's own layout leaves unlabeled)."""
        self.skipped.append(Skipped(line, reason, detail))

    def invalid(self, line: int, reason: str, detail: str) -> None:
        """Bad input: refuses the import, or with --on-error skip is left out and counted under `reason`."""
        self.errors.append(Skipped(line, reason, detail))

    def job(self, source: Source, table: ClassTable, official: bool,
            ref_roots: tuple[tuple[str, str], ...] = ()) -> "Job":
        from gt2seg.convert import Job

        if not self.records:
            reasons = sorted({s.reason for s in self.skipped + self.errors})
            raise SourceError(f"{source.root}: no item to import (skipped: {', '.join(reasons) or 'none found'})"
                              + "".join(f"; line {e.line}: {e.detail}" for e in self.errors[:3]))
        lines = len(self.records) + len(self.skipped) + len(self.errors)
        manifest = Manifest(source.root, lines, self.records, self.skipped,
                            {self.attribute: Attribute(self.attribute, SEG_TYPE, len(self.records))},
                            [self.attribute])
        return Job(manifest, table, (source.root, *(root for _, root in ref_roots)),
                   dict(self.sides) if official else None, source.root, dict(self.drawings) if self.drawings else None,
                   tuple(sorted(self.errors, key=lambda e: e.line)), tuple(ref_roots))


def class_table(classes: list[tuple[str, str | None]]) -> tuple[ClassTable, tuple[ColorEntry, ...]]:
    """The fixed table of `classes` ([(name, '#rrggbb' or None)]) and the colour map whose key i is classes[i].
    The first class is index 0, unless one is named `background` (any case), which then takes index 0 and the
    others keep their order; names must be unique and fit the built-in algorithm's masks."""
    names = [name for name, _ in classes]
    if len(names) > MAX_CLASSES:
        raise SourceError(f"{len(names)} classes: at most {MAX_CLASSES} fit the built-in algorithm's masks "
                          f"({IGNORE} is the ignore label)")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SourceError(f"class {duplicates[0]!r} is listed twice; class names must be unique")
    order = sorted(range(len(classes)), key=lambda i: not is_background(names[i]))
    table_names = [BACKGROUND if is_background(names[i]) else names[i] for i in order]
    table = ClassTable.fixed(table_names, [classes[i][1] for i in order] if all(c for _, c in classes) else ())
    colour = {name: int(color[1:], 16) for name, color in classes if color}
    color_map = tuple(ColorEntry(key, name, f"#{colour[name]:06x}" if name in colour else None)
                      for key, name in enumerate(names))
    return table, color_map


@dataclass(frozen=True)
class Importer:
    """A format: its options, how to read SRC into a Job, and how to recognise SRC (for `inspect`)."""

    name: str
    help: str
    params: tuple[Param, ...]
    read: Callable[[Source, dict], "Job"]
    detect: Callable[[Source], bool]

    def settings(self, given: dict) -> dict:
        """Every option's value: given (None = not given) or its default; choices checked."""
        out = {}
        for p in self.params:
            value = given.get(p.name)
            if p.multiple:
                out[p.name] = tuple(value or ())
                continue
            value = p.default if value is None else value
            if p.choices and value not in p.choices:
                raise SourceError(f"{p.flag} must be one of {', '.join(p.choices)}, got {value!r}")
            out[p.name] = value
        return out
