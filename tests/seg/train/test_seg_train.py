"""Training end to end: the /opt/ml contract (success, failure, resume, incremental), the CLI, S3 data.

What an engine does (its weights, checkpoints and log lines) runs on both engines from one shared job per engine;
what does not depend on the engine (failures, data, the container script) runs on the default engine (torch)."""
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ci_skips import require_engine
from seg.config import parse_hyperparameters
from seg.engines import ENGINES
from seg.jobs.contract import OptML
from seg.models.params import read_params
from seg.train.entry import run_training_job, train_layout
from seg.train.checkpoints import track_progress
from synthdata import write_layout
from repo import ROOT

SEG = [str(Path(sys.executable).parent / "seg")]
TINY = {"backbone": "resnet-18", "algorithm": "fcn", "use_pretrained_model": "False", "crop_size": "32",
        "base_size": "32", "mini_batch_size": "4", "validation_mini_batch_size": "3", "optimizer": "adam",
        "learning_rate": "0.003", "epochs": "2", "data_workers": "1"}
METRIC_REGEXES = {"train:loss": r"train:loss=([0-9.eE+-]+)", "validation:mIOU": r"validation:mIOU=([0-9.]+)",
                  "validation:pixel_accuracy": r"validation:pixel_accuracy=([0-9.]+)"}


def _opt_ml(root, layout, hyperparameters, model_tarball=None):
    """A SageMaker-style root: channels copied from a layout, config JSON as SageMaker writes it (strings)."""
    opt = OptML(root)
    for channel in ("train", "train_annotation", "validation", "validation_annotation", "label_map"):
        target = opt.channel_dir(channel)
        target.mkdir(parents=True)
        for path in (layout / channel).iterdir():
            (target / path.name).write_bytes(path.read_bytes())
    (opt.channel_dir("label_map") / "classes.json").write_bytes((layout / "classes.json").read_bytes())
    config = {c: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
              for c in ("train", "train_annotation", "validation", "validation_annotation", "label_map")}
    if model_tarball:
        opt.channel_dir("model").mkdir(parents=True)
        (opt.channel_dir("model") / "model.tar.gz").write_bytes(Path(model_tarball).read_bytes())
        config["model"] = {"TrainingInputMode": "File", "ContentType": "application/x-sagemaker-model"}
    opt.config_dir.mkdir(parents=True, exist_ok=True)
    opt.hyperparameters_path.write_text(json.dumps({"num_classes": "3", "num_training_samples": "8", **hyperparameters}))
    opt.inputdataconfig_path.write_text(json.dumps(config))
    opt.resourceconfig_path.write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    return opt


@pytest.fixture(scope="module")
def layout(module_tmp):
    return write_layout(module_tmp("layout"), n_train=8, n_val=3, size=32, seed=3)


@dataclass
class Job:
    opt: OptML
    result: object  # seg.train.loop.TrainResult
    lines: list  # what seg.train logged
    engine: str


@pytest.fixture(scope="module", params=ENGINES)
def finished_job(request, module_tmp, layout):
    """One successful 2-epoch container job per engine, shared by the tests that inspect or resume it."""
    engine = request.param
    require_engine(engine)
    opt = _opt_ml(module_tmp(f"opt_ml_{engine}"), layout, TINY)
    logger = logging.getLogger("seg.train")
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        result = run_training_job(opt, engine=engine)
    finally:
        logger.removeHandler(handler)
    return Job(opt, result, lines, engine)


