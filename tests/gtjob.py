"""Build small synthetic Ground Truth jobs on disk for tests.

Masks are written the way Ground Truth writes them (palette PNG, index ==
color-map key) unless a test asks for another encoding.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

GT_COLORS = ["#ffffff", "#2ca02c", "#1f77b4", "#ff7f0e", "#d62728"]
COLOR_MAP = {"0": ("BACKGROUND", "#ffffff"), "1": ("building", "#2ca02c"), "2": ("road", "#1f77b4")}
SEG = "groundtruth/semantic-segmentation"


def rgb(hex_color: str) -> tuple[int, int, int]:
    return tuple(int(hex_color[i: i + 2], 16) for i in (1, 3, 5))


def gt_palette() -> list[int]:
    pal = [c for h in GT_COLORS for c in rgb(h)]
    return pal + [255] * (768 - len(pal))


def palette_png(indices: np.ndarray, palette=None, transparency=None) -> bytes:
    img = Image.fromarray(indices.astype(np.uint8), "L")
    img.putpalette(palette or gt_palette())
    out = io.BytesIO()
    kwargs = {} if transparency is None else {"transparency": transparency}
    img.save(out, format="PNG", **kwargs)
    return out.getvalue()


def color_png(indices: np.ndarray, colors: dict[int, str], alpha: np.ndarray | None = None) -> bytes:
    """RGB (or RGBA when alpha is given) mask painting index i with colors[i]."""
    arr = np.zeros(indices.shape + (3,), np.uint8)
    for i, h in colors.items():
        arr[indices == i] = rgb(h)
    if alpha is not None:
        arr = np.dstack([arr, alpha.astype(np.uint8)])
    out = io.BytesIO()
    Image.fromarray(arr, "RGBA" if alpha is not None else "RGB").save(out, format="PNG")
    return out.getvalue()


def jpeg(width=32, height=24, seed=0, quality=90) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(arr).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def blocks(width=32, height=24, classes=(0, 1, 2), seed=0) -> np.ndarray:
    """An index mask with one horizontal band per class."""
    mask = np.zeros((height, width), np.uint8)
    bands = np.array_split(np.arange(height), len(classes))
    for cls, rows in zip(classes, bands):
        mask[rows] = cls
    return np.roll(mask, seed, axis=0)


def color_map(spec=None) -> dict:
    spec = spec or COLOR_MAP
    return {k: ({"class-name": n, "hex-color": h} if h else {"class-name": n}) for k, (n, h) in spec.items()}


class Job:
    """A labeling job folder: output.manifest + images/ + masks/ (relative refs by default)."""

    def __init__(self, root: Path, attribute="city-ref", prefix=""):
        self.root, self.attribute, self.prefix = Path(root), attribute, prefix
        self.lines: list[str] = []
        self.count = 0

    def put(self, relative: str, data: bytes) -> str:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return self.prefix + relative

    def add(self, stem, mask=None, *, cmap=None, image=None, image_name=None, mask_bytes=None,
            attribute=None, extra=None, size=(32, 24)):
        """One labeled line; returns its dict. mask: index array (GT palette PNG)."""
        n = self.count
        self.count += 1
        image_ref = self.put(image_name or f"images/{stem}.jpg", image if image is not None else jpeg(*size, seed=n))
        if mask_bytes is None:
            mask_bytes = palette_png(mask if mask is not None else blocks(*size, seed=n))
        mask_ref = self.put(f"masks/{n}_2022-02-10T17:41:{n:02d}.724225.png", mask_bytes)
        attribute = attribute or self.attribute
        line = {
            "source-ref": image_ref,
            attribute: mask_ref,
            f"{attribute}-metadata": {
                "internal-color-map": color_map(cmap), "type": SEG, "human-annotated": "yes",
                "creation-date": "2022-02-10T17:41:04.724225", "job-name": "labeling-job/city",
            },
        }
        line.update(extra or {})
        self.lines.append(json.dumps(line))
        return line

    def add_line(self, obj) -> None:
        self.lines.append(obj if isinstance(obj, str) else json.dumps(obj))

    def write(self, name="output.manifest") -> str:
        path = self.root / name  # relative refs resolve against the manifest's folder
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(self.lines) + "\n")
        return str(path)


def standard_job(root: Path, n=10) -> Job:
    """n images, classes 0..2 in varied bands, a few with road only."""
    job = Job(root)
    for i in range(n):
        classes = (0, 1, 2) if i % 3 else (0, 2)
        job.add(f"img{i:02d}", blocks(classes=classes, seed=i))
    return job


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root except the resume cache, as relative path -> bytes."""
    root = Path(root)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".gt2seg" not in p.parts}


def same_layout(a: Path, b: Path) -> bool:
    """Same files with the same bytes, manifests compared with their folder swapped."""
    ta, tb = tree(a), tree(b)
    if ta.keys() != tb.keys():
        return False
    for key in ta:
        va, vb = ta[key], tb[key]
        if key.endswith((".manifest", ".json")):
            vb = vb.replace(str(b.resolve()).encode(), str(a.resolve()).encode())
        if va != vb:
            return False
    return True
