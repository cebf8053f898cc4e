"""PipeSource: the FileSource batch contract, from a Pipe-mode stream."""
import io
import json
import threading

import numpy as np
import pytest
from PIL import Image

from seg.data.files import FileSource
from seg.data.label_map import LabelMap
from seg.data.transforms import TrainTransform
from seg.errors import PipeError
from seg.pipe.source import PipeSource
from seg.pipe.fifo import pipe_path
from seg.pipe.feed import feed
from seg.pipe.recordio import pack

TRANSFORM = TrainTransform(base_size=32, crop_size=24, num_classes=3)


@pytest.fixture
def layout(tmp_path):
    """5 pairs (masks store class*10, undone by a {"scale": 10} label map) and their manifest, in stem order."""
    root = tmp_path / "layout"
    for folder in ("train", "train_annotation", "label_map"):
        (root / folder).mkdir(parents=True)
    (root / "label_map" / "train_label_map.json").write_text('{"scale": 10}')
    rng = np.random.default_rng(0)
    lines = []
    for i in range(5):
        size = (30 + i, 40 - i)
        image, mask = root / "train" / f"s{i}.jpg", root / "train_annotation" / f"s{i}.png"
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(image)
        Image.fromarray((rng.integers(0, 3, size) * 10).astype(np.uint8)).save(mask)
        lines.append(json.dumps({"source-ref": str(image), "seg-ref": str(mask)}))
    (root / "train.manifest").write_text("\n".join(lines) + "\n")
    return root


def _capture(fifo_dir, epoch, pairs):
    """A recorded epoch stream as a plain file: the reader treats it like the FIFO."""
    pipe_path(fifo_dir, "train", epoch).write_bytes(b"".join(pack(p) for pair in pairs for p in pair))


def _source(fifo_dir, **kw):
    args = dict(transform=TRANSFORM, batch_size=2, shuffle_buffer=0, seed=3, wait_timeout=30,
                label_map=LabelMap.from_json({"scale": 10}))
    args.update(kw)
    return PipeSource(fifo_dir, "train", **args)


def _pairs(layout):
    return [((layout / "train" / f"s{i}.jpg").read_bytes(), (layout / "train_annotation" / f"s{i}.png").read_bytes())
            for i in range(5)]


def test_unshuffled_pipe_batches_equal_file_batches_over_real_fifos(layout, tmp_path):
    fifo_dir = tmp_path / "fifos"
    fifo_dir.mkdir()
    fed = {}
    feeder = threading.Thread(target=lambda: fed.update(report=feed(
        layout / "train.manifest", fifo_dir, "train", 2, ["source-ref", "seg-ref"], wait_timeout=30)))
    feeder.start()
    files = FileSource(layout, "train", TRANSFORM, batch_size=2, shuffle=False, seed=3)
    pipe = _source(fifo_dir, workers=3)
    for epoch in range(2):
        got, want = list(pipe.epoch(epoch)), list(files.epoch(epoch))
        assert [d.shape for d, _ in got] == [(2, 3, 24, 24), (2, 3, 24, 24), (1, 3, 24, 24)]
        for (data, label), (fdata, flabel) in zip(got, want, strict=True):
            assert data.dtype == np.float32 and label.dtype == flabel.dtype
            np.testing.assert_array_equal(data, fdata)
            np.testing.assert_array_equal(label, flabel)
        assert set(np.unique(np.concatenate([l.ravel() for _, l in got]))) <= {0, 1, 2, 255}
    feeder.join(30)
    assert fed["report"].epochs == 2 and fed["report"].closed_early == []


def test_shuffled_epoch_holds_the_same_samples_in_a_reproducible_new_order(layout, tmp_path):
    for epoch in range(2):
        _capture(tmp_path, epoch, _pairs(layout))
    files = FileSource(layout, "train", TRANSFORM, batch_size=1, shuffle=False, seed=3)
    for epoch in range(2):
        want = [d.tobytes() for d, _ in files.epoch(epoch)]
        order = [want.index(d.tobytes()) for batch, _ in _source(tmp_path, batch_size=1, shuffle_buffer=3)
                 .epoch(epoch) for d in batch]
        assert sorted(order) == list(range(5)) and order != list(range(5))
        again = [want.index(d.tobytes()) for batch, _ in _source(tmp_path, batch_size=1, shuffle_buffer=3)
                 .epoch(epoch) for d in batch]
        assert again == order


def test_drop_last_leaves_out_the_short_batch(layout, tmp_path):
    _capture(tmp_path, 0, _pairs(layout))
    assert [len(d) for d, _ in _source(tmp_path, drop_last=True).epoch(0)] == [2, 2]


@pytest.mark.parametrize("bad, message", [
    (lambda img, mask: (b"<html>error</html>", mask), "image is not a decodable image"),
    (lambda img, mask: (mask, img), "mask has PIL mode 'RGB'"),
    (lambda img, mask: (img, _png(np.zeros((5, 5), np.uint8))), "mask is 5x5"),
    (lambda img, mask: (img, _png(np.full((31, 39), 30, np.uint8))), r"pixel value\(s\) \[3\]"),
])
def test_bad_sample_names_channel_epoch_sample_and_records(layout, tmp_path, bad, message):
    pairs = _pairs(layout)
    pairs[1] = bad(*pairs[1])
    _capture(tmp_path, 0, pairs)  # a source's first epoch reads pipe 0, as after a resume at epoch 4
    with pytest.raises(PipeError, match=r"channel 'train' epoch 4: sample 1 \(records 2 and 3\): .*" + message):
        list(_source(tmp_path).epoch(4))


def _png(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()
