"""Tiny exports of the labeling tools, written as each tool writes them: COCO instances JSON (CVAT, Label Studio,
Datumaro), CVAT's Segmentation mask 1.1, Label Studio's JSON export. Each writer returns what a test needs."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from archives import write

W, H = 48, 36


def gt2seg(*args) -> subprocess.CompletedProcess:
    """The CLI as a user runs it: a real subprocess."""
    return subprocess.run([sys.executable, "-m", "gt2seg.cli", *map(str, args)], capture_output=True, text=True)


def written(out: Path) -> dict[str, np.ndarray]:
    """The layout's masks by name, both sides."""
    return {p.stem: np.asarray(Image.open(p)) for side in ("train", "validation")
            for p in (out / f"{side}_annotation").glob("*.png")}


def sides(out: Path) -> dict[str, str]:
    return {p.stem: side for side in ("train", "validation") for p in (out / f"{side}_annotation").glob("*.png")}


def jpeg(seed: int, width: int = W, height: int = H) -> bytes:
    rgb = np.random.default_rng(seed).integers(0, 255, (height, width, 3), np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(out, format="JPEG", quality=90)
    return out.getvalue()


def png_rgb(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(out, format="PNG")
    return out.getvalue()


def uncompressed_counts(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE counts of a 0/1 mask (column-major, starting with a run of zeros), as CVAT
    writes them for its masks."""
    flat = mask.T.reshape(-1).astype(np.uint8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds).tolist()
    return counts if flat[0] == 0 else [0, *counts]


def blob(x0, y0, x1, y1, width=W, height=H) -> np.ndarray:
    m = np.zeros((height, width), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


# Category ids with gaps, out of order, as merged exports have them; "car" is never used.
CATEGORIES = [{"id": 17, "name": "car", "supercategory": ""}, {"id": 1, "name": "cat", "supercategory": ""},
              {"id": 5, "name": "dog", "supercategory": ""}]
CLASSES = ["BACKGROUND", "cat", "dog", "car"]  # BACKGROUND, then the names in category-id order


def coco(root: Path, images_dir: str = "images", annotations: str = "annotations/instances_default.json") -> dict:
    """A COCO export: polygons (one object in two parts; overlapping objects), an uncompressed-RLE crowd, a
    compressed-RLE object, an image without annotations. Returns the JSON written."""
    from pycocotools import mask as coco_mask

    compressed = coco_mask.encode(np.asfortranarray(blob(30, 4, 44, 30)))
    compressed["counts"] = compressed["counts"].decode()
    crowd = blob(2, 20, 26, 34)
    data = {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "", "date_created": "", "description": "", "url": "", "version": "", "year": ""},
        "categories": CATEGORIES,
        "images": [
            {"id": 1, "width": W, "height": H, "file_name": "street/a.jpg", "license": 0, "date_captured": 0},
            {"id": 2, "width": W, "height": H, "file_name": "b.jpg", "license": 0, "date_captured": 0},
            {"id": 7, "width": W, "height": H, "file_name": "c.jpg", "license": 0, "date_captured": 0},
            {"id": 9, "width": W, "height": H, "file_name": "empty.jpg", "license": 0, "date_captured": 0},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 0.0, "bbox": [0, 0, 0, 0],
             "segmentation": [[3.5, 2.2, 20.7, 3.1, 18.2, 17.9, 4.4, 15.0], [25.0, 2.0, 33.5, 2.5, 29.0, 12.25]]},
            {"id": 2, "image_id": 1, "category_id": 5, "iscrowd": 0, "area": 0.0, "bbox": [0, 0, 0, 0],
             "segmentation": [[10.0, 10.0, 40.0, 12.0, 38.6, 33.3, 12.0, 30.0, 9.1, 21.7]]},
            {"id": 3, "image_id": 2, "category_id": 1, "iscrowd": 1, "area": 0.0, "bbox": [0, 0, 0, 0],
             "segmentation": {"size": [H, W], "counts": uncompressed_counts(crowd)}},
            {"id": 4, "image_id": 2, "category_id": 5, "iscrowd": 0, "area": 0.0, "bbox": [0, 0, 0, 0],
             "segmentation": [[20.0, 15.0, 47.0, 15.0, 47.0, 35.0, 20.0, 35.0]]},
            {"id": 5, "image_id": 7, "category_id": 5, "iscrowd": 0, "area": 0.0, "bbox": [0, 0, 0, 0],
             "segmentation": compressed},
        ],
    }
    for n, image in enumerate(data["images"]):
        write(root / images_dir / image["file_name"], jpeg(n))
    write(root / annotations, json.dumps(data).encode())
    return data


def coco_reference(data: dict, overlap: str = "later", crowd: str = "class") -> dict[str, np.ndarray]:
    """Each image's class-index mask as pycocotools' COCO.annToMask gives each object, painted by `overlap`:
    the reference the import must equal."""
    from pycocotools.coco import COCO

    api = COCO()
    api.dataset = data
    api.createIndex()
    index = {c["id"]: 0 if c["name"].lower() == "background" else CLASSES.index(c["name"]) for c in data["categories"]}
    out = {}
    for image in data["images"]:
        objects = [(255 if crowd == "ignore" and a["iscrowd"] else index[a["category_id"]], api.annToMask(a))
                   for a in data["annotations"] if a["image_id"] == image["id"]]
        if overlap == "smaller":
            objects.sort(key=lambda o: -int(o[1].sum()))
        mask = np.zeros((image["height"], image["width"]), np.uint8)
        hits = np.zeros_like(mask, int)
        for value, m in objects:
            if overlap == "ignore":
                clash = (m > 0) & (hits > 0) & (mask != value)
                mask[(m > 0) & (hits == 0)] = value
                mask[clash] = 255
                hits += m
            else:
                mask[m > 0] = value
        out[Path(image["file_name"]).stem] = mask
    return out


CVAT_LABELS = [("background", (0, 0, 0)), ("road", (128, 64, 128)), ("car", (250, 50, 83))]


def cvat(root: Path, subsets=("default",), zipped: bool = False) -> dict[str, np.ndarray]:
    """CVAT's Segmentation mask 1.1 export (with images): labelmap.txt, RGB class masks, per-subset lists.
    Returns each image's class-index mask; zipped: the same files in export.zip under root."""
    files: dict[str, bytes] = {}
    labelmap = "# label:color_rgb:parts:actions\n" + "".join(f"{name}:{r},{g},{b}::\n" for name, (r, g, b)
                                                             in CVAT_LABELS)
    files["labelmap.txt"] = labelmap.encode()
    masks, lists = {}, {s: [] for s in subsets}
    for n, name in enumerate(["frame_000000", "frame_000001", "frame_000002", "frame_000003", "frame_000004"]):
        index = np.zeros((H, W), np.uint8)
        index[H // 2:, :] = 1
        index[5 + n:15 + n, 10:30] = 2
        rgb = np.zeros((H, W, 3), np.uint8)
        for i, (_, colour) in enumerate(CVAT_LABELS):
            rgb[index == i] = colour
        files[f"SegmentationClass/{name}.png"] = png_rgb(rgb)
        files[f"SegmentationObject/{name}.png"] = png_rgb(rgb)
        files[f"JPEGImages/{name}.jpg"] = jpeg(n)
        lists[subsets[n % len(subsets)]].append(name)
        masks[name] = index
    for subset, names in lists.items():
        files[f"ImageSets/Segmentation/{subset}.txt"] = "".join(f"{n}\n" for n in names).encode()
    if zipped:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in files.items():
                archive.writestr(name, data)
        write(root / "export.zip", out.getvalue())
    else:
        for name, data in files.items():
            write(root / name, data)
    return masks


LS_CLASSES = ["BACKGROUND", "Cat", "Dog"]  # the labels used, by name


def _ls_brush(mask: np.ndarray, label: str, rid: str) -> dict:
    """A brush result as Label Studio writes it: its RLE of the RGBA stroke picture (all four channels 255 where
    painted), made by Label Studio's own encoder."""
    from label_studio_converter import brush

    return {"original_width": mask.shape[1], "original_height": mask.shape[0], "image_rotation": 0,
            "value": {"format": "rle", "rle": brush.mask2rle((mask * 255).astype(np.uint8)), "brushlabels": [label]},
            "id": rid, "from_name": "tag", "to_name": "image", "type": "brushlabels", "origin": "manual"}


def _ls_polygon(points, label: str, rid: str) -> dict:
    return {"original_width": W, "original_height": H, "image_rotation": 0,
            "value": {"points": [list(p) for p in points], "closed": True, "polygonlabels": [label]},
            "id": rid, "from_name": "label", "to_name": "image", "type": "polygonlabels", "origin": "manual"}


def _ls_annotation(aid: int, results: list, created: str, ground_truth=False, cancelled=False) -> dict:
    return {"id": aid, "completed_by": 1, "result": results, "was_cancelled": cancelled,
            "ground_truth": ground_truth, "created_at": created, "updated_at": created, "draft_created_at": None,
            "lead_time": 10.5, "prediction": {}, "result_count": 0, "unique_id": f"u-{aid}", "import_id": None,
            "last_action": None, "task": 0, "project": 3, "updated_by": 1, "parent_prediction": None,
            "parent_annotation": None, "last_created_by": None}


def _ls_task(tid: int, url: str, annotations: list) -> dict:
    return {"id": tid, "annotations": annotations, "file_upload": url.rsplit("/", 1)[-1], "drafts": [],
            "predictions": [], "data": {"image": url}, "meta": {}, "created_at": "2024-05-01T09:00:00.000000Z",
            "updated_at": "2024-05-01T09:00:00.000000Z", "inner_id": tid, "total_annotations": len(annotations),
            "cancelled_annotations": 0, "total_predictions": 0, "comment_count": 0, "unresolved_comment_count": 0,
            "last_comment_updated_at": None, "project": 3, "updated_by": 1, "comment_authors": []}


def label_studio(root: Path, local_files: Path | None = None) -> list:
    """A JSON export (project-3-at-...json) and Label Studio's media folder (upload/3/...): brush strokes and
    polygons overlapping, two annotations on one task (an older ground truth, a newer one), a cancelled-only
    task; with local_files, a task whose image is in Label Studio's local-files storage there. Returns the tasks."""
    cat = blob(4, 4, 30, 22)
    cat[10:14, 8:12] = 0  # a hole
    dog_poly = [(50.0, 40.0), (97.5, 45.0), (90.2, 99.0), (55.5, 80.25)]
    tasks = [
        _ls_task(1, "/data/upload/3/5e1f2a3b-a.jpg", [_ls_annotation(11, [
            _ls_brush(cat, "Cat", "b1"), _ls_polygon(dog_poly, "Dog", "p1")], "2024-05-02T10:00:00.000000Z")]),
        _ls_task(2, "/data/upload/3/9c8d7e6f-b%20c.jpg", [
            _ls_annotation(21, [_ls_polygon(dog_poly, "Dog", "p2")], "2024-05-02T10:00:00.000000Z", ground_truth=True),
            _ls_annotation(22, [_ls_brush(cat, "Cat", "b2")], "2024-05-03T10:00:00.000000Z")]),
        _ls_task(3, "/data/upload/3/0a0b0c0d-d.jpg", [
            _ls_annotation(31, [_ls_brush(cat, "Cat", "b3")], "2024-05-02T10:00:00.000000Z", cancelled=True)]),
        _ls_task(4, "/data/upload/3/1a1b1c1d-e.jpg", [_ls_annotation(41, [], "2024-05-02T10:00:00.000000Z")]),
    ]
    for n, name in enumerate(["5e1f2a3b-a.jpg", "9c8d7e6f-b c.jpg", "0a0b0c0d-d.jpg", "1a1b1c1d-e.jpg"]):
        write(root / "upload" / "3" / name, jpeg(n))
    if local_files is not None:
        write(local_files / "pics" / "f.jpg", jpeg(9))
        tasks.append(_ls_task(5, "/data/local-files/?d=pics/f.jpg", [_ls_annotation(
            51, [_ls_polygon(dog_poly, "Dog", "p5")], "2024-05-02T10:00:00.000000Z")]))
    write(root / "project-3-at-2024-05-04-10-00-1a2b3c4d.json", json.dumps(tasks, indent=1).encode())
    return tasks


def label_studio_reference(tasks: list, annotation: str = "ground-truth") -> dict[int, np.ndarray]:
    """Each labeled task's class-index mask, by task id: brush strokes by Label Studio's own decoder (alpha >= 128),
    polygons by pycocotools' fill of the points in pixels, later results on top."""
    from label_studio_converter import brush
    from pycocotools import mask as coco_mask

    out = {}
    for task in tasks:
        usable = [a for a in task["annotations"] if not a["was_cancelled"]]
        if not usable:
            continue
        if annotation == "ground-truth" and any(a["ground_truth"] for a in usable):
            usable = [a for a in usable if a["ground_truth"]]
        chosen = max(usable, key=lambda a: a["updated_at"])
        mask = np.zeros((H, W), np.uint8)
        for r in chosen["result"]:
            label = r["value"].get("brushlabels", r["value"].get("polygonlabels"))[0]
            if r["type"] == "brushlabels":
                m = brush.decode_rle(r["value"]["rle"]).reshape(H, W, 4)[:, :, 3] >= 128
            else:
                flat = [c for x, y in r["value"]["points"] for c in (x * W / 100, y * H / 100)]
                m = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects([flat], H, W))) > 0
            mask[m] = LS_CLASSES.index(label)
        out[task["id"]] = mask
    return out
