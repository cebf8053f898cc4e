"""Tiny datasets laid out exactly like the real archives (Oxford-IIIT Pet, Pascal VOC 2012, mask folders),
with the real archives' quirks where asked. Each writer returns what a test needs to check pixels."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

W, H = 20, 16
# (image stem, CLASS-ID, SPECIES, BREED-ID) as in the real list.txt
PETS = [
    ("Abyssinian_1", 1, 1, 1), ("Abyssinian_2", 1, 1, 1), ("Abyssinian_3", 1, 1, 1),
    ("american_bulldog_10", 2, 2, 1), ("american_bulldog_11", 2, 2, 1), ("american_bulldog_12", 2, 2, 1),
    ("Bengal_4", 6, 1, 2), ("Bengal_5", 6, 1, 2), ("Bengal_6", 6, 1, 2),
]
PETS_HEADER = """#Image CLASS-ID SPECIES BREED ID
#ID: 1:37 Class ids
#SPECIES: 1:Cat 2:Dog
#BREED ID: 1-25:Cat 1:12:Dog
#All images with 1st letter as captial are cat images
#images with small first letter are dog images
"""
PETS_TEST = {"Abyssinian_3", "american_bulldog_12", "Bengal_6"}


def jpeg(seed: int, mode: str = "RGB") -> bytes:
    rgb = Image.fromarray(np.random.default_rng(seed).integers(0, 255, (H, W, 3), np.uint8), "RGB")
    out = io.BytesIO()
    (rgb if mode == "RGB" else rgb.convert(mode)).save(out, format="JPEG", quality=90)
    return out.getvalue()


def png(array: np.ndarray, mode: str = "L", palette: bytes | None = None) -> bytes:
    img = Image.fromarray(array.astype(np.uint8), "L")
    if mode == "P":
        img = img.convert("P")
        img.putpalette(palette or bytes(768))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def trimap(seed: int) -> np.ndarray:
    """2 = background, 1 = pet (a box placed by seed), 3 = a one-pixel border around it."""
    t = np.full((H, W), 2, np.uint8)
    x, y = 2 + seed % 6, 2 + seed % 4
    t[y:y + 9, x:x + 10] = 3
    t[y + 1:y + 8, x + 1:x + 9] = 1
    return t


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def pets(root: Path, quirks: bool = False) -> dict[str, np.ndarray]:
    """The Pet archive under root; returns each importable image's trimap. quirks: an image without trimap,
    a PNG and a CMYK and a greyscale JPEG named .jpg, `._*` files, and an unlisted image."""
    trimaps = {}
    rows = list(PETS)
    for n, (name, *_ids) in enumerate(rows):
        write(root / "images" / f"{name}.jpg", jpeg(n))
        trimaps[name] = trimap(n)
        write(root / "annotations" / "trimaps" / f"{name}.png", png(trimaps[name]))
    if quirks:
        write(root / "images" / "Bengal_7.jpg", jpeg(7))  # listed, no trimap
        rows.append(("Bengal_7", 6, 1, 2))
        for n, (name, mode) in enumerate([("Bengal_8", "CMYK"), ("Bengal_9", "L")], 8):
            write(root / "images" / f"{name}.jpg", jpeg(n, mode))
            trimaps[name] = trimap(n)
            write(root / "annotations" / "trimaps" / f"{name}.png", png(trimaps[name]))
            rows.append((name, 6, 1, 2))
        out = io.BytesIO()
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(out, format="PNG")
        write(root / "images" / "Bengal_10.jpg", out.getvalue())  # a PNG with a .jpg name
        trimaps["Bengal_10"] = trimap(10)
        write(root / "annotations" / "trimaps" / "Bengal_10.png", png(trimaps["Bengal_10"]))
        rows.append(("Bengal_10", 6, 1, 2))
        write(root / "images" / "._Abyssinian_1.jpg", b"\x00\x05\x16\x07 resource fork")
        write(root / "annotations" / "trimaps" / "._Abyssinian_1.png", b"\x00\x05\x16\x07 resource fork")
        write(root / "images" / "Bengal_99.jpg", jpeg(99))  # on disk, not in list.txt
    listing = "".join(f"{name} {c} {s} {b}\n" for name, c, s, b in rows)
    write(root / "annotations" / "list.txt", (PETS_HEADER + listing).encode())
    write(root / "annotations" / "trainval.txt",
          "".join(f"{name} {c} {s} {b}\n" for name, c, s, b in rows if name not in PETS_TEST).encode())
    write(root / "annotations" / "test.txt",
          "".join(f"{name} {c} {s} {b}\n" for name, c, s, b in rows if name in PETS_TEST).encode())
    return trimaps


def voc_palette() -> bytes:
    """Pascal VOC's colormap (bit-interleaved), 256 entries."""
    pal = bytearray()
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += bytes((r, g, b))
    return bytes(pal)


