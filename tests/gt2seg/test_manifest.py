import json

import pytest

from gt2seg.classes import ClassTable
from gt2seg.errors import ManifestError
from gt2seg.manifest import SEG_TYPE, parse_manifest, read_manifest


def seg_line(source="s3://b/a.jpg", attr="job-ref", meta_key=None, cmap=None, **extra):
    cmap = cmap or {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"},
                    "1": {"class-name": "car", "hex-color": "#2ca02c"}}
    line = {"source-ref": source, attr: "s3://b/m.png",
            (meta_key or f"{attr}-metadata"): {"internal-color-map": cmap, "type": SEG_TYPE}}
    line.update(extra)
    return json.dumps(line)


def parse(*lines, attrs=()):
    return parse_manifest("\n".join(lines), "m", attrs)


def test_attribute_found_by_metadata_type_under_ref_metadata_key():
    m = parse(seg_line(attr="S10-label3-ref", extra_job="labeling-job/s10-label3"))
    assert m.chosen == ["S10-label3-ref"]
    assert m.records[0].mask_ref == "s3://b/m.png"


def test_attribute_found_when_metadata_key_drops_the_ref_suffix():
    # The AWS docs' example: "city-streets-ref" with "city-streets-metadata".
    m = parse(seg_line(attr="city-streets-ref", meta_key="city-streets-metadata"))
    assert m.chosen == ["city-streets-ref"] and len(m.records) == 1


def test_classification_attribute_on_the_same_line_is_not_chosen():
    line = json.loads(seg_line(attr="anomaly-mask-ref"))
    line["anomaly-label"] = 1
    line["anomaly-label-metadata"] = {"type": "groundtruth/image-classification", "class-name": "anomaly"}
    m = parse(json.dumps(line))
    assert m.chosen == ["anomaly-mask-ref"]
    assert m.attributes["anomaly-label"].type == "groundtruth/image-classification"


def test_two_segmentation_attributes_are_an_error_listing_both():
    line = json.loads(seg_line(attr="city-ref"))
    line.update(json.loads(seg_line(attr="city-adjusted-ref")))
    m = parse(json.dumps(line))
    assert m.records == []
    assert "city-ref" in m.problems[0] and "city-adjusted-ref" in m.problems[0]
    assert "--label-attribute" in m.problems[0]


def test_attribute_priority_first_present_on_each_line_wins():
    both = json.loads(seg_line(source="s3://b/1.jpg", attr="city-ref"))
    both.update(json.loads(seg_line(source="s3://b/1.jpg", attr="city-adjusted-ref")))
    only_original = seg_line(source="s3://b/2.jpg", attr="city-ref")
    m = parse(json.dumps(both), only_original, attrs=("city-adjusted-ref", "city-ref"))
    assert [r.attribute for r in m.records] == ["city-adjusted-ref", "city-ref"]


def test_attribute_may_be_named_without_ref_suffix():
    m = parse(seg_line(attr="city-ref"), attrs=("city",))
    assert m.chosen == ["city-ref"]


def test_unknown_attribute_suggests_the_close_name():
    m = parse(seg_line(attr="my-cat-job-ref"), attrs=("my-job-cat-ref",))
    assert "did you mean 'my-cat-job-ref'" in m.problems[0]


def test_non_segmentation_attribute_requested_is_rejected():
    line = json.loads(seg_line())
    line["kind"] = 1
    line["kind-metadata"] = {"type": "groundtruth/image-classification"}
    m = parse(json.dumps(line), attrs=("kind",))
    assert "not groundtruth/semantic-segmentation" in m.problems[0]


def test_unlabeled_and_failed_lines_are_skipped_and_counted():
    failed = {"source-ref": "s3://b/f.jpg",
              "job-ref-metadata": {"failure-reason": "ClientError: Annotation tasks expired",
                                   "type": SEG_TYPE}}
    m = parse(seg_line(), json.dumps({"source-ref": "s3://b/u.jpg"}), json.dumps(failed))
    assert len(m.records) == 1
    assert m.skipped_by_reason() == {"failed": 1, "unlabeled": 1}
    assert [s.line for s in m.skipped] == [2, 3]
    assert "expired" in m.skipped[1].detail


def test_failure_reason_without_type_still_counts_as_failed():
    failed = {"source-ref": "s3://b/f.jpg", "job-ref-metadata": {"failure-reason": "timeout"}}
    m = parse(seg_line(), json.dumps(failed))
    assert m.skipped_by_reason() == {"failed": 1}


def test_malformed_json_line_is_reported_with_its_line_number(tmp_path):
    path = tmp_path / "m.manifest"
    path.write_text(seg_line() + "\n{not json\n")
    with pytest.raises(ManifestError, match="line 2: not valid JSON"):
        read_manifest(str(path))


def test_manifest_with_no_usable_line_is_an_error(tmp_path):
    path = tmp_path / "m.manifest"
    path.write_text(json.dumps({"source-ref": "s3://b/u.jpg"}) + "\n")
    with pytest.raises(ManifestError, match="semantic-segmentation"):
        read_manifest(str(path))


def test_empty_manifest_is_an_error(tmp_path):
    path = tmp_path / "m.manifest"
    path.write_text("\n")
    with pytest.raises(ManifestError, match="no usable line"):
        read_manifest(str(path))


def test_bad_hex_color_is_a_problem_naming_the_line():
    cmap = {"0": {"class-name": "BACKGROUND", "hex-color": "white"}}
    m = parse(seg_line(), seg_line(cmap=cmap))
    assert m.problems == ["line 2: hex-color 'white' of class 'BACKGROUND' is not #rrggbb"]


def test_class_table_joins_lines_by_name_with_background_first():
    a = seg_line(cmap={"0": {"class-name": "cracked", "hex-color": "#23A436"}})
    b = seg_line(cmap={"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"},
                       "1": {"class-name": "dent", "hex-color": "#1f77b4"},
                       "2": {"class-name": "cracked", "hex-color": "#23a436"}})
    table = ClassTable.build(parse(a, b).records)
    assert [(c.index, c.name, c.color) for c in table.classes] == [
        (0, "BACKGROUND", "#ffffff"), (1, "cracked", "#23a436"), (2, "dent", "#1f77b4")]
    assert table.warnings == ()


def test_class_table_does_not_depend_on_line_order():
    lines = [seg_line(cmap={"0": {"class-name": "BACKGROUND"}, "1": {"class-name": n}, "2": {"class-name": o}})
             for n, o in (("road", "tree"), ("tree", "car"), ("car", "road"))]
    tables = {tuple(ClassTable.build(parse(*order).records).names) for order in
              (lines, lines[::-1], lines[1:] + lines[:1])}
    assert len(tables) == 1


def test_classes_without_hex_color_get_distinct_default_colors():
    m = parse(seg_line(cmap={"0": {"class-name": "BACKGROUND"}, "1": {"class-name": "a"}, "2": {"class-name": "b"}}))
    colors = [c.color for c in ClassTable.build(m.records).classes]
    assert len(set(colors)) == 3 and all(c.startswith("#") and len(c) == 7 for c in colors)


def test_conflicting_colors_for_one_class_are_warned():
    a = seg_line(cmap={"1": {"class-name": "car", "hex-color": "#2ca02c"}})
    b = seg_line(cmap={"1": {"class-name": "car", "hex-color": "#ff0000"}})
    assert "several colours" in ClassTable.build(parse(a, b).records).warnings[0]


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "m.manifest"
    path.write_bytes(b"\xef\xbb\xbf" + seg_line().encode() + b"\n")
    assert len(read_manifest(str(path)).records) == 1
