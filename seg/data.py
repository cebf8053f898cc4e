"""File-mode data: decode image/mask pairs, apply the label map, augment, and batch (no MXNet here).

Everything a data source needs is here so that File mode (`FileSource`) and Pipe mode (`seg.pipe`) feed the
trainer identical tensors: `decode_pair` → `LabelMap.apply` → a transform → a batch of
(data float32 NCHW, label int32 NHW). Ignored pixels carry `IGNORE` (255) everywhere: in masks on disk, in
padding added by augmentation, in the loss and in the metrics.
"""
from __future__ import annotations

import io
import json
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional, Union

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

IGNORE = 255
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # ImageNet, as the pretrained backbones expect
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SPLITS = {"train": ("train", "train_annotation"), "validation": ("validation", "validation_annotation")}
_MASK_MODES = ("L", "P")


class DataError(ValueError):
    """An image, mask or label map is unusable; the message names the file or record and the fix."""


# ---------------------------------------------------------------- decoding


def load_strict(image: Image.Image) -> Image.Image:
    """Decode fully, truncation an error even where GluonCV's import has set Pillow's process-wide
    LOAD_TRUNCATED_IMAGES (training and serving processes import it)."""
    tolerant, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        image.load()
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = tolerant
    return image


def _open(data: bytes, what: str) -> Image.Image:
    try:
        return load_strict(Image.open(io.BytesIO(data)))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{what} is not a decodable image ({exc})") from None


def decode_image(image_bytes: bytes) -> np.ndarray:
    """HxWx3 uint8 RGB from JPEG/PNG bytes (grayscale and RGBA are converted)."""
    return np.asarray(_open(image_bytes, "image").convert("RGB"))


def decode_pair(image_bytes: bytes, mask_bytes: bytes) -> tuple:
    """(RGB uint8 HxWx3, mask uint8 HxW); raises DataError on bad bytes, multi-channel masks or size mismatch."""
    rgb = decode_image(image_bytes)
    mask_image = _open(mask_bytes, "mask")
    if mask_image.mode not in _MASK_MODES:
        raise DataError(
            f"mask has PIL mode {mask_image.mode!r} ({len(mask_image.getbands())} band(s)); annotations must be "
            "single-channel 8-bit PNGs (mode P or L) whose pixel values are class indices (gt2seg convert "
            "writes them)"
        )
    mask = np.asarray(mask_image)
    if mask.shape != rgb.shape[:2]:
        raise DataError(
            f"image is {rgb.shape[1]}x{rgb.shape[0]} but its mask is {mask.shape[1]}x{mask.shape[0]} (WxH); "
            "a mask must have exactly the size of its image"
        )
    return rgb, mask


# ---------------------------------------------------------------- label map


