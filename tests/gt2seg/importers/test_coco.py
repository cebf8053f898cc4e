"""`gt2seg import coco`: a COCO export as the tools write it -> the layout, masks equal to pycocotools' annToMask."""
import json
import subprocess
import sys

import numpy as np
import pytest

import archives
import exports
from exports import gt2seg, written


@pytest.mark.parametrize("overlap", ["later", "smaller", "ignore"])
def test_import_coco_draws_each_object_as_pycocotools_does_and_paints_by_the_overlap_rule(tmp_path, overlap):
    data = exports.coco(tmp_path / "src")
    result = gt2seg("import", "coco", tmp_path / "src", tmp_path / "out", "--overlap", overlap, "--workers", "2",
                    "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [c["name"] for c in report["classes"]] == exports.CLASSES
    assert report["routes"] == {"drawn": 4}
    expected = exports.coco_reference(data, overlap)
    got = written(tmp_path / "out")
    assert got.keys() == expected.keys() == {"a", "b", "c", "empty"}
    for name in expected:
        assert np.array_equal(got[name], expected[name]), name
    if overlap == "ignore":
        assert (got["a"] == 255).any() and (got["b"] == 255).any()  # the cat/dog overlaps
    else:
        assert not (got["a"] == 255).any()


def test_crowd_regions_can_be_the_ignore_label_and_empty_images_skipped(tmp_path):
    data = exports.coco(tmp_path / "src")
    result = gt2seg("import", "coco", tmp_path / "src", tmp_path / "out", "--crowd", "ignore", "--empty", "skip",
                    "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["skipped_by_reason"] == {"no-annotation": 1} and report["converted"] == 3
    expected = exports.coco_reference(data, "later", crowd="ignore")
    got = written(tmp_path / "out")
    assert set(got) == {"a", "b", "c"}
    assert np.array_equal(got["b"], expected["b"]) and (got["b"] == 255).any()


def test_a_category_named_background_is_index_0_and_two_ids_of_one_name_are_one_class(tmp_path):
    data = exports.coco(tmp_path / "src")
    data["categories"] += [{"id": 40, "name": "Background"}, {"id": 41, "name": "dog"}]
    data["annotations"][1]["category_id"] = 41  # the dog under its second id
    data["annotations"].append({"id": 9, "image_id": 9, "category_id": 40, "iscrowd": 0,
                                "segmentation": [[0, 0, 10, 0, 10, 10]]})
    (tmp_path / "src" / "annotations" / "instances_default.json").write_text(json.dumps(data))
    result = gt2seg("import", "coco", tmp_path / "src", tmp_path / "out", "--json")
    assert result.returncode == 0, result.stderr
    assert [c["name"] for c in json.loads(result.stdout)["classes"]] == exports.CLASSES
    got = written(tmp_path / "out")
    assert np.array_equal(got["a"], exports.coco_reference(data)["a"]) and (got["a"] == 2).any()
    assert not got["empty"].any()


def test_images_are_found_under_the_folder_named_and_the_annotations_file_named(tmp_path):
    exports.coco(tmp_path / "src", images_dir="frames", annotations="labels/coco.json")
    result = gt2seg("import", "coco", tmp_path / "src", tmp_path / "out", "--annotations", "labels/coco.json",
                    "--images", "frames", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["converted"] == 4


def _broken(tmp_path, change):
    data = exports.coco(tmp_path / "src")
    change(data)
    (tmp_path / "src" / "annotations" / "instances_default.json").write_text(json.dumps(data))


BAD = {
    "a polygon of 2 points": (lambda d: d["annotations"][0]["segmentation"].append([1, 1, 5, 5]),
                              "line 1: annotations/instances_default.json: annotation 1 (annotations[0]) on "
                              "street/a.jpg a polygon needs at least 3 points, this one has 2",
                              {"invalid-annotation": 1}),
    "an RLE of another size": (lambda d: d["annotations"][4]["segmentation"].update(size=[10, 10]),
                               "line 3: annotations/instances_default.json: annotation 5 (annotations[4]) on c.jpg "
                               "RLE size [10, 10] (height, width) differs from its image's [36, 48]",
                               {"invalid-annotation": 1}),
    "an unknown image": (lambda d: d["annotations"].append({"id": 77, "image_id": 1234, "category_id": 1,
                                                            "segmentation": [[0, 0, 4, 0, 4, 4]]}),
                         "line 0: annotations/instances_default.json: annotation 77 (annotations[5]) is on image "
                         "1234, which 'images' does not list", {"unknown-image": 1}),
    "an unknown category": (lambda d: d["annotations"][2].update(category_id=3),
                            "line 2: annotations/instances_default.json: annotation 3 (annotations[2]) on b.jpg has "
                            "category 3, which 'categories' does not list", {"unknown-category": 1}),
    "a duplicate image id": (lambda d: d["images"][3].update(id=7),
                             "line 3: annotations/instances_default.json: id 7 is given to images[2], images[3]",
                             {"duplicate-id": 2}),
    "a duplicate file name": (lambda d: d["images"][3].update(file_name="b.jpg"),
                              "line 2: annotations/instances_default.json: file_name 'b.jpg' is given to images[1], "
                              "images[3]", {"duplicate-file": 2}),
    "a missing image file": (lambda d: d["images"].append({"id": 10, "width": 4, "height": 4, "file_name": "x.jpg"}),
                             "line 5: annotations/instances_default.json: images[4] x.jpg is not in SRC, images/ or "
                             "its subset's folder; name the image folder with --images DIR", {"missing-object": 1}),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input_is_refused_naming_the_item_or_skipped_and_counted(tmp_path, case):
    change, message, skipped = BAD[case]
    _broken(tmp_path, change)
    refused = gt2seg("import", "coco", tmp_path / "src", tmp_path / "out")
    assert refused.returncode == 1 and message in refused.stderr, refused.stderr
    assert refused.stderr.startswith("Error: ") and "Traceback" not in refused.stderr
    assert not any((tmp_path / "out").glob("*_annotation"))  # nothing placed
    result = gt2seg("import", "coco", tmp_path / "src", tmp_path / "out", "--on-error", "skip", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["skipped_by_reason"] == skipped
    assert report["converted"] == 4 - sum(skipped.values()) + (1 if case in ("an unknown image",
                                                                               "a missing image file") else 0)


def test_a_compressed_rle_that_does_not_add_up_is_refused_when_drawn(tmp_path):
    _broken(tmp_path, lambda d: d["annotations"][4]["segmentation"].update(counts="PP1"))
    refused = gt2seg("import", "coco", tmp_path / "src", tmp_path / "out")
    assert refused.returncode == 1
    assert ("line 3: annotations/instances_default.json image 7 (c.jpg): annotation 5: compressed RLE counts add up "
            "to") in refused.stderr
    skipped = gt2seg("import", "coco", tmp_path / "src", tmp_path / "out", "--on-error", "skip", "--json")
    assert json.loads(skipped.stdout)["skipped_by_reason"] == {"invalid": 1}


def test_a_file_that_is_not_coco_is_one_line_naming_it(tmp_path):
    archives.write(tmp_path / "src" / "annotations" / "instances_default.json", b'{"images": []}')
    result = gt2seg("import", "coco", tmp_path / "src", tmp_path / "out")
    assert result.returncode == 1 and not (tmp_path / "out").exists()
    assert result.stderr.strip() == ("Error: annotations/instances_default.json: no 'annotations' list; expected "
                                     "a COCO export: an annotations JSON (annotations/instances_*.json, or Label "
                                     "Studio's result.json) listing images, annotations and categories, and the "
                                     "image files")


def test_a_redrawn_item_is_resumed_from_the_cache_until_its_shapes_change(tmp_path):
    data = exports.coco(tmp_path / "src")
    args = ("import", "coco", tmp_path / "src", tmp_path / "out", "--json")
    assert json.loads(gt2seg(*args).stdout)["resumed"] == 0
    assert json.loads(gt2seg(*args).stdout)["resumed"] == 4
    data["annotations"][4]["category_id"] = 1
    (tmp_path / "src" / "annotations" / "instances_default.json").write_text(json.dumps(data))
    again = json.loads(gt2seg(*args).stdout)
    assert again["resumed"] == 3
    assert (written(tmp_path / "out")["c"] == 1).any()


def test_inspect_recognises_a_coco_export(tmp_path):
    exports.coco(tmp_path / "src")
    result = gt2seg("inspect", tmp_path / "src", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["format"], report["items"]) == ("coco", 4)
    assert [c["name"] for c in report["classes"]] == exports.CLASSES


def test_import_coco_reads_an_s3_export(tmp_path, s3, s3_bucket):
    data = exports.coco(tmp_path / "src")
    src = archives.upload(s3, s3_bucket, tmp_path / "src", "exports/coco")
    result = gt2seg("import", "coco", src, tmp_path / "out", "--json")
    assert result.returncode == 0, result.stderr
    expected, got = exports.coco_reference(data), written(tmp_path / "out")
    assert all(np.array_equal(got[name], expected[name]) for name in expected) and len(got) == 4


def test_without_pycocotools_the_import_says_which_extra_brings_it(tmp_path):
    exports.coco(tmp_path / "src")
    code = "import sys; sys.modules['pycocotools'] = None; from gt2seg.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", code, "import", "coco", tmp_path / "src", tmp_path / "out"],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == ("Error: drawing COCO and Label Studio masks needs pycocotools; "
                                                      "from a checkout of gt2seg: pip install -e '.[importers]'")


def test_the_bundled_coco_fixture_imports_with_pycocotools_pixels(tmp_path):
    from repo import ROOT

    src = ROOT / "fixtures" / "coco"
    data = json.loads((src / "annotations" / "instances_default.json").read_text())
    result = gt2seg("import", "coco", src, tmp_path / "out", "--validation-fraction", "0.25", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["splits"] == {"train": 9, "validation": 3}
    assert [c["name"] for c in report["classes"]] == ["BACKGROUND", "building", "tree", "person"]
    from pycocotools.coco import COCO

    api = COCO()
    api.dataset = data
    api.createIndex()
    got = written(tmp_path / "out")
    for image in data["images"]:
        expected = np.zeros((image["height"], image["width"]), np.uint8)
        for ann in api.imgToAnns[image["id"]]:
            expected[api.annToMask(ann) > 0] = {1: 1, 3: 2, 7: 3}[ann["category_id"]]
        assert np.array_equal(got[image["file_name"][:-4]], expected), image["file_name"]


def test_inspect_lists_the_items_an_import_would_refuse_as_problems(tmp_path):
    _broken(tmp_path, lambda d: d["annotations"][2].update(category_id=3))
    result = gt2seg("inspect", tmp_path / "src", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["items"] == 3 and report["problems"] == [
        "line 2: annotations/instances_default.json: annotation 3 (annotations[2]) on b.jpg has category 3, which "
        "'categories' does not list"]


def test_every_subsets_annotations_file_is_read_and_official_split_follows_them(tmp_path):
    """CVAT and Datumaro write one instances_<subset>.json per subset, image ids starting again at 1."""
    train = exports.coco(tmp_path / "src", images_dir="images/train", annotations="annotations/instances_train.json")
    val = exports.coco(tmp_path / "other", images_dir="images/val", annotations="annotations/instances_val.json")
    val["categories"] = [{"id": 2, "name": "dog"}, {"id": 4, "name": "bus"}]  # other ids, one new name
    for ann in val["annotations"]:
        ann["category_id"] = 2
    for image in val["images"]:
        image["file_name"] = "v_" + image["file_name"].replace("/", "_")
        archives.write(tmp_path / "src" / "images" / "val" / image["file_name"], exports.jpeg(image["id"]))
    archives.write(tmp_path / "src" / "annotations" / "instances_val.json", json.dumps(val).encode())
    result = gt2seg("import", "coco", tmp_path / "src", tmp_path / "out", "--split", "official", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["splits"] == {"train": 4, "validation": 4}
    assert [c["name"] for c in report["classes"]] == [*exports.CLASSES, "bus"]
    got = written(tmp_path / "out")
    assert np.array_equal(got["a"], exports.coco_reference(train)["a"])
    assert set(np.unique(got["v_c"])) == {0, 2}  # the val file's category 2 is dog, class 2
    default = gt2seg("import", "coco", tmp_path / "src", tmp_path / "out2", "--split", "official",
                     "--annotations", "annotations/instances_train.json")
    assert default.returncode == 0, default.stderr


def test_official_split_of_a_default_subset_says_what_to_do(tmp_path):
    exports.coco(tmp_path / "src")
    result = gt2seg("import", "coco", tmp_path / "src", tmp_path / "out", "--split", "official")
    assert result.returncode == 1 and result.stderr.strip() == (
        "Error: annotations/instances_default.json: subset 'default' is neither train nor val/validation/test; "
        "--split official needs those (or use --split stratified)")
