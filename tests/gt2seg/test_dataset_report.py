"""gt2seg report: the dataset page, checked in headless Chromium against report.json."""
import hashlib
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from browser import browser, look  # noqa: F401 (fixture)
from gt2seg import storage
from gt2seg.cli import main
from gt2seg.convert import ConvertOptions, convert
from gt2seg.report import build_dataset_report, write_dataset_report
from gtjob import blocks, palette_png, standard_job
from repo import ROOT
from synthdata import write_layout

FIXTURE = ROOT / "fixtures/bucket/labeling/city-blocks/manifests/output/output.manifest"
FIXTURE_ARGS = ["--label-attribute", "city-blocks-adjusted-ref", "--label-attribute", "city-blocks-ref",
                "--ref-root", f"s3://gt2seg-fixtures/={ROOT / 'fixtures/bucket'}/"]


def _exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


@pytest.fixture
def odd_job(tmp_path):
    """Ordinary items plus one of each kind the gallery must show, and an unlabeled line."""
    job = standard_job(tmp_path / "job", n=6)
    job.add("empty-and-expanded", mask_bytes=palette_png(np.zeros((8, 8), np.uint8)))
    job.add("full", np.ones((24, 32), np.uint8))
    job.add("resized", mask_bytes=palette_png(blocks(16, 12)))
    job.add("rotated", image=_exif_rotated_jpeg())
    job.add_line({"source-ref": "images/img00.jpg"})
    return job


def _tree(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "report" not in p.parts}


def test_fixture_page_shows_the_numbers_of_report_json_and_every_image_loads(tmp_path, browser):  # noqa: F811
    out = tmp_path / "data"
    result = CliRunner().invoke(main, ["convert", str(FIXTURE), str(out), "--report", "--json", *FIXTURE_ARGS])
    assert result.exit_code == 0, result.output
    converted = json.loads((out / "report.json").read_text())
    seen = look(browser, (out / "report" / "index.html").as_uri(), "gt2seg-report-fixture.png")
    assert seen.console == [] and seen.broken == [] and seen.images > 0
    for c in converted["classes"]:
        for what, totals in (("pixels", converted["pixels_per_class"]), ("images", converted["images_per_class"])):
            shown = sum(int(seen.numbers[f"{what}/{s}/{c['name']}"].replace(",", "")) for s in ("train", "validation"))
            assert shown == totals[c["name"]]
            assert int(seen.numbers[f"{what}/total/{c['name']}"].replace(",", "")) == totals[c["name"]]
    assert {s: int(seen.numbers[f"items/{s}"]) for s in converted["splits"]} == converted["splits"]
    assert [int(seen.numbers[f"skipped/{i}/line"]) for i in range(len(converted["skipped"]))] == \
        [s["line"] for s in converted["skipped"]]
    for warning in converted["warnings"]:
        assert warning in seen.text


def test_totals_are_report_json_figures_and_a_layout_that_disagrees_is_a_problem(tmp_path):
    out = tmp_path / "data"
    convert(str(FIXTURE), str(out), ConvertOptions(label_attributes=("city-blocks-adjusted-ref", "city-blocks-ref"),
                                                  ref_roots=(("s3://gt2seg-fixtures/", f"{ROOT / 'fixtures/bucket'}/"),)))
    converted = json.loads((out / "report.json").read_text())
    report = build_dataset_report(out)
    names = [c["name"] for c in report.classes]
    for what in ("pixels", "images"):
        assert dict(zip(names, report.totals[what])) == converted[f"{what}_per_class"]
    assert report.problems == []
    converted["pixels_per_class"]["road"] += 7  # a report.json that no longer describes the layout beside it
    (out / "report.json").write_text(json.dumps(converted))
    changed = build_dataset_report(out)
    assert dict(zip(names, changed.totals["pixels"]))["road"] == converted["pixels_per_class"]["road"]
    assert [p for p in changed.problems if "pixels_per_class differs" in p and "road" in p], changed.problems


def test_gallery_shows_rare_common_empty_full_resized_expanded_and_rotated_items(odd_job, tmp_path):
    out = tmp_path / "data"
    convert(odd_job.write(), out, ConvertOptions(resize_masks=True, validation_fraction=0.3))
    report = build_dataset_report(out)
    groups = {}
    for p in report.picks:
        groups.setdefault(p.group, set()).add(p.name)
    assert groups["empty masks"] == {"empty-and-expanded"}
    assert groups["masks covering ~everything"] == {"full"}
    assert groups["expanded in conversion"] == {"empty-and-expanded"}
    assert groups["resized in conversion"] == {"resized"}
    assert groups["exif rotated in conversion"] == {"rotated"}
    assert {"building", "road"} <= set(groups)
    assert report.flagged == {"expanded": ["empty-and-expanded"], "resized": ["resized"], "exif_rotated": ["rotated"]}
    assert [s["reason"] for s in report.skipped] == ["unlabeled"]


