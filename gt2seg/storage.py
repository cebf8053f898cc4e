"""One small interface over local paths and s3:// URIs.

Everything else in gt2seg is storage-agnostic: it asks for bytes by URI and
writes local files. boto3 is configured by its standard chain (profile,
region, AWS_ENDPOINT_URL) with adaptive retries (503 SlowDown, throttling and
dropped connections are retried with backoff); a connection that drops in the
middle of a body is retried here, since botocore's retries end when the headers
arrive. Bulk transfers go through boto3's transfer manager (s3transfer):
concurrency and multipart for free. `Fetcher` overlaps reads with the caller's
work: a bounded pool of threads on one client whose connection pool has one
connection per thread.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gt2seg.atomic import atomic_write
from gt2seg.errors import Gt2SegError, MissingObjectError, StorageError

_local = threading.local()
MB = 1024 * 1024
# One connection per transfer thread; workers above this would queue on the pool.
MAX_WORKERS = 64
RETRY_ATTEMPTS = 8  # botocore's, per request (503 SlowDown, throttling, connection errors), unless AWS_MAX_ATTEMPTS
BODY_ATTEMPTS = 4  # ours, per object: the connection dropped while the body was read
_shared: dict = {}
_shared_lock = threading.Lock()


@dataclass(frozen=True)
class S3Url:
    bucket: str
    key: str

    def __str__(self):
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class ObjectInfo:
    """One S3 object: its full key, size in bytes and ETag (quotes stripped)."""

    key: str
    size: int
    etag: str


@dataclass(frozen=True)
class DownloadReport:
    source: str
    destination: str
    objects: int
    downloaded: int
    skipped: int
    bytes: int


def is_s3(uri) -> bool:
    return str(uri).startswith("s3://")


def parse_s3(uri: str) -> S3Url:
    rest = str(uri)[len("s3://"):]
    bucket, _, key = rest.partition("/")
    if not is_s3(uri) or not bucket:
        raise StorageError(f"{uri!r} is not an s3://bucket/key URI")
    return S3Url(bucket, key)


def s3_client():
    """This thread's boto3 S3 client.

    Created lazily (clients are not fork-safe) and rebuilt whenever the AWS_*
    environment changes, so a new endpoint, profile or key is always honoured.
    """
    key = _client_key()
    if getattr(_local, "key", None) != key:
        _local.client = _new_client(MAX_WORKERS)
        _local.key = key
    return _local.client


def shared_client(connections: int):
    """One client for `connections` threads (boto3 clients are thread-safe), its pool sized to match."""
    environment = _client_key()
    with _shared_lock:
        for stale in [k for k in _shared if k[0] != environment]:  # another process's or environment's
            del _shared[stale]
        if (environment, connections) not in _shared:
            _shared[environment, connections] = _new_client(connections)
        return _shared[environment, connections]


def _retry_attempts() -> int:
    """AWS_MAX_ATTEMPTS as the AWS CLI and SDKs read it, else RETRY_ATTEMPTS."""
    try:
        return max(1, int(os.environ.get("AWS_MAX_ATTEMPTS", RETRY_ATTEMPTS)))
    except ValueError:
        raise Gt2SegError(f"AWS_MAX_ATTEMPTS must be a whole number, got {os.environ['AWS_MAX_ATTEMPTS']!r}") from None


def _client_key():
    return os.getpid(), tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))


def _new_client(connections: int):
    import boto3
    from botocore.config import Config

    retries = {"max_attempts": _retry_attempts(), "mode": "adaptive"}
    return boto3.session.Session().client("s3", config=Config(retries=retries, max_pool_connections=connections))


def _client_error_code(exc) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def storage_error(exc: Exception, uri: str, action: str) -> StorageError:
    """A boto3/botocore exception as a StorageError that says what to do."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return StorageError(
            f"cannot {action} {uri}: no usable AWS credentials. Set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, pick a profile with AWS_PROFILE, or run `aws configure` "
            "(or `aws sso login`)"
        )
    if isinstance(exc, EndpointConnectionError):
        return StorageError(f"cannot {action} {uri}: {exc}. Check AWS_ENDPOINT_URL and the network")
    if isinstance(exc, ClientError):
        code = _client_error_code(exc)
        if code == "NoSuchBucket":
            bucket = parse_s3(uri).bucket if is_s3(uri) else uri
            return MissingObjectError(
                f"cannot {action} {uri}: bucket {bucket!r} does not exist. Create it or fix the URI"
            )
        if code in ("NoSuchKey", "404", "NotFound"):
            return MissingObjectError(f"{uri} does not exist")
        if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled",
                    "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StorageError(
                f"cannot {action} {uri}: access denied ({code}). Check that the credentials in use "
                "(`aws sts get-caller-identity`) may s3:ListBucket, s3:GetObject and s3:PutObject "
                "there, and the bucket policy"
            )
        if code in ("SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
                    "ServiceUnavailable", "503"):
            return StorageError(
                f"cannot {action} {uri}: S3 is still throttling ({code}) after {_retry_attempts()} attempts "
                f"with backoff ({exc}); lower --workers or --prefetch, or run again later (finished items are kept)"
            )
    return StorageError(f"cannot {action} {uri}: {exc}")


