"""The gt2seg command line, run as a user runs it: a real subprocess."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image

from gtjob import Job, blocks, same_layout, standard_job

GT2SEG = [sys.executable, "-m", "gt2seg.cli"]


def gt2seg(*args, **kwargs):
    return subprocess.run([*GT2SEG, *map(str, args)], capture_output=True, text=True, **kwargs)


def test_convert_json_report_on_stdout_and_progress_on_stderr(tmp_path):
    manifest = standard_job(tmp_path / "job").write()
    result = gt2seg("convert", manifest, tmp_path / "out", "--json", "--workers", "2")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["converted"] == 10 and report["splits"] == {"train": 8, "validation": 2}
    assert "convert" in result.stderr and "img" in result.stderr  # the tqdm bar


def test_bad_input_exits_non_zero_with_one_clear_message(tmp_path):
    job = standard_job(tmp_path / "job", n=3)
    job.add_line("{broken")
    result = gt2seg("convert", job.write(), tmp_path / "out")
    assert result.returncode == 1
    assert "line 4: not valid JSON" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_inspect_lists_attributes_counts_and_classes(tmp_path):
    job = standard_job(tmp_path / "job", n=3)
    job.add_line({"source-ref": "images/u.jpg"})
    result = gt2seg("inspect", job.write(), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["lines"], report["labeled"], report["unlabeled"]) == (4, 3, 1)
    assert report["attributes"][0]["name"] == "city-ref"
    assert [c["name"] for c in report["classes"]] == ["BACKGROUND", "building", "road"]


def test_inspect_exits_non_zero_when_it_finds_problems(tmp_path):
    job = standard_job(tmp_path / "job", n=2)
    job.add("x", attribute="other-ref")  # a second segmentation attribute: ambiguous
    result = gt2seg("inspect", job.write())
    assert result.returncode == 1 and "several semantic-segmentation label attributes" in result.stdout


def test_bad_option_values_are_usage_errors(tmp_path):
    manifest = standard_job(tmp_path / "job", n=2).write()
    assert "expected PREFIX=DIR" in gt2seg("convert", manifest, tmp_path / "o", "--ref-root", "nope").stderr
    assert "expected I/N" in gt2seg("convert", manifest, tmp_path / "o", "--shard", "3").stderr
    result = gt2seg("convert", manifest, tmp_path / "o", "--s3-prefix", "bucket/x")
    assert result.returncode == 1 and "must be an s3:// URI" in result.stderr


def test_killed_run_leaves_no_truncated_file_and_resumes(tmp_path):
    job = Job(tmp_path / "job")
    for i in range(120):
        job.add(f"big{i:03d}", blocks(400, 300, seed=i), size=(400, 300))
    manifest = job.write()
    out = tmp_path / "out"
    proc = subprocess.Popen([*GT2SEG, "convert", manifest, str(out), "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    cache = out / ".gt2seg" / "items"
    deadline = time.monotonic() + 120
    while proc.poll() is None and len(list(cache.glob("*.json"))) < 10 and time.monotonic() < deadline:
        time.sleep(0.02)  # poll for progress; the kill lands wherever the workers are
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "report.json").exists()
    for path in out.rglob("*"):
        if path.is_file() and not path.name.endswith(".tmp"):
            if path.suffix in (".png", ".jpg"):
                Image.open(path).load()  # complete: decodes to the end
            elif path.suffix == ".json":
                json.loads(path.read_text())
    result = gt2seg("convert", manifest, out, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["resumed"] >= 10
    clean = tmp_path / "clean"
    assert gt2seg("convert", manifest, clean).returncode == 0
    assert same_layout(out, clean)


def test_convert_reads_manifest_and_masks_from_s3(tmp_path, s3, s3_bucket):
    job = Job(tmp_path / "job", prefix=f"s3://{s3_bucket}/job/")
    for i in range(5):
        job.add(f"s3img{i}", blocks(seed=i))
    job.write()
    for path in (tmp_path / "job").rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), s3_bucket, f"job/{path.relative_to(tmp_path / 'job')}")
    result = gt2seg("convert", f"s3://{s3_bucket}/job/output.manifest", tmp_path / "out", "--json",
                    "--s3-prefix", f"s3://{s3_bucket}/layout")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["converted"] == 5
    mask = next((tmp_path / "out").glob("*_annotation/s3img3.png"))
    assert np.array_equal(np.asarray(Image.open(mask)), blocks(seed=3))

    upload = gt2seg("upload", tmp_path / "out", f"s3://{s3_bucket}/layout", "--json")
    assert upload.returncode == 0, upload.stderr
    assert json.loads(upload.stdout)["warnings"] == []
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="layout/")["Contents"]}
    assert "layout/train.manifest" in keys and "layout/label_map/train_label_map.json" in keys
    assert not any(".gt2seg" in k for k in keys)
    again = json.loads(gt2seg("upload", tmp_path / "out", f"s3://{s3_bucket}/layout", "--json").stdout)
    assert again["uploaded"] == 0 and again["skipped"] == len(keys)


def test_missing_manifest_on_s3_is_a_clear_error(tmp_path, s3_bucket):
    result = gt2seg("convert", f"s3://{s3_bucket}/nope/output.manifest", tmp_path / "out")
    assert result.returncode == 1 and "does not exist" in result.stderr
