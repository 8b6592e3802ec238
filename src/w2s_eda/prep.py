"""The ``prep`` stage: a dataset becomes balanced, disjoint weak_train / w2s_train / test splits."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from . import __version__
from .config import local_files
from .data import bigbench, local
from .data.items import Item, content_hash, normalise
from .data.registry import DATASETS, RegisteredDataset
from .data.splits import (
    SPLITS,
    assert_disjoint,
    check_both_classes,
    deduplicate,
    draw_balanced,
    drop_label_conflicts,
    make_splits,
)
from .errors import DatasetError
from .io import atomic_path, write_json

log = logging.getLogger(__name__)

DEFAULT_QUESTION = "Is the statement true?"
DEFAULT_LABEL_NAMES = ("no", "yes")


def _probe_hub(timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes of retries, when the hub cannot be reached."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout).close()
    except OSError as error:
        raise DatasetError(
            f"cannot reach the Hugging Face hub at {endpoint.hostname} ({error}). Run prep on a "
            "machine with internet once, or export the data to a local file and point the "
            "dataset's 'path' at it."
        ) from None


def hub_revision(name: str, spec: dict) -> str | None:
    """The hub commit a registered dataset is loaded at: the config's `revision`, else the
    registry's pin."""
    if "path" in spec:
        return None
    return spec.get("revision") or DATASETS[spec.get("registry", name)].hub_revision


def label_conflicts(name: str, spec: dict) -> str:
    """What prep does with a text seen under both labels: the config's `label_conflicts`, else
    the registry's default (``error`` for local files)."""
    if "label_conflicts" in spec:
        return spec["label_conflicts"]
    return "error" if "path" in spec else DATASETS[spec.get("registry", name)].label_conflicts


def _load_hub(entry: RegisteredDataset, seed: int, revision: str | None
              ) -> tuple[list[Item], list[Item] | None]:
    _probe_hub()
    import datasets

    rng = np.random.default_rng(seed)
    pools = []
    for split in (entry.train_split, entry.test_split):
        if split is None:
            pools.append(None)
            continue
        rows = datasets.load_dataset(entry.hub_id, entry.hub_config, split=split, revision=revision)
        items = []
        for number, row in enumerate(rows, start=1):
            formatted = entry.formatter(row, rng)
            if formatted is not None:
                items.append(Item(formatted[0], formatted[1], f"{entry.hub_id}:{split}", number))
        pools.append(items)
    return pools[0], pools[1]


def dataset_info(name: str, spec: dict) -> dict:
    """Where a configured dataset comes from, and the words its prompts use."""
    if "path" in spec:
        return {
            "source": "local",
            "files": local_files(spec),
            "question": spec.get("question", DEFAULT_QUESTION),
            "label_names": list(spec.get("label_names", DEFAULT_LABEL_NAMES)),
        }
    entry = DATASETS[spec.get("registry", name)]
    return {
        "source": "hub" if entry.needs_hub else "bigbench",
        "registry": entry.name,
        "hub_id": entry.hub_id,
        "hub_revision": hub_revision(name, spec),
        "bigbench_task": entry.bigbench_task,
        "question": entry.question,
        "label_names": list(entry.label_names),
    }


def load_pools(
    name: str, spec: dict, seed: int, bigbench_file: str | None = None
) -> tuple[list[Item], list[Item] | None]:
    """The items of a configured dataset: a training pool, and a separate test pool if any."""
    if "path" in spec:
        options = {
            "fmt": spec.get("format"),
            "text": spec.get("text", "{text}"),
            "label": spec.get("label", "label"),
            "pair": spec.get("pair"),
            "seed": seed,
        }
        paths = spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
        train = [item for path in paths for item in local.load_file(path, **options)]
        test = local.load_file(spec["test_path"], **options) if "test_path" in spec else None
        return train, test
    entry = DATASETS[spec.get("registry", name)]
    if entry.bigbench_task:
        if bigbench_file is None:
            raise DatasetError(f"dataset '{name}': the BIG-bench task file was not given")
        return bigbench.load_task(bigbench_file, entry.bigbench_positive), None
    return _load_hub(entry, seed, hub_revision(name, spec))


def _split_digest(items: list[Item]) -> str:
    lines = "\n".join(f"{item.id}\t{item.label}" for item in items)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def write_split(path: str | Path, items: list[Item]) -> None:
    import datasets

    datasets.disable_progress_bars()
    table = datasets.Dataset.from_dict(
        {
            "id": [item.id for item in items],
            "text": [item.text for item in items],
            "label": [item.label for item in items],
            "source": [item.source for item in items],
            "row": [item.row for item in items],
            # Pairwise items: the two texts the models score (text_a first, label 1 = A chosen).
            **({"text_a": [item.pair[0] for item in items],
                "text_b": [item.pair[1] for item in items]}
               if items and items[0].pair is not None else {}),
        }
    )
    with atomic_path(path) as tmp:
        table.to_parquet(str(tmp))


