"""`seg pipe-check`: every reason SageMaker would silently drop a record is reported per line."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from seg.pipe.check import check_manifest

SEG = str(Path(sys.executable).parent / "seg")


def _save(path, array, mode=None, fmt=None):
    Image.fromarray(array, mode).save(path, fmt)
    return str(path)


def _good_line(tmp_path, i, size=(24, 32)):
    rng = np.random.default_rng(i)
    image = _save(tmp_path / f"img{i}.jpg", rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    mask = _save(tmp_path / f"mask{i}.png", rng.integers(0, 3, size, dtype=np.uint8))
    return {"source-ref": image, "city-ref": mask, "city-ref-metadata": {"job-name": "x"}}


def _write(tmp_path, lines):
    path = tmp_path / "train.manifest"
    path.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines))
    return path


def test_clean_manifest_passes_and_prints_the_channel_config(tmp_path):
    manifest = _write(tmp_path, [_good_line(tmp_path, i) for i in range(3)])
    run = subprocess.run([SEG, "pipe-check", str(manifest), "--attribute-names", "source-ref,city-ref",
                          "--num-classes", "3", "--json"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["ok"] and report["lines"] == 3 and report["ok_lines"] == 3 and report["problems"] == []
    assert report["channel_config"]["AttributeNames"] == ["source-ref", "city-ref"]
    assert report["channel_config"]["ContentType"] == "application/x-recordio"
    assert report["channel_config"]["RecordWrapperType"] == "RecordIO"


def test_every_bad_line_is_reported_with_its_reason(tmp_path):
    lines = [_good_line(tmp_path, i) for i in range(9)]
    lines[1]["city-ref"] = str(tmp_path / "gone.png")
    (tmp_path / "text.jpg").write_text("not an image")
    lines[2]["source-ref"] = str(tmp_path / "text.jpg")
    lines[3]["city-ref"] = _save(tmp_path / "rgb.png", np.zeros((24, 32, 3), np.uint8))
    lines[4]["city-ref"] = _save(tmp_path / "small.png", np.zeros((12, 32), np.uint8))
    lines[5]["city-ref"] = _save(tmp_path / "range.png", np.array([[0, 1, 2, 255, 3, 7]] * 24, np.uint8)
                                 .repeat(6, axis=1)[:, :32])
    lines[6]["city-ref"] = _save(tmp_path / "lossy.jpg", np.zeros((24, 32), np.uint8), "L", "JPEG")
    del lines[7]["city-ref"]
    lines[7]["cty-ref"] = lines[8]["city-ref"]
    lines.append("{not json")
    report = check_manifest(_write(tmp_path, lines), ["source-ref", "city-ref"], num_classes=3)
    found = {p.line: str(p) for p in report.problems}
    assert report.lines == 10 and report.ok_lines == 2 and not report.ok
    assert set(found) == {2, 3, 4, 5, 6, 7, 8, 10}
    assert "gone.png does not exist" in found[2]
    assert "text.jpg is not a decodable image" in found[3]
    assert "mask has mode RGB" in found[4]
    assert "mask is 32x12 but the image is 32x24" in found[5]
    assert "mask values [3, 7] are not class indices 0..2 or 255" in found[6]
    assert "mask is JPEG" in found[7]
    assert "city-ref: missing (did you mean 'cty-ref'?)" in found[8]
    assert "not valid JSON" in found[10]


def test_misspelled_attribute_name_is_reported_with_the_manifest_key(tmp_path):
    manifest = _write(tmp_path, [_good_line(tmp_path, 0)])
    run = subprocess.run([SEG, "pipe-check", str(manifest), "--attribute-names", "source-ref,cty-ref"],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert "line 1: cty-ref: missing (did you mean 'city-ref'?)" in run.stdout
    assert "0/1 lines ok" in run.stdout


def test_attribute_names_must_be_two_refs(tmp_path):
    manifest = _write(tmp_path, [_good_line(tmp_path, 0)])
    assert "expected 2 AttributeNames" in str(check_manifest(manifest, ["source-ref"]).problems[0])
    report = check_manifest(manifest, ["source-ref", "city-ref-metadata"])
    assert any(p.line is None and "must end in '-ref'" in str(p) for p in report.problems)


def test_missing_manifest_is_a_clear_cli_error(tmp_path):
    run = subprocess.run([SEG, "pipe-check", str(tmp_path / "none.manifest"), "--attribute-names", "a-ref,b-ref"],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert "none.manifest does not exist" in run.stderr


def test_lines_are_read_as_strictly_as_gt2seg_reads_manifests(tmp_path):
    """One JSON Lines reader for both packages: U+2028 inside a string does not end a line; a duplicate key
    and NaN are reported on their own line."""
    good = _good_line(tmp_path, 0)
    good["note"] = "a\u2028b"
    text = json.dumps(good, ensure_ascii=False)
    duplicate = json.dumps(_good_line(tmp_path, 1))[:-1] + ', "source-ref": "x.jpg"}'
    nan = json.dumps({**_good_line(tmp_path, 2), "score": float("nan")})
    report = check_manifest(_write(tmp_path, [text, duplicate, nan]), ["source-ref", "city-ref"], workers=1)
    assert report.lines == 3
    problems = {p.line: p.message for p in report.problems}
    assert sorted(problems) == [2, 3]
    assert "duplicate key 'source-ref'" in problems[2] and "NaN" in problems[3]
