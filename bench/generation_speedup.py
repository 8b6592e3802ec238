"""The default study's generation, old engine against new, side by side in one process.

Runs the study's own generation stages (``w2s_eda.strong_signals``: explain, zero-shot, every
debate round, the side-drift scoring of the debate stage) on the EDA cell of a config with
``HFEngine(fast=False)`` (the engine before packed prefill, growing KV buffers, shared scoring,
128-row CPU batches, grouped-query masked attention and reused key/value buffers) and with
``HFEngine()`` (the default),
which, when the config's ``generation.reuse_prefixes`` is on, runs as the workflow runs it: the
``item_prefixes`` stage first (its time counts), its prefix store read by every other stage; on
the same loaded model, float32, greedy: ``--repeats`` runs of each (2 by default), alternating
which goes first (old, new, new, old, ...), since a run later in the process was seen to be
faster. Each run writes into its own scratch folder, so nothing is reused between runs. For each
stage it prints the median seconds, items per minute, new tokens/s and the ratio, then the texts
that differ (explanations and every debate turn, every new run against the first old run) and the
largest change of a zero-shot or drift probability.

    python bench/generation_speedup.py                    # config/config.yaml's EDA cell
    python bench/generation_speedup.py --profile          # also torch.profiler tables, both paths
    python bench/generation_speedup.py --limit 16 --repeats 1   # the first 16 items: a smoke run
    python bench/generation_speedup.py --ablate           # also the new engine less each speed-up
                                                          # (and less the prefix store)

The splits and the prepared strong model come from the workflow itself (``snakemake`` on their
targets), so a fresh clone can run it. Writes bench/records/generation_speedup.json (and, with
``--profile``, generation_profile.txt). The last line reads
``float32 generation speed-up: <ratio>x (texts differing: <n>)``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from w2s_eda import strong_signals  # noqa: E402
from w2s_eda.generation import HFEngine  # noqa: E402
from w2s_eda.models import load_prepared  # noqa: E402
from w2s_eda.study import Study, path, validate_config  # noqa: E402

SPLITS = ("weak_train", "w2s_train", "test")
ABLATIONS = ("pack_prefill", "grow_cache", "share_scoring", "wide_batches", "masked_gqa",
             "reuse_buffers")


def eda_cell(study: Study) -> tuple[str, object]:
    """The first cell whose arms read explanations or debates."""
    for cell in study.cells:
        if study.cell_signals(cell.dataset) & {"explanations", "debates"}:
            return cell.dataset, cell
    raise SystemExit("no dataset of this config generates explanations or debates")


def limited(split_paths: dict, limit: int, folder: Path) -> dict:
    """The first ``limit`` items of each split (0: all), as the stages read them."""
    if not limit:
        return split_paths
    out = {}
    for split, file in split_paths.items():
        out[split] = str(folder / f"{split}.parquet")
        pd.read_parquet(file).head(limit).to_parquet(out[split])
    return out


def run_stages(engine, study: Study, cell, splits: dict, manifest: str, model_dir: str,
               folder: Path, reuse: bool = False) -> dict:
    """Every generation stage of the cell, timed; returns per stage the seconds, items, new
    tokens, and what it produced (texts, probabilities). With ``reuse``, as the workflow runs
    them when ``generation.reuse_prefixes`` is on: the item_prefixes stage first, its store read
    by every other stage."""
    config, seed = study.config, cell.seed
    generation = {**config["generation"], "dtype": "float32"}
    common = dict(split_paths=splits, dataset_manifest=manifest, model_dir=model_dir,
                  generation=generation, seed=seed, device="cpu")
    store = str(folder / "prefix_store.safetensors") if reuse else None
    signals = study.cell_signals(cell.dataset)
    n_items = sum(len(pd.read_parquet(file)) for file in splits.values())
    stages: dict[str, dict] = {}

    def timed(name, call, n_units):
        # The stages log and zero the engine's counters once per chunk: add them up instead.
        engine.reset_counters()
        totals = dict.fromkeys(engine.counters, 0)
        reset = engine.reset_counters

        def accumulate():
            for key in totals:
                totals[key] += engine.counters[key]
            reset()

        with mock.patch.object(engine, "reset_counters", accumulate):
            before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            call()
            seconds = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_SELF)
        accumulate()
        # new memory is faulted in (and zeroed) by the kernel page by page: count it
        stages[name] = {"seconds": seconds, "items": n_units, **totals,
                        "page_faults": after.ru_minflt - before.ru_minflt,
                        "kernel_seconds": after.ru_stime - before.ru_stime}

    with mock.patch.object(strong_signals, "make_engine", lambda *args, **kwargs: engine):
        if store:
            timed("item prefixes", lambda: strong_signals.item_prefixes(
                split_paths=splits, dataset_manifest=manifest, model_dir=model_dir,
                templates=study.prefix_templates(cell.dataset), generation=generation,
                device="cpu", output=store), n_items)
            stages["item prefixes"].update(new_tokens=0)
            common["prefix_store"] = store
        if "explanations" in signals:
            explain = study.settings("explain")
            out = folder / "explanations.parquet"
            timed("explain", lambda: strong_signals.explain_shard(
                **common, explain={**explain, "n_shards": 1}, work_dir=str(folder / "explain"),
                shard=0, output=str(out)), n_items)
            frame = pd.read_parquet(out)
            stages["explain"].update(new_tokens=int(frame.n_tokens.sum()),
                                     texts=frame.explanation.tolist())
        if "zero_shot" in signals:
            out = folder / "zero_shot.parquet"
            timed("zero_shot", lambda: strong_signals.zero_shot(
                **common, template=study.settings("zero_shot")["template"],
                work_dir=str(folder / "zero_shot"), output=str(out),
                stats_path=str(folder / "zero_shot.json")), n_items)
            stages["zero_shot"].update(new_tokens=0,
                                       p_label1=pd.read_parquet(out).p_label1.tolist())
        if "debates" in signals:
            debate = {**study.settings("debate_round"), "n_shards": 1}
            previous = None
            for round_number in range(1, config["debate"]["n_rounds"] + 1):
                out = folder / f"round{round_number}.parquet"
                timed(f"debate round {round_number}", lambda: strong_signals.debate_round_shard(
                    round_number=round_number, **common, debate=debate, previous=previous,
                    work_dir=str(folder / f"round{round_number}"), shard=0, output=str(out)),
                    n_items * debate["n_samples"])
                turns = [t for row in pd.read_parquet(out).turns for t in json.loads(row)
                         if t["round"] == round_number]
                stages[f"debate round {round_number}"].update(
                    new_tokens=sum(t["tokens"] for t in turns), texts=[t["text"] for t in turns])
                previous = str(out)
            stats = folder / "debate_stats.json"
            timed("side drift", lambda: strong_signals.gather_debate(
                shard_paths=[previous], split_paths=splits, dataset_manifest=manifest,
                model_dir=model_dir, debate=study.settings("debate"), generation=generation,
                seed=seed, device="cpu", output=str(folder / "debates.parquet"),
                stats_path=str(stats), prefix_store=store), n_items)
            stages["side drift"].update(new_tokens=0, drift=json.loads(stats.read_text()))
    engine.use_prefix_store(None)
    return stages


def median_run(runs: list[dict]) -> dict:
    """One run's stages from several repeats of it: the median of each stage's seconds and phase
    seconds, everything else (tokens, texts) from the first repeat."""
    timed = ("seconds", "prefill_seconds", "decode_seconds")
    return {stage: {**first, **{key: float(np.median([run[stage][key] for run in runs]))
                                for key in timed},
                    "repeat_seconds": [run[stage]["seconds"] for run in runs]}
            for stage, first in runs[0].items()}


def per_minute(items: int, seconds: float) -> float:
    return 60 * items / seconds if seconds else 0.0


def texts_differing(a: dict, b: dict) -> int:
    """How many generated texts (explanations, debate turns) of run ``b`` differ from ``a``'s."""
    return sum(x != y for stage in a if "texts" in a[stage]
               for x, y in zip(a[stage]["texts"], b[stage]["texts"], strict=True))


