"""File-mode data: decoding, label maps (both SageMaker forms), augmentation, batching."""
import io

import numpy as np
import pytest
from PIL import Image

from gt2seg.classes import IGNORE
from seg.errors import DataError
from seg.data.files import FileSource, pair_files
from seg.data.label_map import LabelMap
from seg.data.transforms import TrainTransform, ValTransform, normalize
from seg.data.decode import decode_pair
from synthdata import write_layout


def _png(array, mode=None):
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(h, w):
    buffer = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_decode_pair_returns_rgb_and_single_channel_mask():
    mask = np.array([[0, 1, 255], [2, 1, 0]], np.uint8)
    rgb, decoded = decode_pair(_jpeg(2, 3), _png(mask))
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert decoded.dtype == np.uint8 and (decoded == mask).all()


@pytest.mark.parametrize("image, mask, message", [
    (b"not an image", None, "image is not a decodable image"),
    (None, b"\x89PNG broken", "mask is not a decodable image"),
    (None, "rgb", "mode 'RGB'"),
    (None, "wrong-size", "2x4 but its mask is 5x5"),
])
def test_decode_pair_rejects_bad_inputs_with_a_clear_reason(image, mask, message):
    masks = {None: _png(np.zeros((4, 2), np.uint8)), "rgb": _png(np.zeros((4, 2, 3), np.uint8)),
             "wrong-size": _png(np.zeros((5, 5), np.uint8))}
    with pytest.raises(DataError, match=message):
        decode_pair(image or _jpeg(4, 2), masks.get(mask, mask))


def test_label_map_scale_accepts_int_and_string_and_keeps_ignore():
    encoded = np.array([0, 3, 6, 7, 255], np.uint8)
    for scale in (3, "3"):
        assert LabelMap.from_json({"scale": scale}).apply(encoded).tolist() == [0, 1, 2, 2, 255]


def test_label_map_map_direction_is_class_to_pixel_as_in_the_aws_example():
    # AWS doc: {"map": {"0": 5, "1": 0, "2": 2}} maps encoded [0, 5, 2] to [1, 0, 2]
    label_map = LabelMap.from_json({"map": {"0": 5, "1": 0, "2": 2}})
    assert label_map.apply(np.array([0, 5, 2, 255], np.uint8)).tolist() == [1, 0, 2, 255]


def test_label_map_map_rejects_pixels_it_does_not_name():
    with pytest.raises(DataError, match=r"\[7\] are not in the label map"):
        LabelMap.from_json({"map": {"0": 0, "1": 1}}).apply(np.array([0, 1, 7], np.uint8))


@pytest.mark.parametrize("data", [{}, {"scale": 0}, {"scale": "x"}, {"map": {"0": 1, "1": 1}},
                                  {"map": {"0": 300}}, {"scale": 1, "map": {"0": 0}}, [1]])
def test_malformed_label_maps_are_rejected(data):
    with pytest.raises(DataError):
        LabelMap.from_json(data)


def test_normalize_uses_imagenet_statistics():
    chw = normalize(np.array([[[124, 116, 104]]], np.uint8))
    assert chw.shape == (3, 1, 1) and np.abs(chw).max() < 0.01


def test_train_transform_pads_masks_with_ignore_not_background():
    rgb, mask = np.full((10, 10, 3), 200, np.uint8), np.zeros((10, 10), np.uint8)
    transform = TrainTransform(base_size=10, crop_size=32, num_classes=3)  # scaled image < crop: padding needed
    data, label = transform(rgb, mask, np.random.default_rng(0))
    assert data.shape == (3, 32, 32) and data.dtype == np.float32 and label.dtype == np.int32
    assert (label == IGNORE).any() and (label == 0).any()
    assert (data[:, label == IGNORE] == 0).all()  # padded image = the mean colour
    assert set(np.unique(label)) <= {0, IGNORE}


