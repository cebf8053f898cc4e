"""gt2seg.storage over real HTTP to a moto S3 server, and its path arithmetic."""
import configparser
import hashlib
import os
import re
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from gt2seg import storage
from gt2seg.errors import MissingObjectError, StorageError
from repo import ROOT


# --- path arithmetic (no server) ----------------------------------------------------------


@pytest.mark.parametrize("base, rel, expected", [
    ("s3://b/job/manifests/", "img/a.jpg", "s3://b/job/manifests/img/a.jpg"),
    ("s3://b/job/manifests", "./img/../img/a.jpg", "s3://b/job/manifests/img/a.jpg"),
    ("s3://b/", "a.jpg", "s3://b/a.jpg"),
    ("s3://b", "x/a.jpg", "s3://b/x/a.jpg"),
    ("s3://b/p/", "", "s3://b/p"),
])
def test_join_resolves_relative_refs_under_an_s3_base(base, rel, expected):
    assert storage.join(base, rel) == expected


@pytest.mark.parametrize("base, rel", [
    ("s3://b/job/", "../other/a.jpg"),
    ("s3://b/job/", "x/../../a.jpg"),
    ("s3://b/", "../a.jpg"),          # the bucket root has nothing above it either
    ("s3://b/job/", "/etc/passwd"),
    ("s3://b/", "/a.jpg"),
])
def test_join_rejects_refs_escaping_an_s3_base(base, rel):
    with pytest.raises(StorageError, match="points outside"):
        storage.join(base, rel)


def test_join_rejects_refs_escaping_a_local_base(tmp_path):
    assert storage.join(str(tmp_path), "a/b.png") == str(tmp_path / "a" / "b.png")
    for rel in ("../x.png", "a/../../x.png", "/etc/passwd"):
        with pytest.raises(StorageError, match="points outside"):
            storage.join(str(tmp_path), rel)


def test_join_without_links_checks_the_path_only(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "out.png").symlink_to(tmp_path / "elsewhere.png")
    base = str(tmp_path / "base")
    assert storage.join(base, "out.png", links=False) == str(tmp_path / "base" / "out.png")
    with pytest.raises(StorageError, match="through a symbolic link"):
        storage.join(base, "out.png")
    with pytest.raises(StorageError, match="points outside"):
        storage.join(base, "../x.png", links=False)


def test_parent_of_s3_objects_and_bucket_root():
    assert storage.parent("s3://b/job/manifests/output.manifest") == "s3://b/job/manifests/"
    assert storage.parent("s3://b/output.manifest") == "s3://b/"


def test_parse_s3_rejects_uris_without_bucket_or_scheme():
    assert storage.parse_s3("s3://b/k/x") == storage.S3Url("b", "k/x")
    for bad in ("s3://", "s3:///key", "/local/path", "gs://b/k"):
        with pytest.raises(StorageError, match="not an s3://"):
            storage.parse_s3(bad)


def test_local_write_bytes_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.json"
    target.write_bytes(b"old")
    storage.write_bytes(str(target), b"new contents")
    assert storage.read_bytes(str(target)) == b"new contents"
    assert os.listdir(tmp_path) == ["a.json"]


# --- S3 over HTTP ---------------------------------------------------------------------------


def test_read_bytes_of_an_existing_object(s3, s3_bucket):
    s3.put_object(Bucket=s3_bucket, Key="job/out.manifest", Body=b'{"source-ref": "x"}\n')
    assert storage.read_bytes(f"s3://{s3_bucket}/job/out.manifest") == b'{"source-ref": "x"}\n'


def test_read_bytes_of_a_missing_key_names_it(s3_bucket):
    uri = f"s3://{s3_bucket}/nope.png"
    with pytest.raises(MissingObjectError, match=f"{uri} does not exist"):
        storage.read_bytes(uri)


def test_read_bytes_of_a_missing_bucket_says_so(s3_server):
    with pytest.raises(MissingObjectError, match="bucket 'no-such-bucket-x1' does not exist"):
        storage.read_bytes("s3://no-such-bucket-x1/a.png")


def test_write_then_stat_and_exists(s3_bucket):
    uri = f"s3://{s3_bucket}/p/classes.json"
    assert not storage.exists(uri)
    storage.write_bytes(uri, b"[1, 2, 3]")
    assert storage.exists(uri)
    info = storage.stat(uri)
    assert (info.key, info.size, info.etag) == ("p/classes.json", 9, hashlib.md5(b"[1, 2, 3]").hexdigest())
    with pytest.raises(MissingObjectError):
        storage.stat(f"s3://{s3_bucket}/p/other.json")