class LabelMap:
    """Pixel value → class index, from a SageMaker label_map JSON (SAGEMAKER_SPEC §1.4).

    `{"scale": n}` (int or string): class = pixel // n. `{"map": {"<class index>": <pixel value>}}`: the key is
    the *class*, the value the *pixel* found in the PNG (AWS's example: map {"0": 5, "1": 0, "2": 2} turns
    encoded [0, 5, 2] into [1, 0, 2]). Pixel 255 stays IGNORE unless a map names it; any other pixel a map
    does not name is an error rather than a silent guess.
    """

    def __init__(self, lut: np.ndarray, source: str = "identity"):
        self.lut = lut  # int16[256]; -1 = not mapped
        self.source = source

    @classmethod
    def identity(cls) -> "LabelMap":
        return cls(np.arange(256, dtype=np.int16))

    @classmethod
    def from_json(cls, data, source: str = "label map") -> "LabelMap":
        if not isinstance(data, dict) or len(set(data) & {"scale", "map"}) != 1:
            raise DataError(f'{source}: expected {{"scale": n}} or {{"map": {{"<class>": <pixel>}}}}, got {data!r}')
        if "scale" in data:
            try:
                scale = int(str(data["scale"]).strip())
            except ValueError:
                scale = 0
            if scale < 1:
                raise DataError(f"{source}: scale must be a positive integer, got {data['scale']!r}")
            lut = (np.arange(256) // scale).astype(np.int16)
            lut[IGNORE] = IGNORE
            return cls(lut, source)
        mapping = data["map"]
        if not isinstance(mapping, dict) or not mapping:
            raise DataError(f'{source}: "map" must be a non-empty object {{"<class index>": <pixel value>}}')
        lut = np.full(256, -1, dtype=np.int16)
        lut[IGNORE] = IGNORE
        seen = {}
        for key, value in mapping.items():
            try:
                klass, pixel = int(key), int(value)
            except (TypeError, ValueError):
                raise DataError(f"{source}: map entry {key!r}: {value!r} is not <class index>: <pixel value>") from None
            if not (0 <= klass < IGNORE and 0 <= pixel <= 255):
                raise DataError(f"{source}: map entry {key!r}: {value!r} out of range (class 0..254, pixel 0..255)")
            if pixel in seen:
                raise DataError(f"{source}: pixel value {pixel} is mapped to both class {seen[pixel]} and {klass}")
            seen[pixel] = klass
            lut[pixel] = klass
        return cls(lut, source)

    @classmethod
    def load(cls, path) -> "LabelMap":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable label map JSON ({exc})") from None
        return cls.from_json(data, str(path))

    def apply(self, mask: np.ndarray) -> np.ndarray:
        mapped = self.lut[mask]
        if (mapped < 0).any():
            values = sorted(set(np.unique(mask[mapped < 0]).tolist()))
            raise DataError(f"pixel value(s) {values} are not in the label map {self.source}; add them to its \"map\"")
        return mapped.astype(np.uint8)


def load_label_map(label_map_dir, split: str) -> LabelMap:
    """`<split>_label_map.json` in the label_map folder; scale 1 when there is none (as the built-in does)."""
    if label_map_dir is None:
        return LabelMap.identity()
    path = Path(label_map_dir) / f"{split}_label_map.json"
    return LabelMap.load(path) if path.exists() else LabelMap.identity()


# ---------------------------------------------------------------- transforms


def normalize(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 → 3xHxW float32 with ImageNet mean/std (training, evaluation and serving share it)."""
    out = (rgb.astype(np.float32) * (1.0 / 255.0) - MEAN) / STD
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def check_labels(mask: np.ndarray, num_classes: int) -> None:
    bad = (mask >= num_classes) & (mask != IGNORE)
    if bad.any():
        values = sorted(set(np.unique(mask[bad]).tolist()))[:10]
        raise DataError(
            f"mask has pixel value(s) {values} but num_classes={num_classes} allows 0..{num_classes - 1} and "
            f"{IGNORE} (ignore); fix num_classes or give a label_map that maps these values"
        )


def _resize(rgb, mask, height, width):
    size = (max(1, width), max(1, height))
    rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
    mask = np.asarray(Image.fromarray(mask).resize(size, Image.NEAREST))
    return rgb, mask


def _pad(chw, mask, height, width):
    """Pad bottom/right: image with 0 (the mean colour after normalisation), mask with IGNORE."""
    ph, pw = max(0, height - mask.shape[0]), max(0, width - mask.shape[1])
    if ph or pw:
        chw = np.pad(chw, ((0, 0), (0, ph), (0, pw)))
        mask = np.pad(mask, ((0, ph), (0, pw)), constant_values=IGNORE)
    return chw, mask


@dataclass(frozen=True)
class TrainTransform:
    """The built-in's augmentation: long side → base_size×U(0.5, 2), pad (mask with IGNORE), random crop, flip."""

    base_size: int
    crop_size: int
    num_classes: int

    def __call__(self, rgb, mask, rng: np.random.Generator):
        check_labels(mask, self.num_classes)
        height, width = mask.shape
        scale = self.base_size * rng.uniform(0.5, 2.0) / max(height, width)
        rgb, mask = _resize(rgb, mask, round(height * scale), round(width * scale))
        crop = self.crop_size
        top = int(rng.integers(0, max(0, mask.shape[0] - crop) + 1))
        left = int(rng.integers(0, max(0, mask.shape[1] - crop) + 1))
        rgb, mask = rgb[top : top + crop, left : left + crop], mask[top : top + crop, left : left + crop]
        if rng.random() < 0.5:
            rgb, mask = rgb[:, ::-1], mask[:, ::-1]
        chw, mask = _pad(normalize(rgb), mask, crop, crop)
        return chw, mask.astype(np.int32)


@dataclass(frozen=True)
class ValTransform:
    """Whole image, long side → `size` (aspect kept), padded to size×size with IGNORE so batches stack."""

    size: int
    num_classes: int

    def __call__(self, rgb, mask, rng=None):
        check_labels(mask, self.num_classes)
        height, width = mask.shape
        scale = self.size / max(height, width)
        if scale != 1.0:
            rgb, mask = _resize(rgb, mask, round(height * scale), round(width * scale))
        chw, mask = _pad(normalize(rgb), mask, self.size, self.size)
        return chw, mask.astype(np.int32)


def train_transform(hp) -> TrainTransform:
    return TrainTransform(hp.base_size, hp.crop_size, hp.num_classes)


def val_transform(hp) -> ValTransform:
    """Validation at the centre of the training scale range (long side = base_size)."""
    return ValTransform(hp.base_size, hp.num_classes)


def collate(samples) -> tuple:
    return np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples])


