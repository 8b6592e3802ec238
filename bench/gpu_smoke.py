"""GPU smoke test of the training code: a few steps of every training mode on CUDA, with throughput.

It trains the default weak (MiniLM-L6) and strong (SmolLM2-135M) models through the same
``w2s_eda.training.fit`` the workflow uses (accelerate, bf16 autocast, checkpoints), in each mode:
``probe`` (feature extraction + head), ``lora`` and ``full``, and prints examples/s and peak memory.

    make gpu-smoke                      # the prepared default models (resources/models)
    python bench/gpu_smoke.py --random-init weak=path/to/minilm-config strong=path/to/smollm2-config

``--random-init`` builds a model from a folder with config.json and the tokenizer files only:
the same architecture and cost as the real weights, for machines the weights cannot be copied to.
It runs on the CPU too (``--device cpu``), slowly.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from w2s_eda.features import PooledBackbone, extract, pad_batch, pad_id, resolve_layer  # noqa: E402
from w2s_eda.models import resolve_device  # noqa: E402
from w2s_eda.training import (  # noqa: E402
    ProbeClassifier,
    TextClassifier,
    TrainSettings,
    fit,
    prepare_for_mode,
)

MODELS = {"weak": ("minilm-l6", "last", "mean"), "strong": ("smollm2-135m", "middle", "last")}


def load(role: str, args):
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    name, layer, pooling = MODELS[role]
    if role in args.random:
        folder = args.random[role]
        torch.manual_seed(0)
        model = AutoModel.from_config(AutoConfig.from_pretrained(folder))
        weights = "random"
    else:
        manifest = json.loads((REPO / "resources/models" / name / "w2s_model.json").read_text())
        folder = manifest.get("weights_dir", str(REPO / "resources/models" / name))
        model = AutoModel.from_pretrained(folder, local_files_only=True)
        weights = "real"
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    block = resolve_layer(layer, model.config.num_hidden_layers)
    return PooledBackbone(model, block, pooling), tokenizer, weights


def rows_for(tokenizer, n: int, tokens: int) -> list[list[int]]:
    words = "the premise says that a person knows a fact and the hypothesis repeats it".split()
    texts = [" ".join(words[(i + j) % len(words)] for j in range(tokens)) for i in range(n)]
    return [tokenizer.encode(t)[:tokens] for t in texts]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--random-init", nargs="*", default=[], metavar="ROLE=FOLDER")
    parser.add_argument("--json", default="bench/results/gpu_smoke.json")
    args = parser.parse_args()
    args.random = dict(item.split("=", 1) for item in args.random_init)

    device, dtype = resolve_device(args.device, "auto")
    bf16 = dtype == torch.bfloat16
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    print(f"device {device} ({name}), autocast {'bf16' if bf16 else 'off'}, torch {torch.__version__}")
    n = args.steps * args.batch_size
    targets = (np.arange(n) % 2).astype(np.float32)
    figures = {"device": name, "bf16": bf16, "steps": args.steps, "batch_size": args.batch_size,
               "tokens": args.tokens, "runs": []}
    for role in ("weak", "strong"):
        for mode in ("probe", "lora", "full"):
            backbone, tokenizer, weights = load(role, args)
            rows = rows_for(tokenizer, n, args.tokens)
            settings = TrainSettings(mode=mode, epochs=1, batch_size=args.batch_size, seed=0,
                                     checkpoint_every=max(1, args.steps // 2))
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            if mode == "probe":
                backbone.to(device)
                features = torch.from_numpy(extract(
                    backbone, rows, pad_id(tokenizer), device, args.batch_size, desc=f"{role} features",
                    autocast_dtype=torch.bfloat16 if bf16 else None))
                extracted = time.perf_counter() - started
                model = ProbeClassifier(features)
                batch = lambda idx, dev: {"features": features[idx].to(dev)}  # noqa: E731
            else:
                model = TextClassifier(prepare_for_mode(backbone, settings), backbone.hidden_size)

                def batch(idx, dev):
                    ids, mask = pad_batch([rows[i] for i in idx], pad_id(tokenizer), dev)
                    return {"input_ids": ids, "attention_mask": mask}
            with tempfile.TemporaryDirectory() as folder:
                result = fit(model, batch, targets, settings, folder, device, bf16, desc=f"{role} {mode}")
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            run = {
                "role": role, "model": MODELS[role][0], "weights": weights, "mode": mode,
                "examples_per_second": n / seconds,
                "train_examples_per_second": result.examples_per_second,
                "loss_first": result.losses[0], "loss_last": result.losses[-1],
                "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
                "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
            }
            if mode == "probe":
                run["feature_examples_per_second"] = n / extracted
            figures["runs"].append(run)
            print(f"{role:6s} {MODELS[role][0]:13s} {mode:5s} {weights:6s}: "
                  f"{run['examples_per_second']:8.1f} examples/s end to end, "
                  f"loss {run['loss_first']:.3f} -> {run['loss_last']:.3f}, "
                  f"trainable {run['trainable_parameters']:,}"
                  + (f", peak {run['peak_memory_gib']:.2f} GiB" if run["peak_memory_gib"] else ""))
            del model, backbone
            if device.type == "cuda":
                torch.cuda.empty_cache()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(figures, indent=2))
    print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
