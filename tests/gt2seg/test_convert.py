import json
import os

import click
import numpy as np
import pytest
from PIL import Image

from gt2seg.convert import ConvertOptions, _assign_names, convert
from gt2seg.errors import ConversionError, Gt2SegError, ManifestError, SplitError
from gt2seg.manifest import Record
from gtjob import Job, blocks, color_png, palette_png, standard_job, tree


def run(manifest, out, **options):
    return convert(manifest, out, ConvertOptions(**options))


def test_layout_has_every_folder_and_file(tmp_path):
    manifest = standard_job(tmp_path / "job").write()
    report = run(manifest, tmp_path / "out")
    out = tmp_path / "out"
    names = sorted(p.name for p in out.iterdir())
    assert names == [".gt2seg", "channels.json", "classes.json", "label_map", "report.json", "train",
                     "train.manifest", "train_annotation", "validation", "validation.manifest",
                     "validation_annotation"]
    for side in ("train", "validation"):
        images = sorted(p.stem for p in (out / side).glob("*.jpg"))
        masks = sorted(p.stem for p in (out / f"{side}_annotation").glob("*.png"))
        assert images == masks and len(images) == report.splits[side]
        assert json.loads((out / "label_map" / f"{side}_label_map.json").read_text()) == {"scale": 1}
    assert report.splits == {"train": 8, "validation": 2}
    assert json.loads((out / "classes.json").read_text()) == [
        {"index": 0, "name": "BACKGROUND", "color": "#ffffff"},
        {"index": 1, "name": "building", "color": "#2ca02c"},
        {"index": 2, "name": "road", "color": "#1f77b4"}]


def test_masks_are_named_like_images_and_hold_class_indices(tmp_path):
    job = Job(tmp_path / "job")
    for i in range(4):
        job.add(f"scene{i}", blocks(seed=i))
    run(job.write(), tmp_path / "out")
    for png in (tmp_path / "out").glob("*_annotation/*.png"):
        img = Image.open(png)
        i = int(png.stem[-1])
        assert img.mode == "P" and np.array_equal(np.asarray(img), blocks(seed=i))
        jpg = png.parent.parent / png.parent.name.replace("_annotation", "") / f"{png.stem}.jpg"
        assert jpg.read_bytes() == (tmp_path / "job" / "images" / f"{png.stem}.jpg").read_bytes()


def test_keys_are_remapped_to_global_indices_by_class_name(tmp_path):
    job = Job(tmp_path / "job")
    job.add("a", blocks())
    swapped = {"0": ("BACKGROUND", "#ffffff"), "1": ("road", "#1f77b4"), "2": ("building", "#2ca02c")}
    palette = [255, 255, 255, 0x1F, 0x77, 0xB4, 0x2C, 0xA0, 0x2C] + [255] * 759  # as GT writes for this line
    job.add("b", mask_bytes=palette_png(blocks(), palette=palette), cmap=swapped)
    run(job.write(), tmp_path / "out", validation_fraction=0.5)
    b = next((tmp_path / "out").glob("*_annotation/b.png"))
    assert np.array_equal(np.asarray(Image.open(b)), np.array([0, 2, 1], np.uint8)[blocks()])


