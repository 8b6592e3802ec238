"""The align stages: the weak model in arms (Ψ), the strong ceiling, and the W2S students.

- ``compute_features``: a frozen model's pooled features for every item of some splits, with an
  arm's context laid out by the truncation policy of arms.py. Cached by a rule and reused by
  every probe-mode run that reads the same layout (features are computed once).
- ``train_weak``: the weak model of one arm, trained on weak_train (gold labels, the strong
  model's zero-shot P(label 1) for distillation arms, or the judge's P(label 1) after the debate);
  an ensemble of the arm's members averages their probabilities. Writes soft labels for w2s_train
  (same context as in training) and predictions on test.
- ``train_strong``: the strong model on w2s_train, from gold labels (the ceiling) or from one
  arm's soft labels (a W2S student); predictions on test. The student reads the item only.

Gold labels of w2s_train and test are read only to train the ceiling and to score predictions.

Ensemble members must really differ. A probe is a convex problem: members on the same features
from the same zero head reach nearly the same head whatever their batch order, so their average
would be one model. So when an arm has several members, member j (seed ``seed * 1000 + j``)
trains on its own bootstrap resample of weak_train (bagging: n draws with replacement) from its own
small random head (training.MEMBER_INIT_STD). Lang et al. 2025 vary only the seed because they
fine-tune the whole model, where initialisation and data order already make members differ; the
same bootstrap applies here in lora and full mode, as it works on row indices. With vary
``transcript`` member j also reads sample j of every sampled signal (debate, consultancy, judge)
and learns from the judge of sample j; with vary ``seed`` every member reads sample 0. A single
weak model (one member) trains as it always has: all of weak_train, from a zero head.
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

from .arms import SINGLE, TRANSCRIPT_PARTS, context_key, encode_with_context
from .errors import DatasetError
from .features import PooledBackbone, extract, pad_batch, pad_id, pooling_for, resolve_layer
from .io import atomic_path, fingerprint, read_json, write_json
from .stats import fmt, scores
from .models import MODEL_MANIFEST, load_prepared, resolve_device
from .training import (
    MEMBER_INIT_STD,
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


PAIR_COLUMNS = ("text_a", "text_b")


def read_split(path: str, with_labels: bool = False) -> pd.DataFrame:
    """A split's ids and texts (and labels); a pairwise split's two texts as well."""
    import pyarrow.parquet as pq

    columns = ["id", "text", "label"] if with_labels else ["id", "text"]
    present = set(pq.read_schema(path).names)
    columns += [column for column in PAIR_COLUMNS if column in present]
    return pd.read_parquet(path, columns=columns)


def is_pairwise(frame: pd.DataFrame) -> bool:
    return all(column in frame for column in PAIR_COLUMNS)


# The column each context part reads from its signal file. Parts in arms.TRANSCRIPT_PARTS come from
# files with one row per (item, sample); an explanation is one per item.
SIGNAL_COLUMNS = {"explanation": "explanation", "debate": "transcript",
                  "consultancy": "transcript", "judge": "verdict"}


@functools.lru_cache(maxsize=8)
def _signal_column(path: str, column: str, sampled: bool) -> pd.Series:
    """One column of a signal file by item id (and sample if ``sampled``), read once a process."""
    keys = ["id", "sample"] if sampled else ["id"]
    return pd.read_parquet(path, columns=[*keys, column]).set_index(keys)[column]


def signal_values(path: str | None, part: str, column: str, ids: pd.Series,
                  sample: int) -> pd.Series:
    """``column`` of ``part``'s signal file for each of ``ids`` (sample ``sample`` of sampled
    parts); a missing file, item or sample is an error naming them."""
    if path is None:
        raise DatasetError(f"the arm reads the {part} signal but was given no {part} file")
    sampled = part in TRANSCRIPT_PARTS
    frame = _signal_column(path, column, sampled)
    items = frame.index.get_level_values("id")
    missing = ids[~ids.isin(items)]
    if len(missing):
        raise DatasetError(
            f"{path}: no {part} for item '{missing.iloc[0]}' ({len(missing)} missing)"
        )
    if not sampled:
        return frame.loc[ids.to_numpy()]
    keys = pd.MultiIndex.from_arrays([ids.to_numpy(), np.full(len(ids), sample)])
    found = keys.isin(frame.index)
    if not found.all():
        raise DatasetError(
            f"{path}: no {part} sample {sample} for item '{keys[~found][0][0]}'; "
            "debate.n_samples is too small"
        )
    return frame.loc[keys]


def context_texts(ids: pd.Series, parts: list[str], signals: dict[str, str | None],
                  sample: int = 0) -> dict[str, list[str]]:
    """{part: texts aligned with ``ids``}, reading each part from ``signals[part]`` (a file path);
    sampled parts (debate, consultancy, judge) give their sample ``sample``."""
    return {part: signal_values(signals.get(part), part, SIGNAL_COLUMNS[part], ids, sample)
            .fillna("").tolist() for part in parts}


def encode_items(tokenizer, frame: pd.DataFrame, parts: list[str], signals: dict[str, str | None],
                 max_length: int, sample: int = 0) -> tuple[list, int]:
    """Token ids of each item with its context (arms.py policy; sampled parts from sample
    ``sample``), and how many inputs were cut. A pairwise item gives a pair (A ids, B ids), each
    text with the item's context."""
    texts = context_texts(frame["id"], parts, signals, sample)
    pairwise = is_pairwise(frame)
    columns = PAIR_COLUMNS if pairwise else ("text",)
    rows, n_cut = [], 0
    for i, item in enumerate(zip(*(frame[column] for column in columns))):
        encoded = [encode_with_context(tokenizer, text, {part: texts[part][i] for part in parts},
                                       parts, max_length) for text in item]
        rows.append(tuple(ids for ids, _ in encoded) if pairwise else encoded[0][0])
        n_cut += any(cut > 0 for _, cut in encoded)
    return rows, n_cut


