"""How much faster the default study's float32 generation can get, and from what.

Reads the side-by-side record of ``bench/generation_speedup.py`` (per stage: seconds, prefill
tokens and padding, prefill and decode seconds of the old and the new engine) and adds two
measurements on the same prepared strong model, float32:

1. **The raw model's speed at the engine's shapes.** One forward pass of 128 rows (the engine's
   CPU batch) of each stage's mean prompt length (prefill), then decoding steps of those rows
   against that cache, the model called directly with no engine around it (the median of three
   runs). The engine's own rates from the record are printed beside them: an engine at the raw
   model's rate has no overhead left to remove.
2. **The prefill shared across stages.** Every stage's prompt starts with the item (the templates
   of explain, zero-shot, both debate turns and side drift all open with ``{item}``), so each item's
   prefix is prefilled again in every stage. From the study's own rendered prompts it counts, per
   item, the tokens a stage's prompt shares with that item's explain prompt beyond the chat header
   (which every batch already prefills once), and projects each stage's time if those tokens were
   never prefilled again: ``prefill s x (prefill tokens - shared) / prefill tokens + decode s``.
   A second projection also lets decoding run at the raw model's rate where the engine's is
   below it. Both are generous: they count the shared tokens of every debate prompt and of
   every side-drift prompt, and charge nothing for storing or loading the reused keys and
   values.

    python bench/generation_headroom.py      # after bench/generation_speedup.py

Writes bench/records/generation_headroom.json. The last line reads
``projected float32 speed-up with cross-stage prefix reuse: <ratio>x (measured today: <ratio>x)``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from generation_speedup import SPLITS, eda_cell  # noqa: E402
from w2s_eda import strong_signals  # noqa: E402
from w2s_eda.generation import CPU_ROWS, _common_prefix, encode_prompts, render_chat  # noqa: E402
from w2s_eda.io import read_json  # noqa: E402
from w2s_eda.models import load_prepared  # noqa: E402
from w2s_eda.prompts import item_fields  # noqa: E402
from w2s_eda.study import Study, path, validate_config  # noqa: E402

ROWS = CPU_ROWS  # the engine's rows per batch on the CPU (auto_batch_size)


def stage_prompts(config: dict, fields: dict, names) -> dict[str, str]:
    """One item's prompt of each stage, as the stages render it (debate turns for side 0; the
    rebuttal and drift prompts with a stand-in argument: what they share with the explain prompt
    ends before the transcript or argument)."""
    debate = config["debate"]
    turn = [{"round": 1, "debater": 0, "side": 0, "text": "stand-in argument"}]
    return {
        "explain": config["explain"]["template"].format(**fields),
        "zero_shot": config["explain"]["zero_shot_template"].format(**fields),
        "debate round 1": strong_signals.debate_prompt(debate, fields, [], 0, names),
        "debate round 2": strong_signals.debate_prompt(debate, fields, turn, 0, names),
        "side drift": debate["drift_template"].format(argument="stand-in argument", **fields),
    }


def raw_rates(model, rows: int, length: int, steps: int = 8, repeats: int = 3
              ) -> tuple[float, float]:
    """Prefill tokens/s of one pass of rows x length, and decode tokens/s of rows after it, each
    the median of ``repeats`` runs."""
    runs = [_raw_rates(model, rows, length, steps) for _ in range(repeats)]
    return float(np.median([r[0] for r in runs])), float(np.median([r[1] for r in runs]))


def _raw_rates(model, rows: int, length: int, steps: int) -> tuple[float, float]:
    from transformers import DynamicCache

    ids = torch.randint(1000, 20000, (rows, length))
    with torch.inference_mode():
        model(input_ids=ids[:4, :16], logits_to_keep=1)  # warm-up
        cache = DynamicCache(config=model.config)
        started = time.perf_counter()
        out = model(input_ids=ids, use_cache=True, past_key_values=cache, logits_to_keep=1)
        prefill = rows * length / (time.perf_counter() - started)
        token = out.logits[:, -1].argmax(-1)[:, None]
        started = time.perf_counter()
        for _ in range(steps):
            token = model(input_ids=token, use_cache=True,
                          past_key_values=cache).logits[:, -1].argmax(-1)[:, None]
        decode = rows * steps / (time.perf_counter() - started)
    return prefill, decode


def linear_gflops(model, tokens: int = 4096, repeats: int = 10) -> dict[str, float]:
    """float32 GFLOP/s of ``torch.nn.functional.linear`` at the shapes of one decoder layer's
    projections (q/o, k/v, MLP up/gate and down) over ``tokens`` rows: the ceiling of prefill."""
    config = model.config
    hidden, inner = config.hidden_size, config.intermediate_size
    kv = config.num_key_value_heads * (getattr(config, "head_dim", None)
                                       or hidden // config.num_attention_heads)
    rates = {}
    for name, (k, n) in {"q/o": (hidden, hidden), "k/v": (hidden, kv), "up/gate": (hidden, inner),
                         "down": (inner, hidden)}.items():
        a, w = torch.randn(tokens, k), torch.randn(n, k)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            torch.nn.functional.linear(a, w)
            times.append(time.perf_counter() - started)
        rates[name] = 2 * tokens * k * n / float(np.median(times)) / 1e9
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(REPO / "config/config.yaml"))
    parser.add_argument("--record", default=str(REPO / "bench/records/generation_speedup.json"))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json", default=str(REPO / "bench/records/generation_headroom.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    record = json.loads(Path(args.record).read_text())

    config = validate_config(yaml.safe_load(Path(args.config).read_text()))
    study = Study(config)
    dataset, cell = eda_cell(study)
    manifest = REPO / path("manifest", dataset=dataset, seed=cell.seed)
    model_dir = REPO / Path(study.model_manifest(cell.strong)).parent
    if not manifest.exists() or not model_dir.exists():
        raise SystemExit("run bench/generation_speedup.py first: it prepares the splits and model")
    splits = {split: str(REPO / path(split, dataset=dataset, seed=cell.seed)) for split in SPLITS}
    items, info = strong_signals.read_items(splits), read_json(manifest)
    loaded = load_prepared(str(model_dir), device="cpu", dtype="float32")
    tokenizer = loaded.tokenizer

    per_stage: dict[str, list[list[int]]] = {}
    for text in items.text:
        prompts = stage_prompts(config, item_fields(text, info), info["label_names"])
        for stage, prompt in prompts.items():
            per_stage.setdefault(stage, []).append(
                encode_prompts(tokenizer, [render_chat(tokenizer, prompt)])[0])
    header = _common_prefix(per_stage["explain"])  # prefilled once per batch already
    shared = {stage: np.array([_common_prefix([own, first]) - header
                               for own, first in zip(rows, per_stage["explain"])])
              for stage, rows in per_stage.items()}

    # Prompts per item in each stage that would reuse the item's prefix: one per item and round
    # (the debaters of an item already share it within a batch), side drift's sampled turns.
    debate = config["debate"]
    drift_prompts = min(debate["drift_sample"], len(items) * debate["n_samples"] * 2)
    reusing = {"zero_shot": len(items), "debate round 1": len(items) * debate["n_samples"],
               "debate round 2": len(items) * debate["n_samples"],
               "side drift": drift_prompts * debate["n_rounds"]}
    rows, projected_total, bound_total = [], 0.0, 0.0
    for stage in record["stages"]:
        name = stage["stage"]
        prefill_s, decode_s = stage["new_prefill_decode_s"]
        tokens = stage["new_prefill_tokens"]
        saved = float(shared[name].mean() * reusing.get(name, 0)) if name in shared else 0.0
        projected = prefill_s * max(0.0, tokens - saved) / tokens + decode_s if tokens else \
            stage["new_s"]
        projected += stage["new_s"] - prefill_s - decode_s  # what is neither (file writes, etc.)
        mean_length = int(round(np.mean([len(r) for r in per_stage[name]]))) if name in per_stage \
            else 100
        raw_prefill, raw_decode = raw_rates(loaded.model, ROWS, mean_length)
        real = tokens - stage["new_pad_tokens"]
        new_tokens = stage["new_tok_per_s"] * stage["new_s"]
        # ... and if decoding also ran at the raw model's rate, where the engine's is below it
        engine_decode = new_tokens / decode_s if decode_s else 0.0
        raw_decode_s = decode_s * min(1.0, engine_decode / raw_decode) if decode_s else 0.0
        rows.append({
            "stage": name, "old_s": stage["old_s"], "new_s": stage["new_s"],
            "prefill_tokens": tokens, "shared_with_explain_per_item": float(shared[name].mean())
            if name in shared else 0.0, "prompts_reusing": reusing.get(name, 0),
            "tokens_saved": saved, "projected_s": projected,
            "engine_prefill_tok_s": real / prefill_s if prefill_s else None,
            "raw_prefill_tok_s": raw_prefill,
            "engine_decode_tok_s": new_tokens / decode_s if decode_s else None,
            "raw_decode_tok_s": raw_decode, "mean_prompt_tokens": mean_length,
            "projected_raw_decode_s": projected - decode_s + raw_decode_s,
        })
        projected_total += projected
        bound_total += projected - decode_s + raw_decode_s
    old_total, new_total = record["total"]["old_s"], record["total"]["new_s"]
    gflops = linear_gflops(loaded.model)
    tokens_per_turn = {}
    for stage in record["stages"]:  # the record's new tokens over the prompts that made them
        if stage["stage"].startswith("debate round"):
            turns = stage["items"] * strong_signals.speakers(config["debate"])
            tokens_per_turn[stage["stage"]] = stage["new_tok_per_s"] * stage["new_s"] / turns
    result = {"record": os.path.relpath(args.record, REPO), "dataset": dataset,
              "items": len(items), "header_tokens": header, "rows": ROWS,
              "threads": args.threads, "torch": torch.__version__, "stages": rows,
              "linear_gflops": gflops, "debate_new_tokens_per_turn": tokens_per_turn,
              "total": {"old_s": old_total, "new_s": new_total, "projected_s": projected_total,
                        "measured_ratio": old_total / new_total,
                        "projected_ratio": old_total / projected_total,
                        "projected_raw_decode_s": bound_total,
                        "projected_raw_decode_ratio": old_total / bound_total}}
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")

    print(f"{dataset}, {len(items)} items, chat header {header} tokens (once per batch), "
          f"float32, {args.threads} threads; timings from {result['record']}")
    print(f"{'stage':15} {'shared/item':>11} {'prompts':>7} {'saved tok':>9} {'prefill tok':>11} "
          f"{'new s':>6} {'projected s':>11} {'prefill tok/s engine/raw':>24} "
          f"{'decode tok/s engine/raw':>23}")
    for row in rows:
        engine_decode = (f"{row['engine_decode_tok_s']:.0f}" if row["engine_decode_tok_s"]
                         else "-")
        engine_decode = engine_decode + "/" + (f"{row['raw_decode_tok_s']:.0f}"
                                               if row["engine_decode_tok_s"] else "-")
        share = (f"{row['shared_with_explain_per_item']:11.1f}" if row["prompts_reusing"]
                 else f"{'(computes)':>11}")
        print(f"{row['stage']:15} {share} "
              f"{row['prompts_reusing']:7d} {row['tokens_saved']:9.0f} "
              f"{row['prefill_tokens']:11.0f} {row['new_s']:6.1f} {row['projected_s']:11.1f} "
              f"{row['engine_prefill_tok_s']:>15.0f}/{row['raw_prefill_tok_s']:<8.0f} "
              f"{engine_decode:>23}")
    print(f"{'all stages':15} old {old_total:.1f} s, new {new_total:.1f} s, projected "
          f"{projected_total:.1f} s; with decoding also at the raw model's rate "
          f"{bound_total:.1f} s ({old_total / bound_total:.2f}x)")
    print("float32 linear GFLOP/s at one layer's shapes, 4096 rows: "
          + ", ".join(f"{name} {rate:.0f}" for name, rate in gflops.items()))
    print("new tokens per debate turn (the record's): "
          + ", ".join(f"{name} {value:.1f} of {config['debate']['max_new_tokens']}"
                      for name, value in tokens_per_turn.items()))
    print(f"figures written to {os.path.relpath(args.json, REPO)}")
    print(f"projected float32 speed-up with cross-stage prefix reuse: "
          f"{old_total / projected_total:.2f}x (measured today: {old_total / new_total:.2f}x)")


if __name__ == "__main__":
    main()
