"""Explain, zero-shot and debate stages: no label leakage, resume, sharding, round reuse, template
checks.

The leakage test runs the real stage functions over a fake model that records every prompt it is
sent, once on the gold labels and once on every label flipped, and asks for identical prompts."""

import hashlib
import json

import pandas as pd
import pytest
import yaml

from conftest import JOB_THREADS, REPO, run_snakemake
from w2s_eda.study import validate_config
from w2s_eda.errors import ConfigError
from w2s_eda.prompts import item_fields
from w2s_eda import strong_signals
from w2s_eda.generation import Completion
from w2s_eda.models import MODEL_MANIFEST
from w2s_eda.strong_signals import (
    consultant_side,
    debate_prompt,
    format_transcript,
    read_items,
    side_of,
    visible_turns,
)

TEXTS = [f"Premise: Ann knows that cat {i} sleeps. Hypothesis: Cat {i} sleeps." for i in range(12)]
INFO = {"question": "Does the premise entail the hypothesis?",
        "label_names": ["non-entailment", "entailment"]}


def write_splits(folder, flip=False):
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for k, split in enumerate(("weak_train", "w2s_train", "test")):
        rows = [{"id": f"{split}{i}", "text": TEXTS[4 * k + i], "label": (i % 2) ^ int(flip),
                 "source": "t.jsonl", "row": i} for i in range(4)]
        paths[split] = str(folder / f"{split}.parquet")
        pd.DataFrame(rows).to_parquet(paths[split])
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps(INFO))
    return paths, str(manifest)


class RecordingEngine:
    """Stands in for the strong model: records every prompt it is given, in call order, and
    answers with text and probabilities that depend on the prompt alone."""

    class Tokenizer:
        chat_template = "fake"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            assert not tokenize and add_generation_prompt
            turns = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
            return turns + "<assistant>"

    class Model:
        dtype = "float32"

    def __init__(self, calls, batch_sizes):
        self.calls, self.batch_sizes = calls, batch_sizes
        self.tokenizer = self.Tokenizer()
        self.model = self.Model()

    @staticmethod
    def _digest(prompt):
        return hashlib.sha256(prompt.encode()).hexdigest()

    def generate(self, prompts, settings, seeds=None):
        self.batch_sizes.add(settings.batch_size)
        self.calls.append(("generate", list(prompts)))
        return [Completion(text=f"because {self._digest(p)[:12]}", n_prompt_tokens=len(p.split()),
                           n_new_tokens=3, seconds=0.25) for p in prompts]

    def label_probabilities(self, prompts, label_names, batch_size=0):
        self.batch_sizes.add(batch_size)
        self.calls.append(("label_probabilities", list(prompts)))
        return [int(self._digest(p)[:8], 16) / 0xFFFFFFFF for p in prompts]


