"""Train/validation assignment: seeded, order-independent, stratified, duplicate-aware.

Items are grouped by the hash of their image bytes, so byte-identical
duplicates always land on the same side. Each group is ranked by a seeded hash
of its key (no global RNG, no dependence on manifest order) and belongs to the
stratum of its rarest class. Validation takes round(fraction x groups) groups,
shared out among strata by largest remainder, rarer strata first; a class found
in a single group keeps that group in training, and a repair pass makes sure
every class present in two or more groups is seen on both sides when possible.
"""
from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from dataclasses import dataclass

from gt2seg.errors import SplitError

TRAIN, VALIDATION = "train", "validation"


@dataclass(frozen=True)
class SplitItem:
    name: str
    group: str  # e.g. sha256 of the image bytes
    classes: frozenset  # class indices present (background included or not: it is ignored)


def _rank(seed: int, key: str | bytes) -> bytes:
    """A sort key only: the raw digest orders as its hex would, in half the memory."""
    return hashlib.sha256(f"{seed}\0{key.hex() if isinstance(key, bytes) else key}".encode()).digest()


def assign(items: list[SplitItem], fraction: float, seed: int = 0) -> dict[str, str]:
    """Map item name -> TRAIN | VALIDATION."""
    validation = assign_positions([item.group for item in items], [item.classes for item in items], fraction, seed)
    return {item.name: VALIDATION if chosen else TRAIN for item, chosen in zip(items, validation)}


def assign_positions(item_groups: list, item_classes: list[frozenset], fraction: float, seed: int = 0) -> bytearray:
    """assign's split by position: item i (its group key, and its classes) goes to validation where the
    result's byte i is 1. One byte per item, no name kept: what the reduce holds for a large job. A group
    key given as bytes (a raw hash: half the memory of its hex) ranks as its hex, so the sides are the same."""
    if not 0 < fraction < 1:
        raise SplitError(f"validation fraction must be between 0 and 1 (exclusive), got {fraction}")
    groups: dict = {}
    shared: dict[frozenset, frozenset] = {}  # identical class sets are one object: memory flat per item
    for group, present in zip(item_groups, item_classes):
        classes = groups.get(group, frozenset()) | {c for c in present if c != 0}
        groups[group] = shared.setdefault(classes, classes)
    del shared
    if len(groups) < 2:
        raise SplitError(
            f"{len(item_groups)} usable image(s) with {len(groups)} distinct content: at least 2 distinct "
            "images are needed for a train and a validation side"
        )
    frequency = Counter(c for classes in groups.values() for c in classes)
    rarity = {c: (n, c) for c, n in frequency.items()}

    def stratum(classes):
        return min((rarity[c] for c in classes), default=(math.inf, -1))

    # A class seen in one group only can be learned only if that group trains.
    strata: dict[tuple, list[str]] = defaultdict(list)
    for key, classes in groups.items():
        if all(frequency[c] > 1 for c in classes):
            strata[stratum(classes)].append(key)
    if not strata:
        raise SplitError("every image holds a class that appears in no other image; none can be "
                         "spared for validation without losing a class from training")
    for members in strata.values():
        members.sort(key=lambda k: _rank(seed, k))

    candidates = sum(len(m) for m in strata.values())
    total = min(max(1, math.floor(fraction * len(groups) + 0.5)), candidates, len(groups) - 1)
    quota = {s: math.floor(fraction * len(m)) for s, m in strata.items()}
    order = sorted(strata, key=lambda s: (-(fraction * len(strata[s]) - quota[s]), s))
    for s in order[: max(0, total - sum(quota.values()))]:
        quota[s] += 1
    validation = {k for s, members in strata.items() for k in members[: quota[s]]}
    _repair(groups, validation, frequency, seed)

    return bytearray(group in validation for group in item_groups)


def _repair(groups, validation, frequency, seed):
    """Move a train group to validation for any class (present in >=2 groups)
    that validation lacks, unless that would take a class's last train group."""
    for cls in sorted(frequency, key=lambda c: (frequency[c], c)):
        if frequency[cls] < 2 or any(cls in groups[k] for k in validation):
            continue
        train_count = Counter(c for k, cl in groups.items() if k not in validation for c in cl)
        candidates = sorted((k for k in groups if k not in validation and cls in groups[k]),
                            key=lambda k: _rank(seed, k))
        for key in candidates:
            if all(train_count[c] > 1 for c in groups[key]) and len(groups) - len(validation) > 1:
                validation.add(key)
                break
