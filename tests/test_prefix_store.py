"""The prefix store (``generation.reuse_prefixes``): item prefixes prefilled once, loaded by every
stage. Loading them gives the texts and probabilities of the engine before any speed-up
(``HFEngine(fast=False)``), float32, greedy; the same prefixes give the same bits, through a file
too; chunks resume to the uninterrupted result; and the study builds one store per EDA cell."""

import json

import pytest
import torch

from w2s_eda import strong_signals
from w2s_eda.generation import (
    MIN_SHARED_TOKENS,
    GenerationSettings,
    HFEngine,
    generate_chunked,
    plan_stored_batches,
    render_chat,
)
from w2s_eda.prefix_store import PrefixStore
from w2s_eda.prompts import item_fields

ITEMS = [
    "Cats sleep on mats in the sun.",
    "Ann knows that the cat sleeps on the warm mat every afternoon.",
    "Bob suspects that his neighbour's dog barks at night because it hears foxes in the garden, "
    "although nobody has ever seen a fox there.",
    "Water boils at one hundred degrees.",
    "Paris is the capital of France; it has many museums and old bridges over the river Seine.",
]
INFO = {"question": "Is this true?", "label_names": ["no", "yes"]}
# The default templates' shapes: every stage opens with the item and its question.
TEMPLATES = {
    "explain": "{item}\n\n{question} Explain briefly what is true here and why.",
    "zero_shot": "{item}\n\n{question} Answer with one word: {label1} or {label0}.",
    "opening": '{item}\n\n{question} In at most {max_words} words, argue that the answer is "{side}".',
    "drift": "{item}\n\nArgument: {argument}\n\nWhich answer does it support? {question}",
}


def fake_store(entries, header, layers=2):
    """A store of these token entries with distinguishable keys (value = position + entry)."""
    tails = sum(len(e) - header for e in entries)
    return PrefixStore(
        entries[0][:header], entries,
        [torch.zeros(1, header, 2) for _ in range(layers)],
        [torch.zeros(1, header, 2) for _ in range(layers)],
        [torch.arange(tails, dtype=torch.float32).reshape(1, tails, 1).expand(1, tails, 2).clone()
         for _ in range(layers)],
        [torch.zeros(1, tails, 2) for _ in range(layers)], model="m")


def test_match_finds_the_longest_shared_entry_and_leaves_a_token():
    store = fake_store(sorted([[1, 2, 3, 4, 5, 6], [1, 2, 3, 7, 8], [1, 2, 9, 9, 9, 9, 9]]), 2)
    assert store.match([1, 2, 3, 4, 5, 6, 10]) == (0, 6)
    assert store.match([1, 2, 3, 4, 5, 6]) == (0, 5)  # its last token is computed, for logits
    assert store.match([1, 2, 3, 7, 1]) == (1, 4)
    assert store.match([1, 2, 9, 9, 1]) == (2, 4)
    assert store.match([1, 2, 5]) == (-1, 0)  # the header alone is not worth loading
    assert store.match([7, 7, 7]) == (-1, 0)
    assert store.offsets == [0, 4, 7, 12]


def test_a_stored_plan_keeps_every_row_once_and_rebuilds_its_tokens():
    """Groups never mix entries; the stored tokens plus each level's segments are each row."""
    base = list(range(100, 130))
    entries = sorted([base + [1] * 12, base + [2] * 12])
    store = fake_store(entries, len(base))
    rows = [entries[e] + tail for e in (0, 1) for tail in ([5, 6, 7] * 4 + [8], [5, 6, 7] * 4 + [9])]
    rows += [entries[0] + [4]]
    matches = {i: store.match(row) for i, row in enumerate(rows)}
    batches = plan_stored_batches(rows, matches, batch_size=3)
    assert sorted(i for batch in batches for i in batch.rows) == list(range(len(rows)))
    assert all(len(batch.rows) <= 3 for batch in batches)
    for batch in batches:
        for g, entry in enumerate(batch.entries):
            members = [i for i, group in zip(batch.rows, batch.group) if group == g]
            assert {matches[i][0] for i in members} == {entry}
        levels = batch.levels(rows)
        for position, row in enumerate(batch.rows):
            g = batch.group[position]
            tokens = list(store.entries[batch.entries[g]][: batch.stored[g]])
            if len(levels) == 2:
                tokens += levels[0][0][g]
            tokens += levels[-1][0][position]
            assert tokens == rows[row]
    shared = [b for b in batches if len(b.levels(rows)) == 2]
    assert shared, "the debaters' 12 shared tokens beyond the store get a group level"


@pytest.fixture(scope="module")
def store_and_prompts(strong_engine):
    tokenizer = strong_engine.tokenizer
    fields = [item_fields(item, INFO) for item in ITEMS]
    prefixes = [strong_signals.item_prefix_tokens(tokenizer, TEMPLATES, f, INFO["label_names"])
                for f in fields]
    store = strong_engine.build_prefix_store(prefixes, model="smollm2")
    render = lambda text: render_chat(tokenizer, text)  # noqa: E731
    explain = [render(TEMPLATES["explain"].format(**f)) for f in fields]
    debate = [render(TEMPLATES["opening"].format(**f, side=side, max_words=12))
              for f in fields for side in ("yes", "no")]
    zero_shot = [render(TEMPLATES["zero_shot"].format(**f)) for f in fields]
    return store, prefixes, explain + debate, zero_shot


@pytest.mark.slow
def test_item_prefixes_end_before_what_differs(strong_engine, store_and_prompts):
    store, prefixes, generated, zero_shot = store_and_prompts
    encoded = strong_engine.encode(generated + zero_shot)
    text = strong_engine.tokenizer.decode(prefixes[1])
    assert text.endswith(INFO["question"]) and ITEMS[1] in text
    for tokens in encoded:
        entry, n = store.match(tokens)
        assert entry >= 0 and n - len(store.header) >= MIN_SHARED_TOKENS
    assert len(store) == len(ITEMS) and store.header == prefixes[0][: len(store.header)]


