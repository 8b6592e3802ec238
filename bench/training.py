"""Strong-model training throughput: our training path against a plain reference loop.

Same model (the prepared strong model, SmolLM2-135M-Instruct by default), same texts, same batch
size, same epochs, float32 on the CPU (or CUDA when present), one process, run one after the
other:

  reference  one PyTorch loop written here the way openai/weak-to-strong's train.py trains: a
             minibatch loop in shuffled order, each batch padded to its longest text, the whole
             transformer run on every step (no feature caching), a linear head on the last
             token's final hidden state; AdamW. `probe`: the transformer frozen (run under
             no_grad), the head trains; `lora`: peft LoRA adapters on every linear layer + head.
  ours       what the train_ceiling / train_student jobs run (w2s_eda): `probe` extracts features
             once (length-bucketed batches, the model cut after the configured block, `middle`
             = block 15 of 30) and trains the head on the cached features; `lora` trains
             LoRA + head through w2s_eda.training.fit on the cut model.

Examples/s = texts x epochs / wall seconds (model loading excluded for both; feature extraction
included for ours). Prints a table and writes bench/results/training.json.

    .venv/bin/python bench/training.py                 # 128 texts, 3 epochs, batch 16
    .venv/bin/python bench/training.py --modes probe --epochs 10

Needs resources/models/smollm2-135m (made by `make run`, or
`snakemake --cores 1 resources/models/smollm2-135m/w2s_model.json`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]


def make_texts(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Entailment-style items of varied length (20-90 tokens), half labelled 1."""
    rng = random.Random(seed)
    names = ["Ann", "Bob", "Carla", "Dev", "Eli", "Fay"]
    verbs = ["knows", "suspects", "believes", "remembers", "doubts", "assumes"]
    facts = ["the train left early", "the bridge was closed", "the cat slept on the roof",
             "the meeting moved to Tuesday", "the river flooded the old mill"]
    texts, labels = [], []
    for i in range(n):
        fact = rng.choice(facts)
        filler = " ".join(rng.choice(facts) + "," for _ in range(rng.randint(0, 5)))
        texts.append(f"Premise: {filler} {rng.choice(names)} {rng.choice(verbs)} that {fact}. "
                     f"Hypothesis: {fact.capitalize()}. Does the premise entail the hypothesis?")
        labels.append(i % 2)
    return texts, np.array(labels, dtype=np.float32)


def reference(model_dir: Path, mode: str, texts, labels, epochs, batch_size, device, lr) -> float:
    """openai/weak-to-strong-style training; returns wall seconds (after loading)."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32).to(device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if mode == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                 target_modules="all-linear", bias="none"))
    else:
        model.requires_grad_(False)
    head = nn.Linear(model.config.hidden_size, 2, bias=False).to(device)
    nn.init.zeros_(head.weight)
    params = [p for p in [*model.parameters(), *head.parameters()] if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    rows = [tokenizer(t)["input_ids"] for t in texts]
    y = torch.tensor(labels, dtype=torch.long)
    torch.manual_seed(0)
    started = time.monotonic()
    for _ in range(epochs):
        order = torch.randperm(len(rows)).tolist()
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            longest = max(len(rows[i]) for i in batch)
            ids = torch.full((len(batch), longest), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for j, i in enumerate(batch):
                ids[j, :len(rows[i])] = torch.tensor(rows[i])
                mask[j, :len(rows[i])] = 1
            ids, mask = ids.to(device), mask.to(device)
            with torch.set_grad_enabled(mode == "lora"):
                hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
            last = hidden[torch.arange(len(batch), device=device), mask.sum(1) - 1]
            loss = nn.functional.cross_entropy(head(last), y[batch].to(device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return time.monotonic() - started


def ours(model_dir: Path, mode: str, texts, labels, epochs, batch_size, device, lr, layer) -> float:
    """The train_strong stage's path (w2s_eda); returns wall seconds (after loading)."""
    from w2s_eda.align import load_backbone
    from w2s_eda.features import extract, pad_batch, pad_id
    from w2s_eda.training import (
        ProbeClassifier, TextClassifier, TrainSettings, fit, prepare_for_mode,
    )

    backbone, tokenizer, _, torch_device, _ = load_backbone(
        str(model_dir), layer, device, "float32", "train.strong.layer")
    rows = [tokenizer(t)["input_ids"] for t in texts]
    pad = pad_id(tokenizer)
    settings = TrainSettings(mode=mode, epochs=epochs, batch_size=batch_size, lr=lr,
                             checkpoint_every=10**9)
    with tempfile.TemporaryDirectory() as checkpoints:
        started = time.monotonic()
        if mode == "probe":
            with torch.no_grad():
                features = torch.from_numpy(extract(backbone, rows, pad, torch_device, batch_size))
            model = ProbeClassifier(features)
            fit(model, lambda idx, d: {"features": features[idx].to(d)}, labels, settings,
                checkpoints, torch_device)
        else:
            model = TextClassifier(prepare_for_mode(backbone, settings), backbone.hidden_size)

            def batch(idx, d):
                ids, mask = pad_batch([rows[i] for i in idx], pad, d)
                return {"input_ids": ids, "attention_mask": mask}

            fit(model, batch, labels, settings, checkpoints, torch_device)
        return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "resources/models/smollm2-135m")
    parser.add_argument("--modes", nargs="+", default=["probe", "lora"], choices=["probe", "lora"])
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--layer", default="middle", help="our model's head block (config: layer)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json", type=Path, default=REPO / "bench/results/training.json")
    args = parser.parse_args()
    if not (args.model / "w2s_model.json").exists():
        raise SystemExit(f"{args.model} is not a prepared model: run `make run`, or "
                         f"`snakemake --cores 1 {args.model.relative_to(REPO)}/w2s_model.json`")
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    texts, labels = make_texts(args.n)
    rows = []
    for mode in args.modes:
        lr = 1e-3 if mode == "probe" else 2e-4
        ref = reference(args.model, mode, texts, labels, args.epochs, args.batch_size, device, lr)
        mine = ours(args.model, mode, texts, labels, args.epochs, args.batch_size, device, lr,
                    args.layer)
        examples = args.n * args.epochs
        rows.append({"mode": mode, "reference_s": round(ref, 2), "ours_s": round(mine, 2),
                     "reference_examples_per_s": round(examples / ref, 1),
                     "ours_examples_per_s": round(examples / mine, 1),
                     "speedup": round(ref / mine, 2)})
    machine = (f"{platform.processor() or platform.machine()}, {args.threads} threads, "
               f"{torch.cuda.get_device_name() if device == 'cuda' else 'CPU'}, torch {torch.__version__}")
    print(f"strong model {args.model.name}: {args.n} texts x {args.epochs} epochs, batch "
          f"{args.batch_size}, float32 on {device} ({machine})")
    print(f"{'mode':<6} {'reference ex/s':>15} {'ours ex/s':>10} {'ratio':>7}")
    for row in rows:
        print(f"{row['mode']:<6} {row['reference_examples_per_s']:>15} "
              f"{row['ours_examples_per_s']:>10} {row['speedup']:>6}x")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine, "n": args.n, "epochs": args.epochs,
                                     "batch_size": args.batch_size, "layer": args.layer,
                                     "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.json.relative_to(REPO) if args.json.is_relative_to(REPO) else args.json}")


if __name__ == "__main__":
    main()
