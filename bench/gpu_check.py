"""A short CUDA check of the model layer and the generation engine (run where a GPU is at hand).

The default models are too large to carry to a remote GPU box, so by default this builds a model
with SmolLM2-135M's exact architecture (config.json from a prepared model folder) and random
weights: throughput is the same as the real model's, and greedy agreement with HF ``generate``
checks the CUDA code path. With ``--model resources/models/smollm2-135m`` it uses the real weights.

    python bench/gpu_check.py --config-dir resources/models/smollm2-135m
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from generation import make_prompts  # noqa: E402
from w2s_eda.generation import GenerationSettings, HFEngine, auto_batch_size  # noqa: E402
from w2s_eda.models import resolve_device  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config-dir", required=True, help="folder with config.json + tokenizer")
    parser.add_argument("--model", help="a prepared model folder with real weights")
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--json", default="gpu_check.json")
    args = parser.parse_args()

    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    device, dtype = resolve_device("auto", "auto")
    print(f"device {device}, dtype {dtype}, torch {torch.__version__}",
          torch.cuda.get_device_name(0) if device.type == "cuda" else "")
    tokenizer = AutoTokenizer.from_pretrained(args.config_dir)
    if args.model:
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)
    else:
        torch.manual_seed(0)
        config = AutoConfig.from_pretrained(args.config_dir)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.to(device).eval()
    engine = HFEngine(model, tokenizer)
    prompts = make_prompts(tokenizer, args.prompts)

    # 1. greedy agreement with HF generate, one prompt at a time, on the first 8 prompts
    ours = engine.generate(prompts[:8], GenerationSettings(max_new_tokens=16, batch_size=8))
    agree = 0
    for prompt, completion in zip(prompts[:8], ours):
        enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(device)
        with torch.inference_mode():
            ref = model.generate(**enc, max_new_tokens=16, do_sample=False)
        agree += tokenizer.decode(ref[0, enc.input_ids.shape[1]:], skip_special_tokens=True) == completion.text

    # 2. throughput: naive batch-1 generate on 16 prompts vs our engine on all
    torch.cuda.synchronize() if device.type == "cuda" else None
    started, naive_tokens = time.perf_counter(), 0
    for prompt in prompts[:16]:
        enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(device)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=args.new_tokens, do_sample=False)
        naive_tokens += out.shape[1] - enc.input_ids.shape[1]
    naive_rate = naive_tokens / (time.perf_counter() - started)
    longest = max(len(tokenizer(p, add_special_tokens=False).input_ids) for p in prompts)
    batch = auto_batch_size(model, device, longest, args.new_tokens)
    started = time.perf_counter()
    completions = engine.generate(prompts, GenerationSettings(max_new_tokens=args.new_tokens))
    ours_rate = sum(c.n_new_tokens for c in completions) / (time.perf_counter() - started)
    figures = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "dtype": str(dtype), "weights": "real" if args.model else "random (SmolLM2-135M shape)",
        "greedy_agreement_with_hf_generate": f"{agree}/8",
        "auto_batch_size": batch,
        "naive_batch1_tok_s": naive_rate, "engine_tok_s": ours_rate, "ratio": ours_rate / naive_rate,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
    }
    print(json.dumps(figures, indent=2))
    Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
