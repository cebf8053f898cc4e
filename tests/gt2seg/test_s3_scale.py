"""gt2seg against the tests' real S3 server: N Processing "hosts" merged equal one machine, and the faults
S3 shows under load (503 SlowDown, connections dropped mid-body) injected by a real proxy in front of it."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gt2seg.convert import ConvertOptions, convert
from gt2seg.errors import ConversionError
from gt2seg.processing import MERGE_INPUT, MERGE_SCRATCH, SHARDS_PATH, ProcessingOptions, processing_requests
from gtjob import standard_job, tree
from s3proxy import S3Proxy

GT2SEG = [sys.executable, "-m", "gt2seg.cli"]
PREFIX = "s3://bucket/layout/"


def s3_job(tmp_path, s3, bucket, n=12) -> str:
    """A labeling job in the bucket (relative refs, as Ground Truth's own); returns its manifest URI."""
    root = tmp_path / "job"
    standard_job(root, n=n).write()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), bucket, f"job/{path.relative_to(root)}")
    return f"s3://{bucket}/job/output.manifest"


def without_output(out: Path) -> dict:
    data = json.loads((out / "report.json").read_text())
    data.pop("output")
    return data


def _on_this_machine(command: list, paths: dict) -> list:
    """A Processing container's command with its /opt/ml folders mapped to the test's."""
    return [paths.get(arg, arg) for arg in command]


def test_processing_jobs_convert_each_hosts_share_and_upload_one_machines_layout(tmp_path, s3, s3_bucket):
    """Both requests' own commands, run here: three "hosts" convert from the S3 server, their outputs
    land in one folder as Processing's download of OUT/shards/ would, and the merge job's command
    uploads exactly the layout one machine writes (no .gt2seg/) to OUT/layout/."""
    manifest = s3_job(tmp_path, s3, s3_bucket)
    requests = processing_requests(ProcessingOptions(manifest, f"s3://{s3_bucket}/out", instances=3,
                                                     image_uri="gt2seg:test", convert_args=("--workers", "1")))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    hosts, runs = ["algo-1", "algo-2", "algo-3"], []
    for host in hosts:
        config = tmp_path / host / "resourceconfig.json"
        config.parent.mkdir()
        config.write_text(json.dumps({"current_host": host, "hosts": hosts, "network_interface_name": "eth0"}))
        command = _on_this_machine(requests.convert["AppSpecification"]["ContainerEntrypoint"],
                                   {SHARDS_PATH: str(tmp_path / host / "shards")})
        runs.append(subprocess.Popen([*command, "--json"], env={**env, "GT2SEG_RESOURCE_CONFIG": str(config)},
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [json.loads(r.communicate()[0]) for r in runs]
    assert all(r.returncode == 0 for r in runs)
    assert sorted(o["shard"] for o in outputs) == ["0/3", "1/3", "2/3"] and sum(o["items"] for o in outputs) == 12
    downloaded = tmp_path / "downloaded"
    for host in hosts:
        shutil.copytree(tmp_path / host / "shards", downloaded, dirs_exist_ok=True)

    command = _on_this_machine(requests.merge["AppSpecification"]["ContainerEntrypoint"],
                               {MERGE_SCRATCH: str(tmp_path / "merged"), MERGE_INPUT: str(downloaded)})
    merged = subprocess.run(command, env=env, capture_output=True, text=True)
    assert merged.returncode == 0, merged.stderr

    convert(manifest, tmp_path / "one", ConvertOptions(s3_prefix=f"s3://{s3_bucket}/out/layout/", workers=2))
    one = tree(tmp_path / "one")
    listed = s3.list_objects_v2(Bucket=s3_bucket, Prefix="out/layout/")["Contents"]
    uploaded = {o["Key"].removeprefix("out/layout/"): s3.get_object(Bucket=s3_bucket, Key=o["Key"])["Body"].read()
                for o in listed}
    assert uploaded.keys() == one.keys()  # the layout, and nothing of gt2seg's own
    assert all(uploaded[k] == v for k, v in one.items() if k != "report.json")
    report = json.loads(uploaded["report.json"])
    assert report.pop("output") == str((tmp_path / "merged").resolve())
    assert report == without_output(tmp_path / "one")


def test_shard_auto_outside_processing_says_where_it_looked(tmp_path):
    env = {**os.environ, "GT2SEG_RESOURCE_CONFIG": str(tmp_path / "absent.json")}
    result = subprocess.run([*GT2SEG, "convert", tmp_path / "m", tmp_path / "o", "--shard", "auto"], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 2 and "absent.json" in result.stderr and "--shard I/N" in result.stderr


def _first_tries(fault):
    """Inject `fault` on the first GET of every image and mask, then let the next tries through."""
    return lambda method, path, n: fault if method == "GET" and "/job/" in path and n == 1 else None


@pytest.mark.parametrize("fault", ["slowdown", "drop"])
def test_throttling_and_dropped_connections_during_the_prefetch_are_retried(tmp_path, s3, s3_bucket, s3_server,
                                                                            monkeypatch, fault):
    manifest = s3_job(tmp_path, s3, s3_bucket, n=6)
    convert(manifest, tmp_path / "clean", ConvertOptions(s3_prefix=PREFIX))
    with S3Proxy(s3_server, fault=_first_tries(fault)) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        report = convert(manifest, tmp_path / "faulty", ConvertOptions(s3_prefix=PREFIX, workers=2, prefetch=4))
    assert proxy.injected[fault] >= 12 and report.converted == 6  # every image and mask failed once
    layout = lambda out: {k: v for k, v in tree(out).items() if k != "report.json"}  # noqa: E731
    assert layout(tmp_path / "faulty") == layout(tmp_path / "clean")
    assert without_output(tmp_path / "faulty") == without_output(tmp_path / "clean")


@pytest.mark.parametrize("fault, message", [
    ("slowdown", "S3 is still throttling (SlowDown) after 2 attempts"),
    ("drop", "the connection dropped while the object was read, 4 times"),
])
def test_an_object_that_keeps_failing_stops_the_run_naming_it(tmp_path, s3, s3_bucket, s3_server, monkeypatch,
                                                              fault, message):
    manifest = s3_job(tmp_path, s3, s3_bucket, n=4)
    victim = f"s3://{s3_bucket}/job/images/img02.jpg"
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    with S3Proxy(s3_server, fault=lambda method, path, n: fault if path.endswith("/images/img02.jpg") else None) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        with pytest.raises(ConversionError) as caught:
            convert(manifest, tmp_path / "out", ConvertOptions(prefetch=2))
    assert f"cannot read {victim}: {message}" in str(caught.value)
    assert not (tmp_path / "out" / "train").exists()  # the reduce never ran
