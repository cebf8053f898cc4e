import json

import numpy as np
import pytest
from PIL import Image

import archives
from gt2seg.classes import IGNORE
from gt2seg.convert import ConvertOptions
from gt2seg.errors import ConversionError, SourceError
from gt2seg.importers import import_dataset, read_source

BREEDS = ["BACKGROUND", "Abyssinian", "american_bulldog", "Bengal"]
SPECIES_OF = {"Abyssinian": "cat", "american_bulldog": "dog", "Bengal": "cat"}


def masks_of(out):
    return {p.stem: np.asarray(Image.open(p)) for side in ("train", "validation")
            for p in (out / f"{side}_annotation").glob("*.png")}


def expected(trimap, pet, border, border_class):
    target = {"ignore": IGNORE, "pet": pet, "background": 0, "class": border_class}[border]
    lut = np.zeros(256, np.uint8)
    lut[1], lut[2], lut[3] = pet, 0, target
    return lut[trimap]


@pytest.mark.parametrize("border", ["ignore", "pet", "background", "class"])
@pytest.mark.parametrize("classes", ["binary", "species", "breed"])
def test_every_classes_and_border_choice_writes_the_exact_mask(tmp_path, classes, border):
    trimaps = archives.pets(tmp_path / "pets")
    report = import_dataset("pets", tmp_path / "pets", tmp_path / "out", {"classes": classes, "border": border},
                            ConvertOptions(validation_fraction=0.25))
    names = {"binary": ["BACKGROUND", "pet"], "species": ["BACKGROUND", "cat", "dog"], "breed": BREEDS}[classes]
    names = names + (["border"] if border == "class" else [])
    assert [c["name"] for c in json.loads((tmp_path / "out" / "classes.json").read_text())] == names
    written = masks_of(tmp_path / "out")
    assert sorted(written) == sorted(trimaps) and report.converted == len(trimaps)
    for name, mask in written.items():
        breed = name.rsplit("_", 1)[0]
        pet = names.index({"binary": "pet", "species": SPECIES_OF[breed], "breed": breed}[classes])
        assert np.array_equal(mask, expected(trimaps[name], pet, border, len(names) - 1)), name


def test_the_official_split_follows_trainval_and_test(tmp_path):
    archives.pets(tmp_path / "pets")
    report = import_dataset("pets", tmp_path / "pets", tmp_path / "out", {"split": "official"})
    validation = {p.stem for p in (tmp_path / "out" / "validation").glob("*.jpg")}
    assert validation == archives.PETS_TEST and report.splits == {"train": 6, "validation": 3}


def test_the_stratified_split_is_seeded_and_takes_the_fraction(tmp_path):
    archives.pets(tmp_path / "pets")
    first = import_dataset("pets", tmp_path / "pets", tmp_path / "a", {}, ConvertOptions(validation_fraction=0.34))
    again = import_dataset("pets", tmp_path / "pets", tmp_path / "b", {}, ConvertOptions(validation_fraction=0.34))
    assert first.splits == again.splits and first.splits["validation"] == 3
    assert ({p.name for p in (tmp_path / "a" / "validation").iterdir()}
            == {p.name for p in (tmp_path / "b" / "validation").iterdir()})


def test_archive_quirks_are_counted_skips_or_rgb_jpegs_never_a_crash(tmp_path):
    archives.pets(tmp_path / "pets", quirks=True)
    report = import_dataset("pets", tmp_path / "pets", tmp_path / "out", {"split": "official"})
    assert report.skipped_by_reason == {"no-trimap": 1, "resource-fork": 2, "unlisted": 1}
    assert report.converted == 12 and report.reencoded_images == 3  # CMYK, greyscale, PNG named .jpg
    for name in ("Bengal_8", "Bengal_9", "Bengal_10"):
        side = "validation" if name in archives.PETS_TEST else "train"
        image = Image.open(tmp_path / "out" / side / f"{name}.jpg")
        assert (image.format, image.mode) == ("JPEG", "RGB")
    assert any("Bengal_7" in s["detail"] for s in report.skipped)


def test_reports_manifests_and_channels_are_convert_s(tmp_path):
    archives.pets(tmp_path / "pets")
    import_dataset("pets", tmp_path / "pets", tmp_path / "out", {}, ConvertOptions(s3_prefix="s3://b/pets"))
    out = tmp_path / "out"
    line = json.loads((out / "train.manifest").read_text().splitlines()[0])
    assert set(line) == {"source-ref", "pets-ref"} and line["source-ref"].startswith("s3://b/pets/train/")
    assert json.loads((out / "channels.json").read_text())[0]["ChannelName"] == "train"
    assert json.loads((out / "report.json").read_text())["manifest"] == str((tmp_path / "pets").resolve())