def test_container_job_writes_artifact_metrics_and_checkpoints(finished_job):
    opt, result = finished_job.opt, finished_job.result
    names = {p.name for p in opt.model_dir.iterdir()}
    assert {"model.params", "hyperparameters.json", "classes.json", "metrics.json", "curves.png"} <= names
    assert not any(n.startswith(".") for n in names)  # no temp files left behind
    assert json.loads((opt.model_dir / "classes.json").read_text())[1]["name"] == "disc"
    metrics = json.loads((opt.model_dir / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2] and result.epochs_run == 2
    assert metrics["engine"] == finished_job.engine
    assert metrics["validation:mIOU"] == max(e["validation:mIOU"] for e in metrics["epochs"])
    assert json.loads((opt.checkpoints_dir / "state.json").read_text())["epochs_done"] == 2
    assert not opt.failure_path.exists()


def test_epoch_log_lines_match_the_documented_metric_regexes(finished_job):
    result = finished_job.result
    epoch_lines = [line for line in finished_job.lines if line.startswith("epoch ")]
    assert len(epoch_lines) == 2
    for name, regex in METRIC_REGEXES.items():
        values = [float(re.search(regex, line).group(1)) for line in epoch_lines]
        assert values == pytest.approx([e[name] for e in result.history], abs=1e-5)


def _restore_checkpoints(source, target):
    """What SageMaker does for a restarted job: the checkpoints/ of the earlier container, copied in."""
    shutil.copytree(source.checkpoints_dir, target.checkpoints_dir)


def test_job_resumes_from_its_checkpoint(tmp_path, layout, finished_job):
    opt, first = finished_job.opt, finished_job.result
    # a new container for the same job: SageMaker restores checkpoints/; this time it asks for 3 epochs
    resumed = _opt_ml(tmp_path, layout, {**TINY, "epochs": "3"})
    _restore_checkpoints(opt, resumed)
    result = run_training_job(resumed, engine=finished_job.engine)
    assert [e["epoch"] for e in result.history] == [1, 2, 3]
    assert result.history[:2] == first.history  # epochs 1-2 were restored, not re-run
    assert json.loads((resumed.model_dir / "metrics.json").read_text())["epochs"][2]["epoch"] == 3


def test_checkpoint_of_other_hyperparameters_is_refused_in_the_failure_file(tmp_path, layout, finished_job):
    other = _opt_ml(tmp_path, layout, {**TINY, "learning_rate": "0.01"})
    _restore_checkpoints(finished_job.opt, other)
    with pytest.raises(Exception, match="learning_rate"):
        run_training_job(other, engine=finished_job.engine)
    assert "different learning_rate" in other.failure_path.read_text()


def _tarball(model_dir, path):
    with tarfile.open(path, "w:gz") as tar:
        for item in Path(model_dir).iterdir():
            tar.add(item, arcname=item.name)
    return path


def _weights(model_dir) -> dict:
    """The learned parameters of a model directory; BatchNorm's running statistics are left out, since every
    training forward pass moves them whatever the learning rate."""
    saved = read_params(Path(model_dir) / "model.params")
    return {name: array for name, array in saved.items() if "running_" not in name}


def test_incremental_training_starts_from_the_model_channel(tmp_path, layout, finished_job):
    opt = finished_job.opt
    tarball = _tarball(opt.model_dir, tmp_path / "model.tar.gz")
    job = _opt_ml(tmp_path / "job", layout, {**TINY, "epochs": "1", "learning_rate": "0.000001"}, tarball)
    result = run_training_job(job, engine=finished_job.engine)
    assert result.epochs_run == 1
    # Two Adam steps of at most ~1e-6 each: every weight is still the model channel's to 1e-5, where the
    # model channel's own training (4 steps of 3e-3 from its initialisation) moved its weights by ~1e-2.
    start, continued = _weights(opt.model_dir), _weights(job.model_dir)
    assert sorted(continued) == sorted(start) and len(start) > 20
    far = {name: float(np.abs(continued[name] - start[name]).max()) for name in start
           if not np.allclose(continued[name], start[name], rtol=0, atol=1e-5)}
    assert far == {}, f"weights that did not start from the model channel: {far}"


def test_incremental_training_with_another_crop_size_fails_clearly(tmp_path, layout, finished_job):
    opt = finished_job.opt
    job = _opt_ml(tmp_path, layout, {**TINY, "crop_size": "40"}, _tarball(opt.model_dir, tmp_path / "m.tar.gz"))
    with pytest.raises(Exception):
        run_training_job(job, engine=finished_job.engine)
    assert "crop_size: model 32 vs job 40" in job.failure_path.read_text()
    assert not (job.model_dir / "model.params").exists()


def test_container_train_script_writes_the_failure_file_and_exits_nonzero(tmp_path, layout):
    """docs/container/train, as `docker run IMAGE train` runs it (root from $SEG_OPT_ML instead of /opt/ml)."""
    job = _opt_ml(tmp_path, layout, {**TINY, "crop_size": "8"})
    script = ROOT / "docs" / "container" / "train"
    env = {**os.environ, "SEG_OPT_ML": str(tmp_path), "PATH": f"{Path(SEG[0]).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run([str(script)], capture_output=True, text=True, env=env)
    assert run.returncode == 1
    assert "crop_size" in job.failure_path.read_text() and "crop_size" in run.stderr
    assert not job.model_dir.exists() or not any(job.model_dir.iterdir())


def test_missing_validation_channel_is_reported(tmp_path, layout):
    job = _opt_ml(tmp_path, layout, TINY)
    for path in job.channel_dir("validation").iterdir():
        path.unlink()
    job.channel_dir("validation").rmdir()
    with pytest.raises(Exception):
        run_training_job(job)
    assert "validation" in job.failure_path.read_text()


def test_a_bug_writes_its_traceback_after_the_reason_in_the_failure_file(tmp_path, layout, monkeypatch):
    import seg.train.entry

    def broken_loop(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(seg.train.entry, "train", broken_loop)
    job = _opt_ml(tmp_path, layout, TINY)
    with pytest.raises(RuntimeError):
        run_training_job(job)
    text = job.failure_path.read_text()
    assert text.startswith("unexpected RuntimeError (a bug in seg): boom\n\nTraceback (most recent call last):")
    assert 'raise RuntimeError("boom")' in text


def test_early_stopping_waits_for_min_epochs_and_patience():
    hp = parse_hyperparameters({"num_classes": 3, "num_training_samples": 1, "early_stopping": "True",
                                "early_stopping_min_epochs": 4, "early_stopping_patience": 2,
                                "early_stopping_tolerance": 0.1})
    state = {"best_miou": -1.0, "best_epoch": 0, "bad_epochs": 0, "epochs_done": 0}
    # 0.52 is better than 0.5 but not by 10%: it is kept as best yet counts as "not improved"
    decisions = [track_progress(state, miou, epoch, hp) for epoch, miou in
                 enumerate([0.5, 0.52, 0.51, 0.6, 0.61, 0.62], start=1)]
    assert [d[0] for d in decisions] == [True, True, False, True, True, True]
    assert [d[1] for d in decisions] == [False, False, False, False, False, True]
    assert (state["best_miou"], state["best_epoch"]) == (0.62, 6)


def test_train_from_an_s3_layout(tmp_path, layout, s3, s3_bucket):
    for path in layout.rglob("*"):
        if path.is_file():
            s3.put_object(Bucket=s3_bucket, Key=f"data/{path.relative_to(layout)}", Body=path.read_bytes())
    result = train_layout(f"s3://{s3_bucket}/data/", tmp_path / "model", {**TINY, "epochs": "1"}, progress=False)
    assert result.epochs_run == 1 and (tmp_path / "model" / "model.params").exists()
    hp = json.loads((tmp_path / "model" / "hyperparameters.json").read_text())
    assert (hp["num_classes"], hp["num_training_samples"]) == (3, 8)  # inferred from classes.json and train/


def test_cli_predict_writes_masks_and_overlays_at_each_input_size(tmp_path):
    from artifacts import save_random_artifact

    model = save_random_artifact(tmp_path / "model")
    (tmp_path / "images").mkdir()
    for name, size in (("a.jpg", (40, 30)), ("b.png", (17, 23))):
        Image.fromarray(np.full((size[1], size[0], 3), 90, np.uint8)).save(tmp_path / "images" / name)
    run = subprocess.run(SEG + ["predict", str(model), str(tmp_path / "images"), "--out", str(tmp_path / "out"),
                                "--json"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert len(json.loads(run.stdout)) == 2
    for stem, size in (("a", (40, 30)), ("b", (17, 23))):
        mask = Image.open(tmp_path / "out" / f"{stem}.png")
        assert mask.mode == "P" and mask.size == size and np.asarray(mask).max() < 3
        assert Image.open(tmp_path / "out" / f"{stem}_overlay.png").size == size


def _free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.mxnet
@pytest.mark.slow
def test_two_hosts_train_one_model_through_the_dist_kvstore(tmp_path, layout):
    """Two "hosts" on this machine, each a plain `seg train` as SageMaker would start it: host algo-1 adds the
    scheduler, each adds a server, both train on half the data and must end with identical weights. (The torch
    engine's DDP: tests/seg/engines/test_torch_distributed.py.)"""
    require_engine("mxnet")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SEG_PS_ROOT_URI": "127.0.0.1", "SEG_PS_ROOT_PORT": str(_free_port()),
           "DMLC_NODE_HOST": "127.0.0.1"}
    jobs = []
    for host in ("algo-1", "algo-2"):
        opt = _opt_ml(tmp_path / host, layout, {**TINY, "epochs": "1"})
        opt.resourceconfig_path.write_text(json.dumps({"current_host": host, "hosts": ["algo-1", "algo-2"]}))
        jobs.append((opt, subprocess.Popen(SEG + ["train", "--opt-ml", str(opt.root)], env=env,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    try:
        for opt, process in jobs:
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err[-3000:]
    finally:
        for _, process in jobs:
            if process.poll() is None:
                process.kill()
                process.wait()
    (first, _), (second, _) = jobs
    a, b = (read_params(opt.model_dir / "model.params") for opt in (first, second))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
