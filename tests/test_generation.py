"""The generation engine: same text as HF generate, stop strings, seeding, and chunked resume."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from w2s_eda.generation import GenerationSettings, generate_chunked, render_chat

pytestmark = pytest.mark.slow

QUESTIONS = [
    "What is the capital of France?",
    "Name a colour.",
    "Explain, in one sentence, why the sky looks blue on a clear day at noon.",
    "Is a whale a fish?",
    "Give one reason people keep dogs as pets, and one reason they keep cats.",
    "What is 2 + 2?",
]


@pytest.fixture(scope="module")
def prompts(strong_engine):
    return [render_chat(strong_engine.tokenizer, q) for q in QUESTIONS]


def test_batched_output_equals_hf_generate_one_prompt_at_a_time(strong_engine, prompts):
    settings = GenerationSettings(max_new_tokens=16, batch_size=4)
    completions = strong_engine.generate(prompts, settings)
    tokenizer, model = strong_engine.tokenizer, strong_engine.model
    for prompt, completion in zip(prompts, completions):
        encoded = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        reference = model.generate(**encoded, max_new_tokens=16, do_sample=False)
        new = reference[0, encoded.input_ids.shape[1]:]
        assert completion.text == tokenizer.decode(new, skip_special_tokens=True)
        assert completion.n_new_tokens == len(new)
        assert completion.n_prompt_tokens == encoded.input_ids.shape[1]
        assert completion.seconds > 0


def test_stop_strings_cut_the_text(strong_engine, prompts):
    settings = GenerationSettings(max_new_tokens=24, stop_strings=("Paris",))
    (completion,) = strong_engine.generate(prompts[:1], settings)
    assert completion.text == "The capital of France is "
    assert completion.n_new_tokens < 24


def test_sampling_is_seeded(strong_engine, prompts):
    def sample(seed):
        settings = GenerationSettings(max_new_tokens=10, do_sample=True, seed=seed, temperature=1.0)
        return [c.text for c in strong_engine.generate(prompts[:3], settings)]

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_chunks_are_reused_and_stale_chunks_recomputed(strong_engine, prompts, tmp_path):
    ids = [f"q{i}" for i in range(len(prompts))]
    settings = GenerationSettings(max_new_tokens=8)
    first, stats = generate_chunked(strong_engine, ids, prompts, settings, tmp_path, chunk_size=4)
    assert (stats.computed, stats.reused) == (2, 0)
    again, stats = generate_chunked(strong_engine, ids, prompts, settings, tmp_path, chunk_size=4)
    assert (stats.computed, stats.reused) == (0, 2) and again == first
    longer = GenerationSettings(max_new_tokens=9)
    _, stats = generate_chunked(strong_engine, ids, prompts, longer, tmp_path, chunk_size=4)
    assert stats.computed == 2  # other settings: nothing stale is reused


KILLABLE = textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(1)
    from w2s_eda.generation import GenerationSettings, generate_chunked, make_engine, render_chat
    model_dir, work_dir, out = sys.argv[1:4]
    questions = [f"Write a short poem about the number {i}." for i in range(8)]
    engine = make_engine(model_dir, device="cpu")
    prompts = [render_chat(engine.tokenizer, q) for q in questions]
    ids = [str(i) for i in range(8)]
    completions, stats = generate_chunked(
        engine, ids, prompts, GenerationSettings(max_new_tokens=24), work_dir, chunk_size=2)
    import json
    json.dump({"texts": [c.text for c in completions], "computed": stats.computed_chunk_indices,
               "reused": stats.reused}, open(out, "w"))
    """
)


def _run(args, **kwargs):
    return subprocess.Popen([sys.executable, "-c", KILLABLE, *map(str, args)], **kwargs)


def test_a_killed_generation_resumes_to_the_uninterrupted_result(prepared_models, tmp_path):
    model_dir = prepared_models / "smollm2-135m"
    work = tmp_path / "killed"
    victim = _run([model_dir, work, tmp_path / "never.json"], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (work / "chunk-00001.json").exists():
        assert victim.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    finished = {path.name: path.stat().st_mtime_ns for path in work.glob("chunk-*.json")}
    assert 2 <= len(finished) < 4 and not list(work.glob(".*.tmp"))

    resumed = _run([model_dir, work, tmp_path / "resumed.json"], stderr=subprocess.DEVNULL)
    fresh = _run([model_dir, tmp_path / "fresh", tmp_path / "fresh.json"], stderr=subprocess.DEVNULL)
    assert resumed.wait(timeout=300) == 0 and fresh.wait(timeout=300) == 0
    resumed_out = json.loads((tmp_path / "resumed.json").read_text())
    fresh_out = json.loads((tmp_path / "fresh.json").read_text())
    assert resumed_out["texts"] == fresh_out["texts"]
    assert resumed_out["reused"] == len(finished)
    assert resumed_out["computed"] == list(range(len(finished), 4))
    for name, mtime in finished.items():
        assert (work / name).stat().st_mtime_ns == mtime  # finished chunks untouched


def test_label_probabilities_read_the_label_words_logits(strong_engine):
    import torch

    prompt = render_chat(strong_engine.tokenizer, "Is the sky blue? Answer yes or no.")
    tokenizer, model = strong_engine.tokenizer, strong_engine.model
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids

    def sequence_logprob(word):
        word_ids = tokenizer(word, add_special_tokens=False).input_ids
        full = torch.cat([ids, torch.tensor([word_ids])], dim=1)
        with torch.no_grad():
            logprobs = torch.log_softmax(model(full).logits[0, :-1].float(), -1)
        return sum(logprobs[ids.shape[1] - 1 + k, t] for k, t in enumerate(word_ids))

    # distinct first tokens: one pass over the next-token logits
    (p,) = strong_engine.label_probabilities([prompt], ["no", "yes"])
    expected = torch.softmax(torch.stack([sequence_logprob("no"), sequence_logprob("yes")]), 0)[1]
    assert abs(p - float(expected)) < 1e-4
    # a shared first token ("N"): each word's whole token sequence is scored
    (p,) = strong_engine.label_probabilities([prompt], ["Nope", "Noodle"])
    expected = torch.softmax(torch.stack([sequence_logprob("Nope"), sequence_logprob("Noodle")]), 0)[1]
    assert abs(p - float(expected)) < 1e-4
