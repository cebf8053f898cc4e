"""Every error seg raises on purpose derives from `SegError`, typed by the stage that raises it.

The CLI (`seg.cli.errors`) prints any `SegError` as one line and exits non-zero; anything else is a bug
and keeps its traceback (`seg -v`, and always in a training job's output/failure). Messages name parameters
as `name=value`, not CLI flags: notebooks call the library directly; the CLI shows its own options as flags.
Some classes also derive from a builtin (`ValueError`, ...) where callers already catch that.
"""
from __future__ import annotations

from gt2seg.errors import install_extra_hint


class SegError(Exception):
    """Root: a failure seg reports on purpose, with what went wrong and the fix."""


class MissingExtraError(SegError):
    """A command needs an optional dependency that is not installed."""

    def __init__(self, module: str, extra: str = "cpu", why: str = ""):
        super().__init__(f"this needs {module}, which is not installed{'; ' + why if why else ''}; install the "
                         f"{extra!r} extra {install_extra_hint(extra)}")
        self.module, self.extra = module, extra


# Root modules of the optional extras: the pip name to show for each, and the extra of setup.cfg that installs it.
EXTRA_MODULES = {"mxnet": ("mxnet", "cpu"), "gluoncv": ("gluoncv", "cpu"), "cv2": ("opencv-python", "cpu"),
                 "gunicorn": ("gunicorn", "cpu"), "google": ("protobuf", "cpu"), "requests": ("requests", "cpu"),
                 "onnx": ("onnx", "cpu"), "onnxruntime": ("onnxruntime", "cpu"), "torch": ("torch", "torch")}


def missing_extra(exc: BaseException):
    """The MissingExtraError an ImportError of an optional dependency stands for, else None."""
    root = (getattr(exc, "name", None) or "").split(".")[0]
    if isinstance(exc, ImportError) and root in EXTRA_MODULES:
        return MissingExtraError(*EXTRA_MODULES[root])
    return None


def is_expected(exc: BaseException) -> bool:
    """A failure reported on purpose (seg's or gt2seg's errors, an OSError naming its file), not a bug."""
    from gt2seg.errors import Gt2SegError

    return isinstance(exc, (SegError, Gt2SegError)) or (isinstance(exc, OSError) and exc.filename is not None)


# ---------------------------------------------------------------- config and jobs


class HyperparameterError(SegError, ValueError):
    """A hyperparameter is unknown, missing, mistyped or out of range; the message names it."""

    def __init__(self, name: str, value, allowed: str):
        self.name, self.value, self.allowed = name, value, allowed
        super().__init__(f"hyperparameter {name}={value!r} is invalid: allowed {allowed}")


class JobError(SegError, ValueError):
    """A training-job request (CreateTrainingJob, local job, manifest snapshot) cannot be built or run."""


class ContractError(JobError):
    """A config file under the /opt/ml root is missing where required, unreadable or not the expected JSON."""


class JobManifestError(JobError):
    """The labeling job's output manifest cannot be found or copied."""


class LocalJobError(JobError):
    """A local training job could not be prepared or failed."""


# ---------------------------------------------------------------- data


class DataError(SegError, ValueError):
    """An image, mask or label map is unusable; the message names the file or record and the fix."""


class PipeError(DataError):
    """Pipe-mode input is unusable; the message names channel, epoch, record and the fix."""


class PipeTimeout(PipeError):
    """A bounded wait on a FIFO ran out."""


class AugmentedManifestError(PipeError):
    """An augmented manifest line is unusable for Pipe mode."""


class RecordIOError(DataError):
    """A malformed RecordIO stream; names the source, the logical record index and the byte offset."""

    def __init__(self, source: str, index: int, offset: int, problem: str):
        self.source, self.index, self.offset, self.problem = source, index, offset, problem
        super().__init__(f"{source}: record {index} at byte {offset}: {problem}")


# ---------------------------------------------------------------- models and training


class ModelError(SegError):
    """A model artifact or pretrained weight file is missing, unreadable or incompatible."""


class PretrainedWeightsError(ModelError):
    """use_pretrained_model=True but no usable ImageNet weights were found where we looked."""


class TrainingError(SegError):
    """Training cannot start or go on (bad checkpoint, empty data, ...); the message says why and what to do."""


class DeviceError(SegError):
    """A device that cannot be used: a GPU MXNet's CUDA kernels cannot run on, or `device=gpu` without CUDA."""


class ExportError(ModelError):
    """A model cannot be exported or quantized as asked (an op without an ONNX translation, no calibration images)."""


class OnnxModelError(ModelError):
    """An ONNX file seg cannot serve: not one seg exported (no seg metadata), unreadable, or a provider refused."""


# ---------------------------------------------------------------- serving


class ServeError(SegError):
    """Serving cannot start or a response cannot be made."""


class ServeConfigError(ServeError, ValueError):
    """A server setting (parameter or SAGEMAKER_* variable) that cannot be used."""


class ClientError(ServeError):
    """A request the client must fix; `status` is the HTTP code it maps to."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class RecordError(ServeError, ValueError):
    """A protobuf Record cannot be encoded or decoded."""


class InvokeError(ServeError):
    """The endpoint could not be reached or answered with an error."""