def effective_max_length(tokenizer, model_config, configured: int) -> int:
    """The configured max_length, capped by the model's positions and the tokenizer's limit."""
    limits = [configured, getattr(model_config, "max_position_embeddings", None)]
    if tokenizer.model_max_length and tokenizer.model_max_length < 10**9:
        limits.append(tokenizer.model_max_length)
    return min(limit for limit in limits if limit)


def load_backbone(model_dir: str, layer, device: str, dtype: str, key: str):
    """The prepared model as a float32 PooledBackbone (autocast supplies bf16 where asked)."""
    torch_device, torch_dtype = resolve_device(device, dtype)
    loaded = load_prepared(model_dir, device=torch_device.type, dtype="float32", causal=False)
    manifest = loaded.manifest
    block = resolve_layer(layer, loaded.model.config.num_hidden_layers, key)
    backbone = PooledBackbone(loaded.model, block, pooling_for(manifest["kind"]))
    bf16 = torch_dtype == torch.bfloat16
    return backbone, loaded.tokenizer, manifest, torch_device, bf16


# --- features (probe mode) ----------------------------------------------------------------------


def signal_files(explanations: str | None = None, debates: str | None = None,
                 consultancy: str | None = None, judge: str | None = None) -> dict[str, str | None]:
    """The signal file each context part reads (judge: the judge's verdicts on the debates)."""
    return {"explanation": explanations, "debate": debates, "consultancy": consultancy,
            "judge": judge}


def feature_key(split: str, sample: int) -> str:
    """The name of a split's features read with sample ``sample``: ``test``, ``test_sample1``."""
    return split if sample == 0 else f"{split}_sample{sample}"


