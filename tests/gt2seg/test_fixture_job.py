"""The bundled fixture job: regenerable byte for byte, and converted as the README's demo does."""
import json
import subprocess
import sys

import numpy as np
from PIL import Image

from gt2seg.convert import ConvertOptions, convert
from gtjob import tree
from repo import ROOT

BUCKET = ROOT / "fixtures" / "bucket"
MANIFEST = BUCKET / "labeling" / "city-blocks" / "manifests" / "output" / "output.manifest"
OPTIONS = ConvertOptions(ref_roots=(("s3://gt2seg-fixtures/", str(BUCKET)),),
                         label_attributes=("city-blocks-adjusted-ref", "city-blocks-ref"), workers=2)


def test_generator_reproduces_the_committed_fixture(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "fixtures" / "make_fixture_job.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    assert tree(tmp_path) == tree(BUCKET)


def test_fixture_converts_with_adjusted_masks_preferred(tmp_path):
    report = convert(str(MANIFEST), tmp_path, OPTIONS)
    assert report.converted == 13
    assert report.skipped_by_reason == {"failed": 1, "unlabeled": 1}
    assert report.reencoded_images == 1  # plaza.png
    assert report.routes == {"colour": 1, "index": 12}
    assert len(list(tmp_path.glob("*/corner-*.jpg"))) == 2
    # line 3 (street-02): the adjusted mask adds a tree the first mask missed
    lines = [json.loads(x) for x in MANIFEST.read_text().splitlines()]
    original = Image.open(BUCKET / lines[2]["city-blocks-ref"].replace("s3://gt2seg-fixtures/", ""))
    converted = np.asarray(Image.open(next(tmp_path.glob("*_annotation/street-02.png"))))
    assert (converted == 3).sum() > (np.asarray(original) == 3).sum()


def test_fixture_without_attribute_choice_is_ambiguous(tmp_path):
    result = subprocess.run([sys.executable, "-m", "gt2seg.cli", "convert", str(MANIFEST), str(tmp_path / "o"),
                             "--ref-root", f"s3://gt2seg-fixtures/={BUCKET}"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "city-blocks-adjusted-ref (3 lines)" in result.stderr and "city-blocks-ref (14 lines)" in result.stderr
