"""Balanced, seeded, disjoint splits.

Order of draws: for each label, the pool is sorted by content hash (so the file's row order does
not matter) and permuted by the seed; ``test`` takes the first items, then ``weak_train``, then
``w2s_train``. Growing a training split therefore never changes the test set.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..errors import DatasetError
from .items import Item

SPLITS = ("weak_train", "w2s_train", "test")


LABEL_CONFLICTS = ("error", "drop")


def deduplicate(items: list[Item], dataset: str, key: str | None = None) -> tuple[list[Item], int]:
    """Drop repeats of the same normalised text; the same text with two labels is an error.

    ``key`` is the config key that would drop such texts instead, named in the error.
    """
    first: dict[str, Item] = {}
    for item in items:
        seen = first.setdefault(item.hash, item)
        if seen is not item and seen.label != item.label:
            raise DatasetError(
                f"dataset '{dataset}': the same text has label {seen.label} at {seen.where()} "
                f"and label {item.label} at {item.where()}"
                + (f"; set `{key}: drop` to drop such texts" if key else "")
            )
    return list(first.values()), len(items) - len(first)


def drop_label_conflicts(items: list[Item]) -> tuple[list[Item], int]:
    """The items without any text seen under both labels (all of its rows: neither label can be
    trusted), and how many such texts there were."""
    labels: dict[str, set[int]] = defaultdict(set)
    for item in items:
        labels[item.hash].add(item.label)
    conflicted = {digest for digest, seen in labels.items() if len(seen) > 1}
    return [item for item in items if item.hash not in conflicted], len(conflicted)


def check_both_classes(items: list[Item], dataset: str, sources: str) -> None:
    labels = {item.label for item in items}
    if len(labels) < 2:
        raise DatasetError(
            f"dataset '{dataset}' ({sources}) has only label {labels.pop()} in {len(items)} rows; "
            "a binary task needs both 0 and 1"
        )


def _by_label(items: list[Item], seed: int, salt: int) -> dict[int, list[Item]]:
    rng = np.random.default_rng([seed, salt])
    groups: dict[int, list[Item]] = defaultdict(list)
    for item in sorted(items, key=lambda item: item.hash):
        groups[item.label].append(item)
    return {label: [group[i] for i in rng.permutation(len(group))] for label, group in groups.items()}


def _take(groups, sizes: dict[str, int], order: list[str], dataset: str, pool: str, seed: int):
    taken: dict[str, list[Item]] = {}
    for label in (0, 1):
        need = sum(sizes[split] // 2 for split in order)
        have = len(groups.get(label, []))
        if need > have:
            asked = " + ".join(f"{split} {sizes[split] // 2}" for split in order)
            raise DatasetError(
                f"dataset '{dataset}': the splits need {need} items with label {label} from the "
                f"{pool} pool ({asked}), but it holds only {have} (after removing duplicates). "
                f"Lower config key 'splits' or 'datasets.{dataset}.splits'."
            )
    for split in order:
        taken[split] = []
    for label in (0, 1):
        start = 0
        for split in order:
            half = sizes[split] // 2
            taken[split].extend(groups[label][start : start + half])
            start += half
    rng = np.random.default_rng([seed, 7])
    return {split: [items[i] for i in rng.permutation(len(items))] for split, items in taken.items()}


def make_splits(
    train_pool: list[Item],
    sizes: dict[str, int],
    seed: int,
    dataset: str,
    test_pool: list[Item] | None = None,
) -> dict[str, list[Item]]:
    """Draw the three balanced splits. With ``test_pool``, test comes from it alone."""
    if test_pool is None:
        return _take(_by_label(train_pool, seed, 0), sizes, ["test", "weak_train", "w2s_train"],
                     dataset, "whole", seed)
    splits = _take(_by_label(test_pool, seed, 1), sizes, ["test"], dataset, "test", seed)
    splits.update(
        _take(_by_label(train_pool, seed, 0), sizes, ["weak_train", "w2s_train"], dataset,
              "training", seed)
    )
    return {split: splits[split] for split in SPLITS}


def assert_disjoint(splits: dict[str, list[Item]], dataset: str) -> None:
    """No normalised text may appear in two splits (or twice in one)."""
    owner: dict[str, tuple[str, Item]] = {}
    for split, items in splits.items():
        for item in items:
            if item.hash in owner:
                other_split, other = owner[item.hash]
                raise DatasetError(
                    f"dataset '{dataset}': the same text is in {other_split} ({other.where()}) "
                    f"and {split} ({item.where()})"
                )
            owner[item.hash] = (split, item)


def draw_balanced(items: list[Item], n: int, seed: int, pool: str) -> list[Item]:
    """``n`` items, half of each label, drawn from ``items`` as a split is (its own salt, so
    not the draws of the dataset's splits)."""
    for label in (0, 1):
        have = sum(item.label == label for item in items)
        if have < n // 2:
            raise DatasetError(
                f"{pool}: {n} items need {n // 2} with label {label}, but the pool holds only "
                f"{have} (after removing duplicates and items in the dataset's splits). Lower "
                f"config key '{pool}.n_items'."
            )
    return _take(_by_label(items, seed, 2), {"extra": n}, ["extra"], pool, pool, seed)["extra"]
