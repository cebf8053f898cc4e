"""`make pipeline` from a labeling job on S3 (moto's server on 127.0.0.1) to a served model, File and Pipe mode.

The Makefile and the CLIs only see the standard AWS_* variables (AWS_ENDPOINT_URL from the s3_server
fixture), exactly as against AWS.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from repo import ROOT

FIXTURE_BUCKET = ROOT / "fixtures" / "bucket"
TINY_HP = ROOT / "fixtures" / "tiny-hyperparameters.json"
ATTRS = "city-blocks-adjusted-ref city-blocks-ref"
VENV = f"VENV={Path(sys.executable).parent.parent}"  # the venv running the tests: make checks it, never installs
CLASSES = ["BACKGROUND", "building", "road", "tree"]


def make(*targets, env=None, **variables):
    args = ["make", "--no-print-directory", "-C", str(ROOT), *targets, VENV,
            *(f"{k}={v}" for k, v in variables.items())]
    return subprocess.run(args, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1",
                                                                     **(env or {})})


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def job_bucket(s3, s3_bucket):
    """The fixture job as Ground Truth leaves it in this bucket: refs in the manifest point at the bucket."""
    for path in FIXTURE_BUCKET.rglob("*"):
        if path.is_file():
            body = path.read_bytes()
            if path.suffix == ".manifest":
                body = body.replace(b"s3://gt2seg-fixtures/", f"s3://{s3_bucket}/".encode())
            s3.put_object(Bucket=s3_bucket, Key=str(path.relative_to(FIXTURE_BUCKET)), Body=body)
    return s3_bucket


def s3_keys(s3, bucket, prefix):
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {obj["Key"][len(prefix):] for page in pages for obj in page.get("Contents", [])}


def check_outputs(out: Path, classes=CLASSES, validation=3):
    model = out / "model"
    assert {"model.params", "hyperparameters.json", "classes.json", "metrics.json"} <= {p.name for p in model.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["mIOU"] <= 1.0 and 0.0 <= metrics["pixel_accuracy"] <= 1.0
    assert list(metrics["per_class_iou"]) == classes
    served = json.loads((out / "invoke.json").read_text())
    mask, image = Image.open(served["mask"]), Image.open(served["image"])
    assert mask.mode == "P" and mask.size == image.size
    assert set(np.unique(np.asarray(mask))) <= set(range(len(classes)))
    assert Image.open(served["overlay"]).size == image.size
    assert len(list((out / "predictions").glob("*_overlay.png"))) == validation  # one per validation image


@pytest.mark.slow
@pytest.mark.mxnet
def test_file_mode_pipeline_from_s3_resumes_after_a_failed_upload(tmp_path, s3, job_bucket):
    out = tmp_path / "out"
    variables = dict(JOB=f"s3://{job_bucket}/labeling/city-blocks", LABEL_ATTRIBUTE=ATTRS, OUT=out, MODE="File",
                     HP=TINY_HP, PORT=free_port())
    missing = f"test-missing-{job_bucket[-8:]}"
    failed = make("pipeline", S3_PREFIX=f"s3://{missing}/seg-data", **variables)
    assert failed.returncode != 0
    assert "stage 'upload' failed" in failed.stderr and "does not exist" in failed.stderr
    assert (out / ".stamps" / "convert").exists() and not (out / ".stamps" / "upload").exists()

    s3.create_bucket(Bucket=missing)
    done = make("pipeline", S3_PREFIX=f"s3://{missing}/seg-data", **variables)
    assert done.returncode == 0, done.stderr
    assert "gt2seg convert" not in done.stdout  # finished stage kept
    keys = s3_keys(s3, missing, "seg-data/")
    assert {"classes.json", "channels.json", "train.manifest", "validation.manifest",
            "label_map/train_label_map.json"} <= keys
    assert len([k for k in keys if k.startswith("train/")]) == 10
    assert len([k for k in keys if k.startswith("validation_annotation/")]) == 3
    assert not any(k.startswith(".gt2seg") for k in keys)
    check_outputs(out)

    stamps = {p.name: p.stat().st_mtime_ns for p in (out / ".stamps").iterdir()}
    again = make("train", "evaluate", "predict", S3_PREFIX=f"s3://{missing}/seg-data", **variables)
    assert again.returncode == 0, again.stderr
    assert "local-job" not in again.stdout and "seg evaluate" not in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in (out / ".stamps").iterdir()} == stamps


@pytest.mark.slow
def test_pipeline_imports_a_coco_export_then_trains_and_serves_on_the_default_engine(tmp_path):
    """The bundled COCO export (polygons in parts, a crowd RLE, category ids with gaps), drawn by pycocotools,
    trained on the torch engine and served over HTTP, all local."""
    out = tmp_path / "out"
    done = make("pipeline", OUT=out, IMPORT="coco fixtures/coco --validation-fraction 0.25", HP=TINY_HP,
                PORT=free_port(), env={"SEG_ENGINE": "torch"})
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "data" / "report.json").read_text())["splits"] == {"train": 9, "validation": 3}
    check_outputs(out, classes=["BACKGROUND", "building", "tree", "person"], validation=3)


@pytest.mark.slow
@pytest.mark.mxnet
def test_pipe_mode_pipeline_streams_the_uploaded_manifests(tmp_path, s3, job_bucket):
    out = tmp_path / "out"
    done = make("pipeline", JOB=f"s3://{job_bucket}/labeling/city-blocks", LABEL_ATTRIBUTE=ATTRS, OUT=out,
                S3_PREFIX=f"s3://{job_bucket}/seg-data", MODE="Pipe", HP=TINY_HP, PORT=free_port())
    assert done.returncode == 0, done.stderr
    config = json.loads((out / "opt-ml" / "input" / "config" / "inputdataconfig.json").read_text())
    assert config["train"]["TrainingInputMode"] == "Pipe" and config["validation"]["TrainingInputMode"] == "Pipe"
    assert not (out / "opt-ml" / "input" / "data" / "train").exists()  # streamed, never downloaded
    manifest = s3.get_object(Bucket=job_bucket, Key="seg-data/train.manifest")["Body"].read().decode()
    assert all(json.loads(line)["source-ref"].startswith(f"s3://{job_bucket}/seg-data/train/")
               for line in manifest.splitlines())
    check_outputs(out)


def test_wrong_job_uri_names_the_stage_and_what_job_must_be(tmp_path, s3_bucket):
    result = make("convert", JOB=f"s3://{s3_bucket}/labeling/no-such-job", OUT=tmp_path / "out")
    assert result.returncode != 0
    assert "stage 'convert' failed" in result.stderr
    assert f"s3://{s3_bucket}/labeling/no-such-job/manifests/output/output.manifest" in result.stderr
    assert "JOB must be a labeling job's output prefix" in result.stderr
    assert not (tmp_path / "out" / ".stamps" / "convert").exists()


def test_missing_bucket_is_named(tmp_path, s3_server):
    result = make("convert", JOB="s3://no-such-bucket-here/job", OUT=tmp_path / "out")
    assert result.returncode != 0
    assert "bucket 'no-such-bucket-here' does not exist" in result.stderr


def test_missing_credentials_say_how_to_set_them(tmp_path, s3_bucket):
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    result = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "convert", VENV,
                             f"JOB=s3://{s3_bucket}/job", f"OUT={tmp_path / 'out'}"], capture_output=True,
                            text=True, env=env)
    assert result.returncode != 0
    assert "no usable AWS credentials" in result.stderr and "stage 'convert' failed" in result.stderr
