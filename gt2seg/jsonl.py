"""Strict JSON Lines: the one line reader for manifests (gt2seg's, and seg's augmented ones).

Only '\\n' ends a line (JSON Lines), so U+2028, U+2029 or U+0085 inside a string
stay where they are; `str.splitlines` would cut the line there. Python's json
module is lenient where a manifest must not be: a repeated key silently keeps
the last value, NaN/Infinity are accepted though JSON has neither, and a
lone surrogate escape ("\\ud800") becomes a string no file name can hold and
no terminal can print. Here all three are errors that name the line (I-JSON,
RFC 7493, refuses them too).
"""
from __future__ import annotations

import json
import re
from typing import Iterator

from gt2seg.errors import JsonLineError


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class _Refused(ValueError):
    """Raised from json's hooks; becomes a JsonLineError with the line number."""


def _no_duplicates(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise _Refused(f"duplicate key {key!r} (JSON readers disagree on which value wins); keep one")
        obj[key] = value
    return obj


def _no_constant(name):
    raise _Refused(f"{name} is not valid JSON (JSON has no NaN or Infinity); write a number, or null")


def lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) for each non-blank line of `text`."""
    start, number = 0, 1
    while start <= len(text):  # str.find rather than split: no list of every line at once
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        raw = text[start:end]
        if raw.strip():
            yield number, raw
        number, start = number + 1, end + 1


def file_lines(path, where: str | None = None) -> Iterator[tuple[int, str]]:
    """`lines` of a local file, read as it is walked: a large manifest is never held whole in memory.
    A binary file splits only at b"\\n", as JSON Lines does; a leading UTF-8 BOM is dropped."""
    with open(path, "rb") as stream:
        for number, raw in enumerate(stream, 1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\n")
            except UnicodeDecodeError as exc:
                raise JsonLineError(number, f"{where or path} is not UTF-8 text (byte {exc.start} of the line); "
                                            "is it a manifest?") from None
            if text.strip():
                yield number, text


def parse_object(raw: str, number: int) -> dict:
    """The JSON object on line `number`; raises JsonLineError saying what is wrong with it."""
    try:
        obj = json.loads(raw, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise JsonLineError(number, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except _Refused as exc:
        raise JsonLineError(number, str(exc)) from None
    except RecursionError:
        raise JsonLineError(number, "nested too deeply to be a manifest line") from None
    if not isinstance(obj, dict):
        raise JsonLineError(number, f"a JSON object is expected, got {type(obj).__name__}")
    if _SURROGATE_ESCAPE.search(raw):  # rare: only then check that every escape was part of a pair
        try:
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise JsonLineError(number, f"{exc.object[exc.start]!r} is a lone surrogate escape, not a "
                                        "character; fix the text") from None
    return obj
