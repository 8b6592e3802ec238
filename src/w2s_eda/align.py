"""The align stages: the weak model in arms (Ψ), the strong ceiling, and the W2S students.

- ``compute_features``: a frozen model's pooled features for every item of some splits, with an
  arm's context laid out by the truncation policy of arms.py. Cached by a rule and reused by
  every probe-mode run that reads the same layout (features are computed once).
- ``train_weak``: the weak model of one arm, trained on weak_train (gold labels, or the strong
  model's zero-shot P(label 1) for distillation arms); an optional ensemble of k members with
  their own seeds averages probabilities. Writes soft labels for w2s_train (same context as in
  training) and predictions on test.
- ``train_strong``: the strong model on w2s_train, from gold labels (the ceiling) or from one
  arm's soft labels (a W2S student); predictions on test. The student reads the item only.

Gold labels of w2s_train and test are read only to train the ceiling and to score predictions.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .arms import context_key, encode_with_context
from .errors import DatasetError
from .features import PooledBackbone, extract, pad_batch, pad_id, pooling_for, resolve_layer
from .io import atomic_path, fingerprint, read_json, write_json
from .stats import fmt, scores
from .models import MODEL_MANIFEST, load_prepared, resolve_device
from .training import (
    ProbeClassifier,
    TextClassifier,
    TrainSettings,
    clear_checkpoints,
    fit,
    predict,
    prepare_for_mode,
)

log = logging.getLogger(__name__)


# --- inputs -------------------------------------------------------------------------------------


def read_split(path: str, with_labels: bool = False) -> pd.DataFrame:
    columns = ["id", "text", "label"] if with_labels else ["id", "text"]
    return pd.read_parquet(path, columns=columns)


@functools.lru_cache(maxsize=4)
def _signal_column(path: str, column: str) -> pd.Series:
    """One column of an explanations / debates file by item id, read once per process."""
    return pd.read_parquet(path, columns=["id", column]).set_index("id")[column]


def context_texts(ids: pd.Series, parts: list[str], explanations: str | None, debates: str | None):
    """{part: texts aligned with ``ids``}; a missing item names the file and the item."""
    sources = {"explanation": (explanations, "explanation"), "debate": (debates, "transcript")}
    out = {}
    for part in parts:
        path, column = sources[part]
        frame = _signal_column(path, column)
        missing = ids[~ids.isin(frame.index)]
        if len(missing):
            raise DatasetError(f"{path}: no {part} for item '{missing.iloc[0]}' ({len(missing)} missing)")
        out[part] = frame.loc[ids].fillna("").tolist()
    return out


def encode_items(tokenizer, frame: pd.DataFrame, parts: list[str], explanations, debates,
                 max_length: int) -> tuple[list[list[int]], int]:
    """Token ids of each item with its context (arms.py policy), and how many inputs were cut."""
    texts = context_texts(frame["id"], parts, explanations, debates)
    rows, n_cut = [], 0
    for i, item in enumerate(frame["text"]):
        ids, cut = encode_with_context(
            tokenizer, item, {part: texts[part][i] for part in parts}, parts, max_length
        )
        rows.append(ids)
        n_cut += cut > 0
    return rows, n_cut


def effective_max_length(tokenizer, model_config, configured: int) -> int:
    """The configured max_length, capped by the model's positions and the tokenizer's limit."""
    limits = [configured, getattr(model_config, "max_position_embeddings", None)]
    if tokenizer.model_max_length and tokenizer.model_max_length < 10**9:
        limits.append(tokenizer.model_max_length)
    return min(limit for limit in limits if limit)


def load_backbone(model_dir: str, layer, device: str, dtype: str, key: str,
                  bf16_on_capable_cpu: bool = False):
    """The prepared model as a float32 PooledBackbone (autocast supplies bf16 where asked)."""
    torch_device, torch_dtype = resolve_device(device, dtype, bf16_on_capable_cpu)
    loaded = load_prepared(model_dir, device=torch_device.type, dtype="float32", causal=False)
    manifest = loaded.manifest
    block = resolve_layer(layer, loaded.model.config.num_hidden_layers, key)
    backbone = PooledBackbone(loaded.model, block, pooling_for(manifest["kind"]))
    bf16 = torch_dtype == torch.bfloat16
    return backbone, loaded.tokenizer, manifest, torch_device, bf16


# --- features (probe mode) ----------------------------------------------------------------------


def compute_features(
    split_paths: dict[str, str], model_dir: str, parts: list[str], train: dict, device: str,
    dtype: str, output: str, role: str, explanations: str | None = None,
    debates: str | None = None,
) -> dict:
    """Features of every item of ``split_paths`` (in their order) with ``parts`` as context."""
    # dtype auto: bf16 autocast on CUDA, and on CPUs with native bf16 matmul, where extraction
    # runs twice as fast (features correlate 0.99998 with float32's); float32 elsewhere.
    backbone, tokenizer, manifest, torch_device, bf16 = load_backbone(
        model_dir, train["layer"], device, dtype, f"train.{role}.layer", bf16_on_capable_cpu=True
    )
    backbone.to(torch_device)
    max_length = effective_max_length(tokenizer, backbone.model.config, train["max_length"])
    arrays, meta = {}, {"model": manifest["name"], "layer": backbone.layer,
                        "pooling": backbone.pooling, "context": context_key(parts),
                        "max_length": max_length, "autocast_bf16": bf16, "splits": {}}
    for split, path in split_paths.items():
        frame = read_split(path)
        rows, n_cut = encode_items(tokenizer, frame, parts, explanations, debates, max_length)
        arrays[f"x_{split}"] = extract(
            backbone, rows, pad_id(tokenizer), torch_device, train["batch_size"],
            desc=f"{manifest['name']} {context_key(parts)} {split}",
            autocast_dtype=torch.bfloat16 if bf16 else None,
        )
        arrays[f"ids_{split}"] = frame["id"].to_numpy().astype(str)
        lengths = [len(row) for row in rows]
        meta["splits"][split] = {"n": len(rows), "n_context_cut": n_cut,
                                 "mean_tokens": float(np.mean(lengths)), "max_tokens": max(lengths)}
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    with atomic_path(output) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    log.info("features written to %s: %s", output, meta)
    return meta


def load_features(path: str, split: str, ids: pd.Series) -> torch.Tensor:
    with np.load(path, allow_pickle=False) as data:
        cached_ids, x = data[f"ids_{split}"], data[f"x_{split}"]
    if list(cached_ids) != list(ids):
        raise DatasetError(
            f"{path}: its {split} items differ from the split file; delete it and rerun"
        )
    return torch.from_numpy(x)


# --- one training run ---------------------------------------------------------------------------


class Source:
    """What a model reads: cached features (probe) or token ids (lora/full) of train/eval sets."""

    def __init__(self, features: dict[str, torch.Tensor] | None = None,
                 rows: dict[str, list[list[int]]] | None = None, pad: int = 0):
        self.features, self.rows, self.pad = features, rows, pad

    def batcher(self, split: str):
        if self.features is not None:
            x = self.features[split]
            return lambda idx, device: {"features": x[idx].to(device)}
        rows = self.rows[split]

        def make(idx, device):
            ids, mask = pad_batch([rows[i] for i in idx], self.pad, device)
            return {"input_ids": ids, "attention_mask": mask}

        return make


def run_training(
    source: Source, model_factory, targets: np.ndarray, eval_splits: list[str],
    settings: TrainSettings, checkpoint_dir: Path, device, bf16: bool, data_key: str, desc: str,
) -> tuple[dict[str, np.ndarray], dict]:
    """Train on source 'train' towards ``targets``; P(label 1) on each eval split; a record."""
    torch.manual_seed(settings.seed)
    model = model_factory()
    result = fit(
        model, source.batcher("train"), targets, settings, checkpoint_dir, device, bf16,
        data_key=data_key, desc=desc,
    )
    predictions = {
        split: predict(model, source.batcher(split), _size(source, split), device, bf16=bf16)
        for split in eval_splits
    }
    clear_checkpoints(checkpoint_dir)
    record = {
        "steps": result.steps, "resumed_from_step": result.resumed_from,
        "seconds": round(result.seconds, 3),
        "examples_per_second": round(result.examples_per_second, 1),
        "loss_first": result.losses[0], "loss_last": result.losses[-1],
        "loss_curve": [float(np.mean(c)) for c in np.array_split(result.losses, min(50, len(result.losses)))],
    }
    return predictions, record


def _size(source: Source, split: str) -> int:
    return len(source.features[split]) if source.features is not None else len(source.rows[split])


def _model_factory(source: Source, settings: TrainSettings, model_dir, layer, device, dtype, key):
    """A builder of the classifier for this mode. For lora/full the backbone is loaded from disk
    once and each build (ensemble member) adapts a fresh copy of it."""
    if settings.mode == "probe":
        return lambda: ProbeClassifier(source.features["train"])
    pretrained = []

    def build():
        if not pretrained:
            pretrained.append(load_backbone(model_dir, layer, device, dtype, key)[0])
        backbone = prepare_for_mode(copy.deepcopy(pretrained[0]), settings)
        return TextClassifier(backbone, backbone.hidden_size)

    return build


def _text_source(model_dir, train: dict, splits: dict[str, pd.DataFrame], parts, explanations,
                 debates) -> Source:
    """Token ids of every split's items (with the arm's context) for lora/full training."""
    from transformers import AutoConfig, AutoTokenizer

    manifest = read_json(Path(model_dir) / MODEL_MANIFEST)
    weights = manifest.get("weights_dir", model_dir)
    tokenizer = AutoTokenizer.from_pretrained(weights, local_files_only=True)
    config = AutoConfig.from_pretrained(weights, local_files_only=True)
    max_length = effective_max_length(tokenizer, config, train["max_length"])
    rows = {
        name: encode_items(tokenizer, frame, parts, explanations, debates, max_length)[0]
        for name, frame in splits.items()
    }
    return Source(rows=rows, pad=pad_id(tokenizer))


def _write_predictions(path: str, frame: pd.DataFrame, p_label1: np.ndarray, extra=None) -> None:
    out = pd.DataFrame({"id": frame["id"].to_numpy(), "p_label1": p_label1})
    if "label" in frame:
        out.insert(1, "label", frame["label"].to_numpy())
    for name, values in (extra or {}).items():
        out[name] = values
    with atomic_path(path) as tmp:
        out.to_parquet(tmp, index=False)


# --- the weak model, one arm --------------------------------------------------------------------


def train_weak(
    arm: str, arm_spec: dict, split_paths: dict[str, str], model_dir: str, train: dict,
    seed: int, device: str, dtype: str, outputs: dict[str, str],
    features: str | None = None, explanations: str | None = None, debates: str | None = None,
    zero_shot: str | None = None,
) -> dict:
    """Train the weak model of ``arm`` (``train.ensemble`` members) and write its outputs."""
    started = time.monotonic()
    parts = list(arm_spec["context"])
    frames = {
        "train": read_split(split_paths["weak_train"], with_labels=True),
        "w2s_train": read_split(split_paths["w2s_train"], with_labels=True),
        "test": read_split(split_paths["test"], with_labels=True),
    }
    if arm_spec["targets"] == "gold":
        targets = frames["train"]["label"].to_numpy(dtype=np.float32)
    else:
        if zero_shot is None:
            raise DatasetError(f"arm '{arm}' distils the strong model but got no zero-shot file")
        strong = pd.read_parquet(zero_shot, columns=["id", "p_label1"]).set_index("id")
        targets = strong.loc[frames["train"]["id"], "p_label1"].to_numpy(dtype=np.float32)
    settings = TrainSettings.from_config(train, seed=seed)
    torch_device, torch_dtype = resolve_device(device, dtype)
    bf16 = torch_dtype == torch.bfloat16
    split_of = {"train": "weak_train", "w2s_train": "w2s_train", "test": "test"}
    key = "train.weak.layer"
    if settings.mode == "probe":
        source = Source(features={
            name: load_features(features, split_of[name], frame["id"]) for name, frame in frames.items()
        })
    else:
        source = _text_source(model_dir, train, frames, parts, explanations, debates)
    members, records = [], []
    factory = _model_factory(source, settings, model_dir, train["layer"], device, dtype, key)
    for member in range(train["ensemble"]):
        member_settings = dataclasses.replace(settings, seed=seed * 1000 + member)
        predictions, record = run_training(
            source, factory, targets, ["w2s_train", "test"], member_settings,
            Path(outputs["metrics"]).parent / "checkpoints" / f"member{member}", torch_device,
            bf16, data_key=fingerprint(frames["train"]["id"].tolist(), targets.tolist(), parts),
            desc=f"weak {arm} member {member}",
        )
        members.append(predictions)
        records.append(record)
    soft = np.mean([m["w2s_train"] for m in members], axis=0)
    test = np.mean([m["test"] for m in members], axis=0)
    _write_predictions(
        outputs["soft_labels"], frames["w2s_train"][["id"]], soft,
        {f"p_member{j}": m["w2s_train"] for j, m in enumerate(members)} if len(members) > 1 else None,
    )
    _write_predictions(outputs["test"], frames["test"], test)
    metrics = {
        "role": "weak", "arm": arm, "context": context_key(parts), "targets": arm_spec["targets"],
        "mode": settings.mode, "model": read_json(Path(model_dir) / MODEL_MANIFEST)["name"],
        "seed": seed, "ensemble": train["ensemble"], "device": str(torch_device),
        "test": scores(frames["test"]["label"], test),
        # How good the weak supervision is: soft labels against w2s_train's gold (a statistic only).
        "w2s_train_label_accuracy": scores(frames["w2s_train"]["label"], soft),
        "soft_label_mean": float(soft.mean()),
        "members": records, "seconds": round(time.monotonic() - started, 2),
    }
    write_json(outputs["metrics"], metrics)
    log.info("weak arm %s: test accuracy %.3f, AUROC %s; soft-label accuracy on w2s_train %.3f",
             arm, metrics["test"]["accuracy"], fmt(metrics["test"]["auroc"]),
             metrics["w2s_train_label_accuracy"]["accuracy"])
    return metrics


# --- the strong model: ceiling or W2S student ---------------------------------------------------


def train_strong(
    role: str, split_paths: dict[str, str], model_dir: str, train: dict, loss: str, seed: int,
    device: str, dtype: str, outputs: dict[str, str], features: str | None = None,
    soft_labels: str | None = None, arm: str | None = None,
) -> dict:
    """The ceiling (``role='ceiling'``: gold labels, xent) or a W2S student (``'student'``)."""
    started = time.monotonic()
    frames = {
        "train": read_split(split_paths["w2s_train"], with_labels=role == "ceiling"),
        "test": read_split(split_paths["test"], with_labels=True),
    }
    if role == "ceiling":
        targets = frames["train"]["label"].to_numpy(dtype=np.float32)
    else:
        weak = pd.read_parquet(soft_labels, columns=["id", "p_label1"]).set_index("id")["p_label1"]
        missing = frames["train"]["id"][~frames["train"]["id"].isin(weak.index)]
        if len(missing):
            raise DatasetError(f"{soft_labels}: no soft label for w2s_train item '{missing.iloc[0]}'")
        targets = weak.loc[frames["train"]["id"]].to_numpy(dtype=np.float32)
    settings = TrainSettings.from_config(train, seed=seed, loss=loss)
    torch_device, torch_dtype = resolve_device(device, dtype)
    bf16 = torch_dtype == torch.bfloat16
    key = "train.strong.layer"
    if settings.mode == "probe":
        source = Source(features={
            "train": load_features(features, "w2s_train", frames["train"]["id"]),
            "test": load_features(features, "test", frames["test"]["id"]),
        })
    else:
        source = _text_source(model_dir, train, frames, [], None, None)
    factory = _model_factory(source, settings, model_dir, train["layer"], device, dtype, key)
    name = "ceiling" if role == "ceiling" else f"student {arm} {loss}"
    predictions, record = run_training(
        source, factory, targets, ["test"], settings,
        Path(outputs["metrics"]).parent / "checkpoints", torch_device, bf16,
        data_key=fingerprint(frames["train"]["id"].tolist(), targets.tolist()), desc=name,
    )
    _write_predictions(outputs["test"], frames["test"], predictions["test"])
    metrics = {
        "role": role, "arm": arm, "loss": loss, "mode": settings.mode,
        "model": read_json(Path(model_dir) / MODEL_MANIFEST)["name"], "seed": seed,
        "device": str(torch_device), "test": scores(frames["test"]["label"], predictions["test"]),
        "target_mean": float(targets.mean()), "training": record,
        "seconds": round(time.monotonic() - started, 2),
    }
    write_json(outputs["metrics"], metrics)
    log.info("%s: test accuracy %.3f, AUROC %s", name, metrics["test"]["accuracy"],
             fmt(metrics["test"]["auroc"]))
    return metrics