def run_every_stage(folder, flip, monkeypatch):
    """Runs the real explain, zero-shot, debate (rounds 1 and 2), debate-gather, consultancy (two
    samples) and judge stages, with drift scoring on, over splits with these labels; returns each
    stage's model calls."""
    paths, manifest = write_splits(folder / "splits", flip=flip)
    model_dir = folder / "model"
    model_dir.mkdir()
    (model_dir / MODEL_MANIFEST).write_text(json.dumps({"name": "fake-strong", "kind": "causal"}))
    calls, batch_sizes = [], set()
    monkeypatch.setattr(strong_signals, "make_engine",
                        lambda *args, **kwargs: RecordingEngine(calls, batch_sizes))
    config = validate_config({})
    explain, debate, generation = config["explain"], config["debate"], config["generation"]
    generation["chunk_size"] = 5  # 12 items: three chunks per stage
    generation["batch_size"] = 3  # every model call must be told it
    debate["drift_sample"] = 5
    assert debate["n_rounds"] == 2 and debate["n_debaters"] == 2
    common = dict(split_paths=paths, dataset_manifest=manifest, model_dir=str(model_dir),
                  generation=generation, seed=0, device="cpu")

    def debate_round(r):
        return lambda: strong_signals.debate_round_shard(
            round_number=r, debate=debate,
            previous=str(folder / "round1.parquet") if r == 2 else None,
            work_dir=str(folder / f"work/round{r}"), shard=0,
            output=str(folder / f"round{r}.parquet"), **common)

    stages = {
        "explain": lambda: strong_signals.explain_shard(
            explain=explain, work_dir=str(folder / "work/explain"), shard=0,
            output=str(folder / "explain0.parquet"), **common),
        "zero_shot": lambda: strong_signals.zero_shot(
            template=explain["zero_shot_template"], work_dir=str(folder / "work/zero_shot"),
            output=str(folder / "zero_shot.parquet"), stats_path=str(folder / "zero_shot.json"),
            **common),
        "debate_round1": debate_round(1),
        "debate_round2": debate_round(2),
        "gather_debate": lambda: strong_signals.gather_debate(
            shard_paths=[str(folder / "round2.parquet")], debate=debate,
            output=str(folder / "debates.parquet"), stats_path=str(folder / "debate_stats.json"),
            **common),
        "judge": lambda: strong_signals.judge_transcripts(
            transcripts_path=str(folder / "debates.parquet"), split_paths=paths,
            dataset_manifest=manifest, judge_model_dir=str(model_dir),
            template=debate["judge"]["template"], generation=generation, device="cpu",
            output=str(folder / "judge.parquet"), stats_path=str(folder / "judge.json")),
        "consultancy": lambda: strong_signals.debate_round_shard(
            round_number=1, debate={**debate, "protocol": "consultancy", "n_debaters": 1,
                                    "n_samples": 2},
            previous=None, work_dir=str(folder / "work/consultancy"), shard=0,
            output=str(folder / "consultancy.parquet"), **common),
    }
    recorded = {}
    for name, stage in stages.items():
        before = len(calls)
        stage()
        recorded[name] = calls[before:]
    assert batch_sizes == {3}, f"generation.batch_size not passed on: {batch_sizes}"
    return paths, recorded


def test_flipping_every_label_leaves_every_prompt_the_stages_send_byte_identical(
        tmp_path, monkeypatch):
    plain_paths, plain = run_every_stage(tmp_path / "plain", False, monkeypatch)
    flipped_paths, flipped = run_every_stage(tmp_path / "flipped", True, monkeypatch)

    # The gold labels did change, so a prompt that showed one would differ.
    for split in plain_paths:
        a, b = pd.read_parquet(plain_paths[split]), pd.read_parquet(flipped_paths[split])
        assert a.text.tolist() == b.text.tolist() and (a.label != b.label).all()
    assert "label" not in read_items(plain_paths).columns

    # Every stage ran, over every item, in several chunks.
    def prompts(calls, kind):
        return [p for k, batch in calls if k == kind for p in batch]

    def shape(calls):
        return [(kind, len(batch)) for kind, batch in calls]

    generated, scored = "generate", "label_probabilities"
    assert shape(plain["explain"]) == [(generated, n) for n in (5, 5, 2)]
    assert shape(plain["zero_shot"]) == [(scored, n) for n in (5, 5, 2)]
    for r in (1, 2):  # both debaters argue on all 12 items, in one call per chunk (simultaneous)
        assert shape(plain[f"debate_round{r}"]) == [(generated, 2 * n) for n in (5, 5, 2)]
    round1 = prompts(plain["debate_round1"], generated)
    assert all("debate so far" not in p for p in round1)
    round1_turns = [f"because {RecordingEngine._digest(p)[:12]}" for p in round1]
    for p in prompts(plain["debate_round2"], generated):  # both round-1 turns on the item shown
        assert "debate so far" in p and sum(t in p for t in round1_turns) == 2
    # Drift scored on a sample of each round; the judge on all 12 transcripts.
    assert shape(plain["gather_debate"]) == [(scored, n) for n in (5, 5)]
    assert shape(plain["judge"]) == [(scored, 12)]
    assert all("A debate about this" in p for p in plain["judge"][0][1])
    # One consultant per (sample, item): 24 turns, each item argued for both sides once.
    consultant = prompts(plain["consultancy"], generated)
    assert len(consultant) == 24
    for text in TEXTS:
        sides = [p for p in consultant if text in p]
        assert len(sides) == 2 and sum('"entailment", not' in p for p in sides) == 1

    # ...and sent exactly the same prompts, in the same calls, whatever the labels.
    assert set(plain) == set(flipped)
    for stage in plain:
        assert plain[stage] and plain[stage] == flipped[stage], stage


