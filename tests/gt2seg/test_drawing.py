"""gt2seg.drawing: masks drawn from shapes equal the reference decoders' pixels (pycocotools, Label Studio's own
brush decoder), and shapes they cannot be are named."""
import numpy as np
import pytest

from gt2seg.classes import IGNORE
from gt2seg.drawing import Drawing, Shape, brush_problem, compressed_counts, decode_brush, polygon_problem, render

from label_studio_converter import brush  # Label Studio's own brush encoder and decoder (the test extra)
from pycocotools import mask as coco  # the importers extra, in the test extra too


def random_masks(count, seed=0):
    rng = np.random.default_rng(seed)
    for n in range(count):
        h, w = rng.integers(1, 60, 2)
        if n % 3 == 0:  # noise: short runs, counts of every size
            yield (rng.random((h, w)) < rng.random()).astype(np.uint8)
        else:  # blobs: long runs
            m = np.zeros((h, w), np.uint8)
            for _ in range(rng.integers(1, 4)):
                y, x = rng.integers(0, h), rng.integers(0, w)
                m[y:y + rng.integers(1, h + 1), x:x + rng.integers(1, w + 1)] = 1
            yield m


def test_compressed_counts_read_pycocotools_strings_exactly():
    for mask in random_masks(200):
        rle = coco.encode(np.asfortranarray(mask))
        counts = compressed_counts(rle["counts"].decode())
        assert sum(counts) == mask.size
        flat = np.repeat(np.arange(len(counts)) % 2, counts).astype(np.uint8)
        assert np.array_equal(flat.reshape(mask.shape[1], mask.shape[0]).T, mask)


def test_compressed_counts_refuse_a_string_that_ends_inside_a_count():
    with pytest.raises(ValueError, match="ends inside a count"):
        compressed_counts("0a")  # 'a' carries the continuation bit
    with pytest.raises(ValueError, match="not in a compressed RLE"):
        compressed_counts("1 2")


def test_brush_rle_decodes_as_label_studios_own_decoder_does():
    rng = np.random.default_rng(1)
    for mask in random_masks(60, seed=2):
        values = np.repeat(mask * 255, 4).astype(np.uint8)
        if rng.random() < 0.5:  # RGB channels that differ from alpha: literal chunks
            values = values.reshape(-1, 4)
            values[:, 0] = rng.integers(0, 256, len(values))
            values = values.reshape(-1)
        rle = bytes(brush.encode_rle(values))
        assert np.array_equal(decode_brush(rle), brush.decode_rle(rle)), mask.shape
        assert np.array_equal(decode_brush(rle), values)


def test_brush_rle_that_ends_early_is_refused():
    rle = bytes(brush.mask2rle(np.full((5, 7), 255, np.uint8)))
    with pytest.raises(ValueError, match="ends after"):
        decode_brush(rle[:-2])
    assert brush_problem(rle, 7, 5) is None
    assert brush_problem(rle, 7, 6) == "brush RLE holds 140 values, its image 7 x 6 x 4 (RGBA) = 168"


def test_polygons_are_pycocotools_fill_and_their_parts_a_union():
    parts = ((1.5, 1.2, 9.9, 2.0, 7.3, 8.8), (12.0, 3.0, 18.0, 3.0, 18.0, 9.0, 12.0, 9.0))
    drawn = render(Drawing(20, 12, (Shape(3, "polygons", parts, "p"),)))
    expected = coco.decode(coco.merge(coco.frPyObjects([list(p) for p in parts], 12, 20)))
    assert np.array_equal(drawn, expected * 3) and drawn.sum() > 0


def test_overlaps_follow_the_rule():
    big = coco.encode(np.asfortranarray(np.pad(np.ones((6, 6), np.uint8), 2)))["counts"].decode()
    small = (3.0, 3.0, 6.0, 3.0, 6.0, 6.0, 3.0, 6.0)
    shapes = (Shape(2, "polygons", (small,), "small"), Shape(1, "rle", big, "big"))
    at = (4, 4)  # inside both
    assert render(Drawing(10, 10, shapes, "later"))[at] == 1
    assert render(Drawing(10, 10, shapes, "smaller"))[at] == 2
    assert render(Drawing(10, 10, shapes, "larger"))[at] == 1
    ignore = render(Drawing(10, 10, shapes, "ignore"))
    assert ignore[at] == IGNORE and ignore[2, 2] == 1 and ignore[0, 0] == 0


def test_polygon_problems_are_named():
    assert polygon_problem([0, 0, 1, 1]) == "a polygon needs at least 3 points, this one has 2"
    assert polygon_problem([0, 0, 1, 1, 2]) == "a polygon has an odd count of coordinates (5)"
    assert polygon_problem([0, 0, 1, "x", 2, 2]).startswith("a polygon must be a list of finite numbers")
    assert polygon_problem([0, 0, 1, float("nan"), 2, 2]).startswith("a polygon must be a list of finite numbers")
    assert polygon_problem([0, 0, 1, True, 2, 2]).startswith("a polygon must be a list of finite numbers")
    assert polygon_problem([0, 0, 5, 0, 5, 5]) is None


def test_rle_in_either_form_draws_pycocotools_decode():
    for n, mask in enumerate(random_masks(60, seed=3)):
        h, w = mask.shape
        rle = coco.encode(np.asfortranarray(mask))
        uncompressed = tuple(compressed_counts(rle["counts"]))
        for data in (rle["counts"].decode(), uncompressed):
            drawn = render(Drawing(w, h, (Shape(7, "rle", data, f"mask {n}"),)))
            assert np.array_equal(drawn, coco.decode(rle) * 7), (n, type(data))