VOC_TRAIN = ["2007_000032", "2007_000039", "2007_000063", "2008_000008"]
VOC_VAL = ["2007_000033", "2007_000042", "2008_000009"]


def voc_mask(seed: int) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[2:12, 3 + seed % 5:15] = 1 + seed % 3
    m[2:12, 3 + seed % 5] = 255  # boundary
    m[13:, :6] = 15 + seed % 2
    return m


def voc(root: Path, sbd: bool = False) -> dict[str, np.ndarray]:
    """VOCdevkit/VOC2012 under root; sbd: also SegmentationClassAug (grey PNGs) and a train_aug.txt."""
    base = root / "VOCdevkit" / "VOC2012"
    masks = {}
    names = VOC_TRAIN + VOC_VAL + (["2011_000001", "2011_000002"] if sbd else [])
    for n, name in enumerate(names):
        write(base / "JPEGImages" / f"{name}.jpg", jpeg(n))
        masks[name] = voc_mask(n)
        if name in VOC_TRAIN + VOC_VAL:
            write(base / "SegmentationClass" / f"{name}.png", png(masks[name], "P", voc_palette()))
        if sbd:
            write(base / "SegmentationClassAug" / f"{name}.png", png(masks[name]))
    sets = base / "ImageSets" / "Segmentation"
    write(sets / "train.txt", "".join(f"{n}\n" for n in VOC_TRAIN).encode())
    write(sets / "val.txt", "".join(f"{n}\n" for n in VOC_VAL).encode())
    write(sets / "trainval.txt", "".join(f"{n}\n" for n in VOC_TRAIN + VOC_VAL).encode())
    if sbd:
        aug = [n for n in names if n not in VOC_VAL]
        write(root / "train_aug.txt",
              "".join(f"/JPEGImages/{n}.jpg /SegmentationClassAug/{n}.png\n" for n in aug).encode())
    return masks


FOLDER_COLORS = {"sky": "#1e90ff", "road": "#804080", "car": "#ff0000"}


def folders(root: Path, colours: bool = False) -> dict[str, np.ndarray]:
    """images/ + masks/ paired by stem, with classes.txt (index masks) or colors.json (RGB colour masks)."""
    indices = {}
    for n, name in enumerate(["a", "b", "c", "d", "e"]):
        write(root / "images" / f"{name}.jpg", jpeg(n))
        m = np.zeros((H, W), np.uint8)
        m[: 4 + n] = 1
        m[10:, n:n + 8] = 2
        indices[name] = m
        if colours:
            rgb = np.zeros((H, W, 3), np.uint8)
            for i, color in enumerate(FOLDER_COLORS.values()):
                rgb[m == i] = list(bytes.fromhex(color[1:]))
            out = io.BytesIO()
            Image.fromarray(rgb, "RGB").save(out, format="PNG")
            write(root / "masks" / f"{name}.png", out.getvalue())
        else:
            write(root / "masks" / f"{name}.png", png(m))
    if colours:
        write(root / "colors.json", json.dumps(FOLDER_COLORS).encode())
    else:
        write(root / "classes.txt", b"background\nroad\ncar\n")
    return indices


def upload(s3, bucket: str, root: Path, prefix: str) -> str:
    """Put every file under `root` at s3://bucket/prefix/<relative path> (the tests' S3 server); returns that URI."""
    for path in sorted(root.rglob("*")):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=f"{prefix}/{path.relative_to(root).as_posix()}", Body=path.read_bytes())
    return f"s3://{bucket}/{prefix}"