@pytest.mark.slow
def test_loaded_prefixes_give_the_old_engines_texts_and_probabilities(strong_engine,
                                                                     store_and_prompts):
    store, _, generated, zero_shot = store_and_prompts
    model, tokenizer = strong_engine.model, strong_engine.tokenizer
    old, new = HFEngine(model, tokenizer, fast=False), HFEngine(model, tokenizer)
    new.use_prefix_store(store)
    settings = GenerationSettings(max_new_tokens=16)
    assert [c.text for c in new.generate(generated, settings)] == \
        [c.text for c in old.generate(generated, settings)]
    assert new.counters["stored_tokens"] > new.counters["prefill_tokens"]
    sampled = GenerationSettings(max_new_tokens=8, do_sample=True, temperature=0.8)
    seeds = list(range(len(generated)))
    assert [c.text for c in new.generate(generated, sampled, seeds)] == \
        [c.text for c in old.generate(generated, sampled, seeds)]
    p_new = new.label_probabilities(zero_shot, INFO["label_names"])
    p_old = old.label_probabilities(zero_shot, INFO["label_names"])
    assert max(abs(a - b) for a, b in zip(p_new, p_old)) < 1e-5
    logits_new = new.prefill_logits(generated, settings)
    logits_old = old.prefill_logits(generated, settings)
    assert torch.allclose(logits_new, logits_old, atol=1e-3, rtol=0)


@pytest.mark.slow
def test_the_same_prefixes_give_the_same_bits_through_a_file(strong_engine, store_and_prompts,
                                                            tmp_path):
    store, prefixes, _, _ = store_and_prompts
    again = strong_engine.build_prefix_store(list(reversed(prefixes)), model="smollm2")
    store.save(tmp_path / "store.safetensors")
    again.save(tmp_path / "again.safetensors")  # the same bytes: a rerun's file compares equal
    assert ((tmp_path / "store.safetensors").read_bytes()
            == (tmp_path / "again.safetensors").read_bytes())
    loaded = PrefixStore.load(tmp_path / "store.safetensors")
    for other in (again, loaded):
        assert other.entries == store.entries and other.fingerprint == store.fingerprint
        for name in ("header_keys", "header_values", "tail_keys", "tail_values"):
            assert all(torch.equal(a, b) for a, b in zip(getattr(store, name), getattr(other, name)))
    assert loaded.model == "smollm2" and not list(tmp_path.glob("*.partial"))


@pytest.mark.slow
def test_stored_chunks_resume_to_the_uninterrupted_result(strong_engine, store_and_prompts,
                                                          tmp_path):
    """A run killed after its first chunk, resumed with the store read back from its file, gives
    what one uninterrupted run gives."""
    store, _, generated, _ = store_and_prompts
    store.save(tmp_path / "store.safetensors")
    engine = HFEngine(strong_engine.model, strong_engine.tokenizer)
    engine.use_prefix_store(PrefixStore.load(tmp_path / "store.safetensors"))
    ids = [str(i) for i in range(len(generated))]
    settings = GenerationSettings(max_new_tokens=12)
    whole, _ = generate_chunked(engine, ids, generated, settings, tmp_path / "whole", chunk_size=6)
    killed = tmp_path / "killed"
    generate_chunked(engine, ids[:6], generated[:6], settings, killed, chunk_size=6)
    resumer = HFEngine(strong_engine.model, strong_engine.tokenizer)
    resumer.use_prefix_store(PrefixStore.load(tmp_path / "store.safetensors"))
    resumed, stats = generate_chunked(resumer, ids, generated, settings, killed, chunk_size=6)
    assert (stats.reused, stats.computed) == (1, 2)
    assert [c.text for c in resumed] == [c.text for c in whole]


@pytest.mark.slow
def test_the_item_prefixes_stage_writes_a_store_the_stages_key_their_chunks_by(
        strong_engine, monkeypatch, tmp_path):
    import pandas as pd

    monkeypatch.setattr(strong_signals, "make_engine", lambda *args, **kwargs: strong_engine)
    monkeypatch.setattr(strong_signals, "model_identity",
                        lambda *args: {"name": "smollm2", "dtype": "float32"})
    splits = {}
    for name, (begin, end) in {"weak_train": (0, 2), "w2s_train": (2, 3), "test": (3, 5)}.items():
        splits[name] = str(tmp_path / f"{name}.parquet")
        pd.DataFrame({"id": [f"i{k}" for k in range(begin, end)],
                      "text": ITEMS[begin:end]}).to_parquet(splits[name])
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(INFO))
    output = tmp_path / "store.safetensors"
    stats = strong_signals.item_prefixes(splits, str(manifest), "unused", TEMPLATES,
                                         {"backend": "hf", "dtype": "float32"}, "cpu", str(output))
    assert stats["entries"] == len(ITEMS) and output.is_file()
    engine, identity = strong_signals.open_engine("unused", {"backend": "hf", "dtype": "float32"},
                                                  "cpu", str(output))
    assert identity["prefix_store"] == PrefixStore.load(output).fingerprint
    assert engine.prefix_store is not None
    engine.use_prefix_store(None)
    monkeypatch.setattr(strong_signals, "model_identity",
                        lambda *args: {"name": "other", "dtype": "float32"})
    with pytest.raises(Exception, match="holds the prefixes of model 'smollm2'"):
        strong_signals.open_engine("unused", {"backend": "hf", "dtype": "float32"}, "cpu",
                                   str(output))
