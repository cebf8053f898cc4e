import json
import pickle

import pytest

from gt2seg.classes import ClassTable
from gt2seg import jsonl
from gt2seg.errors import JsonLineError, ManifestError
from gt2seg.manifest import SEG_TYPE, ColorEntry, Record, parse_manifest, read_manifest


def seg_line(source="s3://b/a.jpg", attr="job-ref", meta_key=None, cmap=None, ensure_ascii=True, **extra):
    cmap = cmap or {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"},
                    "1": {"class-name": "car", "hex-color": "#2ca02c"}}
    line = {"source-ref": source, attr: "s3://b/m.png",
            (meta_key or f"{attr}-metadata"): {"internal-color-map": cmap, "type": SEG_TYPE}}
    line.update(extra)
    return json.dumps(line, ensure_ascii=ensure_ascii)


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


def test_unicode_line_separators_inside_strings_do_not_split_a_line():
    names = ["a\u2028b", "c\u2029d", "e\u0085f", "g", "h\u2028", "i"]  # str.splitlines cuts at each
    lines = [seg_line(source=f"s3://b/{n}.jpg", ensure_ascii=False) for n in names]
    assert len("\n".join(lines).splitlines()) == 10
    m = parse(*lines)
    assert m.problems == [] and m.lines == 6
    assert [r.source_ref for r in m.records] == [f"s3://b/{n}.jpg" for n in names]


def test_a_local_manifest_streamed_from_disk_reads_as_its_text_does(tmp_path):
    names = ["a\u2028b", "c\u2029d", "e\u0085f\r", "g"]
    lines = [seg_line(source=f"s3://b/{n}.jpg", ensure_ascii=False) for n in names]
    text = "\ufeff" + lines[0] + "\r\n\n  \n" + "\n".join(lines[1:]) + "\n{oops\n"
    path = tmp_path / "m.manifest"
    path.write_bytes(text.encode("utf-8"))
    streamed, whole = read_manifest(str(path), strict=False), parse_manifest(text.lstrip("\ufeff"), str(path))
    assert streamed == whole and len(streamed.records) == 4 and streamed.lines == 5
    assert streamed.problems == ["line 7: not valid JSON (Expecting property name enclosed in double quotes at column 2)"]


def test_a_local_manifest_that_is_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "m.manifest"
    path.write_bytes(seg_line().encode() + b"\n" + b'{"source-ref": "\xff"}\n')
    with pytest.raises(ManifestError, match=r"line 2: .*m.manifest is not UTF-8 text"):
        read_manifest(str(path))


def test_crlf_line_ends_are_accepted_and_lines_counted_by_newline():
    assert [n for n, _ in jsonl.lines("{}\r\n\r\n{}\r\n")] == [1, 3]


@pytest.mark.parametrize("raw, message", [
    ('{"a": 1, "a": 2}', "line 3: duplicate key 'a'"),
    ('{"m": {"class-name": "x", "class-name": "y"}}', "line 3: duplicate key 'class-name'"),
    ('{"a": NaN}', "line 3: NaN is not valid JSON"),
    ('{"a": Infinity}', "line 3: Infinity is not valid JSON"),
    ('{"a": ' * 50_000, "line 3: nested too deeply"),
    ('"text"', "line 3: a JSON object is expected, got str"),
    ('{"a": "x\\ud800y"}', "line 3: '\\\\ud800' is a lone surrogate escape"),
    ('{"a": }', "line 3: not valid JSON"),
])
def test_strict_json_lines_refuse_what_json_accepts_or_chokes_on(raw, message):
    with pytest.raises(JsonLineError, match=message) as err:
        jsonl.parse_object(raw, 3)
    assert err.value.line == 3


def test_duplicate_keys_and_nan_are_manifest_problems_naming_the_line():
    m = parse(seg_line(), '{"source-ref": "s3://b/1.jpg", "source-ref": "s3://b/2.jpg"}', '{"x": NaN}')
    assert m.problems == [
        "line 2: duplicate key 'source-ref' (JSON readers disagree on which value wins); keep one",
        "line 3: NaN is not valid JSON (JSON has no NaN or Infinity); write a number, or null"]


@pytest.mark.parametrize("keys, message", [
    (("1", "\u00b9"), "internal-color-map entry '\u00b9' must be"),
    (("1", "\u0661"), "internal-color-map entry '\u0661' must be"),  # Arabic-Indic one
    (("1", "01"), "internal-color-map keys '1' and '01' are both mask value 1; keep one"),
])
def test_colour_map_keys_are_ascii_integers_one_per_mask_value(keys, message):
    cmap = {"0": {"class-name": "BACKGROUND"}, keys[0]: {"class-name": "car"}, keys[1]: {"class-name": "bus"}}
    m = parse(seg_line(), seg_line(source="s3://b/2.jpg", cmap=cmap))
    assert len(m.records) == 1 and len(m.problems) == 1
    assert m.problems[0].startswith("line 2: ") and message in m.problems[0]


def test_a_surrogate_pair_escape_is_one_character_and_accepted():
    assert jsonl.parse_object('{"a": "\\ud83d\\ude00"}', 1) == {"a": "\U0001F600"}


def test_a_record_holds_no_dict_yet_pickles_and_stays_frozen():
    """One Record is held per line: slots, without losing pickling or immutability."""
    record = Record(3, "images/a.jpg", "label-ref", "masks/a.png", (ColorEntry(0, "BACKGROUND", "#ffffff"),))
    assert not hasattr(record, "__dict__")
    assert pickle.loads(pickle.dumps(record)) == record
    with pytest.raises(AttributeError):
        record.line = 4
