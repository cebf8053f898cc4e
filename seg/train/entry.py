"""Entry points: a local layout (`seg train --data`) and the SageMaker /opt/ml contract."""
from __future__ import annotations

import logging
import tempfile
import traceback
from pathlib import Path
from typing import Optional

from gt2seg.layout import CHANNELS, LABEL_MAP_DIR, annotation_dir
from gt2seg.split import TRAIN
from seg.engines import load_engine
from seg.errors import TrainingError, is_expected
from seg.train.loop import Inputs, TrainResult, train

log = logging.getLogger("seg.train")


def _classes_near(*folders) -> Optional[list]:
    from gt2seg.classes import CLASSES_JSON, read_classes
    from gt2seg.errors import ClassesError
    from seg.errors import DataError

    for folder in folders:
        if folder is not None and (Path(folder) / CLASSES_JSON).is_file():
            try:
                return read_classes(Path(folder) / CLASSES_JSON)
            except ClassesError as exc:
                raise DataError(str(exc)) from None
    return None


def complete_hyperparameters(raw: dict, inputs: Inputs) -> dict:
    """Fill num_classes (from classes.json) and num_training_samples (from the train folder) when absent."""
    from seg.data.files import pair_files

    values = dict(raw)
    if "num_classes" not in values and inputs.classes:
        values["num_classes"] = len(inputs.classes)
    if "num_training_samples" not in values and TRAIN not in inputs.pipe_channels:
        values["num_training_samples"] = len(pair_files(inputs.channels[TRAIN], inputs.channels[annotation_dir(TRAIN)]))
    return values


def train_layout(data, model_dir, hyperparameters: dict, checkpoint_dir=None, progress=True, engine=None,
                 device="auto") -> TrainResult:
    """`seg train --data`: a local layout folder or an s3:// prefix holding one (downloaded first).

    Under torchrun (WORLD_SIZE > 1) each process trains its share with the torch engine's DDP."""
    from seg.config import parse_hyperparameters
    from seg.data.files import layout_channels

    with tempfile.TemporaryDirectory(prefix="seg-data-") as scratch:
        data = str(data)
        if data.startswith("s3://"):
            from gt2seg.storage import download_tree

            root = Path(scratch) / "layout"
            download_tree(data, root)
        else:
            root = Path(data)
        inputs = Inputs(layout_channels(root), classes=_classes_near(root))
        hp = parse_hyperparameters(complete_hyperparameters(hyperparameters, inputs))
        backend = load_engine(engine)
        with backend.distributed(hp, None) as dist:
            return train(hp, inputs, model_dir, checkpoint_dir=checkpoint_dir, progress=progress, engine=backend.NAME,
                         device=device, dist=dist)


def run_training_job(opt, progress=False, engine=None) -> TrainResult:
    """The SageMaker training entry point over an OptML root; any failure lands in output/failure, then re-raises.

    `engine`: torch or mxnet (default $SEG_ENGINE, else torch). Several hosts in resourceconfig.json train one
    model together: the engine's `distributed` joins them (torch: DDP; MXNet: its parameter servers).

    An expected failure (`seg.errors.is_expected`) writes its message; a bug writes its type, message and traceback.
    """
    from seg.config import parse_hyperparameters

    try:
        modes = {name: opt.input_mode(name) for name in opt.input_data_config()}
        names = set(modes) | set(CHANNELS)
        channels = {name: opt.channel_dir(name) for name in names if modes.get(name, "File") == "File"}
        model_channel = opt.channel_dir("model")
        init_model = model_channel if model_channel.is_dir() and any(model_channel.iterdir()) else None
        inputs = Inputs(
            channels, pipe_channels=tuple(n for n, m in modes.items() if m == "Pipe"), pipe_dir=opt.data_dir,
            classes=_classes_near(opt.channel_dir(LABEL_MAP_DIR), opt.channel_dir("classes")), init_model=init_model,
        )
        hp = parse_hyperparameters(complete_hyperparameters(opt.hyperparameters(), inputs))
        resource = opt.resource_config() or {}
        multi_host = len(resource.get("hosts", [])) > 1
        if multi_host and inputs.pipe_channels:
            raise TrainingError("Pipe mode streams every record to every host; use File mode with "
                                "S3DistributionType=FullyReplicated for multi-host training")
        backend = load_engine(engine)
        with backend.distributed(hp, resource if multi_host else None) as dist:
            return train(hp, inputs, opt.model_dir, checkpoint_dir=opt.checkpoints_dir, progress=progress,
                         engine=backend.NAME, dist=dist)
    except Exception as exc:  # the contract: every failure is reported in output/failure
        if is_expected(exc):
            opt.write_failure(str(exc))
        else:
            opt.write_failure(f"unexpected {type(exc).__name__} (a bug in seg): {exc}", traceback.format_exc())
        raise
