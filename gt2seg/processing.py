"""SageMaker Processing as gt2seg's distributed engine: N instances run the map, one runs the reduce.

`processing_requests` builds two CreateProcessingJob requests (boto3 keyword arguments):
- convert: InstanceCount N; every instance runs `gt2seg convert MANIFEST /opt/ml/processing/output/shards
  --shard auto`, which reads this instance's place in /opt/ml/config/resourceconfig.json (current_host,
  hosts). Each uploads its shard to OUT/shards/; shard file names never collide (see gt2seg.shards).
- merge: one instance downloads OUT/shards/, runs `gt2seg merge` into a scratch folder and `gt2seg upload`
  from it to OUT/layout/ (its manifests point there: --s3-prefix). The upload sends the layout alone
  (never gt2seg's .gt2seg/ folder: the lock and placed.json), data first and report.json last, which a
  Processing output (a whole folder, uploaded as it lies) could not. It is a second job because a
  Processing job has no final step on one instance: it starts once the first has completed.
The items are read from S3 by gt2seg itself (the manifest's refs), so the first job has no inputs.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field

from gt2seg import storage
from gt2seg.errors import ProcessingError

RESOURCE_CONFIG = "/opt/ml/config/resourceconfig.json"
RESOURCE_CONFIG_ENV = "GT2SEG_RESOURCE_CONFIG"  # where --shard auto reads it, if not there (tests)
SHARDS_PATH = "/opt/ml/processing/output/shards"
MERGE_INPUT = "/opt/ml/processing/input/shards"
MERGE_SCRATCH = "/opt/ml/processing/merged"  # not a Processing output: gt2seg upload sends the layout
# The merge job's two steps, in one container command; its arguments follow as $1 $2 $3 ($0 names it).
MERGE_SCRIPT = 'gt2seg merge "$1" "$2" && gt2seg upload "$1" "$3"'
_JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


def shard_of_this_host(path: str | None = None) -> tuple[int, int]:
    """(index, count) of this Processing instance: its place in the resource config's host list."""
    path = path or os.environ.get(RESOURCE_CONFIG_ENV, RESOURCE_CONFIG)
    try:
        with open(path) as f:
            config = json.load(f)
        host, hosts = config["current_host"], list(config["hosts"])
    except FileNotFoundError:
        raise ProcessingError(f"--shard auto reads {path}, which SageMaker Processing writes; it is absent "
                              f"(not on Processing? give --shard I/N, or point {RESOURCE_CONFIG_ENV} at one)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ProcessingError(f"{path} is not a resource config with current_host and hosts ({exc})") from None
    if host not in hosts:
        raise ProcessingError(f"{path}: current_host {host!r} is not among hosts {hosts}")
    return hosts.index(host), len(hosts)


@dataclass(frozen=True)
class ProcessingOptions:
    manifest: str  # s3:// URI of the labeling job's manifest
    output: str  # s3:// prefix: shards/ and layout/ go under it
    instances: int = 2
    image_uri: str | None = None  # an image with gt2seg installed (docs/container's, or your own)
    role_arn: str | None = None
    instance_type: str = "ml.m5.xlarge"
    volume_gb: int = 30
    max_runtime_s: int = 24 * 3600
    job_name: str | None = None
    convert_args: tuple[str, ...] = field(default=())  # further `gt2seg convert` options, as on its command line


@dataclass(frozen=True)
class ProcessingRequests:
    convert: dict
    merge: dict

    def to_dict(self) -> dict:
        return {"convert": self.convert, "merge": self.merge}


def _s3(uri: str, what: str) -> str:
    if not storage.is_s3(uri):
        raise ProcessingError(f"{what} must be an s3:// URI on Processing, got {uri!r}")
    return uri


def processing_requests(options: ProcessingOptions) -> ProcessingRequests:
    """The two CreateProcessingJob requests: N instances convert (map), then one merges (reduce)."""
    manifest, out = _s3(options.manifest, "MANIFEST"), _s3(options.output, "OUT").rstrip("/")
    if options.instances < 1:
        raise ProcessingError(f"--instances must be at least 1, got {options.instances}")
    if not options.image_uri:
        raise ProcessingError("a Processing job needs a container image with gt2seg installed: pass --image URI "
                              "(e.g. docs/container's image, pushed to ECR)")
    name = options.job_name or time.strftime("gt2seg-%Y%m%d-%H%M%S")
    if not _JOB_NAME.fullmatch(name) or len(name) > 57:
        raise ProcessingError(f"job name {name!r}: up to 57 letters, digits and hyphens (the merge job adds -merge)")
    shards, layout_uri = f"{out}/shards/", f"{out}/layout/"

    def request(job_name, count, command, inputs, outputs):
        req = {
            "ProcessingJobName": job_name,
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": count, "InstanceType": options.instance_type,
                                                      "VolumeSizeInGB": options.volume_gb}},
            "StoppingCondition": {"MaxRuntimeInSeconds": options.max_runtime_s},
            "AppSpecification": {"ImageUri": options.image_uri, "ContainerEntrypoint": command},
            "ProcessingInputs": inputs,
        }
        if outputs:
            req["ProcessingOutputConfig"] = {"Outputs": outputs}
        if options.role_arn:
            req["RoleArn"] = options.role_arn
        return req

    convert = request(name, options.instances,
                      ["gt2seg", "convert", manifest, SHARDS_PATH, "--shard", "auto", "--s3-prefix", layout_uri,
                       *options.convert_args], [],
                      [{"OutputName": "shards", "S3Output": {"S3Uri": shards, "LocalPath": SHARDS_PATH,
                                                             "S3UploadMode": "EndOfJob"}}])
    merge = request(f"{name}-merge", 1, ["sh", "-c", MERGE_SCRIPT, "gt2seg-merge", MERGE_SCRATCH, MERGE_INPUT,
                                         layout_uri],
                    [{"InputName": "shards", "S3Input": {
                        "S3Uri": shards, "LocalPath": MERGE_INPUT, "S3DataType": "S3Prefix",
                        "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"}}], [])
    return ProcessingRequests(convert, merge)


def run_processing_jobs(requests: ProcessingRequests, on_status=lambda name, status: None) -> dict:
    """Create the convert job, wait for it, then the merge job, and wait; returns the final description
    of the merge job. Raises ProcessingError when a job is refused or does not complete."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, WaiterError

    if "RoleArn" not in requests.convert:
        raise ProcessingError("a Processing job needs an execution role: pass --role arn:aws:iam::ACCOUNT:role/NAME")
    try:  # no region configured fails here, before any request
        client = boto3.client("sagemaker")
    except BotoCoreError as exc:
        raise ProcessingError(f"cannot reach SageMaker: {exc}") from None
    description = {}
    for req in (requests.convert, requests.merge):
        name = req["ProcessingJobName"]
        try:
            client.create_processing_job(**req)
            on_status(name, "InProgress")
            client.get_waiter("processing_job_completed_or_stopped").wait(
                ProcessingJobName=name, WaiterConfig={"Delay": 30, "MaxAttempts": 24 * 120})
            description = client.describe_processing_job(ProcessingJobName=name)
        except (BotoCoreError, ClientError, WaiterError) as exc:
            raise ProcessingError(f"Processing job {name}: {exc}") from None
        status = description["ProcessingJobStatus"]
        on_status(name, status)
        if status != "Completed":
            raise ProcessingError(f"Processing job {name} ended {status}: "
                                  f"{description.get('FailureReason', 'no reason given')}; see its CloudWatch logs")
    return description
