"""File mode and Pipe mode train the same model: `seg train` over /opt/ml roots, feeders in their own processes.

On the default engine (torch): Pipe mode is data, which both engines take from the same sources."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from synthdata import write_layout

SEG = str(Path(sys.executable).parent / "seg")
EPOCHS = 6  # torch's training loss, measured: 1.19 1.76 1.57 0.62 0.37 0.43 (Adam's first steps from scratch
            # overshoot; 3 epochs ended above the first)
# One batch per epoch: the shuffle order (FileSource's full permutation vs the pipe's buffer-local shuffle)
# then only reorders samples inside a batch, so both modes must agree up to float summation order.
HP = {"num_classes": "3", "num_training_samples": "8", "backbone": "resnet-18", "algorithm": "fcn",
      "use_pretrained_model": "False", "base_size": "48", "crop_size": "32", "epochs": str(EPOCHS),
      "mini_batch_size": "8", "validation_mini_batch_size": "4", "optimizer": "adam", "learning_rate": "0.003",
      "seed": "1", "data_workers": "1"}
PIPE = {"TrainingInputMode": "Pipe", "ContentType": "application/x-recordio", "RecordWrapperType": "RecordIO",
        "S3DistributionType": "FullyReplicated"}


def _opt_ml(root, modes):
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "data").mkdir()
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(HP))
    config = {name: PIPE if mode == "Pipe" else {"TrainingInputMode": "File"} for name, mode in modes.items()}
    (root / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(config))
    return root


def _manifest(layout, split):
    masks = layout / f"{split}_annotation"
    lines = [json.dumps({"source-ref": str(image), "shapes-ref": str(masks / f"{image.stem}.png")})
             for image in sorted((layout / split).glob("*.jpg"))]
    path = layout / f"{split}.manifest"
    path.write_text("\n".join(lines) + "\n")
    return path


def _feeders(layout, fifo_dir):
    return [subprocess.Popen([SEG, "pipe-feed", str(_manifest(layout, split)), "--fifo-dir", str(fifo_dir),
                              "--channel", split, "--epochs", str(EPOCHS), "--attribute-names",
                              "source-ref,shapes-ref", "--wait-timeout", "300"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for split in ("train", "validation")]


def _train(root):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread: two runs of one engine are then bit-identical
    return subprocess.run([SEG, "train", "--opt-ml", str(root)], capture_output=True, text=True, env=env, timeout=400)


@pytest.fixture(scope="module")
def layout(module_tmp):
    return write_layout(module_tmp("synth"), n_train=8, n_val=4, size=48, seed=0)


@pytest.mark.slow
def test_pipe_mode_training_matches_file_mode(layout, tmp_path):
    file_root = _opt_ml(tmp_path / "file", {c: "File" for c in ("train", "validation")})
    for channel in ("train", "train_annotation", "validation", "validation_annotation", "label_map"):
        shutil.copytree(layout / channel, file_root / "input" / "data" / channel)
    pipe_root = _opt_ml(tmp_path / "pipe", {"train": "Pipe", "validation": "Pipe"})
    shutil.copytree(layout / "label_map", pipe_root / "input" / "data" / "label_map")

    file_run = _train(file_root)
    assert file_run.returncode == 0, file_run.stderr[-2000:]
    feeders = _feeders(layout, pipe_root / "input" / "data")
    pipe_run = _train(pipe_root)
    assert pipe_run.returncode == 0, pipe_run.stderr[-2000:]
    for feeder in feeders:
        assert feeder.wait(60) == 0, feeder.stderr.read()
    assert sorted(os.listdir(pipe_root / "input" / "data")) == ["label_map"]  # feeders removed their FIFOs

    file_epochs = json.loads((file_root / "model" / "metrics.json").read_text())["epochs"]
    pipe_epochs = json.loads((pipe_root / "model" / "metrics.json").read_text())["epochs"]
    assert len(file_epochs) == len(pipe_epochs) == EPOCHS
    for f, p in zip(file_epochs, pipe_epochs):
        assert p["train:loss"] == pytest.approx(f["train:loss"], rel=1e-4)
        assert p["validation:mIOU"] == pytest.approx(f["validation:mIOU"], abs=1e-3)
        assert p["validation:pixel_accuracy"] == pytest.approx(f["validation:pixel_accuracy"], abs=1e-3)
    assert file_epochs[-1]["train:loss"] < file_epochs[0]["train:loss"]  # it did learn something
    metrics = json.loads((pipe_root / "model" / "metrics.json").read_text())
    assert metrics["engine"] == "torch"


def test_bad_pipe_sample_fails_the_job_with_output_failure(layout, tmp_path):
    pipe_root = _opt_ml(tmp_path / "pipe", {"train": "Pipe", "validation": "Pipe"})
    broken = tmp_path / "broken"
    shutil.copytree(layout, broken)
    mask = sorted((broken / "train_annotation").glob("*.png"))[2]
    Image.open(mask).crop((0, 0, 20, 20)).save(mask)  # third sample: mask smaller than its image
    feeders = _feeders(broken, pipe_root / "input" / "data")
    run = _train(pipe_root)
    assert run.returncode != 0
    failure = (pipe_root / "output" / "failure").read_text()
    assert "channel 'train' epoch 0: sample 2 (records 4 and 5)" in failure and "mask is 20x20" in failure
    for feeder in feeders:
        feeder.kill()  # the trainer is gone; a feeder would otherwise wait --wait-timeout for its next reader
        feeder.wait(60)
