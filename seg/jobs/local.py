"""Run a CreateTrainingJob request on this machine, as SageMaker would run it in its container.

The request comes from `seg.jobs.sagemaker.build_request`, so a local run trains exactly what a SageMaker job
would. SageMaker's part is redone here: the `/opt/ml` root (hyperparameters.json, inputdataconfig.json), File
channels (S3 prefixes downloaded, local folders linked) and Pipe channels (one `seg pipe-feed` process per
channel streaming its augmented manifest into FIFOs). The training itself is `seg.train.entry.run_training_job`.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from seg.errors import LocalJobError
from gt2seg.atomic import atomic_write
from seg.jobs.contract import OptML

_SEG = [sys.executable, "-c", "from seg.cli import main; main()"]


@dataclass
class LocalJobResult:
    model_dir: Path
    mode: str
    epochs_run: int
    best_epoch: int
    best_miou: float


def _source(channel: dict) -> str:
    return channel["DataSource"]["S3DataSource"]["S3Uri"]


def _materialise(uri: str, target: Path) -> None:
    """A File channel's data under `target`: an S3 prefix downloaded (resumable), a local path linked."""
    from gt2seg.storage import download_tree, is_s3, read_bytes

    target.mkdir(parents=True, exist_ok=True)
    if is_s3(uri) and uri.endswith("/"):
        download_tree(uri, target)
    elif is_s3(uri):
        atomic_write(target / uri.rsplit("/", 1)[-1], read_bytes(uri))
    elif Path(uri).is_dir():
        target.rmdir()
        target.symlink_to(Path(uri).resolve(), target_is_directory=True)
    elif Path(uri).is_file():
        (target / Path(uri).name).symlink_to(Path(uri).resolve())
    else:
        raise LocalJobError(f"File channel source {uri} does not exist; run gt2seg convert first")


def prepare_root(request: dict, root) -> tuple[OptML, list]:
    """Write the /opt/ml config and File channels; return the Pipe channels still to be fed."""
    opt = OptML(root)
    for stale in (opt.config_dir, opt.data_dir, opt.model_dir, opt.output_dir):
        if stale.is_symlink() or stale.is_file():
            stale.unlink()
        shutil.rmtree(stale, ignore_errors=True)
    mode = request["AlgorithmSpecification"]["TrainingInputMode"]
    config, pipes = {}, []
    for channel in request["InputDataConfig"]:
        name, channel_mode = channel["ChannelName"], channel.get("InputMode", mode)
        config[name] = {"ContentType": channel.get("ContentType", ""), "TrainingInputMode": channel_mode,
                        "S3DistributionType": "FullyReplicated",
                        "RecordWrapperType": channel.get("RecordWrapperType", "None")}
        if channel_mode == "Pipe":
            pipes.append(channel)
        else:
            _materialise(_source(channel), opt.channel_dir(name))
    opt.data_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(opt.hyperparameters_path, json.dumps(request["HyperParameters"], indent=2).encode())
    atomic_write(opt.inputdataconfig_path, json.dumps(config, indent=2).encode())
    return opt, pipes


def start_feeders(opt: OptML, pipes: list, epochs: int) -> list:
    """One `seg pipe-feed` process per Pipe channel, as SageMaker's agent streams each channel."""
    feeders = []
    for channel in pipes:
        names = ",".join(channel["DataSource"]["S3DataSource"]["AttributeNames"])
        command = [*_SEG, "pipe-feed", _source(channel), "--fifo-dir", str(opt.data_dir), "--channel",
                   channel["ChannelName"], "--epochs", str(epochs), "--attribute-names", names]
        feeders.append((channel["ChannelName"], subprocess.Popen(command, stdout=subprocess.DEVNULL)))
    return feeders


def stop_feeders(feeders: list) -> list:
    """Stop every feeder still running (early stopping leaves them waiting); names the ones that failed."""
    failed = []
    for name, process in feeders:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        if code not in (0, 143, -signal.SIGTERM):
            failed.append(f"{name} (exit {code})")
    return failed


def publish(source: Path, model_dir) -> Path:
    """Copy the trained model into `model_dir` whole: a reader sees the old model or the new one, never half."""
    model_dir = Path(model_dir).resolve()
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = model_dir.with_name(f".{model_dir.name}.new-{os.getpid()}")
    old = model_dir.with_name(f".{model_dir.name}.old-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    if model_dir.exists():
        os.replace(model_dir, old)
    os.replace(staging, model_dir)
    shutil.rmtree(old, ignore_errors=True)
    return model_dir


def run_local_job(request: dict, root, model_dir, progress: bool = True) -> LocalJobResult:
    """Prepare `root` like SageMaker, feed Pipe channels, train, then publish /opt/ml/model to `model_dir`.

    File mode resumes from `root/checkpoints` after an interruption. Pipe mode starts over: SageMaker
    numbers a restarted job's FIFOs from epoch 0 again, so old checkpoints would wait for the wrong FIFO.
    """
    from seg.train.entry import run_training_job

    opt, pipes = prepare_root(request, root)
    if pipes:
        shutil.rmtree(opt.checkpoints_dir, ignore_errors=True)
    feeders = start_feeders(opt, pipes, int(request["HyperParameters"].get("epochs", 10)))
    try:
        result = run_training_job(opt, progress=progress)
    except BaseException as exc:  # Ctrl-C too: never leave feeders behind
        failed = stop_feeders(feeders)
        if not isinstance(exc, Exception):
            raise
        hint = f"; the feeder for {', '.join(failed)} failed first, see its message above" if failed else ""
        raise LocalJobError(f"{exc}{hint}") from None
    failed = stop_feeders(feeders)
    if failed:
        raise LocalJobError(f"the feeder for {', '.join(failed)} failed; see its message above")
    published = publish(opt.model_dir, model_dir)
    shutil.rmtree(opt.checkpoints_dir, ignore_errors=True)  # finished: the next run must not resume from it
    return LocalJobResult(published, request["AlgorithmSpecification"]["TrainingInputMode"], result.epochs_run,
                          result.best_epoch, result.best_miou)