def profile(engine, prompts: list[str], settings) -> str:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        engine.generate(prompts, settings)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(REPO / "config/config.yaml"))
    parser.add_argument("--limit", type=int, default=0, help="items per split (0: all)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--profile", action="store_true",
                        help="also profile one explain chunk on each path (torch.profiler)")
    parser.add_argument("--ablate", action="store_true",
                        help="also run the new engine with each speed-up off, one at a time")
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs of each path, old and new alternating first (default 2)")
    parser.add_argument("--json", default=str(REPO / "bench/records/generation_speedup.json"))
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    torch.set_num_threads(args.threads)

    config = validate_config(yaml.safe_load(Path(args.config).read_text()))
    study = Study(config)
    dataset, cell = eda_cell(study)
    splits = {split: str(REPO / path(split, dataset=dataset, seed=cell.seed)) for split in SPLITS}
    manifest = str(REPO / path("manifest", dataset=dataset, seed=cell.seed))
    model_manifest = REPO / study.model_manifest(cell.strong)
    targets = [target for target in (manifest, str(model_manifest)) if not Path(target).exists()]
    if targets:  # the workflow prepares them, as `make run` would
        # the targets first: --quiet takes optional values and would read them as its own
        relative = [os.path.relpath(target, REPO) for target in targets]
        subprocess.run([sys.executable, "-m", "snakemake", *relative, "--cores", "1",
                        "--configfile", args.config, "--quiet"],
                       cwd=REPO, check=True)
    model_dir = str(model_manifest.parent)
    loaded = load_prepared(model_dir, device="cpu", dtype="float32")
    engines = {"old": HFEngine(loaded.model, loaded.tokenizer, fast=False),
               "new": HFEngine(loaded.model, loaded.tokenizer)}
    reuse = study.uses_prefix_store(dataset)  # generation.reuse_prefixes, as the workflow runs
    if args.ablate:
        for flag in ABLATIONS:
            engines[f"new, {flag} off"] = HFEngine(loaded.model, loaded.tokenizer, **{flag: False})
        if reuse:
            engines["new, reuse_prefixes off"] = HFEngine(loaded.model, loaded.tokenizer)
    profiles = []
    with tempfile.TemporaryDirectory() as scratch:
        splits = limited(splits, args.limit, Path(scratch))
        warm = strong_signals.read_items(splits).text[:4].tolist()
        # old and new alternate (old first, then new first, ...), so that neither gains from
        # running later in the process; the ablations run once each, after them
        order = [pair for repeat in range(args.repeats)
                 for pair in ((("old", repeat), ("new", repeat)) if repeat % 2 == 0
                              else (("new", repeat), ("old", repeat)))]
        order += [(name, 0) for name in engines if name not in ("old", "new")]
        runs: dict[str, list[dict]] = {}
        for name, repeat in order:
            engine = engines[name]
            engine.generate(warm, strong_signals.GenerationSettings(max_new_tokens=2))  # warm-up
            folder = Path(scratch) / f"{name.replace(', ', '_').replace(' ', '_')}_{repeat}"
            folder.mkdir()
            runs.setdefault(name, []).append(
                run_stages(engine, study, cell, splits, manifest, model_dir, folder,
                           reuse=reuse and name != "old" and "reuse_prefixes off" not in name))
            if args.profile and name in ("old", "new") and repeat == 0:
                frame = pd.read_parquet(folder / "explanations.parquet")
                settings = strong_signals.settings_for(config["generation"], cell.seed,
                                                       config["explain"]["max_new_tokens"])
                table = profile(engine, frame.prompt[: config["generation"]["chunk_size"]].tolist(),
                                settings)
                profiles.append(f"{name} engine, one explain chunk:\n{table}")

    results = {name: median_run(made) for name, made in runs.items()}
    old, new = results["old"], results["new"]
    # every new run against the first old run, and the old runs against each other
    differ = sum(texts_differing(runs["old"][0], run) for run in runs["new"])
    old_repeats_differ = sum(texts_differing(runs["old"][0], run) for run in runs["old"][1:])
    # a stage only one path runs (item prefixes: the new one) counts 0 s on the other
    names = list(dict.fromkeys(stage for name in ("new", *results) for stage in results[name]))
    for run in results.values():
        for stage in names:
            run.setdefault(stage, {"seconds": 0.0, "items": new[names[-1]]["items"], "new_tokens": 0,
                                   "prefill_tokens": 0, "prefill_pad_tokens": 0,
                                   "prefill_seconds": 0.0, "decode_seconds": 0.0,
                                   "repeat_seconds": [0.0] * args.repeats})
    rows, worst = [], 0.0
    for stage in names:
        a, b = old[stage], new[stage]
        if "p_label1" in a:
            worst = max([worst] + [abs(x - y) for x, y in zip(a["p_label1"], b["p_label1"])])
        rows.append({"stage": stage, "items": a["items"],
                     "old_s": a["seconds"], "new_s": b["seconds"],
                     "old_items_per_min": per_minute(a["items"], a["seconds"]),
                     "new_items_per_min": per_minute(b["items"], b["seconds"]),
                     "old_tok_per_s": a["new_tokens"] / a["seconds"] if a["seconds"] else 0.0,
                     "new_tok_per_s": b["new_tokens"] / b["seconds"] if b["seconds"] else 0.0,
                     "old_prefill_tokens": a["prefill_tokens"],
                     "new_prefill_tokens": b["prefill_tokens"],
                     "old_pad_tokens": a["prefill_pad_tokens"],
                     "new_pad_tokens": b["prefill_pad_tokens"],
                     "old_prefill_decode_s": [a["prefill_seconds"], a["decode_seconds"]],
                     "new_prefill_decode_s": [b["prefill_seconds"], b["decode_seconds"]],
                     "ratio": a["seconds"] / b["seconds"] if a["seconds"] and b["seconds"]
                     else None})
    rounds = {name: results[name].get("side drift", {}).get("drift", {}).get("rounds", {})
              for name in results}
    drift = {number: (rounds["old"][number].get("side_drift_rate"),
                      rounds["new"][number].get("side_drift_rate"))
             for number in rounds["old"]}
    # minor page faults and kernel (system) seconds of each run of each path, all stages
    faults = {name: [(sum(stage.get("page_faults", 0) for stage in run.values()),
                      round(sum(stage.get("kernel_seconds", 0.0) for stage in run.values()), 1))
                     for run in made] for name, made in runs.items()}
    total_old = sum(row["old_s"] for row in rows)
    total_new = sum(row["new_s"] for row in rows)
    ratio = total_old / total_new
    n_items = rows[0]["items"] if rows else 0
    record = {
        "config": os.path.relpath(args.config, REPO), "dataset": dataset, "seed": cell.seed,
        "strong": cell.strong, "dtype": "float32", "threads": args.threads,
        "limit": args.limit, "torch": torch.__version__, "repeats": args.repeats,
        "order": [f"{name} {repeat + 1}" for name, repeat in order], "stages": rows,
        "total": {"old_s": total_old, "new_s": total_new, "ratio": ratio,
                  "old_items_per_min": 60 * n_items / total_old,
                  "new_items_per_min": 60 * n_items / total_new},
        "reuse_prefixes": reuse,
        "texts_compared": args.repeats * sum(len(old[s].get("texts", [])) for s in old),
        "texts_differing": differ, "old_repeats_texts_differing": old_repeats_differ,
        "page_faults_and_kernel_s_per_run": faults,
        "zero_shot_max_abs_diff": worst,
        "side_drift_rate_old_new": drift,
        "ablations": {name: {"texts_differing_from_old": texts_differing(old, results[name]),
                             **{stage: {"seconds": run["seconds"],
                                        "prefill_decode_s": [run["prefill_seconds"],
                                                             run["decode_seconds"]]}
                                for stage, run in results[name].items()}}
                      for name in results if name not in ("old", "new")},
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    if profiles:
        Path(args.json).with_name("generation_profile.txt").write_text("\n\n".join(profiles))

    print(f"{dataset} (seed {cell.seed}, {n_items} items), {cell.strong} in float32, "
          f"{args.threads} threads, torch {torch.__version__}")
    print(f"{'stage':16} {'items':>5} {'old s':>7} {'new s':>7} {'old it/min':>10} "
          f"{'new it/min':>10} {'old tok/s':>9} {'new tok/s':>9} {'prefill tok old/new':>20} "
          f"{'ratio':>6}")
    for row in rows:
        print(f"{row['stage']:16} {row['items']:5d} {row['old_s']:7.1f} {row['new_s']:7.1f} "
              f"{row['old_items_per_min']:10.0f} {row['new_items_per_min']:10.0f} "
              f"{row['old_tok_per_s']:9.1f} {row['new_tok_per_s']:9.1f} "
              f"{row['old_prefill_tokens']:>9.0f}/{row['new_prefill_tokens']:<10.0f} "
              + (f"{row['ratio']:5.2f}x" if row["ratio"] else f"{'-':>6}"))
    print(f"{'all stages':16} {n_items:5d} {total_old:7.1f} {total_new:7.1f} "
          f"{record['total']['old_items_per_min']:10.1f} "
          f"{record['total']['new_items_per_min']:10.1f}")
    if record["ablations"]:
        paths = ["old", "new", *record["ablations"]]
        print("seconds per stage, each speed-up off in turn (same process, same texts checked "
              "only old vs new):")
        print(f"{'stage':16} " + " ".join(f"{name:>24}" for name in paths))
        for stage in names:
            print(f"{stage:16} " + " ".join(f"{results[name][stage]['seconds']:24.1f}"
                                            for name in paths))
        print(f"{'all stages':16} " + " ".join(
            f"{sum(run['seconds'] for run in results[name].values()):24.1f}" for name in paths))
        print(f"{'texts differing':16} {'-':>24} {differ:24d} " + " ".join(
            f"{ablation['texts_differing_from_old']:24d}"
            for ablation in record["ablations"].values()))
    print(f"seconds are medians over {args.repeats} runs of each path, in the order "
          + ", ".join(record["order"]) + "; per run: "
          + "; ".join(f"{name} " + " / ".join(
              f"{sum(stage['repeat_seconds'][k] for stage in results[name].values()):.1f}"
              for k in range(len(runs[name]))) for name in ("old", "new")) + " s")
    print(f"greedy texts compared: {record['texts_compared']} (explanations and debate turns, "
          f"every new run against the first old run; old runs among themselves: "
          f"{old_repeats_differ} differ); "
          f"zero-shot P(label 1) largest change: {worst:.2e}; side-drift rate old/new: {drift}")
    print("minor page faults, kernel seconds per run: " + "; ".join(
        f"{name} " + ", ".join(f"{n:,} / {k:.1f} s" for n, k in faults[name])
        for name in ("old", "new")))
    print(f"figures written to {os.path.relpath(args.json, REPO)}")
    print(f"float32 generation speed-up: {ratio:.2f}x (texts differing: {differ})")


if __name__ == "__main__":
    main()
