import json

import numpy as np
import pytest
from PIL import Image

import archives
from gt2seg.convert import ConvertOptions
from gt2seg.errors import ConversionError, SourceError
from gt2seg.importers import import_dataset, read_source
from gt2seg.importers.voc import CLASSES


def written(out):
    return {p.stem: (side, np.asarray(Image.open(p))) for side in ("train", "validation")
            for p in (out / f"{side}_annotation").glob("*.png")}


def test_official_split_keeps_indices_and_255_exactly(tmp_path):
    masks = archives.voc(tmp_path / "voc")
    report = import_dataset("voc", tmp_path / "voc", tmp_path / "out")
    out = written(tmp_path / "out")
    assert {n for n, (side, _) in out.items() if side == "validation"} == set(archives.VOC_VAL)
    assert report.splits == {"train": 4, "validation": 3}
    for name, (_, mask) in out.items():
        assert np.array_equal(mask, masks[name]), name
    classes = json.loads((tmp_path / "out" / "classes.json").read_text())
    assert [c["name"] for c in classes] == ["BACKGROUND", *CLASSES[1:]]
    assert classes[15] == {"index": 15, "name": "person", "color": "#c08080"}


@pytest.mark.parametrize("src", ["", "VOCdevkit", "VOCdevkit/VOC2012"])
def test_src_may_be_the_devkit_or_any_folder_above(tmp_path, src):
    archives.voc(tmp_path / "voc")
    assert len(read_source("voc", tmp_path / "voc" / src).manifest.records) == 7


def test_stratified_split_reads_trainval(tmp_path):
    archives.voc(tmp_path / "voc")
    report = import_dataset("voc", tmp_path / "voc", tmp_path / "out", {"split": "stratified"},
                            ConvertOptions(validation_fraction=0.3))
    assert report.converted == 7 and sum(report.splits.values()) == 7 and report.splits["validation"] > 0


def test_sbd_augmented_masks_come_from_the_list_and_val_stays_validation(tmp_path):
    masks = archives.voc(tmp_path / "voc", sbd=True)
    report = import_dataset("voc", tmp_path / "voc", tmp_path / "out", {"sbd_list": "train_aug.txt"})
    out = written(tmp_path / "out")
    assert report.splits == {"train": 6, "validation": 3}
    assert {n for n, (side, _) in out.items() if side == "train"} == {*archives.VOC_TRAIN, "2011_000001",
                                                                      "2011_000002"}
    assert all(np.array_equal(mask, masks[name]) for name, (_, mask) in out.items())


def test_a_mask_with_an_index_above_20_names_the_file(tmp_path):
    archives.voc(tmp_path / "voc")
    bad = archives.voc_mask(0)
    bad[0, :3] = 21
    path = tmp_path / "voc" / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "2007_000032.png"
    path.write_bytes(archives.png(bad, "P", archives.voc_palette()))
    with pytest.raises(ConversionError, match=r"SegmentationClass/2007_000032.png .*: 21 \(3 px\)"):
        import_dataset("voc", tmp_path / "voc", tmp_path / "out")


def test_an_rgb_mask_is_refused(tmp_path):
    archives.voc(tmp_path / "voc")
    path = tmp_path / "voc" / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "2007_000039.png"
    Image.open(path).convert("RGB").save(path)
    report = import_dataset("voc", tmp_path / "voc", tmp_path / "out", {}, ConvertOptions(on_error="skip"))
    assert report.skipped_by_reason == {"invalid": 1} and "2007_000039.png" in report.skipped[0]["detail"]


def test_a_list_naming_a_missing_mask_is_a_counted_skip_naming_list_and_line(tmp_path):
    archives.voc(tmp_path / "voc")
    (tmp_path / "voc" / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "2007_000042.png").unlink()
    job = read_source("voc", tmp_path / "voc")
    assert [(s.reason, s.detail) for s in job.manifest.skipped] == [
        ("missing-object", "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt:2: "
                           "VOCdevkit/VOC2012/SegmentationClass/2007_000042.png does not exist")]


def test_missing_image_sets_say_which_file_and_layout(tmp_path):
    archives.voc(tmp_path / "voc")
    (tmp_path / "voc" / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "val.txt").unlink()
    with pytest.raises(SourceError, match=r"ImageSets/Segmentation/val.txt does not exist; expected Pascal VOC 2012"):
        read_source("voc", tmp_path / "voc")


def test_an_s3_source_imports_like_a_local_one(tmp_path, s3, s3_bucket):
    masks = archives.voc(tmp_path / "voc")
    remote = import_dataset("voc", archives.upload(s3, s3_bucket, tmp_path / "voc", "datasets/voc"), tmp_path / "remote")
    local = import_dataset("voc", tmp_path / "voc", tmp_path / "local")
    assert remote.splits == local.splits == {"train": 4, "validation": 3}
    assert all(np.array_equal(mask, masks[name]) for name, (_, mask) in written(tmp_path / "remote").items())