def test_debaters_argue_by_label_value_and_see_the_right_turns():
    config = validate_config({})["debate"]
    fields = item_fields(TEXTS[0], INFO)
    names = INFO["label_names"]
    assert [side_of(debater) for debater in range(4)] == [1, 0, 1, 0]
    assert '"entailment", not "non-entailment"' in debate_prompt(config, fields, [], side_of(0), names)
    assert '"non-entailment", not "entailment"' in debate_prompt(config, fields, [], side_of(1), names)
    # a consultant's side: a seeded coin per item, alternating over its samples
    sides = [[consultant_side(0, f"item{i}", sample) for sample in range(2)] for i in range(40)]
    assert all(pair in ([0, 1], [1, 0]) for pair in sides)
    assert 10 <= sum(pair[0] for pair in sides) <= 30
    turns = [{"round": r, "debater": d, "side": 1 - d, "text": f"r{r}d{d}"} for r in (1, 2) for d in (0, 1)]
    simultaneous = visible_turns(turns, 2, 1, "simultaneous")
    sequential = visible_turns(turns, 2, 1, "sequential")
    assert [t["text"] for t in simultaneous] == ["r1d0", "r1d1"]
    assert [t["text"] for t in sequential] == ["r1d0", "r1d1", "r2d0"]
    assert format_transcript(turns[:1], INFO["label_names"]) == (
        'Debater 1 (argues "entailment"), round 1: r1d0')


@pytest.mark.parametrize("key", ["explain.template", "debate.rebuttal_template", "debate.judge.template"])
def test_unknown_placeholder_is_a_config_error_naming_it(key):
    section, *rest = key.split(".")
    config = {section: {}}
    target = config[section]
    for part in rest[:-1]:
        target = target.setdefault(part, {})
    target[rest[-1]] = "{item} and {gold_label}"
    with pytest.raises(ConfigError, match=f"config key '{key}': unknown placeholder {{gold_label}}"):
        validate_config(config)


def test_positional_placeholder_is_rejected():
    with pytest.raises(ConfigError, match="must be a plain name"):
        validate_config({"explain": {"template": "{item} {}"}})


# A killed explain or debate job resuming to the uninterrupted output, through Snakemake:
# tests/test_kill_and_resume.py.


def _study(folder, **overrides):
    data = folder.parent / "items.jsonl"  # written once: a study beside this one may be reading it
    if not data.exists():
        data.write_text("".join(json.dumps({"text": t, "label": i % 2}) + "\n"
                                for i, t in enumerate(TEXTS)))
    config = {
        "splits": {"weak_train": 4, "w2s_train": 4, "test": 4},
        "datasets": {"toy": {"path": str(data), "question": INFO["question"],
                             "label_names": INFO["label_names"]}},
        "generation": {"chunk_size": 3, "dtype": "float32"},
        "explain": {"max_new_tokens": 6},
        "debate": {"max_new_tokens": 6, "drift_sample": 0, "judge": {"enabled": True}},
        "wandb": {"mode": "disabled"},  # tracking is tested on the tiny study (test_report.py)
    }
    for section, values in overrides.items():
        config[section].update(values)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    # Targets after "--cores 2" (not right after --configfile, which takes several values): the
    # strong model's signals only; test_align.py runs the training stages.
    cell = "results/toy/seed0/smollm2-135m"
    return ["-s", str(REPO / "Snakefile"), "-d", str(folder), "--configfile",
            str(folder / "config.yaml"), "--cores", "2", f"{cell}/explanations.parquet",
            f"{cell}/debates.parquet"]


