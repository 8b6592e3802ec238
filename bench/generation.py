"""Generation throughput: our engine against one-prompt-at-a-time HF generate, and the roofline.

Runs on the same model and the same prompts, in one process, one after the other:
  A  naive loop: HF ``model.generate`` on one prompt at a time (greedy, float32);
  B  our engine (``w2s_eda.generation.HFEngine``): length-sorted batches, KV cache, finished rows
     leave the batch; in float32 and in bfloat16, side by side;
  S  prefix sharing: debate-shaped prompts (each item's text and question, then two debaters who
     differ only in their side), run by the engine with ``share_prefixes`` off, then on, in each
     dtype: prefill tokens, wall time, and how many greedy texts differ.
It also measures the machine's matmul FLOP/s in each dtype in the same run; the roofline is that
divided by 2 x parameters (FLOPs per generated token), so "fraction of roofline" is how close
decoding comes to pure matmul speed. ``ONEDNN_MAX_CPU_ISA`` (e.g. AVX512_CORE, to turn AMX off)
is honoured by torch and printed.

    python bench/generation.py           # default strong model: the full run (about 3 min, 2 cores)
    python bench/generation.py --quick   # a smoke run in well under a minute

Prints a table and writes the figures as JSON (bench/records/generation.json, committed).
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
from w2s_eda.models import cpu_has_native_bf16, load_prepared, prepare_model  # noqa: E402

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


SIDES = ("yes", "no")


def make_items(n: int, seed: int = 0, low: int = 30, high: int = 150) -> list[str]:
    """n item texts whose lengths grow evenly from ``low`` to ``high`` words, in shuffled order;
    each starts with its own words and shuffles the filler, so items share no long prefix."""
    rng = random.Random(seed)
    lengths = [low + (high - low) * i // max(1, n - 1) for i in range(n)]
    rng.shuffle(lengths)
    items = []
    for i, length in enumerate(lengths):
        words = f"Note {i} on {TOPICS[i % len(TOPICS)]}:".split()
        while len(words) < length:
            words += rng.sample(FILLER, len(FILLER))
        items.append(" ".join(words[:length]))
    return items


def debate_prompts(tokenizer, items: list[str]) -> list[str]:
    """Each item twice, as two debaters' chat prompts that differ only in the side near the end."""
    return [render_chat(tokenizer, f"Text: {item}\nQuestion: Is this text accurate and helpful?\n"
                                   f"You are a debater: argue that the answer is \"{side}\".")
            for item in items for side in SIDES]


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


def ours(engine, prompts, new_tokens, batch_size, share=True) -> dict:
    """One engine run: new tokens, seconds, the engine's counters, and the texts."""
    settings = GenerationSettings(max_new_tokens=new_tokens, batch_size=batch_size,
                                  share_prefixes=share)
    engine.reset_counters()
    started = time.perf_counter()
    completions = engine.generate(prompts, settings)
    seconds = time.perf_counter() - started
    new = sum(c.n_new_tokens for c in completions)
    return {"new_tokens": new, "seconds": seconds, "tokens_per_s": new / seconds,
            **{key: value for key, value in engine.counters.items()},
            "texts": [c.text for c in completions]}


