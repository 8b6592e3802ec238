"""The engine's speed-ups (packed prefill, growing KV buffers, shared scoring, 128-row CPU
batches, grouped-query masked attention, reused KV buffers) give the texts and probabilities of
the engine without them (``HFEngine(fast=False)``), float32, greedy and seeded."""

import itertools

import pytest
import torch

from w2s_eda.generation import (
    CPU_ROWS,
    CPU_ROWS_BEFORE,
    GenerationSettings,
    HFEngine,
    compaction,
    pack_buckets,
    render_chat,
)

pytestmark = pytest.mark.slow

# Items of very different lengths, so a batch's rows need very different padding; two debaters
# per item, so prefix sharing and packing run together.
ITEMS = [
    "Cats sleep.",
    "Ann knows that the cat sleeps on the warm mat every afternoon.",
    "Bob suspects that his neighbour's dog barks at night because it hears foxes in the garden, "
    "although nobody has ever seen a fox there, and the dog is old and half deaf, and the "
    "garden is walled on every side.",
    "Water boils at one hundred degrees.",
    "Paris is the capital of France; it has many museums and old bridges over the river Seine.",
]


@pytest.fixture(scope="module")
def engines(strong_engine):
    model, tokenizer = strong_engine.model, strong_engine.tokenizer
    return HFEngine(model, tokenizer), HFEngine(model, tokenizer, fast=False)


@pytest.fixture(scope="module")
def prompts(strong_engine):
    tokenizer = strong_engine.tokenizer
    explain = [render_chat(tokenizer, f"{item}\nExplain in one sentence whether it is true.")
               for item in ITEMS]
    debate = [render_chat(tokenizer, f"{item}\nArgue that the answer is \"{side}\".")
              for item in ITEMS for side in ("yes", "no")]
    return explain + debate


def test_the_fast_engine_packs_and_grows(engines):
    fast, old = engines
    assert fast.pack_prefill and fast.grow_cache and fast.share_scoring and fast.wide_batches
    assert fast.masked_gqa and fast.reuse_buffers
    assert not (old.pack_prefill or old.grow_cache or old.share_scoring or old.wide_batches
                or old.masked_gqa or old.reuse_buffers)


def test_masked_gqa_prefill_is_bit_identical(engines, strong_engine, prompts):
    """SmolLM2 has 9 query heads on 3 key/value heads: a shared prefill (masked, over a prefix
    cache) attends with the grouped heads, and gives exactly the logits of sdpa's copied heads."""
    fast, _ = engines
    config = strong_engine.model.config
    assert config.num_key_value_heads < config.num_attention_heads
    plain = HFEngine(strong_engine.model, strong_engine.tokenizer, masked_gqa=False)
    settings = GenerationSettings(max_new_tokens=1, batch_size=16)
    grouped = fast.prefill_logits(prompts, settings)
    assert torch.equal(grouped, plain.prefill_logits(prompts, settings))
    assert grouped.shape[0] == len(prompts)


def test_wide_batches_decode_the_same_texts_in_fewer_batches(engines, strong_engine):
    """More prompts than the old 64 rows: the old engine runs three batches, the new two, and
    every greedy text is the same (the batch size left to the engine, as the study leaves it)."""
    fast, old = engines
    prompts = [render_chat(strong_engine.tokenizer,
                           f"Claim {i}: {ITEMS[i % len(ITEMS)]}\nIs it true? Answer in a word.")
               for i in range(CPU_ROWS + 2)]
    settings = GenerationSettings(max_new_tokens=4)
    encoded = fast.encode(prompts)
    assert len(fast._plan(encoded, settings)) == 2
    assert len(old._plan(encoded, settings)) == 3
    assert (fast.cpu_rows, old.cpu_rows) == (CPU_ROWS, CPU_ROWS_BEFORE)
    assert ([(c.text, c.n_new_tokens) for c in fast.generate(prompts, settings)]
            == [(c.text, c.n_new_tokens) for c in old.generate(prompts, settings)])