def test_list_objects_reads_the_prefix_as_a_folder(s3, s3_bucket):
    for key in ("data/a.jpg", "data/sub/b.png", "data2/c.jpg", "datafile"):
        s3.put_object(Bucket=s3_bucket, Key=key, Body=key.encode())
    keys = sorted(o.key for o in storage.list_objects(f"s3://{s3_bucket}/data"))
    assert keys == ["data/a.jpg", "data/sub/b.png"]
    assert len(list(storage.list_objects(f"s3://{s3_bucket}/"))) == 4


def test_client_follows_an_endpoint_change(s3_server, monkeypatch):
    assert storage.s3_client().meta.endpoint_url == s3_server
    assert storage.s3_client() is storage.s3_client()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert storage.s3_client().meta.endpoint_url == "http://127.0.0.1:9"


def test_missing_credentials_say_how_to_provide_them(s3_bucket, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StorageError, match="no usable AWS credentials.*AWS_ACCESS_KEY_ID"):
        storage.read_bytes(f"s3://{s3_bucket}/a.png")


def test_subprocesses_reach_the_test_server_through_the_environment(s3, s3_bucket):
    s3.put_object(Bucket=s3_bucket, Key="k", Body=b"from the server")
    code = f"from gt2seg.storage import read_bytes; print(read_bytes('s3://{s3_bucket}/k').decode())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "from the server"


@pytest.mark.parametrize("error, expected", [
    (ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetObject"),
     "access denied \\(AccessDenied\\).*s3:GetObject"),
    (ClientError({"Error": {"Code": "InvalidAccessKeyId"}}, "PutObject"), "access denied"),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:9/b"), "Check AWS_ENDPOINT_URL"),
    (ClientError({"Error": {"Code": "SlowDown", "Message": "busy"}}, "GetObject"), "cannot read .*busy"),
])
def test_s3_failures_become_storage_errors_that_say_what_to_do(error, expected):
    found = storage.storage_error(error, "s3://b/k.png", "read")
    assert type(found) is StorageError
    assert re.search(expected, str(found)) and "s3://b/k.png" in str(found)


# --- download_tree --------------------------------------------------------------------------


def _seed(s3, bucket, prefix):
    files = {"train/a.jpg": os.urandom(3000), "train_annotation/a.png": b"mask",
             "label_map/train_label_map.json": b'{"scale": 1}', "classes.json": b"[]"}
    for rel, data in files.items():
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{rel}", Body=data)
    return files


def _tree(root):
    return {
        os.path.relpath(os.path.join(folder, name), root): open(os.path.join(folder, name), "rb").read()
        for folder, _, names in os.walk(root) for name in names
    }


def test_download_tree_mirrors_a_prefix_then_skips_what_is_there(s3, s3_bucket, tmp_path):
    files = _seed(s3, s3_bucket, "layout")
    s3.put_object(Bucket=s3_bucket, Key="layout-other/x.jpg", Body=b"not mine")
    dest = tmp_path / "data"

    first = storage.download_tree(f"s3://{s3_bucket}/layout/", dest, workers=4)
    assert _tree(dest) == files                      # exact bytes, no temp files left
    assert (first.objects, first.downloaded, first.skipped) == (4, 4, 0)
    assert first.bytes == sum(len(v) for v in files.values())

    (dest / "classes.json").write_bytes(b"[ ]")       # wrong size: fetched again
    second = storage.download_tree(f"s3://{s3_bucket}/layout", dest)
    assert (second.downloaded, second.skipped, second.bytes) == (1, 3, 2)
    assert _tree(dest) == files


def test_download_tree_of_an_empty_prefix_is_an_error(s3_bucket, tmp_path):
    with pytest.raises(MissingObjectError, match="nothing under"):
        storage.download_tree(f"s3://{s3_bucket}/none/", tmp_path)


def test_download_tree_refuses_keys_escaping_the_folder(s3, s3_bucket, tmp_path):
    s3.put_object(Bucket=s3_bucket, Key="p/../../evil.jpg", Body=b"x")
    with pytest.raises(StorageError, match="points outside"):
        storage.download_tree(f"s3://{s3_bucket}/p/", tmp_path / "d")
    assert not (tmp_path / "evil.jpg").exists()


def test_the_client_takes_its_endpoint_from_aws_endpoint_url_from_the_boto3_floor_on(monkeypatch, tmp_path):
    """boto3 1.28.0 (botocore 1.31.0) is the first to read AWS_ENDPOINT_URL: setup.cfg's floor must not be lower,
    and the client gt2seg builds must go where the variable says."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    (floor,) = [re.fullmatch(r"boto3>=([\d.]+)", line.strip()).group(1)
                for line in config["options"]["install_requires"].splitlines() if line.strip().startswith("boto3")]
    assert tuple(map(int, floor.split("."))) >= (1, 28), f"boto3>={floor} may ignore AWS_ENDPOINT_URL"
    for name, value in {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_CONFIG_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    assert storage.s3_client().meta.endpoint_url == "http://127.0.0.1:9"
