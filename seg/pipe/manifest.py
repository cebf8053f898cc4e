"""Augmented manifests as Pipe mode reads them: one JSON object per line, attributes by name.

Shared by the local feeder and the pre-upload check, so both say the same
thing about a missing or misspelt attribute (docs/CONTRACTS.md, "Pipe mode").
"""
from __future__ import annotations

import difflib
import json
from typing import Iterable

from gt2seg import jsonl
from gt2seg.errors import JsonLineError
from seg.errors import AugmentedManifestError


def suggest(name: str, keys: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(keys), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def parse_line(text: str, number: int, where: str) -> dict:
    """The line's JSON object, read as strictly as gt2seg reads manifests (gt2seg.jsonl)."""
    try:
        return jsonl.parse_object(text, number)
    except JsonLineError as exc:
        raise AugmentedManifestError(f"{where} line {number}: {exc.detail}") from None


def attribute_value(obj: dict, name: str, number: int, where: str) -> tuple[bool, str]:
    """(is_ref, value) of one attribute; refs are fetched, other values are sent as their string form."""
    if name not in obj:
        keys = ", ".join(sorted(obj)) or "none"
        raise AugmentedManifestError(f"{where} line {number}: no attribute '{name}'{suggest(name, obj)}; the line has: "
                            f"{keys}. AttributeNames must match the manifest keys exactly")
    value = obj[name]
    if name.endswith("-ref"):
        if not isinstance(value, str) or not value:
            raise AugmentedManifestError(f"{where} line {number}: attribute '{name}' must be a URI string, got {value!r}")
        return True, value
    return False, value if isinstance(value, str) else json.dumps(value)


def read_manifest(manifest, attribute_names: list[str]) -> list[tuple[int, list[tuple[bool, str]]]]:
    """(line number, attribute values in AttributeNames order) of every non-blank line; raises
    AugmentedManifestError up front. The number is the file's, so errors found later name the right line."""
    from gt2seg.storage import read_bytes

    if not attribute_names:
        raise AugmentedManifestError("AttributeNames is empty; pass e.g. attribute_names=source-ref,<label>-ref")
    where = str(manifest)
    try:
        text = read_bytes(manifest).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AugmentedManifestError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    rows = []
    for number, line in jsonl.lines(text):
        obj = parse_line(line, number, where)
        rows.append((number, [attribute_value(obj, name, number, where) for name in attribute_names]))
    if not rows:
        raise AugmentedManifestError(f"{where}: no lines; nothing to stream")
    return rows