def sharing(engine, prompts, new_tokens, batch_size) -> dict:
    """The same prompts with prefix sharing off, then on."""
    off = ours(engine, prompts, new_tokens, batch_size, share=False)
    on = ours(engine, prompts, new_tokens, batch_size, share=True)
    differ = sum(a != b for a, b in zip(off.pop("texts"), on.pop("texts")))
    return {"off": off, "on": on,
            "prefill_tokens_off_over_on": off["prefill_tokens"] / on["prefill_tokens"],
            "wall_off_over_on": off["seconds"] / on["seconds"],
            "greedy_texts_differ": differ}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(REPO / "resources/models/smollm2-135m"))
    parser.add_argument("--prompts", type=int, default=32, help="A and B's prompts")
    parser.add_argument("--new-tokens", type=int, default=32, help="A and B's new tokens")
    parser.add_argument("--naive-prompts", type=int, default=4,
                        help="run A on only the first N prompts (0: all); batch-1 tok/s barely "
                             "depends on how many prompts it runs")
    parser.add_argument("--items", type=int, default=32,
                        help="S's items (two debaters each: twice as many prompts)")
    parser.add_argument("--share-new-tokens", type=int, default=16,
                        help="S's new tokens (few: sharing saves prefill)")
    parser.add_argument("--batch-size", type=int, default=0, help="B and S's batch size (0: auto)")
    parser.add_argument("--quick", action="store_true",
                        help="8 prompts, 8 items, 8 new tokens, A on 2 prompts: a smoke run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json", default=str(REPO / "bench/records/generation.json"))
    args = parser.parse_args()
    if args.quick:
        args.prompts = args.items = args.new_tokens = args.share_new_tokens = 8
        args.naive_prompts = 2
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
    debates = debate_prompts(tokenizer, make_items(args.items))
    debate_tokens = [len(tokenizer(p, add_special_tokens=False).input_ids) for p in debates]
    on_cpu = torch.device(args.device).type == "cpu"
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16}

    flops = {name: matmul_flops(dtype) for name, dtype in dtypes.items()} if on_cpu else {}
    a_prompts = prompts[: args.naive_prompts or len(prompts)]
    naive(model, tokenizer, prompts[:1], 2)  # warm-up
    a_tokens, a_seconds = naive(model, tokenizer, a_prompts, args.new_tokens)
    a_rate = a_tokens / a_seconds
    runs, shares = {}, {}
    for name, dtype in dtypes.items():  # float32 first: A and the float32 runs share the model
        model = model.to(dtype)
        engine = HFEngine(model, tokenizer)
        engine.generate(prompts[:4], GenerationSettings(max_new_tokens=4))  # warm-up
        runs[name] = ours(engine, prompts, args.new_tokens, args.batch_size)
        runs[name].pop("texts")
        shares[name] = sharing(engine, debates, args.share_new_tokens, args.batch_size)

    isa = os.environ.get("ONEDNN_MAX_CPU_ISA")
    figures = {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads,
                    "torch": torch.__version__, "device": args.device,
                    "cpu_has_native_bf16": cpu_has_native_bf16() if on_cpu else None,
                    "ONEDNN_MAX_CPU_ISA": isa,
                    "default_dtype": "float32" if on_cpu else "bfloat16"},
        "model": loaded.manifest["name"], "n_parameters": n_params,
        "prompts": len(prompts), "prompt_tokens_min_max": [min(prompt_tokens), max(prompt_tokens)],
        "max_new_tokens": args.new_tokens,
        "matmul_gflops": {k: v / 1e9 for k, v in flops.items()},
        "A_naive_batch1_float32": {"prompts": len(a_prompts), "new_tokens": a_tokens,
                                   "seconds": a_seconds, "tokens_per_s": a_rate},
    }
    for name, run in runs.items():
        figures[f"B_engine_{name}"] = {"prompts": len(prompts), **run}
        figures[f"B_over_A_{name}"] = run["tokens_per_s"] / a_rate
        if flops:
            roofline = flops[name] / (2 * n_params)
            figures[f"roofline_tokens_per_s_{name}"] = roofline
            figures[f"B_fraction_of_roofline_{name}"] = run["tokens_per_s"] / roofline
            # Prefill costs 2 x params FLOPs per prompt token too; counting them shows how much
            # of the machine's matmul speed the engine uses overall.
            figures[f"B_compute_utilisation_incl_prefill_{name}"] = (
                2 * n_params * (run["prompt_tokens"] + run["new_tokens"]) / run["seconds"]
                / flops[name])
    figures["S_prefix_sharing"] = {
        "items": args.items, "prompts": len(debates),
        "prompt_tokens_min_max": [min(debate_tokens), max(debate_tokens)],
        "max_new_tokens": args.share_new_tokens,
        **{name: share for name, share in shares.items()},
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")

    print(f"model {figures['model']} ({n_params:,} params), {args.threads} threads on "
          f"{args.device} ({figures['machine']['cpu']}, torch {torch.__version__})")
    if on_cpu:
        print(f"native bf16 matmul on this CPU: {'yes' if cpu_has_native_bf16() else 'no'}; "
              f"ONEDNN_MAX_CPU_ISA={isa or '(not set)'}")
    print(f"default generation dtype on this {'CPU' if on_cpu else 'device'}: "
          f"{figures['machine']['default_dtype']}"
          + (" (bfloat16 is opt-in: generation.dtype: bfloat16)" if on_cpu else ""))
    if flops:
        print(f"matmul: {flops['float32'] / 1e9:.0f} GFLOP/s float32, "
              f"{flops['bfloat16'] / 1e9:.0f} GFLOP/s bfloat16")
    print(f"\nA/B: {len(prompts)} prompts of {min(prompt_tokens)}-{max(prompt_tokens)} tokens, "
          f"{args.new_tokens} new tokens")
    print(f"A naive batch-1 generate (float32): {a_rate:8.1f} tok/s  ({len(a_prompts)} prompts)")
    for name, run in runs.items():
        line = (f"B our engine ({name}):{' ' * (9 - len(name))} {run['tokens_per_s']:8.1f} tok/s  "
                f"B/A = {run['tokens_per_s'] / a_rate:.1f}x")
        if flops:
            line += (f"; {100 * figures[f'B_fraction_of_roofline_{name}']:.0f}% of the roofline "
                     f"({figures[f'roofline_tokens_per_s_{name}']:.0f} tok/s); "
                     f"{100 * figures[f'B_compute_utilisation_incl_prefill_{name}']:.0f}% of "
                     f"matmul speed counting prefill")
        print(line)
    print(f"\nS prefix sharing: {args.items} items x {len(SIDES)} sides = {len(debates)} prompts "
          f"of {min(debate_tokens)}-{max(debate_tokens)} tokens, "
          f"{args.share_new_tokens} new tokens")
    print(f"  {'dtype':9} {'sharing':8} {'prefill tok':>11} {'prompt tok':>10} {'pad tok':>8} "
          f"{'prefill s':>9} {'wall s':>7} {'tok/s':>7}")
    for name, share in shares.items():
        for key in ("off", "on"):
            r = share[key]
            print(f"  {name:9} {key:8} {r['prefill_tokens']:11.0f} {r['prompt_tokens']:10.0f} "
                  f"{r['prefill_pad_tokens']:8.0f} {r['prefill_seconds']:9.1f} "
                  f"{r['seconds']:7.1f} {r['tokens_per_s']:7.1f}")
        print(f"  {name:9} off/on:  prefill tokens {share['prefill_tokens_off_over_on']:.2f}x, "
              f"wall {share['wall_off_over_on']:.2f}x; greedy texts that differ: "
              f"{share['greedy_texts_differ']}/{len(debates)}")
    print(f"\nfigures written to {args.json}")


if __name__ == "__main__":
    main()
