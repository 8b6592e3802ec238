"""Splits: balanced, deterministic for a seed, disjoint by normalised content."""

import json
import logging

import pandas as pd
import pytest

from conftest import balanced_rows, write_jsonl
from w2s_eda.data.items import Item, content_hash
from w2s_eda.data.splits import assert_disjoint, deduplicate, drop_label_conflicts, make_splits
from w2s_eda.errors import DatasetError
from w2s_eda.prep import prepare

SIZES = {"weak_train": 10, "w2s_train": 8, "test": 6}


def pool(n_per_label=20, prefix="item"):
    return [Item(row["text"], row["label"], "pool.jsonl", i + 1)
            for i, row in enumerate(balanced_rows(n_per_label, prefix))]


def ids(splits):
    return {split: [item.id for item in items] for split, items in splits.items()}


def test_splits_are_balanced_sized_and_disjoint():
    splits = make_splits(pool(), SIZES, seed=0, dataset="d")
    for split, items in splits.items():
        assert len(items) == SIZES[split]
        assert sum(item.label for item in items) == SIZES[split] // 2
    assert_disjoint(splits, "d")
    all_ids = [i for split_ids in ids(splits).values() for i in split_ids]
    assert len(all_ids) == len(set(all_ids)) == 24


def test_same_seed_same_splits_whatever_the_row_order():
    items = pool()
    assert ids(make_splits(items, SIZES, 5, "d")) == ids(make_splits(items[::-1], SIZES, 5, "d"))


def test_a_different_seed_changes_the_splits():
    assert ids(make_splits(pool(), SIZES, 0, "d")) != ids(make_splits(pool(), SIZES, 1, "d"))


def test_growing_a_training_split_keeps_the_test_set():
    bigger = {**SIZES, "weak_train": 16}
    assert ids(make_splits(pool(), SIZES, 0, "d"))["test"] == ids(make_splits(pool(), bigger, 0, "d"))["test"]


def test_separate_test_pool_supplies_test_only():
    train, test = pool(prefix="train"), pool(prefix="test")
    splits = make_splits(train, SIZES, 0, "d", test_pool=test)
    assert {item.text.split()[0] for item in splits["test"]} == {"test"}
    assert {item.text.split()[0] for item in splits["weak_train"] + splits["w2s_train"]} == {"train"}


def test_split_larger_than_data_names_counts_and_key():
    with pytest.raises(DatasetError) as raised:
        make_splits(pool(5), SIZES, 0, "tiny")
    message = str(raised.value)
    assert "dataset 'tiny': the splits need 12 items with label 0" in message
    assert "holds only 5" in message and "datasets.tiny.splits" in message


def test_disjointness_uses_normalised_text():
    a = Item("The  Cat sat.", 1, "a.jsonl", 3)
    b = Item("the cat sat.\n", 1, "b.jsonl", 9)
    assert content_hash(a.text) == content_hash(b.text)
    with pytest.raises(DatasetError, match=r"in weak_train \(a.jsonl, row 3\) and test \(b.jsonl, row 9\)"):
        assert_disjoint({"weak_train": [a], "test": [b]}, "d")


def test_duplicates_are_dropped_but_conflicting_labels_are_an_error():
    kept, dropped = deduplicate([Item("x", 1, "f", 1), Item(" X ", 1, "f", 2), Item("y", 0, "f", 3)], "d")
    assert [item.row for item in kept] == [1, 3] and dropped == 1
    with pytest.raises(DatasetError, match="label 1 at f, row 1 and label 0 at f, row 2"):
        deduplicate([Item("x", 1, "f", 1), Item("x", 0, "f", 2)], "d")


def test_drop_label_conflicts_removes_every_row_of_a_text_seen_under_both_labels():
    items = [Item("x", 1, "f", 1), Item(" X ", 0, "f", 2), Item("x", 1, "f", 3),
             Item("y", 0, "f", 4), Item("y", 0, "f", 5)]
    kept, n_texts = drop_label_conflicts(items)
    assert [item.row for item in kept] == [4, 5] and n_texts == 1


def _prepare(tmp_path, spec, sizes=SIZES, seed=0, name="mine", bigbench_file=None):
    out = tmp_path / "out"
    outputs = {split: str(out / f"{split}.parquet") for split in SIZES}
    manifest = prepare(name, spec, sizes, seed, outputs, str(out / "manifest.json"), bigbench_file)
    return manifest, {split: pd.read_parquet(path) for split, path in outputs.items()}


def test_prepare_writes_parquet_splits_and_a_manifest(tmp_path):
    rows = balanced_rows(20) + [balanced_rows(20)[0]]  # one exact duplicate
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    manifest, frames = _prepare(tmp_path, {"path": str(path)})
    for split, frame in frames.items():
        assert list(frame.columns) == ["id", "text", "label", "source", "row"]
        assert len(frame) == SIZES[split] and frame.label.sum() == SIZES[split] // 2
    assert manifest["duplicates_dropped"] == 1 and manifest["rows_read"] == 41
    assert manifest["splits"]["test"] == {
        "n": 6, "n_label1": 3, "label1_fraction": 0.5,
        "content_sha256": manifest["splits"]["test"]["content_sha256"],
    }
    assert manifest["source"] == "local" and manifest["label_names"] == ["no", "yes"]
    on_disk = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert on_disk == manifest
    again, _ = _prepare(tmp_path, {"path": str(path)})
    assert again == manifest  # deterministic, down to the content hashes


