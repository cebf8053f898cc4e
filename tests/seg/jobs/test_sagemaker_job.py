"""`seg sagemaker-job --dry-run`: the CreateTrainingJob request for a converted layout, as a user runs it."""
import json
import subprocess
import sys

import pytest

from gt2seg.convert import ConvertOptions, convert
from gt2seg.upload import upload_layout
from repo import ROOT

BUCKET = ROOT / "fixtures" / "bucket"
MANIFEST = BUCKET / "labeling" / "city-blocks" / "manifests" / "output" / "output.manifest"
HP = ROOT / "fixtures" / "demo-hyperparameters.json"
PREFIX = "s3://where-it-goes/seg-data"
SEG = [sys.executable, "-c", "from seg.cli import main; main()"]


def seg(*args):
    return subprocess.run([*SEG, *map(str, args)], capture_output=True, text=True)


def _convert(out, s3_prefix):
    options = ConvertOptions(ref_roots=(("s3://gt2seg-fixtures/", str(BUCKET)),), s3_prefix=s3_prefix,
                             label_attributes=("city-blocks-adjusted-ref", "city-blocks-ref"), workers=1)
    convert(str(MANIFEST), out, options)
    return out


@pytest.fixture(scope="module")
def layout(module_tmp):
    """The fixture job converted for upload to PREFIX."""
    return _convert(module_tmp("layout") / "data", PREFIX)


def dry_run(layout, *args):
    result = seg("sagemaker-job", layout, "--s3-prefix", PREFIX, "--region", "eu-west-1", "--job-name", "j1",
                 "--dry-run", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_builtin_file_mode_request_has_s3prefix_channels_and_string_hyperparameters(layout, tmp_path):
    hp = tmp_path / "hp.json"
    hp.write_text(json.dumps({"epochs": 3, "use_pretrained_model": "True", "crop_size": "240"}))
    request = dry_run(layout, "--hp-file", hp, "--role", "arn:aws:iam::123456789012:role/seg")
    assert request["AlgorithmSpecification"] == {
        "TrainingImage": "685385470294.dkr.ecr.eu-west-1.amazonaws.com/semantic-segmentation:1",
        "TrainingInputMode": "File"}
    assert request["HyperParameters"] == {"num_classes": "4", "num_training_samples": "10", "epochs": "3",
                                          "use_pretrained_model": "True", "crop_size": "240"}
    channels = {c["ChannelName"]: c for c in request["InputDataConfig"]}
    assert sorted(channels) == ["label_map", "train", "train_annotation", "validation", "validation_annotation"]
    source = channels["train_annotation"]["DataSource"]["S3DataSource"]
    assert source == {"S3DataType": "S3Prefix", "S3Uri": f"{PREFIX}/train_annotation/",
                      "S3DataDistributionType": "FullyReplicated"}
    assert channels["train"]["ContentType"] == "image/jpeg"
    assert request["RoleArn"] == "arn:aws:iam::123456789012:role/seg"
    assert request["TrainingJobName"] == "j1"
    assert request["OutputDataConfig"] == {"S3OutputPath": f"{PREFIX}-jobs/"}
    assert request["ResourceConfig"]["InstanceCount"] == 1


def test_model_option_adds_the_builtins_model_channel_for_incremental_training(layout):
    request = dry_run(layout, "--model", "s3://models/job-1/output/model.tar.gz")
    channel = request["InputDataConfig"][-1]
    assert channel["ChannelName"] == "model" and channel["ContentType"] == "application/x-sagemaker-model"
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == "s3://models/job-1/output/model.tar.gz"
    assert "model" not in [c["ChannelName"] for c in dry_run(layout)["InputDataConfig"]]


def test_local_model_for_a_sagemaker_job_is_refused_with_the_fix(layout, tmp_path):
    result = seg("sagemaker-job", layout, "--s3-prefix", PREFIX, "--region", "eu-west-1", "--dry-run",
                 "--model", tmp_path / "model.tar.gz")
    assert result.returncode != 0 and "channel model reads" in result.stderr and "local path" in result.stderr


def test_builtin_pipe_mode_request_uses_the_channels_json_of_the_layout(layout):
    request = dry_run(layout, "--mode", "Pipe")
    assert request["AlgorithmSpecification"]["TrainingInputMode"] == "Pipe"
    assert request["InputDataConfig"] == json.loads((layout / "channels.json").read_text())
    uris = [c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]]
    assert uris == [f"{PREFIX}/train.manifest", f"{PREFIX}/validation.manifest"]