@contextlib.contextmanager
def s3_errors(uri: str, action: str):
    """Turn boto3 failures inside the block into clear StorageErrors."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise storage_error(exc, uri, action) from None


def read_bytes(uri, client=None) -> bytes:
    """The whole object (through `client` if given). Raises MissingObjectError if it does not exist."""
    uri = str(uri)
    if is_s3(uri):
        return _get(uri, client or s3_client())
    with local_errors(uri):
        return Path(uri).read_bytes()


@contextlib.contextmanager
def local_errors(uri):
    """Reading the local file `uri` inside the block: its failures said as for an S3 object."""
    try:
        yield
    except FileNotFoundError:
        raise MissingObjectError(f"{uri} does not exist") from None
    except IsADirectoryError:
        raise StorageError(f"{uri} is a folder, not a file") from None
    except OSError as exc:
        raise StorageError(f"cannot read {uri}: {exc.strerror}") from None


def _get(uri: str, client) -> bytes:
    """A GET whose body is read again, with backoff, when the connection drops in the middle of it."""
    from botocore.exceptions import IncompleteReadError, ReadTimeoutError, ResponseStreamingError

    loc = parse_s3(uri)
    attempt = 1
    while True:
        with s3_errors(uri, "read"):
            body = client.get_object(Bucket=loc.bucket, Key=loc.key)["Body"]
            try:
                return body.read()
            except (IncompleteReadError, ReadTimeoutError, ResponseStreamingError) as exc:
                if attempt == BODY_ATTEMPTS:
                    raise StorageError(
                        f"cannot read {uri}: the connection dropped while the object was read, "
                        f"{BODY_ATTEMPTS} times ({exc}); check the network, or run again (finished items "
                        "are kept)") from None
            finally:
                body.close()
        time.sleep(min(2.0, 0.05 * 2 ** attempt))
        attempt += 1


class Fetcher:
    """Reads objects ahead of the caller: a bounded pool of `threads` concurrent reads, so that on a
    high-latency store the caller's CPU work overlaps the round trips instead of waiting on them."""

    def __init__(self, threads: int):
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="gt2seg-fetch")

    def fetch(self, uri: str) -> Future:
        """A future of the object's bytes (or of the StorageError reading it). Local files are read
        at once: they come from the page cache, where a thread hand-off costs more than it hides."""
        if is_s3(uri):
            return self._pool.submit(read_bytes, uri, shared_client(self.threads))
        future: Future = Future()
        try:
            future.set_result(read_bytes(uri))
        except StorageError as exc:
            future.set_exception(exc)
        return future

    def close(self) -> None:
        """End the read threads (reads not started are dropped)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def write_bytes(uri, data: bytes, content_type: str | None = None) -> None:
    """Store `data` whole: a put for S3 (with content_type, so a browser shows it), temp file + rename locally."""
    uri = str(uri)
    if is_s3(uri):
        loc = parse_s3(uri)
        with s3_errors(uri, "write"):
            s3_client().put_object(Bucket=loc.bucket, Key=loc.key, Body=data,
                                   **({"ContentType": content_type} if content_type else {}))
        return
    try:
        atomic_write(uri, data)
    except OSError as exc:
        raise StorageError(f"cannot write {uri}: {exc.strerror}") from None


def delete(uri) -> None:
    """Remove one S3 object (no error if it is already gone)."""
    loc = parse_s3(uri)
    with s3_errors(str(uri), "delete"):
        s3_client().delete_object(Bucket=loc.bucket, Key=loc.key)


def stat(uri) -> ObjectInfo:
    """Size and ETag of one S3 object. Raises MissingObjectError if it does not exist."""
    loc = parse_s3(uri)
    with s3_errors(str(uri), "inspect"):
        head = s3_client().head_object(Bucket=loc.bucket, Key=loc.key)
    return ObjectInfo(loc.key, head["ContentLength"], head["ETag"].strip('"'))


def exists(uri) -> bool:
    """Whether the object (S3) or file (local) exists."""
    if not is_s3(uri):
        return Path(uri).is_file()
    try:
        stat(uri)
    except MissingObjectError:
        return False
    return True


def folder_key(prefix_uri: str) -> S3Url:
    """An s3:// prefix read as a folder: its key ends in '/' (or is the bucket root)."""
    loc = parse_s3(prefix_uri)
    key = loc.key.strip("/")
    return S3Url(loc.bucket, key + "/" if key else "")


