"""Find a labeling job's output manifest (local or S3) and keep a local snapshot of it for `make`.

The snapshot is rewritten only when the manifest's bytes change, so its timestamp tells make whether the
job grew or was relabeled: everything downstream re-runs then, and only then.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gt2seg.atomic import atomic_write
from seg.errors import JobManifestError

MANIFEST_PATH = "manifests/output/output.manifest"


@dataclass
class ManifestSnapshot:
    manifest: str
    path: Path
    lines: int
    changed: bool


def resolve_manifest(job: str) -> str:
    """JOB as given when it names a .manifest, else `<JOB>/manifests/output/output.manifest`."""
    job = str(job)
    return job if job.endswith(".manifest") else f"{job.rstrip('/')}/{MANIFEST_PATH}"


def snapshot_manifest(job: str, dest) -> ManifestSnapshot:
    """Read the job's manifest and write it to `dest` if its content differs from what is there."""
    from gt2seg.errors import MissingObjectError, StorageError
    from gt2seg.storage import read_bytes

    manifest = resolve_manifest(job)
    what = ("JOB must be a labeling job's output prefix (the folder named after the job, holding "
            f"{MANIFEST_PATH}) or its output.manifest, local or s3://")
    try:
        data = read_bytes(manifest)
    except MissingObjectError as exc:
        raise JobManifestError(f"no labeling job output at {manifest} ({exc}); {what}") from None
    except StorageError as exc:
        raise JobManifestError(f"cannot read {manifest}: {exc}") from None
    lines = sum(1 for line in data.splitlines() if line.strip())
    if not lines:
        raise JobManifestError(f"{manifest} is empty: the labeling job has no output yet; wait for it to finish")
    dest = Path(dest)
    changed = not dest.is_file() or dest.read_bytes() != data
    if changed:
        atomic_write(dest, data)
    return ManifestSnapshot(manifest, dest, lines, changed)