def compute_features(
    split_paths: dict[str, str], model_dir: str, parts: list[str], train: dict, device: str,
    dtype: str, output: str, role: str, explanations: str | None = None,
    debates: str | None = None, consultancy: str | None = None, judge: str | None = None,
    n_samples: int = 1,
) -> dict:
    """Features of every item of ``split_paths`` (in their order) with ``parts`` as context.

    A layout with a sampled part (debate, consultancy, judge) is computed for ``n_samples``
    samples: ``x_{split}`` reads sample 0 (as a one-sample file), ``x_{split}_sample{j}`` sample j.
    Any other layout reads the same text in every sample, so it is stored once (meta
    ``n_samples`` 1) and every ensemble member reads its sample 0."""
    # dtype auto: bf16 autocast on CUDA, float32 on every CPU (`dtype: bfloat16` opts in; on a
    # CPU with AMX extraction then runs about twice as fast, features correlating 0.99998).
    backbone, tokenizer, manifest, torch_device, bf16 = load_backbone(
        model_dir, train["layer"], device, dtype, f"train.{role}.layer"
    )
    backbone.to(torch_device)
    max_length = effective_max_length(tokenizer, backbone.model.config, train["max_length"])
    signals = signal_files(explanations, debates, consultancy, judge)
    samples = n_samples if set(parts) & set(TRANSCRIPT_PARTS) else 1
    arrays, meta = {}, {"model": manifest["name"], "layer": backbone.layer,
                        "pooling": backbone.pooling, "context": context_key(parts),
                        "max_length": max_length, "autocast_bf16": bf16,
                        "dtype": "bfloat16" if bf16 else "float32", "n_samples": samples,
                        "splits": {}}
    for split, path in split_paths.items():
        frame = read_split(path)
        arrays[f"ids_{split}"] = frame["id"].to_numpy().astype(str)
        for sample in range(samples):
            key = feature_key(split, sample)
            rows, n_cut = encode_items(tokenizer, frame, parts, signals, max_length, sample)
            pairwise = is_pairwise(frame)
            texts = [text for row in rows for text in row] if pairwise else rows
            x = extract(
                backbone, texts, pad_id(tokenizer), torch_device, train["batch_size"],
                desc=f"{manifest['name']} {context_key(parts)} {key}",
                autocast_dtype=torch.bfloat16 if bf16 else None,
            )
            # Pairwise items: (items, 2, hidden), text A then text B (training.ProbeClassifier).
            arrays[f"x_{key}"] = x.reshape(len(rows), 2, -1) if pairwise else x
            if pairwise:
                meta["pairwise"] = True
            lengths = [len(text) for text in texts]
            meta["splits"][key] = {"n": len(rows), "n_context_cut": n_cut,
                                   "mean_tokens": float(np.mean(lengths)),
                                   "max_tokens": max(lengths)}
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    with atomic_path(output) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    log.info("features written to %s: %s", output, meta)
    return meta


