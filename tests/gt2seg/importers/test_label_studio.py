"""`gt2seg import label-studio`: a JSON export with brush strokes and polygons -> the layout, with Label Studio's
own brush decoder's pixels and pycocotools' polygon fill."""
import json

import numpy as np
import pytest

import archives
import exports
from exports import gt2seg, written

NAMES = {1: "5e1f2a3b-a", 2: "9c8d7e6f-b_c", 4: "1a1b1c1d-e", 5: "f"}  # task id -> output name (the file's stem)


@pytest.mark.parametrize("annotation", ["ground-truth", "latest"])
def test_import_label_studio_draws_brush_and_polygons_as_label_studio_and_pycocotools_do(tmp_path, annotation):
    tasks = exports.label_studio(tmp_path / "src", local_files=tmp_path / "ls-files")
    result = gt2seg("import", "label-studio", tmp_path / "src", tmp_path / "out", "--annotation", annotation,
                    "--ref-root", f"/data/local-files/={tmp_path / 'ls-files'}/", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [c["name"] for c in report["classes"]] == exports.LS_CLASSES
    assert report["skipped_by_reason"] == {"unlabeled": 1}  # the task whose one annotation was cancelled
    expected = {NAMES[tid]: mask for tid, mask in exports.label_studio_reference(tasks, annotation).items()}
    got = written(tmp_path / "out")
    assert got.keys() == expected.keys()
    for name in expected:
        assert np.array_equal(got[name], expected[name]), name
    assert (got["5e1f2a3b-a"] == 1).any() and (got["5e1f2a3b-a"] == 2).any()
    assert set(np.unique(got["9c8d7e6f-b_c"])) == ({0, 2} if annotation == "ground-truth" else {0, 1})
    assert not got["1a1b1c1d-e"].any()  # an annotation without results: background


def test_a_task_whose_url_maps_to_nothing_is_refused_naming_it_or_skipped(tmp_path):
    exports.label_studio(tmp_path / "src", local_files=tmp_path / "ls-files")
    refused = gt2seg("import", "label-studio", tmp_path / "src", tmp_path / "out")
    assert refused.returncode == 1 and not any((tmp_path / "out").glob("*_annotation"))
    assert ("line 5: project-3-at-2024-05-04-10-00-1a2b3c4d.json task 5: image URL '/data/local-files/?d=pics/f.jpg' "
            "maps to no folder; map it with --ref-root PREFIX=DIR") in refused.stderr
    skipped = gt2seg("import", "label-studio", tmp_path / "src", tmp_path / "out", "--on-error", "skip", "--json")
    assert json.loads(skipped.stdout)["skipped_by_reason"] == {"unlabeled": 1, "unmapped-url": 1}


def test_bad_results_are_named(tmp_path):
    tasks = exports.label_studio(tmp_path / "src")
    tasks[0]["annotations"][0]["result"][1]["value"]["points"] = [[1, 1], [5, 5]]
    tasks[3]["annotations"][0]["result"] = [exports._ls_brush(exports.blob(0, 0, 4, 4, 10, 10), "Cat", "small")]
    tasks[3]["annotations"][0]["result"][0]["original_width"] = 20
    export = tmp_path / "src" / "project-3-at-2024-05-04-10-00-1a2b3c4d.json"
    export.write_text(json.dumps(tasks))
    refused = gt2seg("import", "label-studio", tmp_path / "src", tmp_path / "out")
    assert refused.returncode == 1
    assert "line 1: project-3-at-2024-05-04-10-00-1a2b3c4d.json task 1 result 'p1': a polygon needs at least 3 " \
           "points, this one has 2" in refused.stderr
    assert "line 4: project-3-at-2024-05-04-10-00-1a2b3c4d.json task 4 result 'small': brush RLE holds 400 values, " \
           "its image 20 x 10 x 4 (RGBA) = 800" in refused.stderr


def test_images_on_s3_are_read_through_a_ref_root(tmp_path, s3, s3_bucket):
    tasks = exports.label_studio(tmp_path / "src")
    media = archives.upload(s3, s3_bucket, tmp_path / "src" / "upload", "ls-media")
    result = gt2seg("import", "label-studio", tmp_path / "src", tmp_path / "out", "--ref-root",
                    f"/data/upload/={media}/", "--json")
    assert result.returncode == 0, result.stderr
    expected = {NAMES[tid]: mask for tid, mask in exports.label_studio_reference(tasks).items()}
    got = written(tmp_path / "out")
    assert got.keys() == expected.keys() and all(np.array_equal(got[n], expected[n]) for n in expected)


def test_inspect_recognises_a_label_studio_export(tmp_path):
    exports.label_studio(tmp_path / "src")
    result = gt2seg("inspect", tmp_path / "src", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["format"], report["items"]) == ("label-studio", 3)
