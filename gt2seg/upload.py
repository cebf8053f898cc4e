"""Upload a converted layout (OUT) to S3.

Idempotent and safe to interrupt: objects already at the destination with the
same size and ETag are skipped. The manifests and channels.json go up only
after every image and mask, and report.json (the completion marker, withdrawn
first when re-uploading) last of all, so a half-finished upload never looks
like a complete layout.
"""
from __future__ import annotations

import json
import mimetypes
import os
from dataclasses import asdict, dataclass, field

from gt2seg import storage
from gt2seg.errors import StorageError

# Uploaded in this order, each phase finished before the next starts.
_LAST = ("train.manifest", "validation.manifest", "channels.json")
_VERY_LAST = ("report.json",)
_MANIFESTS = ("train.manifest", "validation.manifest")
_SHOWN = 3


@dataclass
class UploadReport:
    destination: str
    objects: int = 0          # files in the layout
    uploaded: int = 0
    skipped: int = 0          # already at the destination, same size and ETag
    bytes: int = 0            # bytes uploaded
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def is_layout_file(relpath: str) -> bool:
    """False for the resume cache (.gt2seg/), dot-files and temp files: never uploaded."""
    parts = relpath.split("/")
    return not any(p.startswith(".") for p in parts) and not parts[-1].endswith((".tmp", ".part", "~"))


def _layout_files(out_dir: str) -> list:
    """Relative posix paths of the files to upload, sorted."""
    found = []
    for folder, dirs, files in os.walk(out_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            rel = os.path.relpath(os.path.join(folder, name), out_dir).replace(os.sep, "/")
            if is_layout_file(rel):
                found.append(rel)
    return sorted(found)


def _phases(files: list) -> list:
    """Data first, then the manifests and channels.json, then report.json."""
    first = [f for f in files if f not in _LAST + _VERY_LAST]
    last = [f for f in files if f in _LAST]
    very_last = [f for f in files if f in _VERY_LAST]
    return [p for p in (first, last, very_last) if p]


def _ref_warnings(out_dir: str, destination: str) -> list:
    """Warn when the augmented manifests' refs do not point under the destination."""
    warnings = []
    for name in _MANIFESTS:
        path = os.path.join(out_dir, name)
        if not os.path.isfile(path):
            continue
        outside, total, example = 0, 0, None
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    warnings.append(f"{path} line {number} is not JSON: the manifest is damaged")
                    break
                for key, value in record.items():
                    if key.endswith("-ref"):
                        total += 1
                        if not str(value).startswith(destination):
                            outside += 1
                            example = example or value
        if outside:
            warnings.append(
                f"{name}: {outside} of {total} refs do not point under {destination} "
                f"(e.g. {example}); SageMaker will not find them. Re-run `gt2seg convert ... "
                f"--s3-prefix {destination.rstrip('/')}` and upload again"
            )
    if not any(os.path.isfile(os.path.join(out_dir, n)) for n in _MANIFESTS):
        warnings.append(f"{out_dir} has no train.manifest or validation.manifest: "
                        "is it a gt2seg convert output?")
    return warnings


def _stale_warning(remote: dict, files: list, destination: str) -> list:
    stale = sorted(set(remote) - set(files))
    if not stale:
        return []
    return [
        f"{len(stale)} object(s) under {destination} are not in the layout "
        f"(e.g. {', '.join(stale[:_SHOWN])}); File-mode training reads every object under "
        "train/ and validation/, so delete them (`aws s3 rm --recursive`) or use a fresh prefix"
    ]


def upload_layout(out_dir, s3_uri: str, *, workers: int = 8, progress: bool = True,
                  multipart_threshold: int = 8 * storage.MB,
                  multipart_chunksize: int = 8 * storage.MB) -> UploadReport:
    """Upload every layout file under `out_dir` to the `s3_uri` prefix; see the module doc."""
    out_dir = str(out_dir)
    if not storage.is_s3(s3_uri):
        raise StorageError(f"upload destination {s3_uri!r} is not an s3://bucket/prefix URI")
    if not os.path.isdir(out_dir):
        raise StorageError(f"{out_dir} is not a folder: pass the OUT folder of `gt2seg convert`")
    loc = storage.folder_key(s3_uri)
    destination = f"s3://{loc.bucket}/{loc.key}"
    config = storage.transfer_config(workers, multipart_threshold, multipart_chunksize)

    files = _layout_files(out_dir)
    remote = {o.key[len(loc.key):]: o for o in storage.list_objects(destination)}
    report = UploadReport(destination=destination, objects=len(files))
    report.warnings += _ref_warnings(out_dir, destination)
    report.warnings += _stale_warning(remote, files, destination)

    todo = []
    for rel in files:
        path = os.path.join(out_dir, rel)
        have = remote.get(rel)
        if (have and have.size == os.path.getsize(path)
                and have.etag == storage.local_etag(path, config)):
            report.skipped += 1
        else:
            todo.append(rel)
    if todo and "report.json" in remote:
        # Withdraw the old completion marker until this upload has finished.
        storage.delete(destination + "report.json")
        if "report.json" in files and "report.json" not in todo:
            todo.append("report.json")
            report.skipped -= 1
    report.uploaded = len(todo)
    report.bytes = sum(os.path.getsize(os.path.join(out_dir, rel)) for rel in todo)

    bar, Progress = storage.progress_bar(report.bytes, "upload", progress)
    with bar, storage.transfer_manager(config) as manager:
        for phase in _phases(todo):
            futures = [
                (manager.upload(os.path.join(out_dir, rel), loc.bucket, loc.key + rel, subscribers=[Progress()],
                                # a content type lets a browser open report/index.html and its images from S3
                                extra_args={"ContentType": mimetypes.guess_type(rel)[0] or "binary/octet-stream"}),
                 rel)
                for rel in phase
            ]
            for future, rel in futures:
                with storage.s3_errors(destination + rel, "upload to"):
                    try:
                        future.result()
                    except OSError as exc:
                        raise StorageError(f"cannot read {os.path.join(out_dir, rel)}: {exc}") from None
    return report
