"""One atomic write and one class table for both packages."""
import os

import numpy as np
import pytest

from gt2seg.atomic import atomic_files, atomic_path, atomic_write
from gt2seg.classes import IGNORE, ClassTable, palette_for, parse_classes, read_classes
from gt2seg.errors import ClassesError
from gt2seg.render import mask_image, overlay


def test_atomic_write_replaces_the_whole_file_creates_the_folder_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic_write(target, "first")
    atomic_write(target, b"second")
    assert target.read_bytes() == b"second" and os.listdir(target.parent) == ["a.json"]


def test_atomic_writes_give_the_mode_of_a_plain_open_not_mkstemps_0600(tmp_path):
    previous = os.umask(0o027)
    try:
        atomic_write(tmp_path / "a.png", b"x")
        with atomic_path(tmp_path / "train.manifest") as tmp:
            tmp.write_text("{}\n")
        (tmp_path / "plain").write_bytes(b"x")
    finally:
        os.umask(previous)
    modes = {name: (tmp_path / name).stat().st_mode & 0o777 for name in ("a.png", "train.manifest", "plain")}
    assert modes == {"a.png": 0o640, "train.manifest": 0o640, "plain": 0o640}


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "a.json"
    atomic_write(target, "old")
    with pytest.raises(TypeError):
        atomic_write(target, 12)  # not bytes: fails after the temp file was created
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("keep")
    with pytest.raises(OSError):
        atomic_write(tmp_path / "d", b"new")  # a folder in the way: the rename fails
    assert target.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["a.json", "d"]
    assert os.listdir(tmp_path / "d") == ["x"]


def test_a_failed_writer_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "model.params"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["model.params"]


def test_atomic_files_moves_every_named_file_in_only_when_the_block_succeeds(tmp_path):
    with atomic_files(tmp_path, ("a", "b")) as tmp:
        (tmp / "a").write_text("1")
        (tmp / "b").write_text("2")
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]
    with pytest.raises(RuntimeError):
        with atomic_files(tmp_path, ("a", "b")) as tmp:
            (tmp / "a").write_text("new")
            raise RuntimeError
    assert (tmp_path / "a").read_text() == "1" and sorted(os.listdir(tmp_path)) == ["a", "b"]


def test_default_table_is_background_then_numbered_classes_in_the_ground_truth_palette():
    table = ClassTable.default(4)
    assert table.names == ["BACKGROUND", "class_1", "class_2", "class_3"]
    assert [c.color for c in table.classes] == ["#ffffff", "#2ca02c", "#1f77b4", "#ff7f0e"]
    colors = [c.color for c in ClassTable.default(254).classes]
    assert len(set(colors)) == 254
    assert ClassTable.from_json(table.to_json()) == table


def test_classes_json_is_checked_and_the_error_names_the_file(tmp_path):
    path = tmp_path / "classes.json"
    path.write_text('[{"index": 0, "name": "a"}, {"index": 2, "name": "b"}]')
    with pytest.raises(ClassesError, match=f"{path}: expected .* indices 0..C-1"):
        read_classes(path)
    with pytest.raises(ClassesError, match="not a readable classes.json"):
        parse_classes("{not json", "x/classes.json")
    with pytest.raises(ClassesError, match="absent.json: not a readable"):
        read_classes(tmp_path / "absent.json")


def test_palette_puts_each_colour_at_its_index_and_the_mask_picture_keeps_indices():
    entries = [{"index": 0, "name": "BACKGROUND", "color": "#ffffff"}, {"index": 1, "name": "a", "color": "#0a0b0c"},
               {"index": 2, "name": "no colour"}]
    palette = palette_for(entries)
    assert palette[:9] == bytes([255, 255, 255, 10, 11, 12, 0, 0, 0]) and palette[3 * IGNORE:] == bytes(3)
    mask = np.array([[0, 1], [2, 1]], np.uint8)
    image = mask_image(mask, entries)
    assert image.mode == "P" and (np.asarray(image) == mask).all()
    rgb = np.full((2, 2, 3), 100, np.uint8)
    blended = overlay(rgb, image)
    assert (blended[0, 0] == 100).all() and (blended[0, 1] == (55, 55, 56)).all()
    assert ClassTable.default(3).palette() == palette_for(ClassTable.default(3).entries())
