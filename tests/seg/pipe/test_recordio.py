"""RecordIO framing: round trips, dmlc splitting, damage reports, and interop with mxnet.recordio."""
import io
import os
import struct
import subprocess
import sys

import pytest

from seg.pipe.recordio import MAGIC_BYTES, iter_records, pack
from seg.errors import RecordIOError

# payloads that exercise padding (lengths 0..3 mod 4) and splitting (magic at aligned / unaligned offsets)
PAYLOADS = [
    b"",
    b"a",
    b"ab",
    b"abc",
    b"abcd",
    os.urandom(1001),
    MAGIC_BYTES,                                   # the magic alone: two empty parts
    b"xxxx" + MAGIC_BYTES + b"yy",                 # one split
    MAGIC_BYTES + b"1234" + MAGIC_BYTES + MAGIC_BYTES + b"z",  # first, middle (empty), last parts
    b"x" + MAGIC_BYTES + b"yyy",                   # unaligned magic: no split
    b"abcd" * 50 + MAGIC_BYTES,                    # magic at the very end
]


def _stream(payloads):
    buf = io.BytesIO()
    for p in payloads:
        buf.write(pack(p))
    return buf.getvalue()


def test_round_trip_preserves_every_payload_and_order():
    data = _stream(PAYLOADS)
    assert len(data) % 4 == 0
    assert list(iter_records(io.BytesIO(data))) == PAYLOADS


def test_plain_payload_is_one_whole_part_with_zero_padding():
    framed = pack(b"hello")
    magic, lrec = struct.unpack_from("<II", framed)
    assert magic == 0xCED7230A
    assert lrec >> 29 == 0 and lrec & ((1 << 29) - 1) == 5
    assert framed[8:] == b"hello\0\0\0"


def test_payload_with_aligned_magic_is_split_like_dmlc():
    framed = pack(b"xxxx" + MAGIC_BYTES + b"yy")
    first = struct.unpack_from("<II", framed, 0)
    assert first[1] >> 29 == 1 and first[1] & 0xFFFFFFF == 4
    assert framed[8:12] == b"xxxx"
    last = struct.unpack_from("<II", framed, 12)
    assert last == (0xCED7230A, 3 << 29 | 2)
    assert framed[20:] == b"yy\0\0"


def test_unaligned_magic_is_not_split():
    framed = pack(b"x" + MAGIC_BYTES + b"yyy")
    assert struct.unpack_from("<II", framed)[1] == 8
    assert len(framed) == 16


def test_bad_magic_names_record_offset_and_fix():
    data = _stream([b"good", b"also good"])
    second = len(pack(b"good"))
    damaged = data[:second] + b"\xff\xff\xff\xff" + data[second + 4:]
    with pytest.raises(RecordIOError) as err:
        list(iter_records(io.BytesIO(damaged), source="train_0"))
    msg = str(err.value)
    assert err.value.index == 1 and err.value.offset == second
    assert "train_0" in msg and "record 1" in msg and "bad magic" in msg and "application/x-recordio" in msg


def test_jpeg_bytes_instead_of_recordio_is_reported_as_bad_magic():
    with pytest.raises(RecordIOError, match="record 0 at byte 0: bad magic 0xe0ffd8ff"):
        list(iter_records(io.BytesIO(b"\xff\xd8\xff\xe0" + b"\0" * 100)))


@pytest.mark.parametrize("cut, problem", [(3, "truncated header"), (12, "truncated record"),
                                          (18, "padding missing")])
def test_truncation_is_reported(cut, problem):
    data = _stream([b"first", b"0123456789"])  # second record: header at 16, payload 24..34, pad to 36
    start = len(pack(b"first"))
    with pytest.raises(RecordIOError, match=problem) as err:
        list(iter_records(io.BytesIO(data[: start + cut])))
    assert (err.value.index, err.value.offset) == (1, start)


def test_stream_ending_inside_split_record_is_reported():
    framed = pack(b"xxxx" + MAGIC_BYTES + b"yy")
    with pytest.raises(RecordIOError, match="ended inside a split record"):
        list(iter_records(io.BytesIO(framed[:12])))


@pytest.mark.parametrize("cflag", [2, 3, 4, 7])
def test_continuation_without_first_part_is_reported(cflag):
    data = struct.pack("<II", 0xCED7230A, cflag << 29 | 4) + b"abcd"
    with pytest.raises(RecordIOError, match=f"unexpected continuation flag {cflag}"):
        list(iter_records(io.BytesIO(data)))


def test_whole_record_inside_split_record_is_reported():
    data = pack(b"xxxx" + MAGIC_BYTES)[:12] + pack(b"whole")
    with pytest.raises(RecordIOError, match="flag 0 .* inside a split record") as err:
        list(iter_records(io.BytesIO(data)))
    assert err.value.offset == 12


def test_reader_joins_short_reads_from_a_real_pipe():
    """A FIFO/pipe hands out data in arbitrary pieces; the reader must not mistake them for EOF."""
    payloads = [os.urandom(200_000), b"xxxx" + MAGIC_BYTES + b"tail", b"z"]
    writer = subprocess.Popen(
        [sys.executable, "-c",
         "import sys\nfrom seg.pipe.recordio import pack\ndata = sys.stdin.buffer.read()\nout = sys.stdout.buffer\n"
         "for i in range(0, len(data), 997):\n    out.write(data[i:i + 997]); out.flush()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    writer.stdin.write(_stream(payloads))
    writer.stdin.close()
    raw = io.FileIO(writer.stdout.fileno(), closefd=False)  # unbuffered: short reads happen
    assert list(iter_records(raw)) == payloads
    assert writer.wait() == 0


@pytest.mark.mxnet
def test_mxnet_writer_stream_is_read_by_iter_records(tmp_path):
    from mxnet import recordio
    path = str(tmp_path / "mx.rec")
    rec = recordio.MXRecordIO(path, "w")
    for p in PAYLOADS:
        rec.write(p)
    rec.close()
    with open(path, "rb") as f:
        assert list(iter_records(f)) == PAYLOADS
    with open(path, "rb") as f:
        assert f.read() == _stream(PAYLOADS)  # byte-identical framing, splits included


@pytest.mark.mxnet
def test_our_stream_is_read_by_mxnet_reader(tmp_path):
    from mxnet import recordio
    path = tmp_path / "ours.rec"
    path.write_bytes(_stream(PAYLOADS))
    rec = recordio.MXRecordIO(str(path), "r")
    got = []
    while (item := rec.read()) is not None:
        got.append(item)
    rec.close()
    assert got == PAYLOADS


def test_importing_seg_recordio_does_not_import_mxnet():
    code = "import sys, seg.pipe.recordio; assert 'mxnet' not in sys.modules, 'mxnet imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
