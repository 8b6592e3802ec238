"""Prefix sharing in HFEngine.generate: same texts and logits as an unshared prefill, fewer tokens.

The prompts are shaped like the study's debates: each item's debaters share the item's text, the
question and the template up to their side; a sampled debate repeats a prompt byte for byte."""

import pytest

from w2s_eda.generation import GenerationSettings, plan_batches, render_chat

pytestmark = pytest.mark.slow

ITEMS = [
    "Ann knows that the cat sleeps on the warm mat every afternoon.",
    "Paris is the capital of France; it has many museums and old bridges over the river Seine, "
    "which rarely floods, and millions of visitors come each year.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "Bob suspects that his neighbour's dog barks at night because it hears foxes in the garden, "
    "although nobody has ever seen a fox there, and the dog is old and half deaf.",
]
SIDES = ("yes", "no")
BIG = 16  # one batch holds every prompt
GROUPS = [[0, 4], [1], [2, 3], [5, 10], [6, 7], [8, 9]]  # of ``prompts``: rows sharing an item


def debate_prompt(tokenizer, item: str, side: str) -> str:
    return render_chat(tokenizer, f"{item}\nQuestion: is the statement true?\nYou are a debater: "
                                  f"argue that the answer is \"{side}\". Be brief.")


@pytest.fixture(scope="module")
def tokenizer(strong_engine):
    return strong_engine.tokenizer


@pytest.fixture(scope="module")
def debates(tokenizer):
    """Each item's two sides, adjacent."""
    return [debate_prompt(tokenizer, item, side) for item in ITEMS for side in SIDES]


@pytest.fixture(scope="module")
def prompts(tokenizer, debates):
    """The debates, one prompt sharing nothing special, and another item's debater twice (as in a
    sampled debate): 11 prompts, shuffled."""
    lone = render_chat(tokenizer, "Write one line about the sea.")
    twice = debate_prompt(tokenizer, "Most birds can fly, but penguins swim instead.", "yes")
    return [debates[3], lone, *debates[:3], twice, *debates[4:], twice]


def run(engine, prompts, share, **settings):
    engine.reset_counters()
    settings = GenerationSettings(**{"max_new_tokens": 12, **settings}, share_prefixes=share)
    return engine.generate(prompts, settings), dict(engine.counters)


@pytest.fixture(scope="module")
def unshared(strong_engine, prompts):
    """Greedy texts and counters without sharing, in one batch."""
    return run(strong_engine, prompts, False, batch_size=BIG)


def common_prefix(rows):
    """Tokens all rows share, leaving each at least one of its own."""
    same = 0
    while all(len(row) > same for row in rows) and len({row[same] for row in rows}) == 1:
        same += 1
    return min(same, min(map(len, rows)) - 1)


def expected_prefill_tokens(rows, groups):
    """Prefill tokens of one batch of ``rows`` sharing each group's prefix (groups: lists of row
    indices): the prefix of all rows once, each group's beyond it once, each row's rest; or a
    plain left-padded prefill where that is fewer."""
    shared = common_prefix(rows)
    own = {i: common_prefix([rows[j] for j in group]) for group in groups for i in group}
    levels = (shared + len(groups) * max(own[i] - shared for i in own)
              + len(rows) * max(len(row) - own[i] for i, row in enumerate(rows)))
    return min(levels, len(rows) * max(map(len, rows)))


def test_the_plan_keeps_every_row_once_with_groups_whole(strong_engine, prompts):
    encoded = strong_engine.encode(prompts)
    for batch_size in (1, 3, BIG):
        batches = plan_batches(encoded, batch_size)
        assert sorted(i for batch in batches for i in batch.rows) == list(range(len(prompts)))
        for batch in batches:
            assert len(batch.rows) <= batch_size
            assert batch.group == sorted(batch.group)  # a group's rows are adjacent
            for row, group in zip(batch.rows, batch.group):
                assert batch.shared <= batch.prefixes[group] < len(encoded[row])
                first, prefix = batch.rows[batch.group.index(group)], batch.prefixes[group]
                assert encoded[row][:prefix] == encoded[first][:prefix]
    # in one batch the groups are the items' debaters and the repeated prompt
    (batch,) = plan_batches(encoded, BIG)
    groups = {frozenset(r for r, g in zip(batch.rows, batch.group) if g == k)
              for k in set(batch.group)}
    assert groups == set(map(frozenset, GROUPS))


@pytest.fixture(scope="module")
def unpacked(strong_engine):
    """The engine with each prefill level in one left-padded pass, so its token counts follow
    the sharing plan alone (packing is tested in test_fast_paths.py)."""
    from w2s_eda.generation import HFEngine

    return HFEngine(strong_engine.model, strong_engine.tokenizer, pack_prefill=False)


