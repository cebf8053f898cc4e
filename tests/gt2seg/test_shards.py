"""Map and reduce: `convert --shard I/N` converts, `merge` writes the layout one `convert` would write."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from gt2seg import png
from gt2seg.classes import ClassTable
from gt2seg.convert import ConvertOptions, Job, convert, convert_job
from gt2seg.errors import ShardError
from gt2seg.manifest import read_manifest
from gt2seg.merge import merge_shards
from gtjob import standard_job, tree
from reliability import Fifo

GT2SEG = [sys.executable, "-m", "gt2seg.cli"]
PREFIX = "s3://bucket/layout/"  # so manifests do not name the output folder, and bytes compare as they are


def run(manifest, out, **options):
    return convert(manifest, out, ConvertOptions(**options))


def shards(manifest, root, n, **options):
    folders = [root / f"shard{i}" for i in range(n)]
    for i, folder in enumerate(folders):
        run(manifest, folder, shard=(i, n), **options)
    return folders


def report_json(out):
    data = json.loads((out / "report.json").read_text())
    data.pop("output")  # the one field that describes the run: where it wrote
    return data


def job_with_a_skipped_line(root, n=12):
    job = standard_job(root, n=n)
    job.add_line({"source-ref": "images/unlabeled.jpg"})
    return job.write()


def test_a_shard_converts_only_its_items_and_writes_no_layout(tmp_path):
    manifest = standard_job(tmp_path / "job", n=12).write()
    folders = shards(manifest, tmp_path, 3, s3_prefix=PREFIX)
    items = [sorted(p.stem for p in (f / ".gt2seg" / "items").glob("*.jpg")) for f in folders]
    assert sum(map(len, items)) == 12 and len(set().union(*map(set, items))) == 12
    assert all(tree(f) == {} for f in folders)  # no layout file outside the cache


def test_merged_shards_are_byte_identical_to_one_run(tmp_path):
    manifest = job_with_a_skipped_line(tmp_path / "job")
    report = merge_shards(shards(manifest, tmp_path, 3, s3_prefix=PREFIX), tmp_path / "merged")
    whole = run(manifest, tmp_path / "whole", s3_prefix=PREFIX)
    assert tree(tmp_path / "merged").keys() - {"report.json"} == tree(tmp_path / "whole").keys() - {"report.json"}
    assert {k: v for k, v in tree(tmp_path / "merged").items() if k != "report.json"} == \
        {k: v for k, v in tree(tmp_path / "whole").items() if k != "report.json"}
    assert report_json(tmp_path / "merged") == report_json(tmp_path / "whole")
    assert report.skipped_by_reason == whole.skipped_by_reason == {"unlabeled": 1}


def test_merged_local_manifests_name_the_merged_folder(tmp_path):
    manifest = standard_job(tmp_path / "job", n=8).write()
    merge_shards(shards(manifest, tmp_path, 2), tmp_path / "merged")
    run(manifest, tmp_path / "whole")
    for side in ("train", "validation"):
        merged = (tmp_path / "merged" / f"{side}.manifest").read_text()
        whole = (tmp_path / "whole" / f"{side}.manifest").read_text()
        assert merged == whole.replace(str((tmp_path / "whole").resolve()), str((tmp_path / "merged").resolve()))
        for line in merged.splitlines():
            assert os.path.exists(json.loads(line)["source-ref"])


def test_shards_sharing_one_folder_merge_from_it(tmp_path):
    """As on SageMaker Processing, where every instance uploads its shard to the same S3 prefix."""
    manifest = standard_job(tmp_path / "job", n=10).write()
    for i in range(3):
        run(manifest, tmp_path / "shared", shard=(i, 3), s3_prefix=PREFIX)
    merge_shards([tmp_path / "shared"], tmp_path / "merged")
    run(manifest, tmp_path / "whole", s3_prefix=PREFIX)
    assert report_json(tmp_path / "merged") == report_json(tmp_path / "whole")
    assert tree(tmp_path / "merged").keys() == tree(tmp_path / "whole").keys()


def test_fixed_sides_of_a_job_survive_the_merge(tmp_path):
    manifest = read_manifest(standard_job(tmp_path / "job", n=6).write())
    sides = {r.line: "validation" if r.line in (2, 5) else "train" for r in manifest.records}
    job = Job(manifest, ClassTable.build(manifest.records), (str(tmp_path / "job"),), sides)
    for i in range(2):
        convert_job(job, tmp_path / f"s{i}", ConvertOptions(shard=(i, 2), s3_prefix=PREFIX))
    report = merge_shards([tmp_path / "s0", tmp_path / "s1"], tmp_path / "merged")
    convert_job(job, tmp_path / "whole", ConvertOptions(s3_prefix=PREFIX))
    assert report.splits == {"train": 4, "validation": 2}
    assert report_json(tmp_path / "merged") == report_json(tmp_path / "whole")


def test_merge_refuses_a_missing_shard_and_writes_nothing(tmp_path):
    manifest = standard_job(tmp_path / "job", n=9).write()
    folders = shards(manifest, tmp_path, 3)
    with pytest.raises(ShardError, match="shard\\(s\\) 1/3 missing"):
        merge_shards([folders[0], folders[2]], tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_merge_refuses_a_shard_given_twice(tmp_path):
    manifest = standard_job(tmp_path / "job", n=9).write()
    folders = shards(manifest, tmp_path, 2)
    shutil.copytree(folders[1], tmp_path / "copy")
    with pytest.raises(ShardError, match="shard 1/2 is given twice: in .*shard1 and .*copy"):
        merge_shards([*folders, tmp_path / "copy"], tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_merge_refuses_shards_converted_with_other_options(tmp_path):
    manifest = standard_job(tmp_path / "job", n=9).write()
    run(manifest, tmp_path / "a", shard=(0, 2), seed=1)
    run(manifest, tmp_path / "b", shard=(1, 2), seed=2)
    with pytest.raises(ShardError, match="shard 1/2 in .*b was converted with other options .*seed differ"):
        merge_shards([tmp_path / "a", tmp_path / "b"], tmp_path / "merged")


def test_merge_refuses_a_shard_whose_masks_another_zlib_ng_wrote(tmp_path, monkeypatch):
    """Mask bytes depend on the encoder's version: a shard converted where another zlib-ng is installed
    (here: this one, said to be another) would mix two encodings in one layout."""
    manifest = standard_job(tmp_path / "job", n=9).write()
    run(manifest, tmp_path / "a", shard=(0, 2), workers=1)
    monkeypatch.setattr(png, "CODEC", "zlib-ng 0.0.1 Z_RLE 1")
    run(manifest, tmp_path / "b", shard=(1, 2), workers=1)
    with pytest.raises(ShardError, match="shard 1/2 in .*b was converted with other options .*mask_png differ"):
        merge_shards([tmp_path / "a", tmp_path / "b"], tmp_path / "merged")


def test_a_cache_written_by_another_mask_encoder_is_converted_again(tmp_path, monkeypatch):
    manifest = standard_job(tmp_path / "job", n=4).write()
    assert run(manifest, tmp_path / "out", workers=1).resumed == 0
    assert run(manifest, tmp_path / "out", workers=1).resumed == 4
    monkeypatch.setattr(png, "CODEC", "zlib-ng 0.0.1 Z_RLE 1")
    assert run(manifest, tmp_path / "out", workers=1).resumed == 0


def test_shards_of_one_manifest_typed_differently_and_read_through_other_mounts_merge(tmp_path):
    manifest = standard_job(tmp_path / "job", n=9).write()
    relative = os.path.relpath(manifest, os.getcwd())
    run(manifest, tmp_path / "a", shard=(0, 2))
    run(relative, tmp_path / "b", shard=(1, 2), ref_roots=(("s3://elsewhere/", str(tmp_path)),))
    merged = merge_shards([tmp_path / "a", tmp_path / "b"], tmp_path / "merged")
    assert merged.converted == run(manifest, tmp_path / "whole").converted == 9


def test_merge_refuses_shards_of_other_manifests(tmp_path):
    one = standard_job(tmp_path / "one", n=9).write()
    other = standard_job(tmp_path / "other", n=8).write()
    run(one, tmp_path / "a", shard=(0, 2))
    run(other, tmp_path / "b", shard=(1, 2))
    with pytest.raises(ShardError, match="shard 1/2 in .*b was converted from another manifest"):
        merge_shards([tmp_path / "a", tmp_path / "b"], tmp_path / "merged")


def test_a_shard_whose_items_changed_after_it_finished_is_refused(tmp_path):
    manifest = standard_job(tmp_path / "job", n=8).write()
    folders = shards(manifest, tmp_path, 2)
    cached = sorted((folders[0] / ".gt2seg" / "items").glob("*.json"))[0]
    data = json.loads(cached.read_text())
    cached.write_text(json.dumps({**data, "fingerprint": "from another run"}))  # as a later run would leave it
    with pytest.raises(ShardError, match=f"shard 0/2 in .*shard0: item {cached.stem} was changed or removed"):
        merge_shards(folders, tmp_path / "merged")
    run(manifest, tmp_path / "other", shard=(0, 3))
    with pytest.raises(ShardError, match="shard 0/3 in .*other is one of 3 shards"):
        merge_shards([*folders, tmp_path / "other"], tmp_path / "merged2")


def test_a_killed_shard_is_missing_until_rerun_and_then_resumes(tmp_path):
    manifest = standard_job(tmp_path / "job", n=40).write()
    ours = [f"img{i:02d}" for i in range(40) if int(hashlib.sha1(f"img{i:02d}".encode()).hexdigest(), 16) % 2 == 0]
    fifo = Fifo(tmp_path / "job" / "images" / f"{ours[6]}.jpg")  # the run blocks on shard 0's 7th item
    out, items = tmp_path / "shard0", tmp_path / "shard0" / ".gt2seg" / "items"
    proc = subprocess.Popen([*GT2SEG, "convert", manifest, out, "--shard", "0/2", "--workers", "1", "--prefetch", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        fifo.wait_for_reader(proc)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    fifo.restore()
    assert proc.returncode == -signal.SIGKILL and not (out / ".gt2seg" / "shard-0-of-2.json").exists()
    run(manifest, tmp_path / "shard1", shard=(1, 2))
    with pytest.raises(ShardError, match="shard\\(s\\) 0/2 missing"):
        merge_shards([out, tmp_path / "shard1"], tmp_path / "merged")
    assert not (tmp_path / "merged").exists()
    finished = len(list(items.glob("*.json")))
    report = run(manifest, out, shard=(0, 2))
    assert finished >= 5 and report.resumed == finished and report.items == len(ours)
    merge_shards([out, tmp_path / "shard1"], tmp_path / "merged")
    run(manifest, tmp_path / "whole")
    assert report_json(tmp_path / "merged")["pixels_per_class"] == report_json(tmp_path / "whole")["pixels_per_class"]


def test_merge_command_names_the_missing_shard(tmp_path):
    manifest = standard_job(tmp_path / "job", n=6).write()
    folders = shards(manifest, tmp_path, 2)
    result = subprocess.run([*GT2SEG, "merge", tmp_path / "merged", folders[1]], capture_output=True, text=True)
    assert result.returncode == 1 and "shard(s) 0/2 missing" in result.stderr and "Traceback" not in result.stderr
