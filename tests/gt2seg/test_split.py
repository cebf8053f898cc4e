import hashlib
import random

import pytest

from gt2seg.errors import SplitError
from gt2seg.split import TRAIN, VALIDATION, SplitItem, assign, assign_positions


def items(n, classes=lambda i: {0, 1}):
    return [SplitItem(f"img{i}", f"hash{i}", frozenset(classes(i))) for i in range(n)]


def test_same_seed_same_items_same_split_whatever_the_order():
    data = items(50)
    shuffled = data[:]
    random.Random(3).shuffle(shuffled)
    assert assign(data, 0.2, seed=5) == assign(shuffled, 0.2, seed=5)


def test_another_seed_gives_another_split():
    data = items(50)
    assert assign(data, 0.2, seed=1) != assign(data, 0.2, seed=2)


def test_validation_takes_the_requested_fraction():
    sides = assign(items(50), 0.2)
    assert list(sides.values()).count(VALIDATION) == 10


def test_rare_class_reaches_validation():
    # class 2 is in 3 of 40 images; plain random 20% would often miss it.
    for seed in range(20):
        sides = assign(items(40, lambda i: {0, 1, 2} if i < 3 else {0, 1}), 0.2, seed)
        rare = [sides[f"img{i}"] for i in range(3)]
        assert VALIDATION in rare and TRAIN in rare


def test_class_in_a_single_image_stays_in_training():
    for seed in range(20):
        sides = assign(items(10, lambda i: {0, 1, 3} if i == 0 else {0, 1}), 0.3, seed)
        assert sides["img0"] == TRAIN


def test_byte_identical_duplicates_land_on_the_same_side():
    data = items(30) + [SplitItem(f"copy{i}", f"hash{i}", frozenset({0, 1})) for i in range(30)]
    for seed in range(5):
        sides = assign(data, 0.2, seed)
        assert all(sides[f"img{i}"] == sides[f"copy{i}"] for i in range(30))


def test_two_items_split_one_each():
    assert sorted(assign(items(2), 0.2).values()) == [TRAIN, VALIDATION]


def test_too_few_distinct_images_is_a_clear_error():
    data = [SplitItem("a", "same", frozenset({0})), SplitItem("b", "same", frozenset({0}))]
    with pytest.raises(SplitError, match="at least 2 distinct images"):
        assign(data, 0.2)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5])
def test_fraction_must_leave_both_sides_non_empty(fraction):
    with pytest.raises(SplitError, match="between 0 and 1"):
        assign(items(10), fraction)


def _hashed_items():
    """30 items, 27 distinct contents (hashes as the reduce has them), 4 common classes and a rare one."""
    return [SplitItem(f"img{i:02d}", hashlib.sha256(str(i % 27).encode()).hexdigest(),
                      frozenset({0, 1 + i % 4} | ({5} if i % 9 == 0 else set()))) for i in range(30)]


def test_a_fixed_example_keeps_its_sides():
    """The sides gt2seg has always given this example (a layout re-run by a newer version must not move items)."""
    sides = assign(_hashed_items(), 0.25, seed=7)
    assert sorted(n for n, side in sides.items() if side == VALIDATION) == [
        "img01", "img03", "img08", "img09", "img10", "img14", "img21", "img28"]


def test_positions_with_raw_hashes_give_assigns_sides():
    data = _hashed_items()
    validation = assign_positions([bytes.fromhex(i.group) for i in data], [i.classes for i in data], 0.25, seed=7)
    assert validation == bytearray(assign(data, 0.25, seed=7)[i.name] == VALIDATION for i in data)