@pytest.mark.parametrize("share", [True, False])
def test_greedy_texts_equal_the_old_path_with_less_padding(engines, prompts, share):
    fast, old = engines
    # 16 rows a batch: rows of very different lengths share a batch and run in buckets
    settings = GenerationSettings(max_new_tokens=16, batch_size=16, share_prefixes=share)
    counts = []
    outputs = []
    for engine in (fast, old):
        engine.reset_counters()
        outputs.append(engine.generate(prompts, settings))
        counts.append(dict(engine.counters))
    assert [(c.text, c.n_new_tokens) for c in outputs[0]] == [
        (c.text, c.n_new_tokens) for c in outputs[1]]
    assert counts[0]["decode_tokens"] == counts[1]["decode_tokens"]
    assert counts[0]["prefill_pad_tokens"] < counts[1]["prefill_pad_tokens"]
    assert counts[0]["prefill_tokens"] < counts[1]["prefill_tokens"]


def test_seeded_sampling_and_stop_strings_equal_the_old_path(engines, prompts):
    fast, old = engines
    seeds = [7 + i for i in range(len(prompts))]
    settings = GenerationSettings(max_new_tokens=16, batch_size=16, do_sample=True,
                                  temperature=1.0, top_p=0.9, stop_strings=(".",))
    assert ([c.text for c in fast.generate(prompts, settings, seeds)]
            == [c.text for c in old.generate(prompts, settings, seeds)])


def test_label_probabilities_equal_the_old_path(engines, prompts):
    fast, old = engines
    for words in (("yes", "no"), ("True", "False")):
        new = fast.label_probabilities(prompts, words, batch_size=4)  # several batches
        before = old.label_probabilities(prompts, words, batch_size=4)
        assert max(abs(a - b) for a, b in zip(new, before)) < 1e-5
        assert len({round(p, 3) for p in new}) > 1  # the prompts are told apart


def test_pack_buckets_is_the_cheapest_cut():
    lengths = [5, 40, 7, 41, 90, 6, 88]

    def cost(buckets, pass_tokens):
        return sum(pass_tokens + len(b) * max(lengths[i] for i in b) for b in buckets)

    for pass_tokens in (0, 10, 32, 1000):
        buckets = pack_buckets(lengths, pass_tokens)
        assert sorted(i for b in buckets for i in b) == list(range(len(lengths)))
        assert all(b == sorted(b) for b in buckets)
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        cuts = [cost([order[a:b] for a, b in zip((0, *ends), (*ends, len(order)))], pass_tokens)
                for k in range(len(order)) for ends in itertools.combinations(range(1, 7), k)]
        assert cost(buckets, pass_tokens) == min(cuts)
    assert len(pack_buckets(lengths, 1000)) == 1  # a pass dearer than all padding: one pass
    assert len(pack_buckets(lengths, 10)) == 3  # short, middle, long rows


def test_growing_layer_appends_as_a_dynamic_layer_does_even_past_its_room():
    import torch
    from transformers.cache_utils import DynamicLayer

    from w2s_eda.generation import growing_layer_class

    torch.manual_seed(0)
    keys, values = torch.randn(3, 2, 5, 4), torch.randn(3, 2, 5, 4)
    grown, plain = growing_layer_class()(keys, values, headroom=2), DynamicLayer()
    plain.update(keys, values)
    for step in range(4):  # two steps fit the room, two more grow it
        new = torch.randn(3, 2, 1, 4), torch.randn(3, 2, 1, 4)
        for got, want in zip(grown.update(*new), plain.update(*new)):
            assert torch.equal(got, want)
        assert grown.get_seq_length() == plain.get_seq_length() == 6 + step
    rows = torch.tensor([2, 0])
    grown.batch_select_indices(rows)
    plain.batch_select_indices(rows)
    assert torch.equal(grown.keys, plain.keys) and torch.equal(grown.values, plain.values)


