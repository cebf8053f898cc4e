"""gt2seg.upload.upload_layout over real HTTP to a moto S3 server."""
import json
import os
import subprocess
import sys

import pytest

from gt2seg import storage
from gt2seg.errors import MissingObjectError, StorageError
from gt2seg.upload import upload_layout

MiB = 1024 * 1024
LAYOUT_FILES = [
    "train/a.jpg", "train/b.jpg", "train_annotation/a.png", "train_annotation/b.png",
    "validation/c.jpg", "validation_annotation/c.png", "label_map/train_label_map.json",
    "label_map/validation_label_map.json", "classes.json", "channels.json",
    "train.manifest", "validation.manifest", "report.json",
]


def make_layout(root, dest):
    """A small OUT folder as convert writes it, refs pointing under `dest`, plus the
    resume cache and temp files that must never be uploaded."""
    for rel in LAYOUT_FILES:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(500) if rel.endswith((".jpg", ".png")) else b"{}")
    for side, stems in (("train", "ab"), ("validation", "c")):
        lines = [json.dumps({"source-ref": f"{dest}/{side}/{s}.jpg",
                             "city-ref": f"{dest}/{side}_annotation/{s}.png"}) for s in stems]
        (root / f"{side}.manifest").write_text("\n".join(lines) + "\n")
    (root / ".gt2seg").mkdir()
    (root / ".gt2seg" / "cache.json").write_text("{}")
    (root / "train" / ".d.jpg.tmp").write_bytes(b"half")
    (root / "train" / ".e.jpg.gt2seg-part").write_bytes(b"half")
    return root


def remote_keys(s3, bucket, prefix=""):
    return sorted(o.key for o in storage.list_objects(f"s3://{bucket}/{prefix}"))


def test_upload_sends_the_layout_and_a_rerun_skips_everything(s3, s3_bucket, tmp_path):
    dest = f"s3://{s3_bucket}/jobs/v1"
    out = make_layout(tmp_path / "out", dest)

    first = upload_layout(out, dest, workers=4, progress=False)
    assert remote_keys(s3, s3_bucket) == sorted(f"jobs/v1/{rel}" for rel in LAYOUT_FILES)
    assert (first.objects, first.uploaded, first.skipped) == (13, 13, 0)
    assert first.bytes == sum(os.path.getsize(out / rel) for rel in LAYOUT_FILES)
    assert first.destination == dest + "/"
    assert first.warnings == []
    body = s3.get_object(Bucket=s3_bucket, Key="jobs/v1/train/a.jpg")["Body"].read()
    assert body == (out / "train" / "a.jpg").read_bytes()

    again = upload_layout(out, dest + "/", progress=False)
    assert (again.objects, again.uploaded, again.skipped, again.bytes) == (13, 0, 13, 0)


def test_a_changed_file_of_the_same_size_is_uploaded_again(s3, s3_bucket, tmp_path):
    dest = f"s3://{s3_bucket}/v"
    out = make_layout(tmp_path / "out", dest)
    upload_layout(out, dest, progress=False)
    new = os.urandom(500)
    (out / "train" / "b.jpg").write_bytes(new)

    report = upload_layout(out, dest, progress=False)
    # b.jpg, and report.json again: it is withdrawn while data changes, then restored last.
    assert (report.uploaded, report.skipped) == (2, 11)
    assert report.bytes == 500 + os.path.getsize(out / "report.json")
    assert s3.get_object(Bucket=s3_bucket, Key="v/train/b.jpg")["Body"].read() == new
    stored = stored_times(s3_bucket)
    assert stored["train/b.jpg"] < stored["report.json"]
    assert stored["train/a.jpg"] < stored["train/b.jpg"]


def test_multipart_files_are_skipped_by_their_multipart_etag(s3, s3_bucket, tmp_path):
    out = tmp_path / "out"
    (out / "train").mkdir(parents=True)
    big = out / "train" / "big.jpg"
    big.write_bytes(os.urandom(6 * MiB))               # 2 parts of 5 MiB (the S3 minimum) + 1
    dest = f"s3://{s3_bucket}/mp"
    sizes = dict(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, progress=False)

    assert upload_layout(out, dest, **sizes).uploaded == 1
    etag = storage.stat(f"{dest}/train/big.jpg").etag
    assert etag.endswith("-2")
    assert storage.local_etag(big, storage.transfer_config(8, 5 * MiB, 5 * MiB)) == etag

    assert upload_layout(out, dest, **sizes).skipped == 1
    data = bytearray(big.read_bytes())
    data[-1] ^= 0xFF                                    # same size, last part differs
    big.write_bytes(bytes(data))
    assert upload_layout(out, dest, **sizes).uploaded == 1
    assert storage.stat(f"{dest}/train/big.jpg").etag != etag