def list_objects(prefix_uri: str):
    """Every object under an s3:// prefix (read as a folder), as ObjectInfo."""
    loc = folder_key(prefix_uri)
    with s3_errors(prefix_uri, "list"):
        pages = s3_client().get_paginator("list_objects_v2").paginate(
            Bucket=loc.bucket, Prefix=loc.key
        )
        for page in pages:
            for obj in page.get("Contents", []):
                yield ObjectInfo(obj["Key"], obj["Size"], obj["ETag"].strip('"'))


def stem(uri: str) -> str:
    """The last part of a path or URI without its extension ('a/b.c.png' -> 'b.c'; '.hidden' stays)."""
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name


def canonical(uri: str) -> str:
    """One spelling per object: an s3:// URI as it is, a local path made absolute (for comparing, not showing)."""
    return uri if is_s3(uri) else str(Path(uri).resolve())


def parent(uri: str) -> str:
    """The folder holding `uri` (an s3 prefix ending in '/', or a local dir)."""
    if is_s3(uri):
        loc = parse_s3(uri)
        folder = posixpath.dirname(loc.key)
        return f"s3://{loc.bucket}/{folder}/" if folder else f"s3://{loc.bucket}/"
    return str(Path(uri).resolve().parent)


def join(base: str, relative: str, links: bool = True) -> str:
    """`relative` resolved under `base`; raises StorageError if it escapes `base`. links=False: by its
    path only, without reading the file system (whether a symbolic link leads out is not checked)."""
    if is_s3(base):
        loc = parse_s3(base)
        prefix = loc.key.strip("/")
        rel = posixpath.normpath(relative) if relative else "."
        if relative.startswith("/") or rel == ".." or rel.startswith("../"):
            raise StorageError(f"{relative!r} points outside {base}")
        joined = prefix if rel == "." else posixpath.join(prefix, rel)
        return f"s3://{loc.bucket}/{joined}"
    root = os.path.abspath(base)
    joined = os.path.normpath(os.path.join(root, relative))
    if os.path.commonpath([root, joined]) != root:
        raise StorageError(f"{relative!r} points outside {base}")
    if not links:
        return joined
    real_root, real = os.path.realpath(root), os.path.realpath(joined)
    if os.path.commonpath([real_root, real]) != real_root:
        raise StorageError(f"{relative!r} leads outside {base} through a symbolic link (to {real}); "
                           "only files under the folder are read: map the link's target with its own "
                           "--ref-root, or copy the file in")
    return joined


def version(uri) -> str:
    """Size and mtime of a local file ('' for S3 or a missing file), to notice in-place changes.

    S3 objects are not asked (a HEAD per object would cost a request per cached item, and Ground
    Truth writes new keys rather than overwriting)."""
    if is_s3(uri):
        return ""
    try:
        info = os.stat(uri)
    except OSError:
        return ""
    return f"{info.st_size}:{info.st_mtime_ns}"


