"""The /opt/ml contract: paths, config readers, and output/failure (FailureReason is its first 1024 characters)."""
import json

import pytest

from seg.errors import ContractError
from seg.jobs.contract import FAILURE_LIMIT, OptML, failure_text


def test_opt_ml_paths_and_failure_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SEG_OPT_ML", str(tmp_path))
    opt = OptML()
    assert opt.hyperparameters_path == tmp_path / "input/config/hyperparameters.json"
    assert opt.channel_dir("train") == tmp_path / "input/data/train"
    assert (opt.model_dir, opt.checkpoints_dir) == (tmp_path / "model", tmp_path / "checkpoints")
    assert opt.hyperparameters() == {} and opt.input_mode("train") == "File"
    opt.config_dir.mkdir(parents=True)
    opt.inputdataconfig_path.write_text(json.dumps({"train": {"TrainingInputMode": "Pipe"}}))
    assert opt.input_mode("train") == "Pipe"
    opt.hyperparameters_path.write_text("{broken")
    with pytest.raises(ContractError, match="hyperparameters.json"):
        opt.hyperparameters()
    opt.write_failure("disk full")
    assert opt.failure_path.read_text() == "disk full\n"


def test_a_failure_reason_within_the_limit_comes_first_and_details_follow():
    text = failure_text("hyperparameter crop_size=8 is invalid", "Traceback (most recent call last):\n  ...")
    assert text.startswith("hyperparameter crop_size=8 is invalid\n\nTraceback (most recent call last):")


def test_a_long_reason_is_clipped_at_the_limit_and_kept_in_full_after_it():
    reason = " ".join(f"item {i} is broken;" for i in range(200))
    text = failure_text(reason, "Traceback ...")
    head, rest = text[:FAILURE_LIMIT], text[FAILURE_LIMIT:]
    assert head.endswith("(full text below)") and reason.startswith(head.split(" [...]")[0])
    assert reason in rest and rest.rstrip().endswith("Traceback ...")