# ---------------------------------------------------------------- classes.json


def default_classes(num_classes: int) -> list:
    """Class table used when a dataset ships no classes.json (gt2seg always writes one)."""
    rng = np.random.default_rng(7)
    colors = ["#ffffff"] + ["#%02x%02x%02x" % tuple(rng.integers(0, 256, 3)) for _ in range(num_classes - 1)]
    return [{"index": i, "name": "BACKGROUND" if i == 0 else f"class_{i}", "color": colors[i]} for i in range(num_classes)]


def load_classes(path) -> list:
    try:
        classes = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable classes.json ({exc})") from None
    if not isinstance(classes, list) or [c.get("index") for c in classes if isinstance(c, dict)] != list(
        range(len(classes))
    ):
        raise DataError(f'{path}: expected [{{"index": 0, "name": ..., "color": "#rrggbb"}}, ...] with indices 0..C-1')
    return classes


def mask_image(mask: np.ndarray, classes) -> Image.Image:
    """A mode-P image whose pixel values are the class indices and whose palette shows the class
    colours (black elsewhere): the form of the training labels, for predictions and /invocations."""
    palette = bytearray(768)
    for entry in classes:
        color, index = str(entry.get("color", "")), int(entry["index"])
        if 0 <= index < 256 and len(color) == 7 and color.startswith("#"):
            palette[3 * index: 3 * index + 3] = bytes.fromhex(color[1:])
    image = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), mode="L")
    image.putpalette(bytes(palette))
    return image


def overlay(rgb: np.ndarray, mask: Image.Image, alpha: float = 0.5) -> np.ndarray:
    """The image blended with the palette colour of every non-background pixel of a mode-P class mask."""
    palette = np.array(mask.getpalette()[:768], dtype=np.float32).reshape(-1, 3)
    indices = np.asarray(mask)
    weight = np.where(indices[..., None] == 0, 0.0, alpha)
    return (rgb * (1 - weight) + palette[indices] * weight).astype(np.uint8)


# ---------------------------------------------------------------- File mode


@dataclass(frozen=True)
class Pair:
    stem: str
    image: Path
    mask: Path


def layout_channels(root) -> dict:
    """Channel name → folder for a gt2seg layout root (the same names as SageMaker's channels)."""
    root = Path(root)
    names = ("train", "train_annotation", "validation", "validation_annotation", "label_map")
    return {name: root / name for name in names}