def test_counts_from_masks_equal_counts_from_the_conversion_cache(odd_job, tmp_path):
    out = tmp_path / "data"
    convert(odd_job.write(), out, ConvertOptions(resize_masks=True))
    cached = build_dataset_report(out)
    storage_free = tmp_path / "copy"
    for path in out.rglob("*"):
        if path.is_file() and ".gt2seg" not in path.parts:
            (storage_free / path.relative_to(out)).parent.mkdir(parents=True, exist_ok=True)
            (storage_free / path.relative_to(out)).write_bytes(path.read_bytes())
    assert build_dataset_report(storage_free).pixels == cached.pixels


def test_gallery_and_pictures_are_bounded_whatever_the_number_of_items(tmp_path):
    small = build_dataset_report(write_layout(tmp_path / "small", n_train=12, n_val=4, size=32))
    large = build_dataset_report(write_layout(tmp_path / "large", n_train=300, n_val=100, size=32))
    assert sum(large.items.values()) == 400
    assert len({p.name for p in large.picks}) <= 2 * 2 * 2 + 8 * 2
    assert len(large.picks) >= len(small.picks) > 0


def test_report_leaves_the_layout_as_it_was(odd_job, tmp_path):
    out = tmp_path / "data"
    convert(odd_job.write(), out, ConvertOptions(resize_masks=True))
    before = _tree(out)
    write_dataset_report(build_dataset_report(out))
    assert _tree(out) == before and (out / "report" / "index.html").is_file()


def test_half_written_layout_page_says_what_is_missing_without_broken_images(tmp_path, browser):  # noqa: F811
    root = write_layout(tmp_path / "data", n_train=6, n_val=2, size=32)
    (root / "train_annotation" / "train_0001.png").unlink()
    (root / "validation" / "validation_0000.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "page"
    result = CliRunner().invoke(main, ["report", str(root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "report.json is missing" in result.output
    seen = look(browser, (out / "index.html").as_uri(), "gt2seg-report-half-written.png")
    assert seen.console == [] and seen.broken == []
    assert "report.json is missing" in seen.text
    assert "1 file(s) in train/ have no partner in train_annotation/: train_0001" in seen.text
    assert "no picture: validation/validation_0000.jpg is not a readable image" in seen.text
    assert "unknown: the layout has no conversion cache" in seen.text


def test_report_on_a_folder_that_is_not_a_layout_is_one_clear_line(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 1
    assert "is not a layout" in result.output and "Traceback" not in result.output


def test_report_written_to_s3_opens_from_the_bucket(tmp_path, s3_server, s3, s3_bucket, browser):  # noqa: F811
    root = write_layout(tmp_path / "data", n_train=6, n_val=2, size=32)
    index = write_dataset_report(build_dataset_report(root), f"s3://{s3_bucket}/reports/run1")
    assert index == f"s3://{s3_bucket}/reports/run1/index.html"
    keys = {o.key for o in storage.list_objects(f"s3://{s3_bucket}/reports/run1")}
    assert "reports/run1/index.html" in keys and any(k.startswith("reports/run1/img/") for k in keys)
    public = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                                     "Resource": f"arn:aws:s3:::{s3_bucket}/reports/*"}]}
    s3.put_bucket_policy(Bucket=s3_bucket, Policy=json.dumps(public))  # how a static report is shared
    seen = look(browser, f"{s3_server}/{s3_bucket}/reports/run1/index.html", "gt2seg-report-s3.png")
    assert seen.console == [] and seen.broken == [] and seen.images > 0


def test_report_uploaded_with_the_layout_opens_from_the_bucket(tmp_path, s3_server, s3, s3_bucket,
                                                               browser):  # noqa: F811
    out = tmp_path / "data"
    result = CliRunner().invoke(main, ["convert", str(FIXTURE), str(out), "--report", *FIXTURE_ARGS])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["upload", str(out), f"s3://{s3_bucket}/layout/"])
    assert result.exit_code == 0, result.output
    public = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                                     "Resource": f"arn:aws:s3:::{s3_bucket}/*"}]}
    s3.put_bucket_policy(Bucket=s3_bucket, Policy=json.dumps(public))
    seen = look(browser, f"{s3_server}/{s3_bucket}/layout/report/index.html", "gt2seg-report-uploaded.png")
    assert seen.console == [] and seen.broken == [] and seen.images > 0
    assert seen.numbers["items/train"] == str(json.loads((out / "report.json").read_text())["splits"]["train"])


def test_page_check_notices_a_broken_image(tmp_path, browser):  # noqa: F811
    page = tmp_path / "index.html"
    page.write_text('<!doctype html><html><body><img src="img/absent.png"></body></html>')
    seen = look(browser, page.as_uri(), "broken-image-check.png")
    assert seen.broken == ["img/absent.png"]