def test_augmented_manifests_point_at_local_files_or_the_s3_prefix(tmp_path):
    manifest = standard_job(tmp_path / "job").write()
    run(manifest, tmp_path / "local")
    line = json.loads((tmp_path / "local" / "train.manifest").read_text().splitlines()[0])
    assert set(line) == {"source-ref", "city-ref"}
    assert os.path.isabs(line["source-ref"]) and os.path.exists(line["source-ref"])
    assert os.path.exists(line["city-ref"])

    run(manifest, tmp_path / "s3", s3_prefix="s3://bucket/data/")
    lines = [json.loads(x) for x in (tmp_path / "s3" / "validation.manifest").read_text().splitlines()]
    for line in lines:
        stem = line["source-ref"].rsplit("/", 1)[1][:-4]
        assert line["source-ref"] == f"s3://bucket/data/validation/{stem}.jpg"
        assert line["city-ref"] == f"s3://bucket/data/validation_annotation/{stem}.png"
    channels = json.loads((tmp_path / "s3" / "channels.json").read_text())
    assert [c["ChannelName"] for c in channels] == ["train", "validation"]
    for c in channels:
        assert c["DataSource"]["S3DataSource"]["S3DataType"] == "AugmentedManifestFile"
        assert c["DataSource"]["S3DataSource"]["AttributeNames"] == ["source-ref", "city-ref"]
        assert c["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://bucket/data/{c['ChannelName']}.manifest"
        assert (c["RecordWrapperType"], c["ContentType"], c["InputMode"]) == (
            "RecordIO", "application/x-recordio", "Pipe")


def test_rerun_skips_finished_items_and_gives_a_byte_identical_tree(tmp_path):
    manifest = standard_job(tmp_path / "job").write()
    first = run(manifest, tmp_path / "out", workers=2)
    before = tree(tmp_path / "out")
    second = run(manifest, tmp_path / "out", workers=2)
    assert (first.resumed, second.resumed) == (0, 10)
    assert tree(tmp_path / "out") == before


def test_parallel_and_serial_runs_write_the_same_tree(tmp_path):
    manifest = standard_job(tmp_path / "job").write()
    run(manifest, tmp_path / "one", workers=1)
    run(manifest, tmp_path / "two", workers=2)
    a, b = tree(tmp_path / "one"), tree(tmp_path / "two")
    strip = lambda t: {k: v for k, v in t.items() if not k.endswith((".manifest", "report.json", "channels.json"))}
    assert strip(a) == strip(b)


def test_inputs_are_never_modified(tmp_path):
    manifest = standard_job(tmp_path / "job").write()
    before = tree(tmp_path / "job")
    run(manifest, tmp_path / "out")
    assert tree(tmp_path / "job") == before


def test_same_stem_in_two_folders_both_survive_with_stable_names(tmp_path):
    job = standard_job(tmp_path / "job", n=4)
    job.add("x", image_name="north/corner.jpg")
    job.add("y", image_name="south/corner.jpg")
    report = run(job.write(), tmp_path / "out")
    names = sorted(p.stem for p in (tmp_path / "out").glob("train*/*.jpg")) + \
        sorted(p.stem for p in (tmp_path / "out").glob("validation/*.jpg"))
    corners = sorted(n for n in names if n.startswith("corner-"))
    assert len(corners) == 2 and corners[0] != corners[1] and report.converted == 6
    run(job.write(), tmp_path / "again")
    assert sorted(p.stem for p in (tmp_path / "again").glob("*/corner-*.jpg")) == corners


def test_odd_names_are_sanitised_and_nothing_is_written_outside_out(tmp_path):
    job = Job(tmp_path / "job")
    job.add("a", image_name="images/..weird name;rm -rf.jpg")
    job.add("b", image_name="images/ünïcode (1).jpg")
    job.add("c")
    run(job.write(), tmp_path / "out")
    written = {p.name for p in (tmp_path / "out").rglob("*.jpg") if ".gt2seg" not in p.parts}
    assert written == {"weird_name_rm_-rf.jpg", "n_code_1.jpg", "c.jpg"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job", "out"]


@pytest.mark.parametrize("ref, message", [
    ("../../etc/passwd.jpg", "points outside"),
    ("/etc/passwd.jpg", "absolute local path"),
    ("http://example.com/a.jpg", "only s3:// URIs"),
])
def test_refs_escaping_the_job_are_rejected_naming_the_line(tmp_path, ref, message):
    job = standard_job(tmp_path / "job", n=3)
    line = json.loads(job.lines[0])
    line["source-ref"] = ref
    job.lines[0] = json.dumps(line)
    with pytest.raises(ConversionError, match=f"line 1: .*{message}"):
        run(job.write(), tmp_path / "out")
    assert not (tmp_path / "out" / "train").exists()


def test_ref_root_reads_s3_refs_from_a_local_copy(tmp_path):
    job = Job(tmp_path / "bucket", prefix="s3://my-bucket/")
    for i in range(3):
        job.add(f"s{i}")
    report = run(job.write(), tmp_path / "out", ref_roots=(("s3://my-bucket/", str(tmp_path / "bucket")),))
    assert report.converted == 3


def test_missing_objects_are_skipped_and_counted(tmp_path):
    job = standard_job(tmp_path / "job", n=4)
    (tmp_path / "job" / "images" / "img01.jpg").unlink()
    report = run(job.write(), tmp_path / "out")
    assert report.converted == 3 and report.skipped_by_reason == {"missing-object": 1}
    assert report.skipped[0]["line"] == 2


def test_unlabeled_failed_and_duplicate_lines_are_reported(tmp_path):
    job = standard_job(tmp_path / "job", n=3)
    job.add_line({"source-ref": "images/new.jpg"})
    job.add_line({"source-ref": "images/f.jpg", "city-ref-metadata": {"failure-reason": "expired"}})
    job.add_line(job.lines[0])
    report = run(job.write(), tmp_path / "out")
    assert report.skipped_by_reason == {"duplicate-source": 1, "failed": 1, "unlabeled": 1}
    assert report.lines == 6 and report.converted == 3


def test_bad_items_fail_the_run_listing_every_line_and_leave_no_layout(tmp_path):
    job = standard_job(tmp_path / "job", n=4)
    (tmp_path / "job" / "images" / "img01.jpg").write_bytes(b"not an image")
    mask = next((tmp_path / "job" / "masks").glob("2_*.png"))
    mask.write_bytes(mask.read_bytes()[:60])
    with pytest.raises(ConversionError) as err:
        run(job.write(), tmp_path / "out", workers=2)
    message = str(err.value)
    assert "line 2: image" in message and "not an image" in message
    assert "line 3: mask" in message and "damaged or truncated" in message
    assert "--on-error skip" in message
    assert not (tmp_path / "out" / "report.json").exists()
    assert not (tmp_path / "out" / "train").exists()


def test_on_error_skip_leaves_bad_items_out(tmp_path):
    job = standard_job(tmp_path / "job", n=4)
    (tmp_path / "job" / "images" / "img01.jpg").write_bytes(b"not an image")
    report = run(job.write(), tmp_path / "out", on_error="skip")
    assert report.converted == 3 and report.skipped_by_reason == {"invalid": 1}


def test_unknown_colour_failure_names_the_line(tmp_path):
    job = standard_job(tmp_path / "job", n=3)
    mask = blocks()
    mask[0, 0] = 3
    job.add("odd", mask_bytes=color_png(mask, {0: "#ffffff", 1: "#2ca02c", 2: "#1f77b4", 3: "#123456"}))
    with pytest.raises(ConversionError, match=r"line 4: mask .*#123456 \(1 px\)"):
        run(job.write(), tmp_path / "out")


def test_too_few_images_to_split_is_an_error(tmp_path):
    job = Job(tmp_path / "job")
    job.add("only")
    with pytest.raises(SplitError, match="at least 2 distinct images"):
        run(job.write(), tmp_path / "out")


def test_manifest_with_only_unusable_lines_is_an_error(tmp_path):
    job = Job(tmp_path / "job")
    job.add_line({"source-ref": "images/a.jpg"})
    with pytest.raises(ManifestError):
        run(job.write(), tmp_path / "out")


def test_output_folder_holding_the_inputs_is_refused(tmp_path):
    manifest = standard_job(tmp_path / "job", n=3).write()
    with pytest.raises(Gt2SegError, match="contains the input"):
        run(manifest, tmp_path)


def test_non_empty_folder_not_written_by_gt2seg_is_refused(tmp_path):
    manifest = standard_job(tmp_path / "job", n=3).write()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "precious.txt").write_text("keep me")
    with pytest.raises(Gt2SegError, match="not written by gt2seg"):
        run(manifest, tmp_path / "out")
    assert (tmp_path / "out" / "precious.txt").read_text() == "keep me"


def test_png_sources_become_jpegs_and_masks_of_one_value_are_expanded(tmp_path):
    import io

    job = standard_job(tmp_path / "job", n=3)
    buf = io.BytesIO()
    Image.fromarray(np.full((24, 32, 4), 128, np.uint8), "RGBA").save(buf, format="PNG")
    job.add("rgba", image=buf.getvalue(), image_name="images/rgba.png",
            mask_bytes=color_png(np.zeros((8, 8), np.uint8), {0: "#ffffff"}))
    report = run(job.write(), tmp_path / "out")
    out = next((tmp_path / "out").glob("*/rgba.jpg"))
    assert Image.open(out).format == "JPEG" and Image.open(out).size == (32, 24)
    assert report.reencoded_images == 1 and report.expanded_masks == 1


def test_report_counts_pixels_and_images_per_class(tmp_path):
    manifest = standard_job(tmp_path / "job", n=6).write()
    report = run(manifest, tmp_path / "out")
    masks = [np.asarray(Image.open(p)) for p in (tmp_path / "out").glob("*_annotation/*.png")]
    counts = np.bincount(np.concatenate([m.ravel() for m in masks]), minlength=3)
    assert report.pixels_per_class == dict(zip(["BACKGROUND", "building", "road"], counts.tolist()))
    assert report.images_per_class["building"] == sum(int((m == 1).any()) for m in masks)
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["pixels_per_class"] == report.pixels_per_class and "resumed" not in on_disk


def test_changed_split_seed_moves_files_and_removes_stale_ones(tmp_path):
    manifest = standard_job(tmp_path / "job").write()
    run(manifest, tmp_path / "out", seed=1)
    run(manifest, tmp_path / "out", seed=2)
    fresh = tmp_path / "fresh"
    run(manifest, fresh, seed=2)
    assert tree(tmp_path / "out").keys() == tree(fresh).keys()


def test_rerun_keeps_files_the_user_put_in_the_layout(tmp_path):
    manifest = standard_job(tmp_path / "job").write()
    out = tmp_path / "out"
    run(manifest, out, seed=1)
    (out / "train" / "notes.txt").write_text("mine")
    (out / "validation_annotation" / "extra.png").write_bytes(b"also mine")
    run(manifest, out, seed=2)
    assert (out / "train" / "notes.txt").read_text() == "mine"
    assert (out / "validation_annotation" / "extra.png").read_bytes() == b"also mine"
    fresh = tmp_path / "fresh"
    run(manifest, fresh, seed=2)
    assert tree(out).keys() - tree(fresh).keys() == {"train/notes.txt", "validation_annotation/extra.png"}


def test_a_file_changed_in_place_under_the_same_ref_is_converted_again(tmp_path):
    job = standard_job(tmp_path / "job", n=4)
    manifest = job.write()
    out = tmp_path / "out"
    run(manifest, out)
    mask = next((tmp_path / "job" / "masks").glob("2_*.png"))
    old = mask.stat()
    mask.write_bytes(palette_png(blocks(classes=(0, 1))))
    os.utime(mask, ns=(old.st_atime_ns, old.st_mtime_ns + 10**9))  # an edit a second later
    report = run(manifest, out)
    assert report.resumed == 3
    placed = next(out.glob("*_annotation/img02.png"))
    assert np.array_equal(np.asarray(Image.open(placed)), blocks(classes=(0, 1)))


def test_symlinks_inside_the_job_are_read_and_those_leaving_it_refused(tmp_path):
    job = standard_job(tmp_path / "job", n=3)
    (tmp_path / "job" / "alias.jpg").symlink_to(tmp_path / "job" / "images" / "img00.jpg")
    (tmp_path / "outside.jpg").write_bytes((tmp_path / "job" / "images" / "img01.jpg").read_bytes())
    (tmp_path / "job" / "escape.jpg").symlink_to(tmp_path / "outside.jpg")
    for i, name in enumerate(["alias", "escape"]):
        line = json.loads(job.lines[i])
        line["source-ref"] = f"{name}.jpg"
        job.lines[i] = json.dumps(line)
    with pytest.raises(ConversionError, match=r"line 2: 'escape.jpg' leads outside .* symbolic link") as err:
        run(job.write(), tmp_path / "out")
    assert "line 1" not in str(err.value)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_ref_leaving_through_a_symbolic_link_is_an_invalid_item_with_on_error_skip(tmp_path, workers):
    job = standard_job(tmp_path / "job", n=4)
    (tmp_path / "outside.jpg").write_bytes((tmp_path / "job" / "images" / "img01.jpg").read_bytes())
    (tmp_path / "job" / "escape.jpg").symlink_to(tmp_path / "outside.jpg")
    line = json.loads(job.lines[1])
    line["source-ref"] = "escape.jpg"
    job.lines[1] = json.dumps(line)
    report = run(job.write(), tmp_path / "out", on_error="skip", workers=workers)
    assert report.converted == 3 and report.skipped_by_reason == {"invalid": 1}
    assert report.skipped[0]["line"] == 2 and "symbolic link" in report.skipped[0]["detail"]


def test_placed_json_lists_every_placed_file_as_json_written_at_once_would(tmp_path):
    out = tmp_path / "out"
    run(standard_job(tmp_path / "job", n=4).write(), out)
    placed = sorted(str(p.relative_to(out)) for d in ("train", "train_annotation", "validation", "validation_annotation")
                    for p in (out / d).iterdir())
    assert len(placed) == 8
    assert (out / ".gt2seg" / "placed.json").read_text() == json.dumps(placed, indent=2) + "\n"


def test_max_pixels_must_be_positive():
    with pytest.raises(Gt2SegError, match="max_pixels must be a positive number of pixels, got -5"):
        ConvertOptions(max_pixels=-5)


def test_an_out_written_before_placed_json_existed_is_still_re_placed(tmp_path):
    manifest = standard_job(tmp_path / "job").write()
    out = tmp_path / "out"
    run(manifest, out, seed=1)
    (out / ".gt2seg" / "placed.json").unlink()  # as an older gt2seg left it
    (out / "train" / "notes.txt").write_text("mine")
    run(manifest, out, seed=2)
    fresh = tmp_path / "fresh"
    run(manifest, fresh, seed=2)
    assert tree(out).keys() - tree(fresh).keys() == {"train/notes.txt"}


def test_names_are_the_stems_and_stems_shared_by_other_sources_whatever_their_case_get_a_hash():
    """The names gt2seg has always given (a re-run must find its cache): a repeated ref is no collision."""
    refs = ["a/IMG.jpg", "b/img.png", "c/other.jpg", "c/other.jpg", "d/x y.jpg", "s3://b/e/Img.JPG"]
    records = [Record(line, ref, "label-ref", "mask.png", ()) for line, ref in enumerate(refs, 1)]
    assert list(map(_assign_names(records), records)) == ["IMG-9e868685", "img-1cc00a7a", "other", "other", "x_y", "Img-672cd686"]


def test_the_library_converts_in_one_process_unless_told_and_the_command_line_on_every_core():
    """The two defaults differ on purpose, and ConvertOptions says so and why."""
    from gt2seg.cli.convert import convert as convert_command

    (workers,) = [p for p in convert_command.params if p.name == "workers"]
    assert ConvertOptions().workers == 1 and workers.get_default(click.Context(convert_command)) == (os.cpu_count() or 1)
    assert "`workers` defaults to 1 here and to every core" in ConvertOptions.__doc__