def pair_files(image_dir, mask_dir) -> list:
    """Image/mask pairs by stem, sorted; DataError names stems that lack a partner."""
    image_dir, mask_dir = Path(image_dir), Path(mask_dir)
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise DataError(f"{folder} is not a folder; expected the SageMaker layout (see docs/CONTRACTS.md)")

    def by_stem(folder, suffixes):
        found = {}
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.suffix.lower() not in suffixes or not path.is_file():
                continue
            if path.stem in found:
                raise DataError(f"{folder}: two files share the stem {path.stem!r}: {found[path.stem].name}, {path.name}")
            found[path.stem] = path
        return found

    images, masks = by_stem(image_dir, IMAGE_SUFFIXES), by_stem(mask_dir, (".png",))
    lonely_images, lonely_masks = sorted(set(images) - set(masks)), sorted(set(masks) - set(images))
    if lonely_images or lonely_masks:
        raise DataError(
            f"unpaired files: images without a mask in {mask_dir}: {lonely_images[:5]}; masks without an image in "
            f"{image_dir}: {lonely_masks[:5]} (each image needs a .png mask with the same stem)"
        )
    if not images:
        raise DataError(f"{image_dir} holds no images (.jpg, .jpeg, .png)")
    return [Pair(stem, images[stem], masks[stem]) for stem in sorted(images)]


class FileSource:
    """Batches of one split read from channel folders; `.epoch(e)` is deterministic in (seed, e).

    `source` is a layout root or a {channel: folder} mapping (the SageMaker channels). Each sample gets its
    own RNG seeded by (seed, epoch, index), so results do not depend on `workers`, threads that decode and
    augment whole batches ahead of the trainer (PIL and numpy release the GIL). `shard=(i, n)` keeps every
    n-th pair for host i of n (len // n pairs each, so all hosts step equally). The last, smaller batch is
    kept unless `drop_last`.
    """

    def __init__(
        self,
        source: Union[str, Path, Mapping],
        split: str,
        transform,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        workers: int = 0,
        label_map: Optional[LabelMap] = None,
        drop_last: bool = False,
        shard: tuple = (0, 1),
    ):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        channels = dict(source) if isinstance(source, Mapping) else layout_channels(source)
        image_channel, mask_channel = SPLITS[split]
        pairs = pair_files(channels[image_channel], channels[mask_channel])
        # equal shards: dist_sync needs every worker to take the same number of steps
        self.pairs = pairs[shard[0] :: shard[1]][: len(pairs) // shard[1]]
        self.label_map = label_map if label_map is not None else load_label_map(channels.get("label_map"), split)
        self.transform, self.batch_size, self.shuffle = transform, batch_size, shuffle
        self.seed, self.workers, self.drop_last = seed, workers, drop_last

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def num_batches(self) -> int:
        full, rest = divmod(len(self.pairs), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def load(self, index: int) -> tuple:
        """(rgb, mask) of one pair with the label map applied; errors name both files."""
        pair = self.pairs[index]
        try:
            rgb, mask = decode_pair(pair.image.read_bytes(), pair.mask.read_bytes())
            return rgb, self.label_map.apply(mask)
        except (DataError, OSError) as exc:
            raise DataError(f"{pair.image} / {pair.mask}: {exc}") from None

    def sample(self, index: int, epoch: int) -> tuple:
        rgb, mask = self.load(index)
        try:
            return self.transform(rgb, mask, np.random.default_rng([self.seed, epoch, index]))
        except DataError as exc:
            pair = self.pairs[index]
            raise DataError(f"{pair.image} / {pair.mask}: {exc}") from None

    def _batch(self, indices, epoch):
        return collate([self.sample(int(i), epoch) for i in indices])

    def epoch(self, epoch: int) -> Iterator[tuple]:
        order = np.arange(len(self.pairs))
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(order)
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.workers <= 0:
            for indices in batches:
                yield self._batch(indices, epoch)
            return
        with ThreadPoolExecutor(self.workers, thread_name_prefix="seg-data") as pool:
            pending = deque()
            try:
                for indices in batches:
                    pending.append(pool.submit(self._batch, indices, epoch))
                    if len(pending) > self.workers:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()