def _clean_pool(pool: list[Item], name: str, described: str, conflicts: dict
                ) -> tuple[list[Item], int]:
    """A pool checked for both labels, without its texts seen under both labels when
    ``conflicts["mode"]`` is ``drop`` (counted into ``conflicts``), and without repeats."""
    check_both_classes(pool, name, described)
    if conflicts["mode"] == "drop":
        kept, n_texts = drop_label_conflicts(pool)
        conflicts["dropped_texts"] += n_texts
        conflicts["dropped_rows"] += len(pool) - len(kept)
        pool = kept
    return deduplicate(pool, name, key=f"datasets.{name}.label_conflicts")


def prepare(
    name: str,
    spec: dict,
    sizes: dict[str, int],
    seed: int,
    outputs: dict[str, str],
    manifest_path: str,
    bigbench_file: str | None = None,
) -> dict:
    """Load, check, deduplicate and split one dataset; write the splits and ``manifest.json``."""
    info = dataset_info(name, spec)
    train_pool, test_pool = load_pools(name, spec, seed, bigbench_file)
    n_rows = len(train_pool) + len(test_pool or [])
    described = ", ".join(sorted({item.source for item in train_pool + (test_pool or [])}))
    conflicts = {"mode": label_conflicts(name, spec), "dropped_texts": 0, "dropped_rows": 0}
    train_pool, n_duplicates = _clean_pool(train_pool, name, described, conflicts)
    n_overlap = 0
    if test_pool is not None:
        test_pool, n_test_duplicates = _clean_pool(test_pool, name, described, conflicts)
        n_duplicates += n_test_duplicates
        test_hashes = {item.hash for item in test_pool}
        kept = [item for item in train_pool if item.hash not in test_hashes]
        n_overlap = len(train_pool) - len(kept)
        train_pool = kept
    log.info(
        "dataset %s: %d rows, %d duplicates dropped, %d training items also in the test pool dropped",
        name, n_rows, n_duplicates, n_overlap,
    )
    if conflicts["dropped_texts"]:
        log.warning(
            "dataset %s: %d text(s) seen under both labels dropped (%d rows; "
            "label_conflicts: drop)",
            name, conflicts["dropped_texts"], conflicts["dropped_rows"],
        )
    splits = make_splits(train_pool, sizes, seed, name, test_pool)
    assert_disjoint(splits, name)
    for split in SPLITS:
        write_split(outputs[split], splits[split])
    manifest = {
        "dataset": name,
        "seed": seed,
        **info,
        "rows_read": n_rows,
        "duplicates_dropped": n_duplicates,
        "train_items_in_test_pool_dropped": n_overlap,
        "label_conflicts": conflicts,
        "splits": {
            split: {
                "n": len(items),
                "n_label1": sum(item.label for item in items),
                "label1_fraction": sum(item.label for item in items) / len(items),
                "content_sha256": _split_digest(items),
            }
            for split, items in splits.items()
        },
        "package_version": __version__,
    }
    write_json(manifest_path, manifest)
    for split, stats in manifest["splits"].items():
        log.info("%s: %d items, %.0f%% label 1", split, stats["n"], 100 * stats["label1_fraction"])
    return manifest


def _same_content(item: Item) -> str:
    """A key equal for the same content: an item's text, or a pairwise item's two texts in
    either order (the same pair shown B/A is the same pair)."""
    if item.pair is None:
        return item.hash
    return content_hash("\x00".join(sorted(normalise(text) for text in item.pair)))


def prepare_conflict(dataset: str, spec: dict, n_items: int, seed: int, split_paths: dict[str, str],
                     output: str) -> dict:
    """The implicit-conflict data of one (dataset, seed): ``n_items`` balanced items of another
    objective (``conflict.implicit``, a local file with a local dataset's keys), none of whose
    content is in the dataset's splits. W2S students of the ``implicit`` setting learn them with
    their gold labels beside the weak labels (Yang et al. 2024 mix in helpfulness data)."""
    import pandas as pd

    pool, _ = load_pools("conflict.implicit", spec, seed)
    pool, n_duplicates = deduplicate(pool, "conflict.implicit")
    check_both_classes(pool, "conflict.implicit", ", ".join(local_files(spec).values()))
    used = set()
    for path in split_paths.values():
        frame = pd.read_parquet(path)
        if "text_a" in frame:
            items = [Item(t, 0, "", 0, (a, b)) for t, a, b in
                     zip(frame["text"], frame["text_a"], frame["text_b"])]
        else:
            items = [Item(t, 0, "", 0) for t in frame["text"]]
        used |= {_same_content(item) for item in items}
    kept = [item for item in pool if _same_content(item) not in used]
    drawn = draw_balanced(kept, n_items, seed, "conflict.implicit")
    write_split(output, drawn)
    info = {"dataset": dataset, "seed": seed, "files": local_files(spec), "n_items": len(drawn),
            "pool": len(pool), "duplicates_dropped": n_duplicates,
            "in_dataset_splits_dropped": len(pool) - len(kept),
            "n_label1": sum(item.label for item in drawn)}
    log.info("implicit-conflict data for %s: %s", dataset, info)
    return info

