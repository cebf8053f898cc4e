"""Pipe mode plumbing over real FIFOs: the `seg pipe-feed` process feeds, this process reads."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from seg.errors import PipeError, PipeTimeout
from seg.data.batching import shuffled as _shuffled
from seg.pipe.fifo import iter_pairs, pipe_path, wait_timeout_default
from seg.pipe.recordio import MAGIC_BYTES, pack

SEG = str(Path(sys.executable).parent / "seg")
ATTRS = "source-ref,labels-ref"


def _manifest(tmp_path, payloads, name="train.manifest"):
    """payloads: [(image bytes, mask bytes)] written as files; returns the manifest path."""
    lines = []
    for i, (image, mask) in enumerate(payloads):
        (tmp_path / f"img{i}.bin").write_bytes(image)
        (tmp_path / f"mask{i}.bin").write_bytes(mask)
        lines.append(json.dumps({"source-ref": str(tmp_path / f"img{i}.bin"),
                                 "labels-ref": str(tmp_path / f"mask{i}.bin"), "labels-ref-metadata": {}}))
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _feeder(manifest, fifo_dir, *args, epochs=2, timeout="30"):
    return subprocess.Popen([SEG, "pipe-feed", str(manifest), "--fifo-dir", str(fifo_dir), "--channel", "train",
                             "--epochs", str(epochs), "--attribute-names", ATTRS, "--wait-timeout", timeout,
                             "--json", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def fifo_dir(tmp_path):
    path = tmp_path / "data"
    path.mkdir()
    return path


def test_feeder_process_streams_each_epoch_in_manifest_order_and_removes_its_fifos(tmp_path, fifo_dir):
    payloads = [(os.urandom(70_001), b"mask-0"),
                (b"JPEG" + MAGIC_BYTES + os.urandom(5000), b"m1" + MAGIC_BYTES),  # split records on the wire
                (b"", os.urandom(3))]
    feeder = _feeder(_manifest(tmp_path, payloads), fifo_dir)
    for epoch in range(2):
        got = list(iter_pairs(fifo_dir, "train", epoch, wait_timeout=30))
        assert got == [(i, image, mask) for i, (image, mask) in enumerate(payloads)]
    out, err = feeder.communicate(timeout=60)
    assert feeder.returncode == 0, err
    report = json.loads(out)
    assert report["epochs"] == 2 and report["lines"] == 3 and report["records_per_epoch"] == 6
    assert report["bytes_written"] == 2 * sum(len(pack(p)) for pair in payloads for p in pair)
    assert report["closed_early"] == []
    assert list(fifo_dir.iterdir()) == []


def test_reader_closing_an_epoch_early_lets_the_feeder_move_on(tmp_path, fifo_dir):
    payloads = [(os.urandom(1 << 20), b"m%d" % i) for i in range(8)]  # far more than the pipe buffers
    feeder = _feeder(_manifest(tmp_path, payloads), fifo_dir)
    first = iter_pairs(fifo_dir, "train", 0, wait_timeout=30)
    assert next(first)[1] == payloads[0][0]
    first.close()
    assert [image for _, image, _ in iter_pairs(fifo_dir, "train", 1, wait_timeout=30)] == [p[0] for p in payloads]
    out, err = feeder.communicate(timeout=60)
    assert feeder.returncode == 0, err
    assert json.loads(out)["closed_early"] == [0]


def test_pipe_that_never_appears_times_out_naming_pipe_and_epoch(fifo_dir):
    with pytest.raises(PipeTimeout, match=r"train_3 did not appear within 0.2 s.*at least 4 epoch"):
        list(iter_pairs(fifo_dir, "train", 3, wait_timeout=0.2))


def test_fifo_whose_writer_never_comes_times_out_instead_of_hanging(fifo_dir):
    os.mkfifo(pipe_path(fifo_dir, "validation", 0))
    with pytest.raises(PipeTimeout, match=r"validation_0: no data from the writer for 0.3 s"):
        list(iter_pairs(fifo_dir, "validation", 0, wait_timeout=0.3))


@pytest.mark.parametrize("stream, message", [
    (pack(b"img0") + pack(b"mask0") + pack(b"img1"),
     r"channel 'train' epoch 2: odd record count: record 2 .*AttributeNames must list exactly two"),
    (pack(b"img0") + b"\x89PNG\r\n\x1a\n",
     r"record 1 at byte 12: bad magic 0x474e5089 .*application/x-recordio.*\(epoch 2\)"),
    (pack(b"img0") + pack(b"mask0")[:10],
     r"record 1 at byte 12: truncated record: 2 of 5 payload bytes.*\(epoch 2\)"),
])
def test_damaged_stream_is_reported_with_record_and_epoch(fifo_dir, stream, message):
    pipe_path(fifo_dir, "train", 2).write_bytes(stream)  # a replayed capture reads like a pipe
    with pytest.raises(PipeError, match=message):
        list(iter_pairs(fifo_dir, "train", 2, wait_timeout=5))


def test_feeder_rejects_a_misspelled_attribute_before_creating_any_fifo(tmp_path, fifo_dir):
    manifest = _manifest(tmp_path, [(b"a", b"b"), (b"c", b"d")])
    lines = manifest.read_text().splitlines()
    lines[1] = lines[1].replace('"labels-ref"', '"lables-ref"')
    manifest.write_text("\n".join(lines) + "\n")
    feeder = _feeder(manifest, fifo_dir)
    _, err = feeder.communicate(timeout=60)
    assert feeder.returncode == 1
    assert "line 2: no attribute 'labels-ref' (did you mean 'lables-ref'?)" in err
    assert list(fifo_dir.iterdir()) == []


def test_feeder_without_a_reader_times_out_and_removes_its_fifo(tmp_path, fifo_dir):
    feeder = _feeder(_manifest(tmp_path, [(b"a", b"b")]), fifo_dir, timeout="0.3")
    _, err = feeder.communicate(timeout=60)
    assert feeder.returncode == 1
    assert "no reader opened" in err and "train_0" in err
    assert list(fifo_dir.iterdir()) == []


def test_missing_object_fails_both_feeder_and_reader(tmp_path, fifo_dir):
    manifest = _manifest(tmp_path, [(b"a", b"b"), (b"c", b"d"), (b"e", b"f")])
    (tmp_path / "img1.bin").unlink()
    feeder = _feeder(manifest, fifo_dir)
    with pytest.raises(PipeError, match=r"channel 'train' epoch 0: the feeder aborted the stream at record 2"):
        list(iter_pairs(fifo_dir, "train", 0, wait_timeout=30))
    _, err = feeder.communicate(timeout=60)
    assert feeder.returncode == 1
    assert "manifest line 2:" in err and "img1.bin does not exist" in err
    assert list(fifo_dir.iterdir()) == []


def test_missing_object_after_blank_lines_names_the_files_line_number(tmp_path, fifo_dir):
    manifest = _manifest(tmp_path, [(b"a", b"b"), (b"c", b"d")])
    first, second = manifest.read_text().splitlines()
    manifest.write_text(f"{first}\n\n\n{second}\n")
    (tmp_path / "img1.bin").unlink()
    feeder = _feeder(manifest, fifo_dir)
    with pytest.raises(PipeError, match="the feeder aborted the stream at record 2"):
        list(iter_pairs(fifo_dir, "train", 0, wait_timeout=30))
    _, err = feeder.communicate(timeout=60)
    assert feeder.returncode == 1
    assert "manifest line 4:" in err and "img1.bin does not exist" in err


def test_terminated_feeder_removes_its_fifo(tmp_path, fifo_dir):
    feeder = _feeder(_manifest(tmp_path, [(b"a", b"b")]), fifo_dir)
    fifo = pipe_path(fifo_dir, "train", 0)
    deadline = time.monotonic() + 30
    while not fifo.exists() and time.monotonic() < deadline:  # wait for a state, not for time
        time.sleep(0.01)
    assert fifo.exists()
    feeder.send_signal(signal.SIGTERM)
    feeder.communicate(timeout=60)
    assert feeder.returncode == 143
    assert not fifo.exists()


def test_shuffle_buffer_permutes_with_bounded_lookahead_and_is_reproducible():
    items, size = list(range(1000)), 16
    out = list(_shuffled(iter(items), size, np.random.default_rng([5, 0])))
    assert sorted(out) == items and out != items
    # an item can only leave once at most `size` later items were read: memory stays bounded
    assert all(item <= position + size for position, item in enumerate(out))
    assert out == list(_shuffled(iter(items), size, np.random.default_rng([5, 0])))
    assert out != list(_shuffled(iter(items), size, np.random.default_rng([5, 1])))


def test_wait_timeout_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SEG_PIPE_WAIT_TIMEOUT", "12.5")
    assert wait_timeout_default() == 12.5
    monkeypatch.setenv("SEG_PIPE_WAIT_TIMEOUT", "soon")
    with pytest.raises(PipeError, match="SEG_PIPE_WAIT_TIMEOUT='soon' is not a number"):
        wait_timeout_default()


def test_feeder_reads_manifest_and_objects_from_s3(s3, s3_bucket, fifo_dir):
    payloads = [(b"image-%d" % i + MAGIC_BYTES, b"mask-%d" % i) for i in range(3)]
    lines = []
    for i, (image, mask) in enumerate(payloads):
        s3.put_object(Bucket=s3_bucket, Key=f"img/{i}.jpg", Body=image)
        s3.put_object(Bucket=s3_bucket, Key=f"ann/{i}.png", Body=mask)
        lines.append(json.dumps({"source-ref": f"s3://{s3_bucket}/img/{i}.jpg",
                                 "labels-ref": f"s3://{s3_bucket}/ann/{i}.png"}))
    s3.put_object(Bucket=s3_bucket, Key="train.manifest", Body="\n".join(lines).encode())
    feeder = _feeder(f"s3://{s3_bucket}/train.manifest", fifo_dir, epochs=1)  # inherits the AWS_* of s3_server
    assert list(iter_pairs(fifo_dir, "train", 0, wait_timeout=30)) == [(i, *p) for i, p in enumerate(payloads)]
    _, err = feeder.communicate(timeout=60)
    assert feeder.returncode == 0, err


def test_feeder_refuses_an_existing_pipe_and_leaves_it_alone(tmp_path, fifo_dir):
    stale = pipe_path(fifo_dir, "train", 0)
    stale.write_bytes(b"someone else's")
    feeder = _feeder(_manifest(tmp_path, [(b"a", b"b")]), fifo_dir)
    _, err = feeder.communicate(timeout=60)
    assert feeder.returncode == 1
    assert "train_0 already exists (a file)" in err
    assert stale.read_bytes() == b"someone else's"