def load_features(path: str, split: str, ids: pd.Series, sample: int = 0) -> torch.Tensor:
    """The cached features of ``split`` read with sample ``sample`` (see compute_features)."""
    key = feature_key(split, sample)
    with np.load(path, allow_pickle=False) as data:
        if f"x_{key}" not in data.files:
            held = json.loads(str(data["meta"])).get("n_samples", 1)
            raise DatasetError(
                f"{path}: no {split} features of sample {sample} (it holds {held} samples); "
                "debate.n_samples is too small, or the file predates it: delete it and rerun"
            )
        cached_ids, x = data[f"ids_{split}"], data[f"x_{key}"]
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

    @property
    def pairwise(self) -> bool:
        """Pairwise items: features (items, 2, hidden), or (A ids, B ids) per item."""
        if self.features is not None:
            return self.features["train"].dim() == 3
        return isinstance(self.rows["train"][0], tuple)

    def take(self, split: str, rows=None):
        """The items of ``split`` at ``rows`` (all if None): features, or token-id rows."""
        if self.features is not None:
            x = self.features[split]
            return x if rows is None else x[torch.as_tensor(np.asarray(rows, dtype=np.int64))]
        return self.rows[split] if rows is None else [self.rows[split][i] for i in rows]

    def with_splits(self, **splits) -> "Source":
        """This source with splits replaced or added (values as ``take`` gives them)."""
        if self.features is not None:
            return Source(features={**self.features, **splits})
        return Source(rows={**self.rows, **splits}, pad=self.pad)

    def concat(self, *parts):
        """Items of several ``take`` results, one after the other."""
        return torch.cat(parts) if self.features is not None else [r for part in parts for r in part]

    def resampled(self, rows: np.ndarray) -> "Source":
        """The same source with its 'train' items drawn at ``rows`` (a bootstrap resample)."""
        return self.with_splits(train=self.take("train", rows))

    def batcher(self, split: str):
        if self.features is not None:
            x = self.features[split]
            return lambda idx, device: {"features": x[idx].to(device)}
        rows = self.rows[split]
        pairwise = self.pairwise

        def make(idx, device):
            # A pairwise batch: the A texts, then the B texts (training.TextClassifier).
            texts = ([rows[i][0] for i in idx] + [rows[i][1] for i in idx] if pairwise
                     else [rows[i] for i in idx])
            ids, mask = pad_batch(texts, self.pad, device)
            return {"input_ids": ids, "attention_mask": mask}

        return make


def run_training(
    source: Source, model_factory, targets: np.ndarray, eval_splits: list[str],
    settings: TrainSettings, checkpoint_dir: Path, device, bf16: bool, data_key: str, desc: str,
    init_std: float = 0.0, gold: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], dict]:
    """Train on source 'train' towards ``targets`` from a zero head (or a random one of std
    ``init_std`` seeded by the settings' seed); P(label 1) on each eval split; a record."""
    torch.manual_seed(settings.seed)
    model = model_factory(source, init_std, settings.seed)
    result = fit(
        model, source.batcher("train"), targets, settings, checkpoint_dir, device, bf16,
        data_key=data_key, desc=desc, gold=gold,
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
        **({"l2_penalty": result.l2_penalty} if result.l2_penalty is not None else {}),
        **({"cv_losses": result.cv_losses} if result.cv_losses is not None else {}),
        "loss_curve": [float(np.mean(c)) for c in np.array_split(result.losses, min(50, len(result.losses)))],
    }
    return predictions, record


def _size(source: Source, split: str) -> int:
    return len(source.features[split]) if source.features is not None else len(source.rows[split])


def _model_factory(settings: TrainSettings, model_dir, layer, device, dtype, key):
    """A builder ``build(source, init_std, seed)`` of the classifier for this mode. For lora/full
    the backbone is loaded from disk once and each build (ensemble member) adapts a fresh copy."""
    if settings.mode == "probe":
        return lambda source, init_std, seed: ProbeClassifier(
            source.features["train"], init_std, seed
        )
    pretrained = []

    def build(source: Source, init_std: float, seed: int):
        if not pretrained:
            pretrained.append(load_backbone(model_dir, layer, device, dtype, key)[0])
        backbone = prepare_for_mode(copy.deepcopy(pretrained[0]), settings)
        return TextClassifier(backbone, backbone.hidden_size, init_std, seed,
                              pairwise=source.pairwise)

    return build