def stored_times(bucket):
    """The server's own record of when each object was stored (microseconds), by path
    below the first folder."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    keys = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[bucket].keys
    return {k.split("/", 1)[1]: keys[k].last_modified for k in keys}


def test_manifests_and_report_go_up_after_all_data(s3_bucket, tmp_path):
    dest = f"s3://{s3_bucket}/order"
    upload_layout(make_layout(tmp_path / "out", dest), dest, workers=8, progress=False)
    stored = stored_times(s3_bucket)
    data = max(t for rel, t in stored.items()
               if rel not in ("train.manifest", "validation.manifest", "channels.json", "report.json"))
    manifests = [stored[r] for r in ("train.manifest", "validation.manifest", "channels.json")]
    assert data < min(manifests)
    assert max(manifests) < stored["report.json"]


def test_manifest_refs_outside_the_destination_are_warned_about(s3_bucket, tmp_path):
    out = make_layout(tmp_path / "out", "/home/me/out")   # converted without --s3-prefix
    dest = f"s3://{s3_bucket}/p"
    report = upload_layout(out, dest, progress=False)
    assert report.uploaded == 13
    assert len(report.warnings) == 2
    assert "train.manifest: 4 of 4 refs do not point under" in report.warnings[0]
    assert "validation.manifest: 2 of 2" in report.warnings[1]
    assert f"--s3-prefix {dest}" in report.warnings[0]


def test_objects_at_the_destination_not_in_the_layout_are_warned_about(s3, s3_bucket, tmp_path):
    dest = f"s3://{s3_bucket}/p"
    s3.put_object(Bucket=s3_bucket, Key="p/train/old.jpg", Body=b"from an older run")
    report = upload_layout(make_layout(tmp_path / "out", dest), dest, progress=False)
    assert len(report.warnings) == 1
    assert "1 object(s) under" in report.warnings[0] and "train/old.jpg" in report.warnings[0]


def test_progress_bar_goes_to_stderr_only(s3_bucket, tmp_path, capsys):
    dest = f"s3://{s3_bucket}/p"
    upload_layout(make_layout(tmp_path / "out", dest), dest, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "upload" in captured.err and "100%" in captured.err


def test_a_missing_bucket_is_a_clear_error(s3_server, tmp_path):
    out = make_layout(tmp_path / "out", "s3://nobucket-zz9/p")
    with pytest.raises(MissingObjectError, match="bucket 'nobucket-zz9' does not exist"):
        upload_layout(out, "s3://nobucket-zz9/p", progress=False)


def test_a_destination_that_is_not_s3_is_refused(tmp_path):
    with pytest.raises(StorageError, match="is not an s3://bucket/prefix URI"):
        upload_layout(make_layout(tmp_path / "out", "x"), str(tmp_path / "elsewhere"), progress=False)


def test_missing_credentials_say_how_to_provide_them(s3_bucket, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    out = make_layout(tmp_path / "out", "x")
    with pytest.raises(StorageError, match="no usable AWS credentials.*aws configure"):
        upload_layout(out, f"s3://{s3_bucket}/p", progress=False)


def test_a_missing_out_folder_is_refused(s3_bucket, tmp_path):
    with pytest.raises(StorageError, match="is not a folder"):
        upload_layout(tmp_path / "nope", f"s3://{s3_bucket}/p", progress=False)


def test_cli_prints_the_report_as_json_and_fails_cleanly(s3_bucket, tmp_path):
    dest = f"s3://{s3_bucket}/cli"
    out = make_layout(tmp_path / "out", dest)
    cli = [sys.executable, "-c", "from gt2seg.cli import main; main()", "upload"]
    done = subprocess.run(cli + [str(out), dest, "--workers", "2", "--json"],
                          capture_output=True, text=True, check=True)
    report = json.loads(done.stdout)
    assert (report["uploaded"], report["skipped"], report["warnings"]) == (13, 0, [])

    failed = subprocess.run(cli + [str(out), "s3://nobucket-zz8/p"], capture_output=True, text=True)
    assert failed.returncode == 1 and failed.stdout == ""
    assert "bucket 'nobucket-zz8' does not exist" in failed.stderr
    assert "Traceback" not in failed.stderr