def test_decoding_drops_finished_rows_in_place_moving_the_fewest():
    """A finished row among the first ones is filled by a kept row from the end (``compaction``),
    so the growing buffers compact in place, copying only the rows that move; the kept keys and
    values are a DynamicLayer's after the same selection."""
    from transformers.cache_utils import DynamicLayer

    from w2s_eda.generation import growing_layer_class

    assert compaction([False, True, False, True, False, False]) == [0, 4, 2, 5]
    assert compaction([True, True, False]) == [2]
    assert compaction([False, False, True]) == [0, 1]
    for finished in itertools.product([False, True], repeat=5):
        rows = compaction(finished)
        assert sorted(rows) == [row for row, done in enumerate(finished) if not done]
        assert all(source >= row for row, source in enumerate(rows))
    torch.manual_seed(0)
    keys, values = torch.randn(6, 2, 5, 4), torch.randn(6, 2, 5, 4)
    grown, plain = growing_layer_class()(keys, values, headroom=3), DynamicLayer()
    plain.update(keys, values)
    buffer = grown.k.data_ptr()
    for finished in ([False, True, False, True, False, False], [True, False, False, False]):
        rows = torch.tensor(compaction(finished))
        grown.batch_select_indices(rows)
        plain.batch_select_indices(rows)
        assert torch.equal(grown.keys, plain.keys) and torch.equal(grown.values, plain.values)
        assert grown.k.data_ptr() == buffer  # no new buffer
        step = torch.randn(len(rows), 2, 1, 4), torch.randn(len(rows), 2, 1, 4)
        for got, want in zip(grown.update(*step), plain.update(*step)):
            assert torch.equal(got, want)


def test_buffered_prefill_lays_buckets_out_in_place_and_computes_the_old_logits(engines):
    """With grow_cache the prefill writes every level into buffers made once per level, bucket
    after bucket (``_prefill_buffered``): the rows come back in bucket order, which differs from
    the batch's here (so the mapping is exercised), each row's logits are the old engine's up
    to float rounding with the same greedy token, and the buffers have the decode's room."""
    from transformers import DynamicCache

    fast, old = engines
    tokenizer = fast.tokenizer
    # two speakers per item, one brief, one long-winded: the rows' own tokens differ in length
    prompts = [render_chat(tokenizer, f"{item}\n{turn}") for item in ITEMS for turn in (
        "Argue yes.", "Argue at length, with every reason you can find, that the answer is no.")]
    settings = GenerationSettings(max_new_tokens=5)
    encoded = fast.encode(prompts)
    (batch,) = fast._plan(encoded, settings)
    levels = batch.levels(encoded)
    assert len(levels) > 1 and len(pack_buckets([len(t) for t in levels[-1][0]],
                                                fast.pass_tokens)) > 1
    with torch.inference_mode(), fast._attention():
        logits, mask, _, cache, order = fast._prefill(encoded, batch,
                                                      DynamicCache(config=fast.model.config), 5)
    assert sorted(order) == list(range(len(batch.rows))) and order != sorted(order)
    layer = cache.layers[0]
    assert layer.k.shape[-2] == mask.shape[1] + 5 and layer.get_seq_length() == mask.shape[1]
    assert [int(mask[row].sum()) for row in range(len(order))] == [
        len(encoded[batch.rows[r]]) for r in order]
    got = fast.prefill_logits(prompts, settings)
    want = old.prefill_logits(prompts, settings)
    assert torch.allclose(got, want, atol=1e-4)
    assert torch.equal(got.argmax(-1), want.argmax(-1))


def test_reused_buffers_give_the_texts_of_fresh_ones_batch_after_batch(engines, prompts):
    """reuse_buffers: long prompts, then short ones written into the same memory (whatever the
    long batch left there), then all of them: every call's texts equal those of an engine that
    allocates its key/value buffers afresh, and the short batch writes into a set of buffers the
    long one left. The short batch is both debaters of the two shortest items, so its last level
    copies two rows into four: were a level written into the set it reads, a row would be
    overwritten before it is copied."""
    fast, _ = engines
    fresh = HFEngine(fast.model, fast.tokenizer, reuse_buffers=False)
    assert not fresh.reuse_buffers and fresh.grow_cache
    settings = GenerationSettings(max_new_tokens=6)
    debates = prompts[len(ITEMS):]  # item by item, "yes" then "no"
    pointers = []
    for call in (sorted(prompts, key=len)[-6:], debates[:4], prompts):
        texts = [c.text for c in fast.generate(call, settings)]
        assert texts == [c.text for c in fresh.generate(call, settings)]
        pointers.append([flat.data_ptr() for flats in fast._buffers for flat in flats])
    assert pointers[0] and set(pointers[0]) & set(pointers[1])
