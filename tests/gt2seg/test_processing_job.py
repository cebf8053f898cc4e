"""`gt2seg processing-job`: the two CreateProcessingJob requests (N instances convert, one merges)."""
import json
import os
import subprocess
import sys

import pytest

from gt2seg.errors import ProcessingError
from gt2seg.processing import ProcessingOptions, processing_requests, shard_of_this_host

GT2SEG = [sys.executable, "-m", "gt2seg.cli"]
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/gt2seg:1"
ROLE = "arn:aws:iam::123456789012:role/processing"


def test_dry_run_prints_a_convert_job_on_n_instances_and_a_merge_job_on_one():
    result = subprocess.run([*GT2SEG, "processing-job", "s3://b/job/output.manifest", "s3://b/out/", "--instances",
                             "4", "--image", IMAGE, "--role", ROLE, "--job-name", "city", "--dry-run", "--",
                             "--unknown-color", "ignore"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    requests = json.loads(result.stdout)
    convert, merge = requests["convert"], requests["merge"]
    assert convert["ProcessingJobName"] == "city" and merge["ProcessingJobName"] == "city-merge"
    assert convert["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 4
    assert merge["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    assert convert["RoleArn"] == merge["RoleArn"] == ROLE
    assert convert["AppSpecification"] == {"ImageUri": IMAGE, "ContainerEntrypoint": [
        "gt2seg", "convert", "s3://b/job/output.manifest", "/opt/ml/processing/output/shards", "--shard", "auto",
        "--s3-prefix", "s3://b/out/layout/", "--unknown-color", "ignore"]}
    assert convert["ProcessingInputs"] == []
    assert convert["ProcessingOutputConfig"]["Outputs"][0]["S3Output"] == {
        "S3Uri": "s3://b/out/shards/", "LocalPath": "/opt/ml/processing/output/shards", "S3UploadMode": "EndOfJob"}
    assert merge["ProcessingInputs"][0]["S3Input"]["S3Uri"] == "s3://b/out/shards/"
    assert merge["AppSpecification"]["ContainerEntrypoint"] == [
        "sh", "-c", 'gt2seg merge "$1" "$2" && gt2seg upload "$1" "$3"', "gt2seg-merge",
        "/opt/ml/processing/merged", "/opt/ml/processing/input/shards", "s3://b/out/layout/"]
    assert "ProcessingOutputConfig" not in merge  # gt2seg upload sends the layout, not a Processing output


@pytest.mark.parametrize("before_dashes, refused", [
    (["--instnces", "4"], "No such option '--instnces'"),
    (["--unknown-color", "ignore"], "No such option '--unknown-color'"),
    (["stray"], "unexpected extra argument (stray)"),
])
def test_only_what_follows_the_dashes_is_forwarded_anything_unknown_before_them_is_a_usage_error(
        before_dashes, refused):
    result = subprocess.run([*GT2SEG, "processing-job", "s3://b/m", "s3://b/out", "--image", IMAGE, "--dry-run",
                             *before_dashes, "--", "--seed", "3"], capture_output=True, text=True)
    assert result.returncode == 2 and refused in result.stderr and result.stdout == ""


def test_options_after_the_dashes_reach_convert_even_when_processing_job_has_one_of_the_same_name():
    result = subprocess.run([*GT2SEG, "processing-job", "s3://b/m", "s3://b/out", "--image", IMAGE, "--dry-run",
                             "--instances", "3", "--", "--instances", "9", "--seed", "3"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    convert = json.loads(result.stdout)["convert"]
    assert convert["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 3
    assert convert["AppSpecification"]["ContainerEntrypoint"][-4:] == ["--instances", "9", "--seed", "3"]


@pytest.mark.parametrize("change, message", [
    ({"manifest": "job/output.manifest"}, "MANIFEST must be an s3:// URI"),
    ({"image_uri": None}, "needs a container image"),
    ({"instances": 0}, "--instances must be at least 1"),
    ({"job_name": "bad_name"}, "job name 'bad_name'"),
])
def test_requests_that_cannot_run_are_refused_before_anything_is_sent(change, message):
    options = {"manifest": "s3://b/m", "output": "s3://b/out", "image_uri": IMAGE, **change}
    with pytest.raises(ProcessingError, match=message):
        processing_requests(ProcessingOptions(**options))


def test_submitting_without_a_role_is_refused():
    result = subprocess.run([*GT2SEG, "processing-job", "s3://b/m", "s3://b/out", "--image", IMAGE],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "needs an execution role: pass --role" in result.stderr


def test_submitting_with_no_aws_region_is_one_line_not_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    result = subprocess.run([*GT2SEG, "processing-job", "s3://b/m", "s3://b/out", "--image", IMAGE, "--role", ROLE],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: cannot reach SageMaker: You must specify a region")


def test_both_requests_are_ones_sagemaker_accepts_and_run_one_after_the_other(s3_server):
    """Sent to moto's SageMaker (AWS_ENDPOINT_URL): botocore checks every field against the CreateProcessingJob
    shape on the way, and the jobs SageMaker then describes are the requests the dry run printed."""
    import boto3

    args = [*GT2SEG, "processing-job", "s3://b/job/output.manifest", "s3://b/out/", "--instances", "3", "--image",
            IMAGE, "--role", ROLE, "--job-name", "city"]
    forwarded = ["--", "--unknown-color", "ignore"]
    requests = json.loads(subprocess.run([*args, "--dry-run", *forwarded], capture_output=True, text=True,
                                         check=True).stdout)
    result = subprocess.run([*args, *forwarded], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "layout written to s3://b/out/layout/\n"
    assert result.stderr.splitlines() == ["city: InProgress", "city: Completed", "city-merge: InProgress",
                                          "city-merge: Completed"]
    client = boto3.client("sagemaker")
    for request in requests.values():
        job = client.describe_processing_job(ProcessingJobName=request["ProcessingJobName"])
        assert job["ProcessingJobStatus"] == "Completed"
        kept = set(request) - {"ProcessingResources"}  # moto does not keep ProcessingResources (botocore checked it)
        assert {key: job[key] for key in kept} == {key: request[key] for key in kept}


def test_shard_of_this_host_is_its_place_in_the_host_list(tmp_path):
    config = tmp_path / "resourceconfig.json"
    config.write_text(json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2", "algo-3"]}))
    assert shard_of_this_host(str(config)) == (1, 3)
    config.write_text(json.dumps({"current_host": "algo-9", "hosts": ["algo-1"]}))
    with pytest.raises(ProcessingError, match="current_host 'algo-9' is not among hosts"):
        shard_of_this_host(str(config))