def _link_models(folder, prepared_models):
    (folder / "resources").mkdir(parents=True, exist_ok=True)
    (folder / "resources" / "models").symlink_to(prepared_models)


@pytest.mark.slow
def test_added_round_reuses_earlier_rounds_and_shards_equal_one_job(tmp_path, prepared_models):
    from studies import Run

    cell = "results/toy/seed0/smollm2-135m"
    # The sharded study runs in the background, beside the two runs of the unsharded one (one
    # torch thread per job: two studies share the 2 cores).
    sharded = tmp_path / "sharded"
    _link_models(sharded, prepared_models)
    background = Run.start(sharded, [*_study(sharded, debate={"n_rounds": 2, "n_shards": 2},
                                             explain={"n_shards": 2}), *JOB_THREADS])
    try:
        one = tmp_path / "one"
        _link_models(one, prepared_models)
        result = run_snakemake(*_study(one, debate={"n_rounds": 1}), *JOB_THREADS)
        assert result.returncode == 0, result.stdout[-3000:]
        round1 = one / cell / "debate/round1/shard0.parquet"
        before = round1.stat().st_mtime_ns
        result = run_snakemake(*_study(one, debate={"n_rounds": 2}), *JOB_THREADS)
        assert result.returncode == 0, result.stdout[-3000:]
        assert round1.stat().st_mtime_ns == before  # round 1 reused, not recomputed
        log = result.stdout + result.stderr
        assert "debate/round2/shard0.parquet" in log
        assert "rule explain_shard" not in log  # nor is anything upstream rerun
        debates = pd.read_parquet(one / cell / "debates.parquet")
        assert [t["round"] for t in debates.turns[0]] == [1, 1, 2, 2]
        stats = json.loads((one / cell / "debate_stats.json").read_text())
        assert set(stats["rounds"]) == {"1", "2"}
    except BaseException:
        background.kill()
        raise
    code, err, _ = background.wait()
    assert code == 0, err[-3000:]
    assert (sharded / cell / "explain/shard1.parquet").exists()
    assert (sharded / cell / "debate/round2/shard1.parquet").exists()
    for name in ("explanations.parquet", "debates.parquet"):
        a = pd.read_parquet(one / cell / name).drop(columns="seconds", errors="ignore")
        b = pd.read_parquet(sharded / cell / name).drop(columns="seconds", errors="ignore")
        pd.testing.assert_frame_equal(a, b)


@pytest.mark.slow
def test_sampled_debates_differ_and_the_same_seed_reproduces_them(tmp_path, prepared_models):
    """k = 2 sampled debates per item with the real strong model: the two samples of an item
    differ, and a rerun with the same study seed, in other chunks and batches, gives the same
    transcripts turn by turn (tests/test_engine_contract.py checks other seeds give others)."""
    paths, manifest = write_splits(tmp_path / "splits")
    config = validate_config({"debate": {"n_samples": 2, "n_rounds": 1, "max_new_tokens": 6}})
    debate, generation = config["debate"], config["generation"]

    def run(name, chunk_size=64, batch_size=0):
        output = tmp_path / f"{name}.parquet"
        strong_signals.debate_round_shard(
            round_number=1, split_paths=paths, dataset_manifest=manifest,
            model_dir=str(prepared_models / "smollm2-135m"), debate=debate,
            generation={**generation, "chunk_size": chunk_size, "batch_size": batch_size,
                        "dtype": "float32"},
            seed=0, device="cpu", previous=None, work_dir=str(tmp_path / name), shard=0,
            output=str(output))
        frame = pd.read_parquet(output)
        return {(i, s): [t["text"] for t in json.loads(turns)]
                for i, s, turns in zip(frame.id, frame["sample"], frame.turns)}

    first = run("first")
    assert len(first) == 24 and {s for _, s in first} == {0, 1}
    differing = [i for i, s in first if s == 0 and first[(i, 0)] != first[(i, 1)]]
    assert len(differing) >= 10, f"only {len(differing)} of 12 items have two different debates"
    assert run("again", chunk_size=5, batch_size=3) == first