def _text_source(model_dir, train: dict, splits: dict[str, pd.DataFrame], parts,
                 signals: dict[str, str | None], sample: int = 0) -> Source:
    """Token ids of every split's items (with the arm's context, sampled parts from sample
    ``sample``) for lora/full training."""
    from transformers import AutoConfig, AutoTokenizer

    manifest = read_json(Path(model_dir) / MODEL_MANIFEST)
    weights = manifest.get("weights_dir", model_dir)
    tokenizer = AutoTokenizer.from_pretrained(weights, local_files_only=True)
    config = AutoConfig.from_pretrained(weights, local_files_only=True)
    max_length = effective_max_length(tokenizer, config, train["max_length"])
    rows = {
        name: encode_items(tokenizer, frame, parts, signals, max_length, sample)[0]
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


def bootstrap(n: int, seed: int) -> np.ndarray:
    """Row indices of a bootstrap resample of n rows: n draws with replacement, seeded."""
    return np.random.default_rng(seed).integers(0, n, size=n)


def member_disagreement(p_members: np.ndarray) -> float:
    """Mean over items of the std of the members' P(label 1) (members x items); 0 for one."""
    return float(np.mean(np.std(p_members, axis=0)))


def weak_targets(arm: str, kind: str, frame: pd.DataFrame, sample: int, zero_shot: str | None,
                 judge: str | None) -> np.ndarray:
    """What the weak model learns on weak_train: gold labels, the strong model's zero-shot
    P(label 1), or the judge's P(label 1) after debate sample ``sample``."""
    if kind == "gold":
        return frame["label"].to_numpy(dtype=np.float32)
    if kind == "judge":
        values = signal_values(judge, "judge", "p_label1", frame["id"], sample)
        return values.to_numpy(dtype=np.float32)
    if zero_shot is None:
        raise DatasetError(f"arm '{arm}' distils the strong model but got no zero-shot file")
    strong = pd.read_parquet(zero_shot, columns=["id", "p_label1"]).set_index("id")
    return strong.loc[frame["id"], "p_label1"].to_numpy(dtype=np.float32)


def _weak_source(settings: TrainSettings, frames: dict[str, pd.DataFrame], features: str | None,
                 model_dir: str, train: dict, parts: list[str], signals: dict[str, str | None],
                 sample: int) -> Source:
    """What the weak model reads on weak_train, w2s_train and test, sampled parts from sample
    ``sample``: cached features (probe) or token ids (lora/full)."""
    if settings.mode != "probe":
        return _text_source(model_dir, train, frames, parts, signals, sample)
    split_of = {"train": "weak_train", "w2s_train": "w2s_train", "test": "test"}
    return Source(features={name: load_features(features, split_of[name], frame["id"], sample)
                            for name, frame in frames.items()})


def train_weak(
    arm: str, arm_spec: dict, split_paths: dict[str, str], model_dir: str, train: dict,
    seed: int, device: str, dtype: str, outputs: dict[str, str],
    features: str | None = None, explanations: str | None = None, debates: str | None = None,
    consultancy: str | None = None, judge: str | None = None, zero_shot: str | None = None,
) -> dict:
    """Train the weak model of ``arm`` (its ensemble's members, see the module docstring) and
    write its outputs."""
    started = time.monotonic()
    parts = list(arm_spec["context"])
    ensemble = {**SINGLE, **arm_spec.get("ensemble", {})}
    frames = {
        "train": read_split(split_paths["weak_train"], with_labels=True),
        "w2s_train": read_split(split_paths["w2s_train"], with_labels=True),
        "test": read_split(split_paths["test"], with_labels=True),
    }
    settings = TrainSettings.from_config(train, seed=seed)
    torch_device, torch_dtype = resolve_device(device, dtype)
    bf16 = torch_dtype == torch.bfloat16
    signals = signal_files(explanations, debates, consultancy, judge)
    factory = _model_factory(settings, model_dir, train["layer"], device, dtype, "train.weak.layer")
    reads_samples = bool(set(parts) & set(TRANSCRIPT_PARTS))
    sources: dict[int, Source] = {}  # by the sample the context reads, built once
    sample_targets: dict[int, np.ndarray] = {}  # by the sample the targets come from, read once
    members, records = [], []
    for member in range(ensemble["members"]):
        sample = member if ensemble["vary"] == "transcript" else 0
        read = sample if reads_samples else 0
        if read not in sources:
            sources[read] = _weak_source(settings, frames, features, model_dir, train, parts,
                                         signals, read)
        source = sources[read]
        if sample not in sample_targets:
            sample_targets[sample] = weak_targets(arm, arm_spec["targets"], frames["train"], sample,
                                                  zero_shot, judge)
        targets = sample_targets[sample]
        ids = frames["train"]["id"]
        member_settings = dataclasses.replace(settings, seed=seed * 1000 + member)
        init_std = 0.0
        if ensemble["members"] > 1:
            rows = bootstrap(len(targets), member_settings.seed)
            source, targets, ids = source.resampled(rows), targets[rows], ids.iloc[rows]
            init_std = MEMBER_INIT_STD
        predictions, record = run_training(
            source, factory, targets, ["w2s_train", "test"], member_settings,
            Path(outputs["metrics"]).parent / "checkpoints" / f"member{member}", torch_device,
            bf16, data_key=fingerprint(ids.tolist(), targets.tolist(), parts, sample),
            desc=f"weak {arm} member {member}", init_std=init_std,
        )
        members.append(predictions)
        accuracy = scores(frames["test"]["label"], predictions["test"])["accuracy"]
        records.append({"seed": member_settings.seed, "sample": sample, "test_accuracy": accuracy,
                        **record})
    metrics = _write_weak_outputs(arm, arm_spec, ensemble, frames, members, outputs)
    metrics.update({
        "mode": settings.mode, "model": read_json(Path(model_dir) / MODEL_MANIFEST)["name"],
        "seed": seed, "device": str(torch_device), "dtype": str(torch_dtype).replace("torch.", ""),
        "members": records,
        "seconds": round(time.monotonic() - started, 2),
    })
    write_json(outputs["metrics"], metrics)
    log.info("weak arm %s: test accuracy %.3f, AUROC %s; soft-label accuracy on w2s_train %.3f; "
             "member disagreement %.3f", arm, metrics["test"]["accuracy"],
             fmt(metrics["test"]["auroc"]), metrics["w2s_train_label_accuracy"]["accuracy"],
             metrics["member_disagreement"])
    return metrics


def _write_weak_outputs(arm: str, arm_spec: dict, ensemble: dict, frames: dict[str, pd.DataFrame],
                        members: list[dict[str, np.ndarray]], outputs: dict[str, str]) -> dict:
    """Write the members' average P(label 1) on w2s_train (soft labels) and test, each member's
    own as p_member{j} when there are several; their scores for the metrics."""
    p = {split: np.array([m[split] for m in members]) for split in ("w2s_train", "test")}
    average = {split: values.mean(axis=0) for split, values in p.items()}
    for split, path in (("w2s_train", outputs["soft_labels"]), ("test", outputs["test"])):
        frame = frames[split] if split == "test" else frames[split][["id"]]
        per_member = {f"p_member{j}": values for j, values in enumerate(p[split])}
        _write_predictions(path, frame, average[split], per_member if len(members) > 1 else None)
    return {
        "role": "weak", "arm": arm, "context": context_key(list(arm_spec["context"])),
        "targets": arm_spec["targets"], "ensemble": ensemble,
        "test": scores(frames["test"]["label"], average["test"]),
        # How good the weak supervision is: soft labels against w2s_train's gold (a statistic only).
        "w2s_train_label_accuracy": scores(frames["w2s_train"]["label"], average["w2s_train"]),
        "soft_label_mean": float(average["w2s_train"].mean()),
        "member_disagreement": member_disagreement(p["test"]),
    }


# --- the strong model: ceiling or W2S student ---------------------------------------------------


def confident(p_label1: np.ndarray, threshold: float | None) -> np.ndarray:
    """The items whose label is confident enough to learn: max(p, 1 - p) >= ``threshold`` (Yang et
    al. 2024's high-confidence filtering, ``--conf_threshold 0.75``); every item without one."""
    p_label1 = np.asarray(p_label1, dtype=float)
    if threshold is None:
        return np.ones(len(p_label1), dtype=bool)
    return np.maximum(p_label1, 1 - p_label1) >= threshold


def cross_fit_folds(n: int, seed: int, folds: int = 2) -> list[np.ndarray]:
    """A seeded partition of 0..n-1 into ``folds`` folds, for out-of-fold labels."""
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(fold) for fold in np.array_split(order, folds)]


