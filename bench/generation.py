"""Generation throughput: our engine against one-prompt-at-a-time HF generate, and the roofline.

Runs both on the same model and the same prompts, in one process, one after the other:
  A  naive loop: HF ``model.generate`` on one prompt at a time (greedy);
  B  our engine (``w2s_eda.generation.HFEngine``): length-sorted batches, KV cache, finished rows
     leave the batch.
It also measures the machine's matmul FLOP/s in the same run; the roofline is that divided by
2 x parameters (FLOPs per generated token), so "fraction of roofline" is how close decoding comes
to pure matmul speed.

    python bench/generation.py                 # default strong model, 64 prompts, 64 new tokens
    python bench/generation.py --dtype bfloat16 --json bench/results/generation-bf16.json

Prints a table and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from w2s_eda.generation import GenerationSettings, HFEngine, render_chat  # noqa: E402
from w2s_eda.models import load_prepared, prepare_model  # noqa: E402

TOPICS = ["photosynthesis", "the French Revolution", "binary search trees", "vaccines",
          "black holes", "compound interest", "plate tectonics", "jazz music"]
FILLER = ("I am preparing for an exam and want to understand this properly. My teacher went "
          "quickly and I missed details. Please keep it simple, give an everyday example, and "
          "mention a common misconception. ").split()


def make_prompts(tokenizer, n: int, seed: int = 0) -> list[str]:
    """n chat prompts whose user turns grow evenly from 8 to 200 words, in shuffled order."""
    rng = random.Random(seed)
    lengths = [8 + (200 - 8) * i // max(1, n - 1) for i in range(n)]
    rng.shuffle(lengths)
    prompts = []
    for i, length in enumerate(lengths):
        words = f"Can you explain {TOPICS[i % len(TOPICS)]} to me?".split()
        while len(words) < length:
            words += FILLER
        prompts.append(render_chat(tokenizer, " ".join(words[:length])))
    return prompts


def matmul_flops(dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def naive(model, tokenizer, prompts, new_tokens) -> tuple[int, float]:
    tokens, started = 0, time.perf_counter()
    for prompt in prompts:
        encoded = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
        with torch.inference_mode():
            output = model.generate(**encoded, max_new_tokens=new_tokens, do_sample=False,
                                    pad_token_id=tokenizer.pad_token_id)
        tokens += output.shape[1] - encoded.input_ids.shape[1]
    return tokens, time.perf_counter() - started


def ours(model, tokenizer, prompts, new_tokens, batch_size) -> tuple[int, float]:
    engine = HFEngine(model, tokenizer)
    engine.generate(prompts[:4], GenerationSettings(max_new_tokens=4))  # warm-up
    started = time.perf_counter()
    completions = engine.generate(
        prompts, GenerationSettings(max_new_tokens=new_tokens, batch_size=batch_size))
    return sum(c.n_new_tokens for c in completions), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(REPO / "resources/models/smollm2-135m"))
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--naive-prompts", type=int, default=0,
                        help="run A on only the first N prompts (0: all); batch-1 tok/s barely "
                             "depends on how many prompts it runs")
    parser.add_argument("--batch-size", type=int, default=0, help="B's batch size (0: auto)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                        help="dtype of B (A always runs float32, as a researcher would)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json", default=str(REPO / "bench/results/generation.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model_dir = Path(args.model)
    if not (model_dir / "w2s_model.json").exists():
        print(f"preparing the default strong model in {model_dir} ...", flush=True)
        prepare_model(model_dir.name, {"packaged": "smollm2-135m-instruct",
                                       "trust_remote_code": False}, model_dir)
    loaded = load_prepared(model_dir, device=args.device, dtype="float32")
    model, tokenizer = loaded.model, loaded.tokenizer
    n_params = loaded.manifest["n_parameters"]
    prompts = make_prompts(tokenizer, args.prompts)
    prompt_tokens = [len(tokenizer(p, add_special_tokens=False).input_ids) for p in prompts]

    flops = {name: matmul_flops(dtype) for name, dtype in
             (("float32", torch.float32), ("bfloat16", torch.bfloat16))}
    a_prompts = prompts[: args.naive_prompts or len(prompts)]
    a_tokens, a_seconds = naive(model, tokenizer, a_prompts, args.new_tokens)
    if args.dtype == "bfloat16":
        model = model.to(torch.bfloat16)
    b_tokens, b_seconds = ours(model, tokenizer, prompts, args.new_tokens, args.batch_size)

    a_rate, b_rate = a_tokens / a_seconds, b_tokens / b_seconds
    roofline = flops[args.dtype] / (2 * n_params)
    figures = {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads,
                    "torch": torch.__version__, "device": args.device},
        "model": loaded.manifest["name"], "n_parameters": n_params,
        "prompts": len(prompts), "prompt_tokens_min_max": [min(prompt_tokens), max(prompt_tokens)],
        "max_new_tokens": args.new_tokens,
        "matmul_gflops": {k: v / 1e9 for k, v in flops.items()},
        "A_naive_batch1_float32": {"prompts": len(a_prompts), "new_tokens": a_tokens,
                                   "seconds": a_seconds, "tokens_per_s": a_rate},
        f"B_engine_{args.dtype}": {"prompts": len(prompts), "new_tokens": b_tokens,
                                   "seconds": b_seconds, "tokens_per_s": b_rate},
        "B_over_A": b_rate / a_rate,
        "roofline_tokens_per_s": roofline,
        "B_fraction_of_roofline": b_rate / roofline,
        # Prefill costs 2 x params FLOPs per prompt token too; counting them shows how much of
        # the machine's matmul speed the engine uses overall.
        "B_compute_utilisation_incl_prefill":
            2 * n_params * (sum(prompt_tokens) + b_tokens) / b_seconds / flops[args.dtype],
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    print(f"model {figures['model']} ({n_params:,} params), {len(prompts)} prompts of "
          f"{min(prompt_tokens)}-{max(prompt_tokens)} tokens, {args.new_tokens} new tokens, "
          f"{args.threads} threads on {args.device}")
    print(f"matmul: {flops['float32'] / 1e9:.0f} GFLOP/s float32, "
          f"{flops['bfloat16'] / 1e9:.0f} GFLOP/s bfloat16")
    print(f"A naive batch-1 generate (float32): {a_rate:8.1f} tok/s  ({len(a_prompts)} prompts)")
    print(f"B our engine ({args.dtype}):      {b_rate:8.1f} tok/s")
    print(f"B/A = {b_rate / a_rate:.1f}x; B = {100 * b_rate / roofline:.0f}% of the {args.dtype} "
          f"roofline ({roofline:.0f} tok/s)")
    print(f"counting prefill (prompt tokens) too, B uses "
          f"{100 * figures['B_compute_utilisation_incl_prefill']:.0f}% of {args.dtype} matmul speed")
    print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
