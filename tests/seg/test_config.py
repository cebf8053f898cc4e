"""Hyperparameters: SageMaker strings and typed values parse alike; every rejection names parameter, value, range."""
import pytest

from seg.errors import HyperparameterError
from seg.config import parse_hyperparameters

REQUIRED = {"num_classes": "3", "num_training_samples": "100"}


def test_defaults_match_the_builtin_algorithm():
    hp = parse_hyperparameters(REQUIRED)
    assert (hp.backbone, hp.algorithm, hp.optimizer, hp.lr_scheduler) == ("resnet-50", "fcn", "sgd", "poly")
    assert (hp.crop_size, hp.base_size, hp.epochs, hp.mini_batch_size) == (240, 520, 10, 16)
    assert hp.use_pretrained_model is True and hp.early_stopping is False and hp.syncbn is False
    assert (hp.learning_rate, hp.momentum, hp.weight_decay, hp.gamma1, hp.gamma2) == (0.001, 0.9, 0.0001, 0.9, 0.9)
    assert (hp.early_stopping_min_epochs, hp.early_stopping_patience, hp.early_stopping_tolerance) == (5, 4, 0.0)


def test_strings_as_sagemaker_sends_them_equal_typed_values():
    strings = parse_hyperparameters({**REQUIRED, "use_pretrained_model": "False", "learning_rate": "0.01",
                                     "early_stopping": "True", "lr_scheduler": "step", "lr_scheduler_step": "10, 20",
                                     "backbone": "resnet-101", "algorithm": "PSP"})
    typed = parse_hyperparameters({"num_classes": 3, "num_training_samples": 100, "use_pretrained_model": False,
                                   "learning_rate": 0.01, "early_stopping": True, "lr_scheduler": "step",
                                   "lr_scheduler_step": [10, 20], "backbone": "resnet-101", "algorithm": "psp"})
    assert strings == typed
    assert strings.lr_scheduler_step == (10, 20)


def test_crop_size_is_rounded_up_to_a_multiple_of_8():
    assert parse_hyperparameters({**REQUIRED, "crop_size": "241"}).crop_size == 248
    assert parse_hyperparameters({**REQUIRED, "crop_size": 240}).crop_size == 240


def test_to_json_round_trips():
    hp = parse_hyperparameters({**REQUIRED, "lr_scheduler": "step", "lr_scheduler_step": "3,7", "crop_size": 100})
    assert parse_hyperparameters(hp.to_json()) == hp


def test_keys_sagemaker_adds_are_ignored():
    hp = parse_hyperparameters({**REQUIRED, "_tuning_objective_metric": "validation:mIOU",
                                "sagemaker_job_name": "x"})
    assert hp.num_classes == 3


@pytest.mark.parametrize("name, value", [
    ("num_classes", "1"), ("num_classes", "255"), ("num_classes", "three"), ("num_classes", "2.5"),
    ("num_training_samples", "0"), ("backbone", "resnet-152"), ("algorithm", "unet"),
    ("use_pretrained_model", "yes"), ("use_pretrained_model", 1), ("base_size", "16"), ("crop_size", "8"),
    ("early_stopping", "maybe"), ("early_stopping_min_epochs", "0"), ("early_stopping_patience", "0"),
    ("early_stopping_tolerance", "1.5"), ("early_stopping_tolerance", "-0.1"), ("epochs", "0"),
    ("gamma1", "1.1"), ("gamma2", "-1"), ("learning_rate", "0"), ("learning_rate", "2"), ("learning_rate", "nan"),
    ("lr_scheduler", "linear"), ("lr_scheduler_factor", "1.5"), ("lr_scheduler_step", "20,10"),
    ("lr_scheduler_step", "a,b"), ("lr_scheduler_step", "0"), ("mini_batch_size", "0"), ("momentum", "0"),
    ("momentum", "1.01"), ("optimizer", "adadelta"), ("syncbn", "2"), ("validation_mini_batch_size", "-1"),
    ("weight_decay", "0"), ("weight_decay", "1"), ("seed", "-1"), ("data_workers", "65"), ("hybridize", "no"),
    ("kvstore", "nccl"), ("epochs", True), ("unknown_thing", "1"),
])
def test_each_invalid_value_is_rejected_with_name_value_and_range(name, value):
    with pytest.raises(HyperparameterError) as info:
        parse_hyperparameters({**REQUIRED, name: value})
    assert info.value.name == name
    assert name in str(info.value) and repr(value) in str(info.value) and "allowed" in str(info.value)


@pytest.mark.parametrize("missing", ["num_classes", "num_training_samples"])
def test_required_hyperparameters_must_be_given(missing):
    values = dict(REQUIRED)
    del values[missing]
    with pytest.raises(HyperparameterError, match=missing):
        parse_hyperparameters(values)


def test_step_scheduler_needs_its_steps():
    with pytest.raises(HyperparameterError, match="lr_scheduler_step"):
        parse_hyperparameters({**REQUIRED, "lr_scheduler": "step"})
