"""`gt2seg import` and `gt2seg inspect` on datasets, run as a user runs them: a real subprocess."""
import json
import subprocess
import sys

import archives

GT2SEG = [sys.executable, "-m", "gt2seg.cli"]


def gt2seg(*args):
    return subprocess.run([*GT2SEG, *map(str, args)], capture_output=True, text=True)


def test_import_pets_writes_the_layout_and_resumes_from_the_cache(tmp_path):
    archives.pets(tmp_path / "pets", quirks=True)
    args = ("import", "pets", tmp_path / "pets", tmp_path / "out", "--classes", "species", "--split", "official",
            "--workers", "2", "--json")
    first = gt2seg(*args)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["splits"] == {"train": 9, "validation": 3} and report["resumed"] == 0
    assert [c["name"] for c in report["classes"]] == ["BACKGROUND", "cat", "dog"]
    assert "convert" in first.stderr  # the progress bar
    assert json.loads(gt2seg(*args).stdout)["resumed"] == 12


def test_import_with_a_bad_option_value_is_a_usage_error(tmp_path):
    archives.pets(tmp_path / "pets")
    result = gt2seg("import", "pets", tmp_path / "pets", tmp_path / "out", "--border", "maybe")
    assert result.returncode == 2 and "'maybe' is not one of 'ignore', 'pet', 'background', 'class'" in result.stderr


def test_a_missing_folder_is_one_line_naming_it_and_the_layout(tmp_path):
    archives.voc(tmp_path / "voc")
    result = gt2seg("import", "pets", tmp_path / "voc", tmp_path / "out")
    assert result.returncode == 1 and not (tmp_path / "out").exists()
    assert result.stderr.strip().splitlines() == [
        f"Error: {(tmp_path / 'voc').resolve()}: no images/ folder; expected the Oxford-IIIT Pet layout: "
        "images/*.jpg, annotations/trimaps/*.png, annotations/list.txt (and annotations/trainval.txt, "
        "annotations/test.txt for --split official)"]


def test_inspect_detects_the_format_and_counts_without_writing(tmp_path):
    archives.pets(tmp_path / "pets", quirks=True)
    before = sorted(p for p in (tmp_path / "pets").rglob("*"))
    result = gt2seg("inspect", tmp_path / "pets", "--split", "official", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["format"], report["items"], report["splits"]) == ("pets", 12, {"train": 9, "validation": 3})
    assert report["skipped_by_reason"] == {"no-trimap": 1, "resource-fork": 2, "unlisted": 1}
    assert sorted(p for p in (tmp_path / "pets").rglob("*")) == before


def test_inspect_reports_a_dataset_problem_and_exits_non_zero(tmp_path):
    archives.folders(tmp_path / "src")
    result = gt2seg("inspect", tmp_path / "src")
    assert result.returncode == 1
    assert "problem: give one of --class-list FILE (index masks) or --color-table FILE" in result.stdout
    ok = gt2seg("inspect", tmp_path / "src", "--format", "folders", "--class-list", "classes.txt")
    assert ok.returncode == 0 and "folders dataset, 5 items to import" in ok.stdout


def test_inspect_reads_an_s3_dataset(tmp_path, s3, s3_bucket):
    archives.voc(tmp_path / "voc")
    for path in (tmp_path / "voc").rglob("*"):
        if path.is_file():
            s3.put_object(Bucket=s3_bucket, Key=f"voc/{path.relative_to(tmp_path / 'voc').as_posix()}",
                          Body=path.read_bytes())
    result = gt2seg("inspect", f"s3://{s3_bucket}/voc", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["splits"] == {"train": 4, "validation": 3}


def test_inspect_refuses_options_that_do_not_apply_to_what_it_reads(tmp_path):
    archives.pets(tmp_path / "pets")
    manifest = tmp_path / "output.manifest"
    manifest.write_text("{}\n")
    on_manifest = gt2seg("inspect", manifest, "--classes", "species")
    on_folder = gt2seg("inspect", tmp_path / "pets", "--label-attribute", "city")
    assert on_manifest.returncode == on_folder.returncode == 2
    assert "--classes read a dataset folder" in on_manifest.stderr
    assert "--label-attribute reads a manifest" in on_folder.stderr
