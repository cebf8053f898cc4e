"""`gt2seg import cvat`: CVAT's Segmentation mask 1.1 export, unpacked or zipped -> the layout, CVAT's pixels."""
import json

import numpy as np
import pytest

import archives
import exports
from exports import gt2seg, sides, written


@pytest.mark.parametrize("zipped", [False, True], ids=["folder", "zip"])
def test_import_cvat_reads_the_labelmap_colours_into_classes_and_masks(tmp_path, zipped):
    masks = exports.cvat(tmp_path / "src", zipped=zipped)
    src = tmp_path / "src" / "export.zip" if zipped else tmp_path / "src"
    result = gt2seg("import", "cvat", src, tmp_path / "out", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [(c["name"], c["color"]) for c in report["classes"]] == [("BACKGROUND", "#000000"),
                                                                   ("road", "#804080"), ("car", "#fa3253")]
    got = written(tmp_path / "out")
    assert got.keys() == masks.keys()
    assert all(np.array_equal(mask, masks[name]) for name, mask in got.items())
    if zipped:  # unpacked inside OUT only, and reused while the zip is unchanged
        assert (tmp_path / "out" / ".gt2seg" / "unpacked" / "labelmap.txt").is_file()
        assert sorted(p.name for p in (tmp_path / "src").iterdir()) == ["export.zip"]
        assert json.loads(gt2seg("import", "cvat", src, tmp_path / "out", "--json").stdout)["resumed"] == 5


def test_official_split_takes_the_subset_lists(tmp_path):
    exports.cvat(tmp_path / "src", subsets=("train", "val"))
    result = gt2seg("import", "cvat", tmp_path / "src", tmp_path / "out", "--split", "official", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["splits"] == {"train": 3, "validation": 2}
    assert {n for n, side in sides(tmp_path / "out").items() if side == "validation"} == {
        "frame_000001", "frame_000003"}


def test_official_split_of_a_default_subset_says_what_to_do(tmp_path):
    exports.cvat(tmp_path / "src")
    result = gt2seg("import", "cvat", tmp_path / "src", tmp_path / "out", "--split", "official")
    assert result.returncode == 1
    assert "ImageSets/Segmentation/default.txt: subset 'default' is neither train nor val/validation/test" in \
        result.stderr


def test_a_listed_image_without_its_file_is_refused_or_skipped(tmp_path):
    exports.cvat(tmp_path / "src")
    (tmp_path / "src" / "JPEGImages" / "frame_000002.jpg").unlink()
    refused = gt2seg("import", "cvat", tmp_path / "src", tmp_path / "out")
    assert refused.returncode == 1
    assert "line 3: ImageSets/Segmentation/default.txt:3: frame_000002 has no image in JPEGImages/" in refused.stderr
    skipped = gt2seg("import", "cvat", tmp_path / "src", tmp_path / "out", "--on-error", "skip", "--json")
    assert json.loads(skipped.stdout)["skipped_by_reason"] == {"missing-object": 1}


def test_an_export_without_images_says_how_to_export_them(tmp_path):
    exports.cvat(tmp_path / "src")
    for path in (tmp_path / "src" / "JPEGImages").iterdir():
        path.unlink()
    (tmp_path / "src" / "JPEGImages").rmdir()
    result = gt2seg("import", "cvat", tmp_path / "src", tmp_path / "out")
    assert result.returncode == 1 and not (tmp_path / "out").exists()
    assert "no JPEGImages/ folder (export with 'Save images' on)" in result.stderr


def test_a_malformed_labelmap_line_is_named(tmp_path):
    exports.cvat(tmp_path / "src")
    with open(tmp_path / "src" / "labelmap.txt", "a") as f:
        f.write("tree:12,300,4::\n")
    result = gt2seg("import", "cvat", tmp_path / "src", tmp_path / "out")
    assert result.stderr.strip() == ("Error: labelmap.txt line 5: expected 'name:R,G,B:parts:actions', got "
                                     "'tree:12,300,4::'")


def test_a_zip_member_leading_outside_is_refused_and_nothing_unpacked(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as z:
        z.writestr("labelmap.txt", "background:0,0,0::\n")
        z.writestr("../evil.txt", "x")
    result = gt2seg("import", "cvat", tmp_path / "bad.zip", tmp_path / "out")
    assert result.returncode == 1 and "member '../evil.txt' leads outside the archive's folder" in result.stderr
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / ".gt2seg" / "unpacked").exists()


def test_inspect_tells_cvat_from_voc_and_reads_a_zip(tmp_path):
    exports.cvat(tmp_path / "src")
    exports.cvat(tmp_path / "zipped", zipped=True)
    archives.voc(tmp_path / "voc")
    for src, format in ((tmp_path / "src", "cvat"), (tmp_path / "zipped" / "export.zip", "cvat"),
                        (tmp_path / "voc", "voc")):
        result = gt2seg("inspect", src, "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["format"] == format, src
    assert sorted(p.name for p in (tmp_path / "zipped").iterdir()) == ["export.zip"]


def test_a_zipped_export_on_s3_is_unpacked_into_out(tmp_path, s3, s3_bucket):
    masks = exports.cvat(tmp_path / "src", subsets=("train", "val"), zipped=True)
    s3.put_object(Bucket=s3_bucket, Key="exports/task-12.zip", Body=(tmp_path / "src" / "export.zip").read_bytes())
    src = f"s3://{s3_bucket}/exports/task-12.zip"
    args = ("import", "cvat", src, tmp_path / "out", "--split", "official", "--json")
    result = gt2seg(*args)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["splits"] == {"train": 3, "validation": 2}
    got = written(tmp_path / "out")
    assert got.keys() == masks.keys() and all(np.array_equal(got[n], masks[n]) for n in masks)
    assert json.loads(gt2seg(*args).stdout)["resumed"] == 5  # the same ETag: not unpacked again
