"""The CreateTrainingJob request for a layout `gt2seg convert` wrote: built-in algorithm or this package's image.

One function builds the request; `seg sagemaker-job --dry-run` prints it, `seg sagemaker-job` sends it, and
`seg.jobs.local` runs the very same request on this machine, so what the pipeline trains locally is what
SageMaker would train. No MXNet import here.

Built-in image URI: `<account>.dkr.ecr.<region>.<domain>/semantic-segmentation:1`, with the per-region
account of AWS's "Docker registry paths for built-in algorithms" table (`BUILTIN_REGISTRIES`, the same table
the SageMaker Python SDK's `image_uris.retrieve("semantic-segmentation", region)` reads). The region comes
from `--region`, else the standard AWS chain (AWS_REGION, AWS_DEFAULT_REGION, the profile).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

from gt2seg.classes import CLASSES_JSON, parse_classes
from gt2seg.layout import LABEL_MAP_DIR, SIDES, annotation_dir
from seg.config import BUILTIN_BACKBONES, EXTENSION_HPS, parse_hyperparameters
from seg.errors import HyperparameterError, JobError

BUILTIN_REGISTRIES = {
    "af-south-1": "455444449433", "ap-east-1": "286214385809", "ap-northeast-1": "501404015308",
    "ap-northeast-2": "306986355934", "ap-northeast-3": "364406365360", "ap-south-1": "991648021394",
    "ap-southeast-1": "475088953585", "ap-southeast-2": "544295431143", "ca-central-1": "469771592824",
    "cn-north-1": "390948362332", "cn-northwest-1": "387376663083", "eu-central-1": "813361260812",
    "eu-north-1": "669576153137", "eu-south-1": "257386234256", "eu-west-1": "685385470294",
    "eu-west-2": "644912444149", "eu-west-3": "749696950732", "me-south-1": "249704162688",
    "sa-east-1": "855470959533", "us-east-1": "811284229777", "us-east-2": "825641698319",
    "us-gov-west-1": "226302683700", "us-west-1": "632365934929", "us-west-2": "433757028032",
}
FILE_CHANNELS = (*((split, "image/jpeg") for split in SIDES), *((annotation_dir(split), "image/png") for split in SIDES),
                 (LABEL_MAP_DIR, "application/json"))
MODEL_CONTENT_TYPE = "application/x-sagemaker-model"  # the `model` channel of incremental training (docs/CONTRACTS.md)
#: What `seg train` logs each epoch (seg/train.py), for the container's MetricDefinitions.
METRIC_DEFINITIONS = [
    {"Name": "train:loss", "Regex": r"train:loss=([0-9.eE+-]+)"},
    {"Name": "validation:mIOU", "Regex": r"validation:mIOU=([0-9.]+)"},
    {"Name": "validation:pixel_accuracy", "Regex": r"validation:pixel_accuracy=([0-9.]+)"},
]
MODES = ("File", "Pipe")


@dataclass(frozen=True)
class JobOptions:
    """Everything about the job that is not in the layout or the hyperparameters file."""

    mode: str = "File"
    image: str = "builtin"  # "builtin" or "container"
    image_uri: Optional[str] = None  # required for "container"; overrides the table for "builtin"
    region: Optional[str] = None
    role_arn: Optional[str] = None
    job_name: Optional[str] = None
    output_path: Optional[str] = None
    instance_type: str = "ml.p3.2xlarge"
    model_uri: Optional[str] = None  # incremental training: a model.tar.gz from seg or the built-in (docs/CONTRACTS.md)
    volume_gb: int = 50
    max_runtime_s: int = 24 * 3600


@dataclass(frozen=True)
class Layout:
    """What the request needs from a converted layout: where it lives on S3, its classes and Pipe channels."""

    s3_prefix: str
    num_classes: int
    num_training_samples: int
    pipe_channels: list


def _read(uri: str) -> bytes:
    from gt2seg.storage import read_bytes

    return read_bytes(uri)


def read_layout(location: str, s3_prefix: Optional[str] = None) -> Layout:
    """classes.json, train.manifest and channels.json of a layout folder or s3:// prefix.

    `s3_prefix` says where a local layout was uploaded; without it a local layout's channels stay local
    paths (fine for `seg.jobs.local`, refused by `require_s3`).
    """
    from gt2seg.errors import MissingObjectError
    from gt2seg.storage import join

    location = str(location).rstrip("/")
    try:
        classes = parse_classes(_read(join(location + "/", CLASSES_JSON)).decode(), f"{location}/{CLASSES_JSON}")
        lines = [ln for ln in _read(join(location + "/", "train.manifest")).decode().splitlines() if ln.strip()]
        channels = json.loads(_read(join(location + "/", "channels.json")))
    except MissingObjectError as exc:
        raise JobError(f"{location} is not a gt2seg layout ({exc}); run gt2seg convert (and upload) first") from None
    except ValueError as exc:
        raise JobError(f"{location}: unreadable layout file ({exc}); re-run gt2seg convert") from None
    return Layout((s3_prefix or location).rstrip("/"), len(classes), len(lines), channels)


def require_s3(request: dict) -> None:
    """A SageMaker job reads every channel from S3; say how to get there when one is local."""
    for channel in request["InputDataConfig"]:
        uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
        if not uri.startswith("s3://"):
            raise JobError(f"channel {channel['ChannelName']} reads {uri}, a local path: a training job reads from "
                           "S3. Convert with s3_prefix=s3://BUCKET/PREFIX, gt2seg upload to it, and pass that "
                           "prefix (or s3_prefix=s3://BUCKET/PREFIX)")


def job_hyperparameters(raw: dict, layout: Layout, image: str) -> dict:
    """The HyperParameters map (strings, as SageMaker passes them), num_classes/num_training_samples filled in."""
    values = {"num_classes": layout.num_classes, "num_training_samples": layout.num_training_samples, **raw}
    try:
        hp = parse_hyperparameters(values)
    except HyperparameterError as exc:
        raise JobError(str(exc)) from None
    if image == "builtin":
        extensions = [k for k in EXTENSION_HPS if k in raw]
        if hp.backbone not in BUILTIN_BACKBONES:
            extensions.insert(0, f"backbone={hp.backbone}")
        if extensions:
            raise JobError(f"{', '.join(extensions)}: seg extensions the built-in algorithm rejects; drop them or "
                           "use image=container")
    return {k: str(v) for k, v in values.items()}


def _file_channel(name: str, uri: str, content_type: str) -> dict:
    return {"ChannelName": name, "ContentType": content_type, "InputMode": "File", "CompressionType": "None",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri,
                                            "S3DataDistributionType": "FullyReplicated"}}}


def input_data_config(layout: Layout, mode: str, image: str) -> list:
    """File: one S3Prefix channel per layout folder. Pipe: the augmented-manifest channels of channels.json."""
    if mode == "File":
        channels = [_file_channel(name, f"{layout.s3_prefix}/{name}/", ct) for name, ct in FILE_CHANNELS]
    else:
        channels = [dict(c) for c in layout.pipe_channels]
    if image == "container":  # seg reads class names and colours from a `classes` channel
        channels.append(_file_channel("classes", f"{layout.s3_prefix}/{CLASSES_JSON}", "application/json"))
    return channels


def image_uri(options: JobOptions) -> str:
    if options.image_uri:
        return options.image_uri
    if options.image == "container":
        raise JobError("image=container needs image_uri=URI: the ECR URI where you pushed docs/container/'s image")
    region = options.region
    if region not in BUILTIN_REGISTRIES:
        known = ", ".join(sorted(BUILTIN_REGISTRIES))
        raise JobError(f"no built-in semantic-segmentation image known for region {region!r}; set region=NAME "
                       f"(or AWS_REGION) to one of {known}, or pass image_uri=URI")
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{BUILTIN_REGISTRIES[region]}.dkr.ecr.{region}.{domain}/semantic-segmentation:1"


def default_region() -> Optional[str]:
    """The region the standard AWS chain resolves (env, profile), or None."""
    import boto3

    return boto3.session.Session().region_name


def build_request(layout: Layout, hyperparameters: dict, options: JobOptions) -> dict:
    """The CreateTrainingJob request (boto3 keyword arguments)."""
    import time

    if options.mode not in MODES:
        raise JobError(f"mode {options.mode!r}: use File or Pipe")
    if options.image not in ("builtin", "container"):
        raise JobError(f"image {options.image!r}: use builtin or container")
    algorithm = {"TrainingImage": image_uri(options), "TrainingInputMode": options.mode}
    if options.image == "container":
        algorithm["MetricDefinitions"] = METRIC_DEFINITIONS
    request = {
        "TrainingJobName": options.job_name or time.strftime("seg-%Y%m%d-%H%M%S"),
        "AlgorithmSpecification": algorithm,
        "HyperParameters": job_hyperparameters(hyperparameters, layout, options.image),
        "InputDataConfig": input_data_config(layout, options.mode, options.image)
        + ([_file_channel("model", options.model_uri, MODEL_CONTENT_TYPE)] if options.model_uri else []),
        "OutputDataConfig": {"S3OutputPath": options.output_path or f"{layout.s3_prefix}-jobs/"},
        "ResourceConfig": {"InstanceType": options.instance_type, "InstanceCount": 1,
                           "VolumeSizeInGB": options.volume_gb},
        "StoppingCondition": {"MaxRuntimeInSeconds": options.max_runtime_s},
    }
    if options.role_arn:
        request["RoleArn"] = options.role_arn
    return request


def create_training_job(request: dict) -> str:
    """Send the request with boto3 (standard credential chain); returns the job ARN."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    if "RoleArn" not in request:
        raise JobError("a training job needs an execution role: pass role_arn=arn:aws:iam::ACCOUNT:role/NAME")
    try:
        return boto3.client("sagemaker").create_training_job(**request)["TrainingJobArn"]
    except (BotoCoreError, ClientError) as exc:
        raise JobError(f"CreateTrainingJob failed: {exc}") from None