# --- bulk transfers -------------------------------------------------------------------------


def transfer_config(workers: int = 8, multipart_threshold: int = 8 * MB,
                    multipart_chunksize: int = 8 * MB):
    """The TransferConfig used for bulk transfers (also fixes how multipart ETags come out)."""
    from boto3.s3.transfer import TransferConfig

    if not 1 <= workers <= MAX_WORKERS:
        raise Gt2SegError(f"--workers must be between 1 and {MAX_WORKERS}, got {workers}")
    return TransferConfig(
        max_concurrency=workers,
        multipart_threshold=multipart_threshold,
        multipart_chunksize=multipart_chunksize,
        preferred_transfer_client="classic",
    )


def transfer_manager(config):
    """s3transfer's manager on this thread's client; use as a context manager."""
    from s3transfer.manager import TransferManager

    return TransferManager(shared_client(config.max_request_concurrency), config)


def local_etag(path, config) -> str:
    """The ETag S3 gives `path` once uploaded with `config`: the MD5 below the multipart
    threshold, else the MD5 of the parts' MD5s + "-<parts>", parts sized as s3transfer does."""
    from s3transfer.utils import ChunksizeAdjuster

    size = os.path.getsize(path)
    if size < config.multipart_threshold:
        digest = hashlib.md5()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(MB), b""):
                digest.update(block)
        return digest.hexdigest()
    part_size = ChunksizeAdjuster().adjust_chunksize(config.multipart_chunksize, size)
    parts = []
    with open(path, "rb") as f:
        for part in iter(lambda: f.read(part_size), b""):
            parts.append(hashlib.md5(part).digest())
    return f"{hashlib.md5(b''.join(parts)).hexdigest()}-{len(parts)}"


def progress_bar(total: int, desc: str, enabled: bool):
    """A bytes progress bar on stderr, plus a subscriber class feeding it from any thread."""
    from s3transfer.subscribers import BaseSubscriber
    from tqdm import tqdm

    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
               file=sys.stderr, disable=not enabled)
    lock = threading.Lock()

    class Progress(BaseSubscriber):
        def on_progress(self, future, bytes_transferred, **kwargs):
            with lock:
                bar.update(bytes_transferred)

    return bar, Progress


def _temp_name(path: str) -> str:
    """A hidden name beside `path` (upload_layout and loaders skip dot-files)."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.gt2seg-part")


def download_tree(prefix_uri: str, local_dir, *, workers: int = 8,
                  progress: bool = False) -> DownloadReport:
    """Mirror every object under an s3:// prefix into `local_dir`.

    Files already present with the object's size are skipped, so an
    interrupted download resumes; each file appears only once complete
    (downloaded under a hidden temp name, then renamed).
    """
    loc = folder_key(prefix_uri)
    objects = [o for o in list_objects(prefix_uri) if not o.key.endswith("/")]
    if not objects:
        raise MissingObjectError(f"nothing under {prefix_uri}: check the bucket and prefix")
    root = os.path.abspath(local_dir)
    todo = []
    for obj in objects:
        target = join(root, obj.key[len(loc.key):])
        if not (os.path.isfile(target) and os.path.getsize(target) == obj.size):
            todo.append((obj, target))
    total = sum(obj.size for obj, _ in todo)
    bar, Progress = progress_bar(total, "download", progress)
    with bar, transfer_manager(transfer_config(workers)) as manager:
        futures = []
        for obj, target in todo:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            futures.append((manager.download(loc.bucket, obj.key, _temp_name(target),
                                             subscribers=[Progress()]), target))
        for future, target in futures:
            with s3_errors(f"s3://{loc.bucket}/{future.meta.call_args.key}", "download"):
                future.result()
            os.replace(_temp_name(target), target)
    return DownloadReport(
        source=f"s3://{loc.bucket}/{loc.key}", destination=root, objects=len(objects),
        downloaded=len(todo), skipped=len(objects) - len(todo), bytes=total,
    )
