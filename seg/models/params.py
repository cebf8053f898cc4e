"""MXNet's parameter file (the NDArray list `mx.nd.save` and Gluon's `save_parameters` write), read and written
with numpy alone, so the built-in's `model_algo-1` is every engine's model file.

Layout (little-endian; MXNet 1.x `NDArray::Save` for a list): uint64 magic 0x112, uint64 reserved 0, uint64 count,
then each array: uint32 magic (0xF993FAC9, or 0xF993FACA under numpy shape semantics), int32 storage type
(0: dense), uint32 ndim, int64 dims[ndim], int32 device type and int32 device id (1, 0: the CPU), int32 dtype
flag, the raw C-order data; then uint64 count of names, each a uint64 length and its UTF-8 bytes.
Written files are byte-identical to `mx.nd.save` of the same arrays (tests/seg/models/test_params.py).
"""
from __future__ import annotations

import struct
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Mapping

import numpy as np

from gt2seg.atomic import atomic_write
from seg.errors import ModelError

LIST_MAGIC = 0x112
ARRAY_MAGICS = (0xF993FAC9, 0xF993FACA)  # V2, V3 (numpy shape semantics; same layout for dense arrays)
CPU = (1, 0)
#: MXNet's dtype flags (mshadow's type enum) ↔ numpy
DTYPES = {0: np.float32, 1: np.float64, 2: np.float16, 3: np.uint8, 4: np.int32, 5: np.int8, 6: np.int64}
FLAGS = {np.dtype(t): flag for flag, t in DTYPES.items()}


class _Reader:
    def __init__(self, data: bytes, path):
        self.data, self.pos, self.path = memoryview(data), 0, path

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ModelError(f"{self.path}: ends after {len(self.data)} bytes, inside an array or name; the file "
                             "is truncated: copy the model again")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values if len(values) > 1 else values[0]

    def raw(self, size: int) -> memoryview:
        if self.pos + size > len(self.data):
            raise ModelError(f"{self.path}: ends after {len(self.data)} bytes, inside an array's data; the file is "
                             "truncated: copy the model again")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk


def _read_array(r: _Reader, index: int) -> np.ndarray:
    magic = r.take("<I")
    if magic not in ARRAY_MAGICS:
        raise ModelError(f"{r.path}: array {index} starts with 0x{magic:08X}, not an MXNet NDArray header; only "
                         "files of MXNet 1.x (mx.nd.save, save_parameters) are read")
    storage = r.take("<i")
    if storage != 0:
        raise ModelError(f"{r.path}: array {index} is sparse (storage type {storage}); model files hold dense arrays")
    ndim = r.take("<I")
    shape = tuple(r.take(f"<{ndim}q")) if ndim > 1 else ((r.take("<q"),) if ndim == 1 else ())
    r.take("<ii")  # the device it was saved from: arrays always load onto the caller's
    flag = r.take("<i")
    if flag not in DTYPES:
        raise ModelError(f"{r.path}: array {index} has MXNet dtype flag {flag}, which seg does not read")
    dtype = np.dtype(DTYPES[flag]).newbyteorder("<")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    return np.frombuffer(r.raw(count * dtype.itemsize), dtype=dtype).reshape(shape).copy()


TORCH_CHECKPOINT = ("a PyTorch checkpoint (torch.save), not a seg or built-in model; seg's model file is MXNet's "
                    "parameter format (model_algo-1, model.params), whichever engine trained it")


def is_torch_checkpoint(head: bytes) -> bool:
    """Whether a file starting with `head` is what torch.save writes: a zip archive, or a pickle (before torch 1.6)."""
    return head[:2] == b"PK" or head[:1] == b"\x80"


def read_params(path) -> "OrderedDict[str, np.ndarray]":
    """name → array of an MXNet parameter file, in the file's order (names as written, "arg:"/"aux:" kept)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    r = _Reader(data, path)
    if is_torch_checkpoint(data):
        raise ModelError(f"{path}: {TORCH_CHECKPOINT}")
    if len(data) < 16 or r.take("<Q") != LIST_MAGIC:
        raise ModelError(f"{path}: not an MXNet parameter file (no NDArray-list header); pass model_algo-1, "
                         "model.params or a file written by save_parameters / mx.nd.save")
    r.take("<Q")
    arrays = [_read_array(r, i) for i in range(r.take("<Q"))]
    names = [bytes(r.raw(r.take("<Q"))).decode("utf-8") for _ in range(r.take("<Q"))]
    if len(names) != len(arrays):
        raise ModelError(f"{path}: holds {len(arrays)} arrays but {len(names)} names; expected a named parameter "
                         "file (Gluon save_parameters)")
    if r.pos != len(data):
        raise ModelError(f"{path}: {len(data) - r.pos} bytes follow the last name; not one MXNet parameter file")
    return OrderedDict(zip(names, arrays))


def encode_params(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The bytes `mx.nd.save` writes for this name → array mapping (CPU arrays, insertion order)."""
    parts = [struct.pack("<QQQ", LIST_MAGIC, 0, len(arrays))]
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        if array.dtype not in FLAGS:
            raise ModelError(f"parameter {name} has dtype {array.dtype}, which MXNet files cannot hold")
        parts.append(struct.pack(f"<IiI{array.ndim}q", ARRAY_MAGICS[0], 0, array.ndim, *array.shape))
        parts.append(struct.pack("<iii", *CPU, FLAGS[array.dtype]))
        parts.append(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    parts.append(struct.pack("<Q", len(arrays)))
    for name in arrays:
        encoded = name.encode("utf-8")
        parts.append(struct.pack("<Q", len(encoded)) + encoded)
    return b"".join(parts)


def write_params(path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write `arrays` as an MXNet parameter file (temp name, then rename)."""
    atomic_write(Path(path), encode_params(arrays))


def plain_names(arrays: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Names without MXNet's "arg:"/"aux:" prefixes (`mx.nd.save` of a symbol's arguments writes them)."""
    return OrderedDict((name.split(":", 1)[-1], array) for name, array in arrays.items())