def _conflicting_rows():
    """Balanced rows plus two texts seen under both labels (one of them three times)."""
    rows = balanced_rows(20)
    return rows + [{"text": rows[0]["text"].upper(), "label": 1 - rows[0]["label"]},
                   {"text": "both", "label": 0}, {"text": "both", "label": 1},
                   {"text": "both ", "label": 1}]


def test_label_conflicts_drop_removes_the_texts_and_records_them(tmp_path, caplog):
    path = write_jsonl(tmp_path / "d.jsonl", _conflicting_rows())
    with caplog.at_level(logging.WARNING, logger="w2s_eda.prep"):
        manifest, frames = _prepare(tmp_path, {"path": str(path), "label_conflicts": "drop"})
    assert manifest["label_conflicts"] == {"mode": "drop", "dropped_texts": 2, "dropped_rows": 5}
    assert manifest["duplicates_dropped"] == 0
    texts = {text.casefold().strip() for frame in frames.values() for text in frame.text}
    assert not texts & {"both", balanced_rows(20)[0]["text"]}
    assert "2 text(s) seen under both labels dropped (5 rows" in caplog.text


def test_label_conflicts_error_is_the_default_and_names_the_key(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", _conflicting_rows())
    with pytest.raises(DatasetError, match=r"label 0 at d.jsonl, row 1 and label 1 at d.jsonl, "
                                           r"row 41; set `datasets.mine.label_conflicts: drop`"):
        _prepare(tmp_path, {"path": str(path)})
    clean = write_jsonl(tmp_path / "clean.jsonl", balanced_rows(20))
    manifest, _ = _prepare(tmp_path, {"path": str(clean)})
    assert manifest["label_conflicts"] == {"mode": "error", "dropped_texts": 0, "dropped_rows": 0}


def test_registry_default_label_conflicts_and_the_config_override(tmp_path):
    """fever's file has one claim under both labels: the registry drops it, `error` stops."""
    claim = "On June 2017, the following claim was made: {}.\nQ: Was this claim true or false?"
    examples = [{"input": claim.format(f"Claim {i} holds"),
                 "target_scores": {"true": i % 2, "false": 1 - i % 2}} for i in range(40)]
    examples += [{"input": claim.format("An island is part of the ABC Islands"),
                  "target_scores": {"true": label, "false": 1 - label}} for label in (1, 0)]
    task = tmp_path / "fever.json"
    task.write_text(json.dumps({"name": "fever", "examples": examples}))
    manifest, _ = _prepare(tmp_path, {}, name="fever", bigbench_file=str(task))
    assert manifest["label_conflicts"] == {"mode": "drop", "dropped_texts": 1, "dropped_rows": 2}
    with pytest.raises(DatasetError, match="set `datasets.fever.label_conflicts: drop`"):
        _prepare(tmp_path, {"label_conflicts": "error"}, name="fever", bigbench_file=str(task))


def test_prepare_with_one_class_names_the_file(tmp_path):
    path = write_jsonl(tmp_path / "ones.jsonl", [{"text": f"t{i}", "label": 1} for i in range(30)])
    with pytest.raises(DatasetError, match=r"dataset 'mine' \(ones.jsonl\) has only label 1 in 30 rows"):
        _prepare(tmp_path, {"path": str(path)})
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_prepare_drops_training_items_that_are_in_the_test_file(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", balanced_rows(20))
    test = write_jsonl(tmp_path / "test.jsonl", balanced_rows(20)[:10] + balanced_rows(10, "other"))
    manifest, frames = _prepare(tmp_path, {"path": str(train), "test_path": str(test)})
    assert manifest["train_items_in_test_pool_dropped"] == 10
    train_ids = set(frames["weak_train"].id) | set(frames["w2s_train"].id)
    assert not train_ids & set(frames["test"].id)
    assert set(frames["test"].source) == {"test.jsonl"}


def test_shared_hh_data_prepares_into_pairs(tmp_path, shared_data):
    """Uses ../shared/data/hh-single-turn (real HH-RLHF harmless pairs, Yang et al.'s split)."""
    folder = shared_data / "hh-single-turn"
    spec = {
        "path": str(folder / "harmless_train_gt.jsonl"),
        "test_path": str(folder / "harmless_test.jsonl"),
        "pair": {"chosen": "chosen", "rejected": "rejected"},
    }
    sizes = {"weak_train": 200, "w2s_train": 200, "test": 100}
    manifest, frames = _prepare(tmp_path, spec, sizes, seed=1)
    # 4000 rows per file: `wc -l` says 3999 because the last line has no newline.
    assert manifest["rows_read"] == 4000 * 2
    assert {split: len(frame) for split, frame in frames.items()} == sizes
    source_rows = (folder / "harmless_train_gt.jsonl").read_text().splitlines()
    for _, item in frames["weak_train"].head(20).iterrows():
        row = json.loads(source_rows[item.row - 1])
        assert item.text == (row["chosen"] if item.label == 1 else row["rejected"])
        assert item.text.startswith("\n\nHuman:")