def test_train_transform_is_deterministic_per_rng_and_varies_across_seeds():
    rgb, mask = (np.random.default_rng(1).integers(0, 255, (40, 60, 3)).astype(np.uint8),
                 np.random.default_rng(2).integers(0, 3, (40, 60)).astype(np.uint8))
    transform = TrainTransform(base_size=40, crop_size=24, num_classes=3)
    a = transform(rgb, mask, np.random.default_rng(5))
    b = transform(rgb, mask, np.random.default_rng(5))
    c = transform(rgb, mask, np.random.default_rng(6))
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all()
    assert not (a[0].shape == c[0].shape and (a[0] == c[0]).all())


def test_val_transform_keeps_the_whole_image_and_pads_to_a_square():
    mask = np.ones((20, 40), np.uint8)
    data, label = ValTransform(size=40, num_classes=2)(np.zeros((20, 40, 3), np.uint8), mask)
    assert data.shape == (3, 40, 40) and (label[:20] == 1).all() and (label[20:] == IGNORE).all()


def test_transforms_reject_labels_beyond_num_classes():
    with pytest.raises(DataError, match=r"\[5\].*num_classes=3"):
        ValTransform(16, 3)(np.zeros((4, 4, 3), np.uint8), np.full((4, 4), 5, np.uint8))


def test_file_source_yields_every_image_once_including_the_tail_batch(tmp_path):
    root = write_layout(tmp_path, n_train=10, n_val=5, size=32)
    source = FileSource(root, "validation", ValTransform(32, 3), batch_size=2)
    batches = list(source.epoch(0))
    assert [b[0].shape[0] for b in batches] == [2, 2, 1] and source.num_batches == 3
    assert batches[0][0].shape == (2, 3, 32, 32) and batches[0][1].shape == (2, 32, 32)


def test_file_source_shuffle_depends_on_seed_and_epoch_not_on_workers(tmp_path):
    root = write_layout(tmp_path, n_train=9, n_val=2, size=32)
    transform = TrainTransform(32, 24, 3)

    def labels(workers, epoch, seed=0):
        source = FileSource(root, "train", transform, 4, shuffle=True, seed=seed, workers=workers)
        return np.concatenate([b[1] for b in source.epoch(epoch)])

    assert (labels(0, 1) == labels(3, 1)).all()
    assert not (labels(0, 1) == labels(0, 2)).all()


def test_file_source_applies_the_label_map_channel(tmp_path):
    root = write_layout(tmp_path, n_train=2, n_val=2, size=32, scale=100)  # pixels 0, 100, 200
    source = FileSource(root, "train", ValTransform(32, 3), batch_size=2)
    stored = [np.asarray(Image.open(root / "train_annotation" / f"train_{i:04d}.png")) for i in range(2)]
    assert set(np.unique(stored)) - {0, 100, 200} == set() and np.max(stored) >= 100  # the map has work to do
    labels = next(source.epoch(0))[1]
    assert np.array_equal(labels, np.stack(stored) // 100)  # each pixel divided by the map's scale, none lost
    (root / "label_map" / "train_label_map.json").unlink()  # no map → scale 1 → 100 is out of range
    with pytest.raises(DataError, match="train_0000.jpg.*num_classes=3"):
        list(FileSource(root, "train", ValTransform(32, 3), batch_size=2).epoch(0))


def test_unpaired_files_are_named(tmp_path):
    root = write_layout(tmp_path, n_train=3, n_val=1, size=16)
    (root / "train_annotation" / "train_0001.png").unlink()
    with pytest.raises(DataError, match="train_0001"):
        pair_files(root / "train", root / "train_annotation")


def test_truncated_training_image_is_refused_even_after_gluoncv_relaxed_pillow():
    import io

    import numpy as np
    from PIL import Image, ImageFile

    from seg.errors import DataError
    from seg.data.decode import decode_pair

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    mask = io.BytesIO()
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(mask, "PNG")
    ImageFile.LOAD_TRUNCATED_IMAGES = True  # what `import gluoncv` does to the whole process
    try:
        with pytest.raises(DataError, match="image is not a decodable image"):
            decode_pair(buf.getvalue()[: len(buf.getvalue()) // 2], mask.getvalue())
        assert ImageFile.LOAD_TRUNCATED_IMAGES  # the process-wide setting is left as it was
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
