"""Check an augmented manifest before upload: everything SageMaker would silently drop a record for."""
from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np

from gt2seg import jsonl
from gt2seg.classes import IGNORE
from gt2seg.errors import ImageError
from seg.data.batching import ordered_map
from seg.errors import AugmentedManifestError, PipeError
from seg.pipe.manifest import parse_line, suggest


@dataclass
class CheckProblem:
    line: int | None  # 1-based manifest line; None for a problem with the AttributeNames themselves
    attribute: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "AttributeNames"
        return f"{where}: {self.attribute + ': ' if self.attribute else ''}{self.message}"


@dataclass
class CheckReport:
    manifest: str
    attribute_names: list[str]
    num_classes: int | None
    lines: int = 0
    ok_lines: int = 0
    problems: list[CheckProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.lines > 0

    def channel_config(self) -> dict:
        """The channel settings SageMaker needs for this manifest (docs/CONTRACTS.md, "Pipe mode")."""
        return {"InputMode": "Pipe", "S3DataType": "AugmentedManifestFile",
                "AttributeNames": self.attribute_names, "RecordWrapperType": "RecordIO",
                "ContentType": "application/x-recordio"}

    def to_dict(self) -> dict:
        out = asdict(self)
        out["ok"] = self.ok
        out["channel_config"] = self.channel_config()
        return out


def _check_image(data: bytes, role: str):
    """(format, mode, size, image) through gt2seg's strict decoder, as training will read it."""
    from gt2seg.images import load_strict, open_strict

    img = load_strict(open_strict(data, what=role), what=role)
    return img.format, img.mode, img.size, img


def _check_pair(obj: dict, number: int, names: list[str], num_classes: int | None) -> list[CheckProblem]:
    from gt2seg.errors import StorageError
    from gt2seg.storage import read_bytes

    problems = []
    decoded = {}
    for name, role in zip(names, ("image", "mask")):
        if name not in obj:
            problems.append(CheckProblem(number, name, f"missing{suggest(name, obj)}; the line has: "
                                                       f"{', '.join(sorted(obj)) or 'no keys'}"))
            continue
        uri = obj[name]
        if not isinstance(uri, str) or not uri:
            problems.append(CheckProblem(number, name, f"expected a URI string, got {uri!r}"))
            continue
        try:
            data = read_bytes(uri)
        except StorageError as exc:
            problems.append(CheckProblem(number, name, str(exc)))
            continue
        try:
            decoded[role] = _check_image(data, role)
        except ImageError as exc:
            problems.append(CheckProblem(number, name, f"{uri} is not a decodable {role} ({exc.problem}: "
                                                       f"{exc.reason})"))
    if "mask" in decoded:
        fmt, mode, size, img = decoded["mask"]
        if mode not in ("L", "P"):
            problems.append(CheckProblem(number, names[1], f"mask has mode {mode}; it must be a single-channel "
                                                           "8-bit PNG of class indices (mode L or P)"))
        elif fmt != "PNG":
            problems.append(CheckProblem(number, names[1], f"mask is {fmt}; lossy formats corrupt class "
                                                           "indices, save masks as PNG"))
        elif num_classes is not None:
            values = np.unique(np.asarray(img))
            bad = values[(values >= num_classes) & (values != IGNORE)]
            if bad.size:
                problems.append(CheckProblem(number, names[1], f"mask values {bad.tolist()[:10]} are not class "
                                                               f"indices 0..{num_classes - 1} or {IGNORE} (ignore)"))
        if "image" in decoded and decoded["image"][2] != size:
            problems.append(CheckProblem(number, names[1], f"mask is {size[0]}x{size[1]} but the image is "
                                                           f"{decoded['image'][2][0]}x{decoded['image'][2][1]}"))
    return problems


def check_manifest(manifest, attribute_names: list[str], *, num_classes: int | None = None,
                   workers: int = 8, progress: bool = False) -> CheckReport:
    """Everything SageMaker would silently drop a record for, reported per line instead."""
    from tqdm import tqdm

    from gt2seg.storage import read_bytes

    report = CheckReport(str(manifest), list(attribute_names), num_classes)
    if len(attribute_names) != 2:
        report.problems.append(CheckProblem(None, None, f"expected 2 AttributeNames (image, mask), got "
                                                        f"{len(attribute_names)}: {attribute_names}"))
        return report
    report.problems += [CheckProblem(None, n, "attributes streamed as objects must end in '-ref'")
                        for n in attribute_names if not n.endswith("-ref")]
    if num_classes is not None and not 1 <= num_classes <= IGNORE:
        raise PipeError(f"num_classes={num_classes}: must be 1..{IGNORE}")
    try:
        text = read_bytes(manifest).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AugmentedManifestError(f"{manifest}: not UTF-8 text (byte {exc.start})") from None
    lines = list(jsonl.lines(text))
    report.lines = len(lines)

    def one(item):
        number, text = item
        try:
            obj = parse_line(text, number, str(manifest))
        except AugmentedManifestError as exc:
            return [CheckProblem(number, None, str(exc).split(": ", 1)[1])]
        return _check_pair(obj, number, report.attribute_names, num_classes)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = tqdm(ordered_map(one, lines, pool, 4 * max(1, workers)), total=len(lines), unit="line",
                       desc="pipe-check", file=sys.stderr, disable=not progress)
        for found in results:
            report.problems += found
            report.ok_lines += not found
    return report