def test_greedy_texts_equal_unshared_with_far_fewer_prefill_tokens(unpacked, prompts, debates,
                                                                  unshared):
    off, off_counts = run(unpacked, prompts, False, batch_size=BIG)
    assert [c.text for c in off] == [c.text for c in unshared[0]]
    on, on_counts = run(unpacked, prompts, True, batch_size=BIG)
    assert [c.text for c in on] == [c.text for c in off]
    assert [(c.n_prompt_tokens, c.n_new_tokens) for c in on] == [
        (c.n_prompt_tokens, c.n_new_tokens) for c in off]
    encoded = unpacked.encode(prompts)
    for counts in (on_counts, off_counts):
        assert counts["prompt_tokens"] == sum(map(len, encoded))
        assert counts["decode_tokens"] > 0 and counts["prefill_seconds"] > 0
        assert counts["decode_seconds"] > 0
    # unshared, prefill runs every prompt token; shared, each shared prefix once
    assert off_counts["prefill_tokens"] - off_counts["prefill_pad_tokens"] == sum(map(len, encoded))
    assert on_counts["prefill_tokens"] - on_counts["prefill_pad_tokens"] < sum(map(len, encoded))
    assert on_counts["decode_tokens"] == off_counts["decode_tokens"]
    assert off_counts["prefill_tokens"] == len(prompts) * max(map(len, encoded))
    assert on_counts["prefill_tokens"] == expected_prefill_tokens(encoded, GROUPS)
    assert on_counts["prefill_tokens"] < off_counts["prefill_tokens"]

    # the debates alone: every prompt shares its item with one other
    _, off_counts = run(unpacked, debates, False, batch_size=BIG)
    _, on_counts = run(unpacked, debates, True, batch_size=BIG)
    rows = unpacked.encode(debates)
    pairs = [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert on_counts["prefill_tokens"] == expected_prefill_tokens(rows, pairs)
    assert off_counts["prefill_tokens"] >= 1.5 * on_counts["prefill_tokens"]


def test_shared_prefill_logits_equal_unshared(strong_engine, prompts):
    import torch

    unshared = GenerationSettings(share_prefixes=False, batch_size=BIG)
    off = strong_engine.prefill_logits(prompts, unshared)
    for batch_size in (BIG, 3):
        on = strong_engine.prefill_logits(prompts, GenerationSettings(batch_size=batch_size))
        assert on.dtype == torch.float32 and on.shape == off.shape
        assert torch.allclose(on, off, atol=1e-4, rtol=0)


def test_seeded_sampling_equals_unshared(strong_engine, prompts):
    seeds = [100 + i for i in range(len(prompts))]
    sample = dict(do_sample=True, temperature=1.0, top_p=0.9, batch_size=BIG)
    off = strong_engine.generate(
        prompts, GenerationSettings(max_new_tokens=12, share_prefixes=False, **sample), seeds)
    on = strong_engine.generate(prompts, GenerationSettings(max_new_tokens=12, **sample), seeds)
    assert [c.text for c in on] == [c.text for c in off]
    # the same prompt with different seeds samples different texts; the rows kept their seeds
    assert on[5].text != on[10].text


@pytest.mark.parametrize("batch_size", [1, 3])
def test_batches_smaller_than_a_group_give_the_same_texts(strong_engine, prompts, unshared,
                                                          batch_size):
    off, _ = unshared
    on, _ = run(strong_engine, prompts, True, batch_size=batch_size)
    assert [c.text for c in on] == [c.text for c in off]


def test_any_prompts_work_raw_one_token_and_stop_strings(strong_engine):
    # no chat template, so nothing shared by all; a one-token prompt (a group prefix of 0 tokens:
    # a row of padding alone in level 1); two prompts that share most of their tokens; a repeat
    king = ("Once upon a time, in a small kingdom far away by the cold northern sea, there "
            "lived a king")
    prompts = ["Hi", f"{king} who", "The sea is", f"{king} and", "The sea is", "Cats"]
    encoded = strong_engine.encode(prompts)
    (batch,) = plan_batches(encoded, 8)
    assert batch.shared == 0 and 0 in batch.prefixes and max(batch.prefixes) > 8
    first = None
    for settings in (dict(), dict(stop_strings=("\n", ",")), dict(max_new_tokens=1)):
        settings = {"max_new_tokens": 10, "batch_size": 8, **settings}
        off, _ = run(strong_engine, prompts, False, **settings)
        on, _ = run(strong_engine, prompts, True, **settings)
        assert [(c.text, c.n_new_tokens) for c in on] == [(c.text, c.n_new_tokens) for c in off]
        first = first or off
    (alone,), _ = run(strong_engine, prompts[1:2], True, max_new_tokens=10)
    assert alone.text == first[1].text
