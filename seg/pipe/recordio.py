"""MXNet/dmlc RecordIO framing (docs/CONTRACTS.md, "RecordIO framing"), in pure Python.

Pipe mode streams and the RecordIO-protobuf inference responses both use this framing; doing it without
MXNet keeps `import seg.pipe.recordio` light and lets us read a FIFO, which `mxnet.recordio` (files only)
cannot. Wire format of one part: magic ``0xced7230a`` (uint32 LE), ``lrecord = cflag << 29 | length``
(uint32 LE), ``length`` payload bytes, zero padding to a 4-byte boundary. A payload that contains the magic
at a 4-byte-aligned offset is split there (cflag 1 first, 2 middle, 3 last; 0 = whole), exactly as dmlc's
writer does, so that a reader that lost sync can resynchronise on the magic; the reader re-inserts the
magic between parts.
"""
from __future__ import annotations

import struct
from typing import BinaryIO, Iterator

from seg.errors import RecordIOError

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
MAX_PART_LENGTH = (1 << 29) - 1  # 29-bit length field

_HEADER = struct.Struct("<II")
_PADDING = (b"", b"\0\0\0", b"\0\0", b"\0")  # indexed by length % 4
_FLAG_NAMES = {0: "whole", 1: "first", 2: "middle", 3: "last"}
_FIX_HINT = (
    "the stream is not MXNet RecordIO; for SageMaker Pipe mode set RecordWrapperType=RecordIO and "
    "ContentType=application/x-recordio on the channel"
)


def _part(cflag: int, chunk) -> list:
    if len(chunk) > MAX_PART_LENGTH:
        raise ValueError(f"RecordIO part of {len(chunk)} bytes exceeds the 29-bit limit ({MAX_PART_LENGTH})")
    return [_HEADER.pack(MAGIC, cflag << 29 | len(chunk)), chunk, _PADDING[len(chunk) & 3]]


def _aligned_magic_offsets(view: bytes) -> Iterator[int]:
    """Offsets (multiples of 4) where the magic occurs; bytes.find keeps this at C speed."""
    i = view.find(MAGIC_BYTES)
    while i >= 0:
        if i & 3 == 0:
            yield i
            i = view.find(MAGIC_BYTES, i + 4)
        else:
            i = view.find(MAGIC_BYTES, i + 1)


def pack(payload: bytes) -> bytes:
    """Frame one logical record (split at aligned magics, like dmlc's RecordIOWriter)."""
    payload = bytes(payload)
    pieces: list = []
    start = 0
    for hit in _aligned_magic_offsets(payload):
        pieces += _part(1 if start == 0 else 2, payload[start:hit])
        start = hit + 4
    pieces += _part(3 if start else 0, payload[start:] if start else payload)
    return b"".join(pieces)


def _read_exact(read, size: int) -> bytes:
    """read() may return short counts on raw FIFOs; loop until size bytes or EOF."""
    data = read(size)
    if data is None or len(data) == size:
        return data or b""
    chunks = [data]
    got = len(data)
    while got < size:
        more = read(size - got)
        if not more:
            break
        chunks.append(more)
        got += len(more)
    return b"".join(chunks)


def iter_records(stream: BinaryIO, *, source: str = "stream") -> Iterator[bytes]:
    """Yield each logical record's payload until a clean EOF; raise RecordIOError on any damage."""
    read = stream.read
    offset = 0
    index = 0
    parts: list = []  # parts of a split record in progress
    first_offset = 0
    while True:
        header = _read_exact(read, 8)
        if not header:
            if parts:
                raise RecordIOError(source, index, first_offset,
                                    "stream ended inside a split record (no part with cflag 3)")
            return
        if len(header) < 8:
            raise RecordIOError(source, index, offset,
                                f"truncated header: {len(header)} of 8 bytes before end of stream")
        magic, lrecord = _HEADER.unpack(header)
        if magic != MAGIC:
            raise RecordIOError(source, index, offset,
                                f"bad magic 0x{magic:08x} (expected 0x{MAGIC:08x}): {_FIX_HINT}")
        cflag, length = lrecord >> 29, lrecord & MAX_PART_LENGTH
        data = _read_exact(read, length)
        if len(data) < length:
            raise RecordIOError(source, index, offset,
                                f"truncated record: {len(data)} of {length} payload bytes before end of stream")
        pad = -length & 3
        if pad and len(_read_exact(read, pad)) < pad:
            raise RecordIOError(source, index, offset, "truncated record: padding missing at end of stream")
        if cflag == 0 and not parts:
            yield data
            index += 1
        elif cflag == 1 and not parts:
            parts.append(data)
            first_offset = offset
        elif cflag in (2, 3) and parts:
            parts.append(data)
            if cflag == 3:
                yield MAGIC_BYTES.join(parts)
                parts = []
                index += 1
        else:
            state = "inside a split record" if parts else "outside a split record"
            raise RecordIOError(source, index, offset,
                                f"unexpected continuation flag {cflag} ({_FLAG_NAMES.get(cflag, 'invalid')}) "
                                f"{state}: {_FIX_HINT}")
        offset += 8 + length + pad
