"""The converter on real Ground Truth outputs (../shared/realdata, read in place, never copied).

Expected figures are computed here independently with Pillow + numpy, or
taken from the measurements in ../shared/realdata/README.md.
"""
import json

import numpy as np
import pytest
from PIL import Image

from gt2seg.classes import ClassTable
from gt2seg.convert import ConvertOptions, convert
from gt2seg.errors import SplitError
from gt2seg.images import prepare_image
from gt2seg.inspect import inspect_manifest
from gt2seg.manifest import read_manifest
from gt2seg.masks import MaskPolicy, decode_mask, line_entries
from ci_skips import skip_off_ci
from repo import SHARED

REAL = SHARED / "realdata"
if not REAL.is_dir():
    skip_off_ci(f"{REAL} is absent: it lies only beside CI's checkout", "CI must run the real-data tests")
L4V = REAL / "amazon-lookout-for-vision" / "computer-vision-defect-detection"
PCB = REAL / "amazon-lookout-for-vision-image-augmentation-pipeline"
KIT = REAL / "amazon-sagemaker-groundtruth-conversion-kit" / "test" / "data"
L4V_BUCKET = "s3://lookoutvision-us-east-1-0e205be246/getting-started/"


@pytest.fixture(scope="module")
def l4v_layout(module_tmp):
    out = module_tmp("l4v") / "out"
    roots = ((L4V_BUCKET + "mask-images/dummy_anomaly_mask.png", str(L4V / "cookie-dataset" / "dummy_anomaly_mask.png")),
             (L4V_BUCKET, str(L4V / "cookie-dataset" / "dataset-files")))
    report = convert(str(L4V / "train_segmentation.manifest"), out, ConvertOptions(ref_roots=roots, workers=2))
    return out, report


def test_real_gt_palette_mask_is_read_by_index_with_the_measured_counts():
    manifest = read_manifest(str(PCB / "output.manifest"))
    table = ClassTable.build(manifest.records)
    decoded = decode_mask((PCB / "mask.png").read_bytes(), line_entries(manifest.records[0], table), MaskPolicy(),
                          (1696, 959), line=1, ref="mask.png")
    assert decoded.route == "index"
    assert np.bincount(decoded.array.ravel()).tolist() == [1_593_284, 27_558, 2_677, 2_945]
    assert table.names == ["BACKGROUND", "IC", "resistor1", "resistor2"]


def test_real_rgba_png_source_becomes_a_jpeg_of_the_same_size():
    prepared = prepare_image((PCB / "s10.png").read_bytes(), line=1, ref="s10.png")
    assert prepared.reencoded and prepared.size == (1696, 959)
    assert Image.open(__import__("io").BytesIO(prepared.data)).format == "JPEG"


def test_single_line_real_job_is_too_small_to_split(tmp_path):
    mask = "s3://pcbtest22/label/S10-label3/annotations/consolidated-annotation/output/0_2022-09-09T17:25:31.918770.png"
    roots = ((mask, str(PCB / "mask.png")), ("s3://pcbtest22/label/", str(PCB)))
    with pytest.raises(SplitError, match="at least 2 distinct images"):
        convert(str(PCB / "output.manifest"), tmp_path / "out", ConvertOptions(ref_roots=roots))


def test_palette_with_an_unused_class_colour_decodes_by_index():
    # The conversion kit's mask: index 3 (#ff7f0e) is in the palette but on no pixel.
    from gt2seg.masks import Entry

    entries = (Entry(0, 0, 0xFFFFFF), Entry(1, 1, 0x2CA02C), Entry(2, 2, 0x1F77B4), Entry(3, 3, 0xFF7F0E))
    decoded = decode_mask((KIT / "img1_annotated.png").read_bytes(), entries, MaskPolicy(), (800, 600),
                          line=1, ref="img1_annotated.png")
    assert decoded.route == "index"
    assert np.bincount(decoded.array.ravel(), minlength=4).tolist() == [389_719, 59_886, 30_395, 0]


def test_lookout_for_vision_manifest_picks_the_mask_attribute_and_joins_classes_by_name():
    report = inspect_manifest(str(L4V / "train_segmentation.manifest"))
    assert report.chosen == ["anomaly-mask-ref"] and report.labeled == 63
    assert [c["name"] for c in report.classes] == ["BACKGROUND", "cracked"]
    assert report.classes[1]["color"] == "#23a436"  # uppercase in the manifest


def test_lookout_for_vision_masks_respect_alpha(l4v_layout):
    out, report = l4v_layout
    src = np.asarray(Image.open(L4V / "cookie-dataset" / "dataset-files" / "mask-images" / "anomaly-1.png")
                     .convert("RGBA"))
    opaque_class = (src[..., 3] >= 128) & (src[..., :3] == (0x23, 0xA4, 0x36)).all(axis=-1)
    invisible_class = (src[..., 3] == 0) & (src[..., :3] == (0x23, 0xA4, 0x36)).all(axis=-1)
    assert invisible_class.sum() == 1074  # measured in ../shared/realdata/README.md
    converted = np.asarray(Image.open(next(out.glob("*_annotation/anomaly-1.png"))))
    assert np.array_equal(converted == 1, opaque_class)


def test_lookout_for_vision_normal_line_dummy_mask_is_expanded_to_the_image(l4v_layout):
    out, report = l4v_layout
    mask = Image.open(next(out.glob("*_annotation/normal-1.png")))
    assert mask.size == (576, 768) and np.asarray(mask).max() == 0
    assert report.expanded_masks == 1


def test_lookout_for_vision_missing_source_images_are_skipped_not_fatal(l4v_layout):
    out, report = l4v_layout
    assert report.converted == 2 and report.skipped_by_reason == {"missing-object": 61}
    source = (L4V / "cookie-dataset" / "dataset-files" / "training-images" / "anomaly-1.jpg").read_bytes()
    assert next(out.glob("*/anomaly-1.jpg")).read_bytes() == source  # JPEG kept byte for byte
    assert json.loads((out / "classes.json").read_text())[1]["name"] == "cracked"


def test_relative_refs_in_the_template_manifest_resolve_against_its_folder(tmp_path):
    manifest = L4V / "cookie-dataset" / "dataset-files" / "manifests" / "template.manifest"
    # Its refs are relative to dataset-files/, one level above the manifest: map them explicitly.
    options = ConvertOptions(ref_roots=(("training-images/", str(manifest.parent.parent / "training-images")),
                                        ("mask-images/", str(manifest.parent.parent / "mask-images"))))
    # anomaly-1 is the only labeled line whose image is in realdata: found, then too few to split.
    with pytest.raises(SplitError, match="^1 usable image"):
        convert(str(manifest), tmp_path / "out", options)
