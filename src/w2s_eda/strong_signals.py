"""The strong model's signals: explanations (for the facilitation function), zero-shot P(label 1)
(read from the label words' logits, no generation), debates (D) and consultancies, sampled k times
per item when asked, and the judge's verdict on each transcript.

Each stage works on every item of every split, in a fixed order (weak_train, w2s_train, test),
cut into chunks of ``generation.chunk_size`` items. Chunk k belongs to shard k mod n_shards, so a
sharded run computes exactly the batches an unsharded run does, and its gathered output is equal.
Chunks are written as they finish: a killed job resumes at the first unfinished one.

Items are read without their labels: no prompt can see a gold label. The gather steps read the
labels only to score the strong model (zero-shot accuracy, judge accuracy) in the stage stats.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from .data.splits import SPLITS
from .errors import ConfigError
from .generation import GenerationSettings, make_engine, render_chat, run_chunked
from .io import atomic_path, fingerprint, read_json, write_json
from .models import MODEL_MANIFEST
from .prompts import item_fields, template_hash

log = logging.getLogger(__name__)


def read_items(split_paths: dict[str, str]) -> pd.DataFrame:
    """All items in stage order, with ``id``, ``split`` and ``text`` only (never the label)."""
    frames = []
    for split in SPLITS:
        frame = pd.read_parquet(split_paths[split], columns=["id", "text"])
        frame.insert(1, "split", split)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def read_labels(split_paths: dict[str, str]) -> np.ndarray:
    """Gold labels in stage order, for scoring the strong model in the stats only."""
    return np.concatenate(
        [pd.read_parquet(split_paths[split], columns=["label"])["label"].to_numpy() for split in SPLITS]
    )


def settings_for(generation: dict, seed: int, max_new_tokens: int, stop=()) -> GenerationSettings:
    return GenerationSettings(
        max_new_tokens=max_new_tokens,
        do_sample=generation["do_sample"],
        temperature=generation["temperature"],
        top_p=generation["top_p"],
        seed=seed,
        stop_strings=tuple(stop),
        batch_size=generation["batch_size"],
        share_prefixes=generation["share_prefixes"],
    )


def open_engine(model_dir: str | Path, generation: dict, device: str,
                prefix_store: str | None = None):
    """The engine of a strong-model stage and its identity (what every chunk is keyed by). With
    ``prefix_store`` (the ``item_prefixes`` job's file), the engine loads the item prefixes it
    holds instead of prefilling them, and the identity names the store's fingerprint."""
    engine = make_engine(model_dir, generation["backend"], device, generation["dtype"])
    identity = model_identity(model_dir, engine)
    if prefix_store:
        from .prefix_store import PrefixStore

        store = PrefixStore.load(prefix_store)
        if store.model != identity["name"]:
            raise ConfigError(f"{prefix_store} holds the prefixes of model '{store.model}', not "
                              f"'{identity['name']}'; delete it and rerun")
        engine.use_prefix_store(store if len(store) else None)
        identity["prefix_store"] = store.fingerprint
    return engine, identity


def model_identity(model_dir: str | Path, engine) -> dict:
    manifest = read_json(Path(model_dir) / MODEL_MANIFEST)
    keep = ("name", "source", "spec", "gguf_sha256", "revision_resolved", "n_parameters")
    identity = {key: manifest[key] for key in keep if key in manifest}
    # hf: the torch model's dtype; vLLM: the dtype its engine resolved
    model = getattr(engine, "model", None)
    dtype = model.dtype if model is not None else getattr(engine, "dtype", "unknown")
    identity["dtype"] = str(dtype).replace("torch.", "")
    return identity


def log_engine_counters(engine, stage: str) -> None:
    """Log what the engine computed since the last call, then zero its counters: prompt tokens,
    tokens run through prefill (padding included; fewer than the prompt tokens when prefixes are
    shared), decode steps and seconds. bench/prefix_sharing.py reads these lines
    (``engine counters {json}``)."""
    counters = dict(getattr(engine, "counters", {}) or {})
    if hasattr(engine, "reset_counters"):
        engine.reset_counters()
    if not counters.get("prompt_tokens"):
        return  # every chunk was reused: nothing was computed
    log.info("%s: prefill ran %d tokens for %d prompt tokens (%.2fx), %.1f s prefill, "
             "%.1f s decode", stage, counters["prefill_tokens"], counters["prompt_tokens"],
             counters["prompt_tokens"] / max(1, counters["prefill_tokens"]),
             counters.get("prefill_seconds", 0.0), counters.get("decode_seconds", 0.0))
    log.info("engine counters %s", json.dumps({"stage": stage, **counters}, sort_keys=True))


def write_frame(path: str | Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def _token_stats(tokens) -> dict:
    tokens = np.asarray(tokens, dtype=float)
    return {
        "mean": float(tokens.mean()),
        "p50": float(np.percentile(tokens, 50)),
        "p95": float(np.percentile(tokens, 95)),
    }


# --- item prefixes -----------------------------------------------------------------------------
#
# Every stage's prompt opens with the item (the default templates all start with "{item}"), so
# the chat header, the item's text and its question are prefilled again by every stage. The
# item_prefixes job prefills each item's shared prefix once; the stages load it (prefix_store).

# Two sets of values for the placeholders that are not the item's: where a template's two
# renderings part is where its prompts stop being the same for every speaker, turn and argument.
STAND_INS = (
    {"side": 0, "other_side": 1, "max_words": "7", "transcript": "(one stand-in)",
     "argument": "(one stand-in)"},
    {"side": 1, "other_side": 0, "max_words": "9", "transcript": "[another]",
     "argument": "[another]"},
)


def _shared_tokens(a: list[int], b: list[int]) -> int:
    return next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def item_prefix_tokens(tokenizer, templates: dict[str, str], fields: dict, label_names) -> list[int]:
    """The tokens that two or more of these stage templates' prompts of one item start with (the
    longest such prefix): what the stages would prefill again for this item."""
    from .generation import encode_prompts

    fixed = []
    for template in templates.values():
        renders = []
        for stand_in in STAND_INS:
            values = {**stand_in, "side": label_names[stand_in["side"]],
                      "other_side": label_names[stand_in["other_side"]]}
            renders.append(render_chat(tokenizer, template.format(**{**values, **fields})))
        first, second = encode_prompts(tokenizer, renders)
        fixed.append(first[: _shared_tokens(first, second)])
    best: list[int] = []
    for a in range(len(fixed)):
        for b in range(a + 1, len(fixed)):
            n = _shared_tokens(fixed[a], fixed[b])
            if n > len(best):
                best = fixed[a][:n]
    return best


def item_prefixes(
    split_paths: dict[str, str], dataset_manifest: str, model_dir: str, templates: dict[str, str],
    generation: dict, device: str, output: str,
) -> dict:
    """The prefix store of every item of the splits: each item's ``item_prefix_tokens`` over
    the templates of the stages that read the store, prefilled once (``build_prefix_store``)."""
    from .generation import MIN_SHARED_TOKENS, _common_prefix
    from .prefix_store import PrefixStore

    items = read_items(split_paths)
    info = read_json(dataset_manifest)
    engine, identity = open_engine(model_dir, generation, device)
    prefixes = [item_prefix_tokens(engine.tokenizer, templates, item_fields(text, info),
                                   info["label_names"]) for text in items["text"]]
    header = _common_prefix(prefixes) if len(prefixes) > 1 else 0
    kept = [tokens for tokens in prefixes if len(tokens) - header >= MIN_SHARED_TOKENS]
    if kept:
        store = engine.build_prefix_store(kept, model=identity["name"])
    else:  # no template shares an item's prefix with another: an empty store, read as none
        store = PrefixStore([], [], [], [], [], [], model=identity["name"])
    store.save(output)
    stats = {"n_items": len(items), "entries": len(store), "header_tokens": len(store.header),
             "stored_tokens": sum(map(len, kept)), "megabytes": round(store.nbytes() / 1e6, 1),
             "model": identity["name"], "dtype": identity["dtype"],
             "fingerprint": store.fingerprint}
    log.info("item prefixes: %s", json.dumps(stats))
    return stats


# --- explain -----------------------------------------------------------------------------------


def explain_shard(
    split_paths: dict[str, str],
    dataset_manifest: str,
    model_dir: str,
    explain: dict,
    generation: dict,
    seed: int,
    device: str,
    work_dir: str,
    shard: int,
    output: str,
    prefix_store: str | None = None,
) -> None:
    items = read_items(split_paths)
    info = read_json(dataset_manifest)
    engine, identity = open_engine(model_dir, generation, device, prefix_store)
    prompts = [render_chat(engine.tokenizer, explain["template"].format(**item_fields(text, info)))
               for text in items["text"]]
    settings = settings_for(generation, seed, explain["max_new_tokens"])

    def compute(indices):
        completions = engine.generate([prompts[i] for i in indices], settings)
        return [{"explanation": c.text, "n_new_tokens": c.n_new_tokens, "seconds": c.seconds}
                for c in completions]

    def key(indices):
        return fingerprint(identity, asdict(settings), [(items.id[i], prompts[i]) for i in indices])

    records, _ = run_chunked(
        compute, len(items), work_dir, generation["chunk_size"], key,
        shard=(shard, explain["n_shards"]), desc=f"explain shard {shard + 1}/{explain['n_shards']}",
    )
    log_engine_counters(engine, "explain")
    rows = [
        {"position": i, "id": items.id[i], "split": items.split[i], "prompt": prompts[i],
         "explanation": r["explanation"], "n_tokens": r["n_new_tokens"], "seconds": r["seconds"]}
        for i, r in sorted(records.items())
    ]
    frame = pd.DataFrame(rows)
    frame["model"] = identity["name"]
    frame["dtype"] = identity["dtype"]
    write_frame(output, frame)


def _gather(shard_paths: list[str]) -> pd.DataFrame:
    frame = pd.concat([pd.read_parquet(path) for path in shard_paths], ignore_index=True)
    return frame.sort_values("position", kind="stable").reset_index(drop=True)


def _scores(labels: np.ndarray, p_label1: np.ndarray, splits: pd.Series) -> dict:
    from sklearn.metrics import accuracy_score, roc_auc_score

    test = (splits == "test").to_numpy()
    y, p = labels[test], p_label1[test]
    return {
        "test_accuracy": float(accuracy_score(y, p > 0.5)),
        "test_auroc": float(roc_auc_score(y, p)) if len(set(y)) == 2 else None,
        "n_test": int(test.sum()),
    }


def gather_explain(
    shard_paths: list[str], explain: dict, generation: dict, seed: int, output: str,
    stats_path: str,
) -> dict:
    frame = _gather(shard_paths)
    frame["template_sha256"] = template_hash(explain["template"])
    frame["seed"] = seed
    frame["max_new_tokens"] = explain["max_new_tokens"]
    frame["do_sample"] = generation["do_sample"]
    write_frame(output, frame)
    stats = {
        "n_items": len(frame),
        "explanation_tokens": _token_stats(frame.n_tokens),
        "tokens_per_second": float(frame.n_tokens.sum() / frame.seconds.sum()),
        "model": frame.model.iloc[0],
        "dtype": frame.dtype.iloc[0],
    }
    write_json(stats_path, stats)
    log.info("explanations: %s", json.dumps(stats))
    return stats


# --- zero-shot ---------------------------------------------------------------------------------


def zero_shot(
    split_paths: dict[str, str], dataset_manifest: str, model_dir: str, template: str,
    generation: dict, seed: int, device: str, work_dir: str, output: str, stats_path: str,
    prefix_store: str | None = None,
) -> dict:
    """The strong model's zero-shot P(label 1) for every item, from the label words' logits (no
    generation), in resumable chunks; the labels are read afterwards, for the stats only."""
    items = read_items(split_paths)
    info = read_json(dataset_manifest)
    engine, identity = open_engine(model_dir, generation, device, prefix_store)
    prompts = [render_chat(engine.tokenizer, template.format(**item_fields(text, info)))
               for text in items["text"]]

    def compute(indices):
        p_label1 = engine.label_probabilities([prompts[i] for i in indices], info["label_names"],
                                              batch_size=generation["batch_size"])
        return [{"p_label1": p} for p in p_label1]

    def key(indices):
        chunk = [(items.id[i], prompts[i]) for i in indices]  # the batch size decides the padding
        return fingerprint(identity, info["label_names"], generation["batch_size"], chunk)

    records, _ = run_chunked(compute, len(items), work_dir, generation["chunk_size"], key,
                             desc="zero-shot")
    frame = pd.DataFrame({
        "id": items.id, "split": items.split, "prompt": prompts,
        "p_label1": [records[i]["p_label1"] for i in range(len(items))],
    })
    frame["model"] = identity["name"]
    frame["dtype"] = identity["dtype"]
    frame["template_sha256"] = template_hash(template)
    frame["seed"] = seed
    write_frame(output, frame)
    stats = {"n_items": len(frame), "model": identity["name"], "dtype": identity["dtype"],
             **_scores(read_labels(split_paths), frame.p_label1.to_numpy(), frame.split)}
    write_json(stats_path, stats)
    log.info("zero-shot: %s", json.dumps(stats))
    return stats


# --- debate and consultancy ---------------------------------------------------------------------
#
# A debate stage runs k = debate.n_samples independent debates per item (Lang et al. 2025 give
# each debate of their debate ensemble its own sampling seed). The units of work are (sample, item)
# pairs, sample-major: unit u is item u mod n of sample u // n. Each turn samples with its own seed,
# derived from (study seed, protocol family, sample, round, debater, item id), so a transcript does
# not depend on how items were batched, chunked or sharded, and one more sample reuses the others.
# Consultancy (Khan et al. 2024; Lang et al.'s ablation) is the same stage with one strong model
# arguing an assigned side and nobody answering it.


def derived_seed(*parts) -> int:
    """A 63-bit seed from any values (stable across runs, processes and machines)."""
    digest = hashlib.sha256(json.dumps([str(part) for part in parts]).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def side_of(debater: int) -> int:
    """Debater 0 argues label 1, debater 1 label 0, and so on: sides follow label values."""
    return 1 - debater % 2


def consultant_side(seed: int, item_id: str, sample: int) -> int:
    """The side the consultant argues: a seeded coin per item, alternating over its samples, so
    sides are balanced over items (and within an item over an even number of samples) by label
    value and never chosen from the gold label or correctness."""
    return (derived_seed(seed, "consultant side", item_id) + sample) % 2


def speakers(debate: dict) -> int:
    """Turns per round: one consultant, or n_debaters debaters."""
    return 1 if debate["protocol"] == "consultancy" else debate["n_debaters"]


def turn_side(debate: dict, seed: int, item_id: str, sample: int, debater: int) -> int:
    if debate["protocol"] == "consultancy":
        return consultant_side(seed, item_id, sample)
    return side_of(debater)


def samples_debates(debate: dict, generation: dict) -> bool:
    """Debates sample when the debate says so; by default when k > 1 (k greedy debates would be one
    debate k times) or when all generation samples."""
    if debate["do_sample"] is not None:
        return debate["do_sample"]
    return debate["n_samples"] > 1 or generation["do_sample"]


def format_transcript(turns: list[dict], label_names) -> str:
    return "\n".join(
        f'{"Consultant" if t.get("consultant") else "Debater " + str(t["debater"] + 1)} '
        f'(argues "{label_names[t["side"]]}"), round {t["round"]}: {t["text"].strip()}'
        for t in turns
    )


def debate_prompt(debate: dict, fields: dict, turns: list[dict], side: int, label_names) -> str:
    """The user turn of one speaker arguing ``side``: the opening when it has seen no argument,
    else a rebuttal."""
    values = {
        **fields,
        "side": label_names[side],
        "other_side": label_names[1 - side],
        "max_words": max(1, round(debate["max_new_tokens"] * 0.75)),
    }
    if not turns:
        return debate["opening_template"].format(**values)
    return debate["rebuttal_template"].format(transcript=format_transcript(turns, label_names), **values)


def speaker_groups(debate: dict) -> list[list[int]]:
    """Speakers whose turns of a round can be generated together: every debater at once when
    the protocol is simultaneous (none sees another's turn of this round), one at a time when it
    is sequential or a consultancy."""
    if debate["protocol"] == "simultaneous":
        return [list(range(speakers(debate)))]
    return [[debater] for debater in range(speakers(debate))]


def visible_turns(turns: list[dict], round_number: int, debater: int, protocol: str) -> list[dict]:
    """What a speaker sees: earlier rounds, plus (sequential) earlier debaters of this round."""
    if protocol == "sequential":
        return [t for t in turns if t["round"] < round_number or t["debater"] < debater]
    return [t for t in turns if t["round"] < round_number]


def debate_round_shard(
    round_number: int,
    split_paths: dict[str, str],
    dataset_manifest: str,
    model_dir: str,
    debate: dict,
    generation: dict,
    seed: int,
    device: str,
    previous: str | None,
    work_dir: str,
    shard: int,
    output: str,
    prefix_store: str | None = None,
) -> None:
    """One round for one shard's (sample, item) units; the output holds every turn up to this
    round, one row per unit."""
    items = read_items(split_paths)
    info = read_json(dataset_manifest)
    names = info["label_names"]
    engine, identity = open_engine(model_dir, generation, device, prefix_store)
    settings = dataclasses.replace(settings_for(generation, seed, debate["max_new_tokens"]),
                                   do_sample=samples_debates(debate, generation))
    n_items, protocol = len(items), debate["protocol"]
    consultancy = protocol == "consultancy"
    n_units = n_items * debate["n_samples"]
    turns: dict[int, list[dict]] = {}
    if previous:
        earlier = pd.read_parquet(previous)
        turns = {int(p): json.loads(t) for p, t in zip(earlier.position, earlier.turns)}
    fields = {}

    def unit(u):
        """(item index, sample) of unit u."""
        return u % n_items, u // n_items

    def side(u, debater):
        i, sample = unit(u)
        return turn_side(debate, seed, items.id[i], sample, debater)

    def prompt(u, debater):
        i, _ = unit(u)
        if i not in fields:
            fields[i] = item_fields(items.text[i], info)
        seen = visible_turns(turns.get(u, []), round_number, debater, protocol)
        return render_chat(engine.tokenizer, debate_prompt(debate, fields[i], seen, side(u, debater),
                                                           names))

    def turn_seed(u, debater):
        i, sample = unit(u)
        family = "consultancy" if consultancy else "debate"
        return derived_seed(seed, family, sample, round_number, debater, items.id[i])

    for group in speaker_groups(debate):
        # One generate call per chunk for the whole group: the debaters' prompts of an item share
        # everything up to their side, which the engine prefills once (prefix sharing).
        def compute(indices, group=group):
            pairs = [(u, debater) for u in indices for debater in group]
            completions = engine.generate([prompt(u, d) for u, d in pairs], settings,
                                          seeds=[turn_seed(u, d) for u, d in pairs])
            out = [completions[k * len(group):(k + 1) * len(group)] for k in range(len(indices))]
            return [{"turns": [{"text": c.text, "n_new_tokens": c.n_new_tokens,
                                "seconds": c.seconds} for c in unit_completions],
                     "n_new_tokens": sum(c.n_new_tokens for c in unit_completions)}
                    for unit_completions in out]

        def key(indices, group=group):
            return fingerprint(identity, asdict(settings),
                               [(items.id[unit(u)[0]], prompt(u, d), turn_seed(u, d))
                                for u in indices for d in group])

        speaker = ("consultant" if consultancy else
                   "debaters " + ", ".join(str(d + 1) for d in group))
        records, _ = run_chunked(
            compute, n_units, Path(work_dir) / ("debater" + "-".join(str(d + 1) for d in group)),
            generation["chunk_size"], key, shard=(shard, debate["n_shards"]),
            desc=f"{protocol} round {round_number} {speaker} shard {shard + 1}",
        )
        log_engine_counters(engine, f"round {round_number} {speaker}")
        for u, record in records.items():
            for debater, made in zip(group, record["turns"]):
                turn = {"round": round_number, "debater": debater, "side": side(u, debater),
                        "text": made["text"], "tokens": made["n_new_tokens"],
                        "seconds": made["seconds"]}
                if consultancy:
                    turn["consultant"] = True
                turns.setdefault(u, []).append(turn)
    owned = sorted(u for u in turns if any(t["round"] == round_number for t in turns[u]))
    frame = pd.DataFrame({
        "position": owned,
        "id": [items.id[unit(u)[0]] for u in owned],
        "split": [items.split[unit(u)[0]] for u in owned],
        "sample": [unit(u)[1] for u in owned],
        "turns": [json.dumps(turns[u]) for u in owned],
    })
    frame["model"] = identity["name"]
    frame["dtype"] = identity["dtype"]
    write_frame(output, frame)


def gather_debate(
    shard_paths: list[str],
    split_paths: dict[str, str],
    dataset_manifest: str,
    model_dir: str,
    debate: dict,
    generation: dict,
    seed: int,
    device: str,
    output: str,
    stats_path: str,
    prefix_store: str | None = None,
) -> dict:
    """Every (sample, item) transcript in one file, with the side-drift scoring and the stats."""
    frame = _gather(shard_paths)
    info = read_json(dataset_manifest)
    names = info["label_names"]
    texts = read_items(split_paths).set_index("id")["text"]
    all_turns = [json.loads(t) for t in frame.turns]
    transcripts = [format_transcript(t, names) for t in all_turns]
    stats: dict = {"n_items": int(frame.id.nunique()), "n_samples": debate["n_samples"],
                   "sampled": samples_debates(debate, generation), "protocol": debate["protocol"],
                   "speakers": speakers(debate), "n_rounds": debate["n_rounds"], "rounds": {}}
    if debate["n_samples"] > 1:
        distinct = pd.Series(transcripts).groupby(frame.id.to_numpy()).nunique()
        stats["items_with_distinct_samples"] = float((distinct == debate["n_samples"]).mean())
    engine = None
    if debate["drift_sample"] > 0:
        engine, _ = open_engine(model_dir, generation, device, prefix_store)
    rng = np.random.default_rng(seed)
    for round_number in range(1, debate["n_rounds"] + 1):
        round_turns = [(frame.id[u], t) for u, turns in enumerate(all_turns) for t in turns
                       if t["round"] == round_number]
        round_stats = {"argument_tokens": _token_stats([t["tokens"] for _, t in round_turns]),
                       "tokens_per_second": sum(t["tokens"] for _, t in round_turns)
                       / max(1e-9, sum(t["seconds"] for _, t in round_turns))}
        if engine is not None:
            picked = rng.permutation(len(round_turns))[: debate["drift_sample"]]
            sample = [round_turns[k] for k in sorted(picked)]
            prompts = [
                render_chat(engine.tokenizer, debate["drift_template"].format(
                    argument=t["text"].strip(), **item_fields(texts[item], info)))
                for item, t in sample
            ]
            p_label1 = engine.label_probabilities(prompts, names, batch_size=generation["batch_size"])
            drifted = [(p > 0.5) != bool(t["side"]) for (_, t), p in zip(sample, p_label1)]
            round_stats["side_drift_rate"] = float(np.mean(drifted))
            round_stats["side_drift_scored"] = len(sample)
        stats["rounds"][str(round_number)] = round_stats
    result = pd.DataFrame({
        "id": frame.id, "split": frame.split, "sample": frame["sample"],
        "turns": [[{k: t[k] for k in ("round", "debater", "side", "text", "tokens")} for t in turns]
                  for turns in all_turns],
        "transcript": transcripts,
        "model": frame.model, "dtype": frame.dtype,
    })
    result["protocol"] = debate["protocol"]
    result["template_sha256"] = template_hash(debate["opening_template"], debate["rebuttal_template"])
    result["seed"] = seed
    write_frame(output, result)
    write_json(stats_path, stats)
    log.info("%s transcripts: %s", debate["protocol"], json.dumps(stats))
    return stats


# --- the judge ---------------------------------------------------------------------------------


def judge_transcripts(
    transcripts_path: str,
    split_paths: dict[str, str],
    dataset_manifest: str,
    judge_model_dir: str,
    template: str,
    generation: dict,
    device: str,
    output: str,
    stats_path: str,
) -> dict:
    """The judge's P(label 1) for every transcript (every sample of every item), read from the
    label words' logits after the transcript, and its verdict as text for arms that read it. The
    judge may be the strong model, another model, or the weak model itself (a weak judge of strong
    debaters: the scalable-oversight setting); it must be a causal LM. Labels are read afterwards,
    for the stats only."""
    manifest = read_json(Path(judge_model_dir) / MODEL_MANIFEST)
    if manifest.get("kind") != "causal":
        raise ConfigError(
            f"config key 'debate.judge.model': the judge '{manifest['name']}' is an "
            f"{manifest.get('kind', 'unknown')} model; a judge reads P(label) from the next-token "
            "logits of a causal LM"
        )
    frame = pd.read_parquet(transcripts_path, columns=["id", "split", "sample", "transcript"])
    info = read_json(dataset_manifest)
    names = info["label_names"]
    items = read_items(split_paths)
    texts = items.set_index("id")["text"]
    engine = make_engine(judge_model_dir, generation["backend"], device, generation["dtype"])
    prompts = [
        render_chat(engine.tokenizer, template.format(transcript=transcript,
                                                       **item_fields(texts[item], info)))
        for item, transcript in zip(frame.id, frame.transcript)
    ]
    p_label1 = np.asarray(engine.label_probabilities(prompts, names,
                                                     batch_size=generation["batch_size"]))
    result = frame[["id", "split", "sample"]].copy()
    result["p_label1"] = p_label1
    result["verdict"] = [f"{names[int(p > 0.5)]} (P({names[1]}) = {p:.2f})" for p in p_label1]
    result["model"] = manifest["name"]
    result["dtype"] = model_identity(judge_model_dir, engine)["dtype"]
    result["template_sha256"] = template_hash(template)
    write_frame(output, result)
    labels = pd.Series(read_labels(split_paths), index=items["id"])
    first = result["sample"] == 0
    mean_p = result.groupby("id", sort=False)["p_label1"].mean()
    per_item = result[first].set_index("id")["split"]
    stats = {
        "judge": manifest["name"], "dtype": result["dtype"].iloc[0], "n_transcripts": len(result),
        "first_sample": _scores(labels[result.id[first]].to_numpy(), p_label1[first.to_numpy()],
                                result.split[first].reset_index(drop=True)),
        "mean_over_samples": _scores(labels[mean_p.index].to_numpy(), mean_p.to_numpy(),
                                     per_item[mean_p.index].reset_index(drop=True)),
    }
    write_json(stats_path, stats)
    log.info("judge: %s", json.dumps(stats))
    return stats
