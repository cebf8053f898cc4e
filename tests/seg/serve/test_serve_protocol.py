"""Content negotiation, image decoding limits, mask PNGs and batch settings: the pure parts of seg.serve."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from seg.serve.protocol import PNG, PROTOBUF, RECORDIO_PROTOBUF, decode_image, execution_parameters, request_type, response_type
from seg.errors import ClientError, ServeConfigError
from gt2seg.classes import palette_for
from gt2seg.png import encode_indexed
from seg.serve.app import encode_mask_png


def image_bytes(array, fmt, **kw):
    out = io.BytesIO()
    Image.fromarray(array).save(out, format=fmt, **kw)
    return out.getvalue()


def png_header_only(width, height):
    """A PNG whose header claims width x height but holds no pixel data (a 'decompression bomb' probe)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("accept, expected", [
    (None, PNG), ("", PNG), ("*/*", PNG), ("image/*", PNG), ("image/png", PNG), ("IMAGE/PNG; q=1", PNG),
    ("application/x-recordio-protobuf", RECORDIO_PROTOBUF), ("application/x-protobuf", PROTOBUF),
    ("application/*", RECORDIO_PROTOBUF), ("text/html, application/x-protobuf", PROTOBUF),
    ("image/png;q=0.2, application/x-protobuf;q=0.9", PROTOBUF),
    ("application/x-protobuf;q=0.5, image/png;q=0.5", PROTOBUF),  # equal q: the first listed wins
    ("image/png;q=0, */*;q=0.1", PNG),
])
def test_accept_header_picks_the_response_type(accept, expected):
    assert response_type(accept) == expected


@pytest.mark.parametrize("accept", ["application/json", "text/csv, text/html", "image/png;q=0", "image/jpeg"])
def test_unsupported_accept_is_406_naming_the_supported_types(accept):
    with pytest.raises(ClientError) as err:
        response_type(accept)
    assert err.value.status == 406 and "image/png" in err.value.message and accept in err.value.message


@pytest.mark.parametrize("content_type, media", [("image/jpeg", "image/jpeg"), ("image/png", "image/png"),
                                                 ("application/x-image", "application/x-image"),
                                                 ("Image/JPEG; x=1", "image/jpeg"), (" image/png ;charset=x", "image/png")])
def test_image_content_types_are_accepted_as_their_media_type(content_type, media):
    assert request_type(content_type) == media


@pytest.mark.parametrize("content_type", [None, "", "application/json", "text/csv", "image/gif"])
def test_other_content_types_are_415(content_type):
    with pytest.raises(ClientError) as err:
        request_type(content_type)
    assert err.value.status == 415 and "image/jpeg" in err.value.message


def test_decode_image_returns_rgb_of_the_input_size_for_jpeg_png_gray_and_rgba():
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_image(image_bytes(rgb, "PNG"), 10_000), rgb)
    assert decode_image(image_bytes(rgb, "JPEG"), 10_000).shape == (48, 64, 3)
    gray = decode_image(image_bytes(rgb[..., 0], "PNG"), 10_000)
    np.testing.assert_array_equal(gray, np.repeat(rgb[..., :1], 3, axis=2))
    rgba = np.zeros((48, 64, 4), dtype=np.uint8)  # fully transparent: white, as gt2seg flattens training images
    assert (decode_image(image_bytes(rgba, "PNG"), 10_000) == 255).all()


@pytest.mark.parametrize("body, needle", [
    (b"", "empty"), (b"not an image at all", "not a decodable JPEG or PNG"),
    (image_bytes(np.zeros((8, 8, 3), np.uint8), "GIF"), "not a decodable JPEG or PNG"),
    (image_bytes(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8), "PNG")[:3000],
     "corrupt or truncated"),
])
def test_empty_undecodable_or_truncated_bodies_are_400(body, needle):
    with pytest.raises(ClientError) as err:
        decode_image(body, 10_000)
    assert err.value.status == 400 and needle in err.value.message


def test_images_over_the_pixel_limit_are_413_before_decoding():
    with pytest.raises(ClientError) as err:
        decode_image(png_header_only(5000, 4000), 4096 * 4096)
    assert err.value.status == 413 and "5000x4000" in err.value.message
    with pytest.raises(ClientError) as err:  # past PIL's own decompression-bomb guard too
        decode_image(png_header_only(100_000, 100_000), 4096 * 4096)
    assert err.value.status == 413 and "pixel limit" in err.value.message
    body = image_bytes(np.zeros((48, 64, 3), np.uint8), "PNG")
    assert decode_image(body, 64 * 48).shape == (48, 64, 3)
    with pytest.raises(ClientError, match="over the limit of 3071"):
        decode_image(body, 64 * 48 - 1)


def test_mask_png_is_single_channel_class_indices_with_the_class_palette():
    mask = np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) % 3
    classes = [{"index": 0, "name": "BACKGROUND", "color": "#ffffff"},
               {"index": 1, "name": "road", "color": "#ff0000"}, {"index": 2, "name": "car", "color": "#0a0b0c"}]
    image = Image.open(io.BytesIO(encode_mask_png(mask.astype(np.uint8), classes)))
    assert image.format == "PNG" and image.mode == "P" and image.size == (64, 48)
    np.testing.assert_array_equal(np.asarray(image), mask)
    assert image.getpalette()[:9] == [255, 255, 255, 255, 0, 0, 10, 11, 12]


def test_a_served_mask_is_the_same_png_as_a_converted_one():
    classes = [{"index": 0, "name": "BACKGROUND", "color": "#ffffff"}, {"index": 1, "name": "road", "color": "#ff0000"}]
    mask = np.random.default_rng(1).integers(0, 2, (48, 64))  # int64, as a predictor's argmax
    assert encode_mask_png(mask, classes) == encode_indexed(mask.astype(np.uint8), palette_for(classes))


def test_execution_parameters_default_to_six_mb_single_record_and_one_transform_per_worker():
    params = execution_parameters({}, workers=3)
    assert params.to_json() == {"MaxConcurrentTransforms": 3, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 6}


def test_execution_parameters_honour_the_sagemaker_variables():
    env = {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "10", "SAGEMAKER_BATCH_STRATEGY": "multi_record",
           "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "4"}
    assert execution_parameters(env, workers=1).to_json() == {
        "MaxConcurrentTransforms": 4, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 10}


@pytest.mark.parametrize("name, value", [("SAGEMAKER_MAX_PAYLOAD_IN_MB", "0"), ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "6MB"),
                                         ("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", "-1"),
                                         ("SAGEMAKER_BATCH_STRATEGY", "BATCHED")])
def test_bad_sagemaker_variables_are_rejected_by_name(name, value):
    with pytest.raises(ServeConfigError, match=name):
        execution_parameters({name: value}, workers=1)