def test_container_request_adds_classes_channel_and_metric_definitions_and_allows_extensions(layout):
    request = dry_run(layout, "--image", "container", "--image-uri", "123.dkr.ecr.eu-west-1.amazonaws.com/seg:1",
                      "--hp-file", HP)
    assert request["AlgorithmSpecification"]["TrainingImage"] == "123.dkr.ecr.eu-west-1.amazonaws.com/seg:1"
    names = [m["Name"] for m in request["AlgorithmSpecification"]["MetricDefinitions"]]
    assert names == ["train:loss", "validation:mIOU", "validation:pixel_accuracy"]
    classes = request["InputDataConfig"][-1]
    assert classes["ChannelName"] == "classes"
    assert classes["DataSource"]["S3DataSource"]["S3Uri"] == f"{PREFIX}/classes.json"
    assert request["HyperParameters"]["backbone"] == "resnet-18"


def test_builtin_refuses_seg_extensions_naming_them(layout):
    result = seg("sagemaker-job", layout, "--s3-prefix", PREFIX, "--region", "eu-west-1", "--hp-file", HP,
                 "--dry-run")
    assert result.returncode == 1
    assert "backbone=resnet-18, data_workers" in result.stderr and "--image container" in result.stderr


def test_layout_converted_without_s3_prefix_is_refused_with_the_fix(tmp_path):
    local = _convert(tmp_path / "data", None)
    result = seg("sagemaker-job", local, "--region", "eu-west-1", "--dry-run")
    assert result.returncode == 1
    assert "a local path" in result.stderr and "gt2seg upload" in result.stderr


def test_unknown_region_lists_the_known_ones(layout):
    result = seg("sagemaker-job", layout, "--s3-prefix", PREFIX, "--region", "mars-north-1", "--dry-run")
    assert result.returncode == 1
    assert "mars-north-1" in result.stderr and "us-east-1" in result.stderr


def test_bad_hyperparameter_is_named(layout, tmp_path):
    hp = tmp_path / "hp.json"
    hp.write_text(json.dumps({"epoch": "3"}))
    result = seg("sagemaker-job", layout, "--s3-prefix", PREFIX, "--region", "eu-west-1", "--hp-file", hp,
                 "--dry-run")
    assert result.returncode == 1 and "epoch='3'" in result.stderr


def test_request_is_read_from_an_uploaded_layout_on_s3(tmp_path, s3, s3_bucket):
    prefix = f"s3://{s3_bucket}/seg-data"
    upload_layout(_convert(tmp_path / "data", prefix), prefix, progress=False)
    result = seg("sagemaker-job", prefix, "--region", "us-east-1", "--mode", "Pipe", "--dry-run")
    assert result.returncode == 0, result.stderr
    request = json.loads(result.stdout)
    assert request["HyperParameters"] == {"num_classes": "4", "num_training_samples": "10"}
    assert request["AlgorithmSpecification"]["TrainingImage"].startswith("811284229777.dkr.ecr.us-east-1.")
    assert request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == f"{prefix}/train.manifest"


ROLE = "arn:aws:iam::123456789012:role/seg"


@pytest.mark.parametrize("name, variant", [
    ("container", ("--hp-file", HP, "--image", "container", "--image-uri", "123.dkr.ecr.eu-west-1.amazonaws.com/seg:1")),
    ("pipe", ("--mode", "Pipe")),
    ("incremental", ("--model", "s3://models/job-1/output/model.tar.gz", "--instance-type", "ml.g5.xlarge")),
])
def test_the_request_is_one_sagemaker_accepts_and_the_job_it_creates_is_the_dry_runs(layout, s3_server, name, variant):
    """Sent to moto's SageMaker (AWS_ENDPOINT_URL): botocore checks every field against the CreateTrainingJob
    shape on the way, and the job SageMaker then describes is the request the dry run printed."""
    import boto3

    args = ("sagemaker-job", layout, "--s3-prefix", PREFIX, "--region", "eu-west-1", "--job-name", name,
            "--role", ROLE, *variant)
    request = json.loads(seg(*args, "--dry-run").stdout)
    sent = seg(*args)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip() == f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}"
    job = boto3.client("sagemaker").describe_training_job(TrainingJobName=name)
    # moto stores MetricDefinitions of its own in place of those sent (botocore checked ours): the rest must match
    for described in (job, request):
        described["AlgorithmSpecification"].pop("MetricDefinitions", None)
    assert {key: job[key] for key in request} == request