def _targets_from(path: str, frame: pd.DataFrame) -> np.ndarray:
    """P(label 1) by item id from a predictions file (a weak arm's or an intermediate's labels)."""
    labels = pd.read_parquet(path, columns=["id", "p_label1"]).set_index("id")["p_label1"]
    missing = frame["id"][~frame["id"].isin(labels.index)]
    if len(missing):
        raise DatasetError(f"{path}: no label for w2s_train item '{missing.iloc[0]}'")
    return labels.loc[frame["id"]].to_numpy(dtype=np.float32)


def _strong_source(settings: TrainSettings, model_dir: str, train: dict,
                   frames: dict[str, pd.DataFrame], features: str | None) -> Source:
    """What the strong model reads on each split of ``frames`` (its 'train' is w2s_train)."""
    if settings.mode != "probe":
        return _text_source(model_dir, train, frames, [], {})
    split_of = {"train": "w2s_train", "test": "test", "conflict": "conflict"}
    return Source(features={name: load_features(features, split_of[name], frame["id"])
                            for name, frame in frames.items()})


def train_strong(
    role: str, split_paths: dict[str, str], model_dir: str, train: dict, loss: str, seed: int,
    device: str, dtype: str, outputs: dict[str, str], features: str | None = None,
    soft_labels: str | None = None, arm: str | None = None, conflict: dict | None = None,
) -> dict:
    """The ceiling (``role='ceiling'``: gold labels, xent), a W2S student (``'student'``) or an
    intermediate student (``'intermediate'``, the middle link of a weak -> intermediate -> strong
    chain), the last two on ``soft_labels``.

    ``conflict`` (Yang et al. 2024) is ``{"setting": "none" | "explicit" | "implicit", ...}``:
    explicit adds training.conflict_term with ``reward_alpha`` on w2s_train's gold labels;
    implicit appends the items of ``split_paths["conflict"]`` (another objective's data) with
    their gold labels to the training items. ``train["confidence_threshold"]`` keeps only the
    soft labels that confident (students and intermediates). An intermediate writes
    ``outputs["labels"]``: its P(label 1) on w2s_train, each half predicted by a model trained on
    the other half (2-fold cross-fitting), so the strong student never learns in-sample
    predictions; its test predictions average the two fold models.
    """
    started = time.monotonic()
    conflict = conflict or {"setting": "none"}
    setting = conflict["setting"]
    learns_gold = role == "ceiling" or setting == "explicit"
    frames = {
        "train": read_split(split_paths["w2s_train"], with_labels=learns_gold),
        "test": read_split(split_paths["test"], with_labels=True),
    }
    if setting == "implicit" and role != "ceiling":
        frames["conflict"] = read_split(split_paths["conflict"], with_labels=True)
    if role == "ceiling":
        targets = frames["train"]["label"].to_numpy(dtype=np.float32)
    else:
        targets = _targets_from(soft_labels, frames["train"])
    settings = TrainSettings.from_config(train, seed=seed, loss=loss)
    if setting == "explicit" and role != "ceiling":
        settings = dataclasses.replace(settings, reward_alpha=float(conflict["reward_alpha"]))
    torch_device, torch_dtype = resolve_device(device, dtype)
    bf16 = torch_dtype == torch.bfloat16
    source = _strong_source(settings, model_dir, train, frames, features)
    factory = _model_factory(settings, model_dir, train["layer"], device, dtype, "train.strong.layer")
    gold = frames["train"]["label"].to_numpy(dtype=np.float32) if setting == "explicit" else None
    keep = (np.ones(len(targets), dtype=bool) if role == "ceiling"
            else confident(targets, train.get("confidence_threshold")))
    name = {"ceiling": "ceiling", "student": f"student {arm} {loss} ({setting})",
            "intermediate": f"intermediate {arm} {loss} ({setting})"}[role]
    folds = (cross_fit_folds(len(targets), seed) if role == "intermediate"
             else [np.array([], dtype=int)])
    labels_out = np.full(len(targets), np.nan)
    test_predictions, train_predictions, records = [], [], []
    checkpoints = Path(outputs["metrics"]).parent / "checkpoints"
    for k, held_out in enumerate(folds):
        rows = np.flatnonzero(keep & ~np.isin(np.arange(len(targets)), held_out))
        if len(rows) < 2:
            raise DatasetError(
                f"{name}: only {len(rows)} w2s_train items have a label with confidence >= "
                f"{train.get('confidence_threshold')}; lower train.strong.confidence_threshold"
            )
        train_items = source.take("train", rows)
        fold_targets, fold_gold = targets[rows], None if gold is None else gold[rows]
        ids = frames["train"]["id"].iloc[rows].tolist()
        if "conflict" in frames:  # the other objective's items, with their own labels
            train_items = source.concat(train_items, source.take("conflict"))
            fold_targets = np.concatenate(
                [fold_targets, frames["conflict"]["label"].to_numpy(dtype=np.float32)])
            ids += frames["conflict"]["id"].tolist()
        extra = {"held_out": source.take("train", held_out)} if len(held_out) else {}
        if "train" in outputs:  # every w2s_train item, for the misfit to the labels it learnt
            extra["w2s_train"] = source.take("train")
        fold_source = source.with_splits(train=train_items, **extra)
        predictions, record = run_training(
            fold_source, factory, fold_targets, ["test", *extra],
            settings, checkpoints if len(folds) == 1 else checkpoints / f"fold{k}", torch_device,
            bf16, data_key=fingerprint(ids, fold_targets.tolist(), setting),
            desc=name if len(folds) == 1 else f"{name} fold {k}", gold=fold_gold,
        )
        test_predictions.append(predictions["test"])
        train_predictions.append(predictions.get("w2s_train"))
        if len(held_out):
            labels_out[held_out] = predictions["held_out"]
        records.append({"n_train": len(fold_targets), **record})
    if checkpoints.is_dir() and not any(checkpoints.iterdir()):
        checkpoints.rmdir()  # the folds' folders are gone with their checkpoints
    test_p = np.mean(test_predictions, axis=0)
    _write_predictions(outputs["test"], frames["test"], test_p)
    if role == "intermediate":
        _write_predictions(outputs["labels"], frames["train"][["id"]], labels_out)
    if "train" in outputs:  # the student's P(label 1) on w2s_train, beside the labels it learnt
        _write_predictions(outputs["train"], frames["train"][["id"]],
                           np.mean(train_predictions, axis=0), {"target": targets})
    metrics = {
        "role": role, "arm": arm, "loss": loss, "mode": settings.mode,
        "model": read_json(Path(model_dir) / MODEL_MANIFEST)["name"], "seed": seed,
        "device": str(torch_device), "dtype": str(torch_dtype).replace("torch.", ""),
        "conflict": conflict, "confidence_threshold": train.get("confidence_threshold"),
        "n_confident": int(keep.sum()), "n_w2s_train": len(targets),
        "n_conflict_items": len(frames["conflict"]) if "conflict" in frames else 0,
        "test": scores(frames["test"]["label"], test_p),
        "target_mean": float(targets.mean()),
        "training": records[0] if len(records) == 1 else records,
        "seconds": round(time.monotonic() - started, 2),
    }
    metrics["layer"] = train["layer"]
    write_json(outputs["metrics"], metrics)
    log.info("%s: test accuracy %.3f, AUROC %s%s", name, metrics["test"]["accuracy"],
             fmt(metrics["test"]["auroc"]),
             f"; learnt {keep.sum()} of {len(keep)} confident labels" if not keep.all() else "")
    return metrics
