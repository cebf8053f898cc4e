import io
import json

import numpy as np
import pytest
from PIL import Image

import archives
from gt2seg.convert import ConvertOptions
from gt2seg.errors import ConversionError, SourceError
from gt2seg.importers import import_dataset, read_source


def written(out):
    return {p.stem: np.asarray(Image.open(p)) for side in ("train", "validation")
            for p in (out / f"{side}_annotation").glob("*.png")}


def test_index_masks_with_a_class_list_keep_their_values(tmp_path):
    masks = archives.folders(tmp_path / "src")
    import_dataset("folders", tmp_path / "src", tmp_path / "out", {"class_list": "classes.txt"})
    assert [c["name"] for c in json.loads((tmp_path / "out" / "classes.json").read_text())] == [
        "BACKGROUND", "road", "car"]
    out = written(tmp_path / "out")
    assert out.keys() == masks.keys() and all(np.array_equal(out[n], masks[n]) for n in out)


def test_colour_masks_with_a_json_table_become_indices_in_table_order(tmp_path):
    masks = archives.folders(tmp_path / "src", colours=True)
    import_dataset("folders", tmp_path / "src", tmp_path / "out", {"color_table": "colors.json"})
    classes = json.loads((tmp_path / "out" / "classes.json").read_text())
    assert [(c["name"], c["color"]) for c in classes] == list(archives.FOLDER_COLORS.items())
    out = written(tmp_path / "out")
    assert all(np.array_equal(out[n], masks[n]) for n in masks)


def test_camvid_label_colors_txt_is_a_colour_table(tmp_path):
    masks = archives.folders(tmp_path / "src", colours=True)
    (tmp_path / "src" / "label_colors.txt").write_text("30 144 255\tSky\n128 64 128\tRoad\n255 0 0\tCar\n")
    import_dataset("folders", tmp_path / "src", tmp_path / "out", {"color_table": "label_colors.txt"})
    assert [c["name"] for c in json.loads((tmp_path / "out" / "classes.json").read_text())] == ["Sky", "Road", "Car"]
    assert all(np.array_equal(m, masks[n]) for n, m in written(tmp_path / "out").items())


def test_an_unknown_colour_follows_the_unknown_color_policy(tmp_path):
    archives.folders(tmp_path / "src", colours=True)
    rgb = np.zeros((archives.H, archives.W, 3), np.uint8)
    rgb[:] = (1, 2, 3)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    (tmp_path / "src" / "masks" / "a.png").write_bytes(buf.getvalue())
    with pytest.raises(ConversionError, match=r"masks/a.png has colours that are not in .*#010203"):
        import_dataset("folders", tmp_path / "src", tmp_path / "out", {"color_table": "colors.json"})
    import_dataset("folders", tmp_path / "src", tmp_path / "out", {"color_table": "colors.json"},
                   ConvertOptions(unknown_color="ignore"))
    assert (written(tmp_path / "out")["a"] == 255).all()


def test_unpaired_and_duplicate_stems_are_counted_skips_naming_the_files(tmp_path):
    archives.folders(tmp_path / "src")
    (tmp_path / "src" / "images" / "b.png").write_bytes(archives.png(np.zeros((4, 4))))
    (tmp_path / "src" / "images" / "f.jpg").write_bytes(archives.jpeg(5))
    (tmp_path / "src" / "masks" / "g.png").write_bytes(archives.png(np.zeros((4, 4))))
    job = read_source("folders", tmp_path / "src", {"class_list": "classes.txt"})
    assert sorted((s.reason, s.detail) for s in job.manifest.skipped) == [
        ("duplicate-stem", "images images/b.jpg, images/b.png share the stem 'b'; rename one"),
        ("no-image", "masks/b.png has no image in images/"),
        ("no-image", "masks/g.png has no image in images/"),
        ("no-mask", "images/f.jpg has no mask in masks/")]


def test_a_class_list_or_colour_table_is_required(tmp_path):
    archives.folders(tmp_path / "src")
    with pytest.raises(SourceError, match="give one of --class-list FILE .* or --color-table FILE"):
        read_source("folders", tmp_path / "src")
    with pytest.raises(SourceError, match=r"nope.txt does not exist; expected a class list"):
        read_source("folders", tmp_path / "src", {"class_list": "nope.txt"})


def test_an_s3_source_imports_like_a_local_one(tmp_path, s3, s3_bucket):
    masks = archives.folders(tmp_path / "src", colours=True)
    src = archives.upload(s3, s3_bucket, tmp_path / "src", "datasets/folders")
    import_dataset("folders", src, tmp_path / "out", {"color_table": "colors.json"})
    out = written(tmp_path / "out")
    assert out.keys() == masks.keys() and all(np.array_equal(out[n], masks[n]) for n in masks)


def test_option_paths_are_read_relative_to_src_however_they_are_spelled(tmp_path):
    masks = archives.folders(tmp_path / "src")
    import_dataset("folders", tmp_path / "src", tmp_path / "out",
                   {"class_list": "./classes.txt", "images": "./images/", "masks": "masks/."})
    assert written(tmp_path / "out").keys() == masks.keys()


@pytest.mark.parametrize("option, value", [("class_list", "../classes.txt"), ("class_list", "/etc/hostname"),
                                           ("images", "../images")])
def test_an_option_path_outside_src_is_refused_naming_it(tmp_path, option, value):
    archives.folders(tmp_path / "src")
    settings = {"class_list": "classes.txt", option: value}
    with pytest.raises(SourceError, match=f"'{value}' is not inside .*: name it relative to SRC"):
        read_source("folders", tmp_path / "src", settings)


def test_a_colour_table_naming_a_class_twice_is_refused(tmp_path):
    archives.folders(tmp_path / "src", colours=True)
    (tmp_path / "src" / "colors.json").write_text('{"road": "#804080", "road": "#ff0000"}')
    with pytest.raises(SourceError, match="colors.json: duplicate key 'road'"):
        read_source("folders", tmp_path / "src", {"color_table": "colors.json"})


def test_more_classes_than_masks_can_hold_is_refused(tmp_path):
    archives.folders(tmp_path / "src")
    (tmp_path / "src" / "classes.txt").write_text("".join(f"c{i}\n" for i in range(300)))
    with pytest.raises(SourceError, match="300 classes: at most 254"):
        read_source("folders", tmp_path / "src", {"class_list": "classes.txt"})