def test_a_trimap_value_outside_1_2_3_names_the_file(tmp_path):
    archives.pets(tmp_path / "pets")
    bad = archives.trimap(0)
    bad[0, 0] = 7
    (tmp_path / "pets" / "annotations" / "trimaps" / "Abyssinian_1.png").write_bytes(archives.png(bad))
    with pytest.raises(ConversionError, match=r"annotations/trimaps/Abyssinian_1.png .*: 7 \(1 px\)"):
        import_dataset("pets", tmp_path / "pets", tmp_path / "out")
    assert not (tmp_path / "out" / "train").exists()
    report = import_dataset("pets", tmp_path / "pets", tmp_path / "out", {}, ConvertOptions(on_error="skip"))
    assert report.skipped_by_reason == {"invalid": 1} and report.converted == 8


def test_a_missing_list_file_says_which_and_the_expected_layout(tmp_path):
    archives.pets(tmp_path / "pets")
    (tmp_path / "pets" / "annotations" / "test.txt").unlink()
    with pytest.raises(SourceError, match=r"annotations/test.txt does not exist; expected the Oxford-IIIT Pet"):
        read_source("pets", tmp_path / "pets", {"split": "official"})
    read_source("pets", tmp_path / "pets", {"split": "stratified"})


def test_a_malformed_list_row_names_its_line(tmp_path):
    archives.pets(tmp_path / "pets")
    with open(tmp_path / "pets" / "annotations" / "list.txt", "a") as f:
        f.write("Bengal_40 6 3 2\n")
    with pytest.raises(SourceError, match=r"annotations/list.txt line 16: expected 'Image CLASS-ID SPECIES"):
        read_source("pets", tmp_path / "pets")


def test_a_list_naming_a_missing_image_is_a_counted_skip(tmp_path):
    archives.pets(tmp_path / "pets")
    (tmp_path / "pets" / "images" / "Bengal_5.jpg").unlink()
    job = read_source("pets", tmp_path / "pets")
    assert [(s.reason, s.detail) for s in job.manifest.skipped] == [
        ("missing-object", "images/Bengal_5.jpg is listed in annotations/list.txt but does not exist")]


def test_a_link_leading_outside_src_is_refused(tmp_path):
    archives.pets(tmp_path / "pets")
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(archives.jpeg(1))
    target = tmp_path / "pets" / "images" / "Bengal_5.jpg"
    target.unlink()
    target.symlink_to(outside)
    with pytest.raises(ConversionError, match=r"images/Bengal_5.jpg' leads outside .* through a symbolic link"):
        import_dataset("pets", tmp_path / "pets", tmp_path / "out")


def test_an_s3_source_imports_like_a_local_one(tmp_path, s3, s3_bucket):
    archives.pets(tmp_path / "pets")
    src = archives.upload(s3, s3_bucket, tmp_path / "pets", "datasets/pets")
    remote = import_dataset("pets", src, tmp_path / "remote", {"split": "official"})
    local = import_dataset("pets", tmp_path / "pets", tmp_path / "local", {"split": "official"})
    assert remote.splits == local.splits and remote.pixels_per_class == local.pixels_per_class
    assert masks_of(tmp_path / "remote").keys() == masks_of(tmp_path / "local").keys()


def test_official_shards_merge_into_the_one_run_layout(tmp_path):
    from gt2seg.merge import merge_shards

    archives.pets(tmp_path / "pets")
    whole = import_dataset("pets", tmp_path / "pets", tmp_path / "whole", {"split": "official"})
    for i in range(2):
        import_dataset("pets", tmp_path / "pets", tmp_path / f"shard{i}", {"split": "official"},
                       ConvertOptions(shard=(i, 2)))
    merged = merge_shards([tmp_path / "shard0", tmp_path / "shard1"], tmp_path / "merged")
    assert merged.splits == whole.splits and merged.pixels_per_class == whole.pixels_per_class
    for side in ("train", "validation"):
        assert ({p.name for p in (tmp_path / "merged" / side).iterdir()}
                == {p.name for p in (tmp_path / "whole" / side).iterdir()})
