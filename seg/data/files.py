"""File mode: image/mask pairs from the layout's channel folders, batched."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional, Union

import numpy as np

from gt2seg.layout import CHANNELS, LABEL_MAP_DIR, SIDES, annotation_dir
from seg.data.batching import chunks, collate, ordered_map, sample_rng
from seg.data.decode import decode_pair
from seg.data.label_map import LabelMap, load_label_map
from seg.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

SPLITS = {split: (split, annotation_dir(split)) for split in SIDES}  # split -> (image channel, mask channel)


@dataclass(frozen=True)
class Pair:
    stem: str
    image: Path
    mask: Path


def layout_channels(root) -> dict:
    """Channel name → folder for a gt2seg layout root (the same names as SageMaker's channels)."""
    root = Path(root)
    return {name: root / name for name in CHANNELS}


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
        self.label_map = label_map if label_map is not None else load_label_map(channels.get(LABEL_MAP_DIR), split)
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
            return self.transform(rgb, mask, sample_rng(self.seed, epoch, index))
        except DataError as exc:
            pair = self.pairs[index]
            raise DataError(f"{pair.image} / {pair.mask}: {exc}") from None

    def _batch(self, indices, epoch):
        return collate([self.sample(int(i), epoch) for i in indices])

    def epoch(self, epoch: int) -> Iterator[tuple]:
        order = np.arange(len(self.pairs))
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(order)
        batches = chunks(order.tolist(), self.batch_size, self.drop_last)
        if self.workers <= 0:
            yield from (self._batch(indices, epoch) for indices in batches)
            return
        with ThreadPoolExecutor(self.workers, thread_name_prefix="seg-data") as pool:
            yield from ordered_map(lambda indices: self._batch(indices, epoch), batches, pool, self.workers + 1)
