"""The SageMaker container contract: which files live where under `/opt/ml` (docs/CONTRACTS.md, "/opt/ml").

The one place that knows these paths. The root is `--opt-ml`, else `$SEG_OPT_ML`, else `/opt/ml`, so tests
and users can run the training-job contract in any folder. No MXNet import here.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from gt2seg.atomic import atomic_write
from seg.errors import ContractError

DEFAULT_ROOT = "/opt/ml"
FAILURE_LIMIT = 1024  # SageMaker keeps the first 1024 characters of output/failure as FailureReason
_CLIPPED = " [...] (full text below)"


def resolve_root(opt_ml: Optional[str] = None) -> Path:
    return Path(opt_ml or os.environ.get("SEG_OPT_ML") or DEFAULT_ROOT)


class OptML:
    """Paths and config readers of one `/opt/ml`-style root."""

    def __init__(self, root=None):
        self.root = resolve_root(str(root) if root is not None else None)

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def hyperparameters_path(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def inputdataconfig_path(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    @property
    def resourceconfig_path(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    @property
    def data_dir(self) -> Path:
        return self.root / "input" / "data"

    def channel_dir(self, channel: str) -> Path:
        """File mode: the channel's folder. (Pipe mode uses `<channel>_<epoch>` FIFOs beside it.)"""
        return self.data_dir / channel

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def failure_path(self) -> Path:
        return self.output_dir / "failure"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    def _json(self, path: Path, required: bool):
        if not path.exists():
            if required:
                raise ContractError(f"{path} is missing; a SageMaker training job always writes it")
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ContractError(f"{path} is not readable JSON: {exc}") from None

    def hyperparameters(self) -> dict:
        """hyperparameters.json (a string→string map from SageMaker); {} when absent."""
        data = self._json(self.hyperparameters_path, required=False)
        if data is not None and not isinstance(data, dict):
            raise ContractError(f"{self.hyperparameters_path} must hold a JSON object")
        return data or {}

    def input_data_config(self) -> dict:
        """inputdataconfig.json: {channel: {"TrainingInputMode": "File"|"Pipe", ...}}; {} when absent."""
        data = self._json(self.inputdataconfig_path, required=False)
        if data is not None and not isinstance(data, dict):
            raise ContractError(f"{self.inputdataconfig_path} must hold a JSON object")
        return data or {}

    def input_mode(self, channel: str) -> str:
        """'File' or 'Pipe' for a channel (File when the config does not say)."""
        config = self.input_data_config().get(channel, {})
        mode = config.get("TrainingInputMode", "File")
        if mode not in ("File", "Pipe", "FastFile"):
            raise ContractError(f"{self.inputdataconfig_path}: channel {channel!r} has TrainingInputMode {mode!r}")
        return "File" if mode == "FastFile" else mode

    def resource_config(self) -> Optional[dict]:
        """resourceconfig.json ({"current_host", "hosts", ...}), or None on a local run."""
        return self._json(self.resourceconfig_path, required=False)

    def write_failure(self, reason: str, details: str = "") -> None:
        """The reason in plain words, then `details` (a traceback). SageMaker shows the first FAILURE_LIMIT
        characters as FailureReason, so a longer reason is clipped there with a marker and repeated in full."""
        atomic_write(self.failure_path, failure_text(reason, details).encode("utf-8"))


def failure_text(reason: str, details: str = "") -> str:
    """output/failure's text: its first FAILURE_LIMIT characters are the reason alone, nothing is lost."""
    reason, details = reason.strip(), details.strip()
    if len(reason) > FAILURE_LIMIT:
        details = "\n\n".join(filter(None, (reason, details)))
        reason = reason[:FAILURE_LIMIT - len(_CLIPPED)] + _CLIPPED
    return "\n\n".join(filter(None, (reason, details))) + "\n"
