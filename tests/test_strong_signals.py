"""Explain and debate stages: no label leakage, resume, sharding, round reuse, template checks."""

import json

import pandas as pd
import pytest
import yaml

from conftest import REPO, run_snakemake
from w2s_eda.study import validate_config
from w2s_eda.errors import ConfigError
from w2s_eda.prompts import item_fields
from w2s_eda.strong_signals import debate_prompt, format_transcript, read_items, visible_turns

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


def all_prompts(paths, config):
    """Every prompt text the stages build for these splits (with a stand-in transcript)."""
    items = read_items(paths)
    prompts = []
    for text in items.text:
        fields = item_fields(text, INFO)
        prompts.append(config["explain"]["template"].format(**fields))
        prompts.append(config["explain"]["zero_shot_template"].format(**fields))
        turns = [{"round": 1, "debater": d, "side": 1 - d, "text": "because"} for d in range(2)]
        for debater in range(2):
            prompts.append(debate_prompt(config["debate"], fields, [], debater, INFO["label_names"]))
            prompts.append(debate_prompt(config["debate"], fields, turns, debater, INFO["label_names"]))
    return prompts


def test_flipping_every_label_leaves_every_prompt_byte_identical(tmp_path):
    config = validate_config({})
    original = all_prompts(write_splits(tmp_path / "a")[0], config)
    flipped = all_prompts(write_splits(tmp_path / "b", flip=True)[0], config)
    assert original == flipped and len(original) == 12 * 6
    assert "label" not in read_items(write_splits(tmp_path / "c")[0]).columns


def test_debaters_argue_by_label_value_and_see_the_right_turns():
    config = validate_config({})["debate"]
    fields = item_fields(TEXTS[0], INFO)
    assert '"entailment", not "non-entailment"' in debate_prompt(config, fields, [], 0, INFO["label_names"])
    assert '"non-entailment", not "entailment"' in debate_prompt(config, fields, [], 1, INFO["label_names"])
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
    data = folder.parent / "items.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": i % 2}) + "\n" for i, t in enumerate(TEXTS)))
    config = {
        "splits": {"weak_train": 4, "w2s_train": 4, "test": 4},
        "datasets": {"toy": {"path": str(data), "question": INFO["question"],
                             "label_names": INFO["label_names"]}},
        "generation": {"chunk_size": 3, "dtype": "float32"},
        "explain": {"max_new_tokens": 6},
        "debate": {"max_new_tokens": 6, "drift_sample": 4, "judge": {"enabled": True}},
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
    cell = "results/toy/seed0/smollm2-135m"
    one = tmp_path / "one"
    one.mkdir()
    _link_models(one, prepared_models)
    result = run_snakemake(*_study(one, debate={"n_rounds": 1}))
    assert result.returncode == 0, result.stdout[-3000:]
    round1 = one / cell / "debate/round1/shard0.parquet"
    before = round1.stat().st_mtime_ns
    result = run_snakemake(*_study(one, debate={"n_rounds": 2}))
    assert result.returncode == 0, result.stdout[-3000:]
    assert round1.stat().st_mtime_ns == before  # round 1 reused, not recomputed
    log = result.stdout + result.stderr
    assert "debate/round2/shard0.parquet" in log
    assert "rule explain_shard" not in log  # nor is anything upstream rerun
    debates = pd.read_parquet(one / cell / "debates.parquet")
    assert [t["round"] for t in debates.turns[0]] == [1, 1, 2, 2]
    stats = json.loads((one / cell / "debate_stats.json").read_text())
    assert set(stats["rounds"]) == {"1", "2"} and "judge" in stats

    sharded = tmp_path / "sharded"
    sharded.mkdir()
    _link_models(sharded, prepared_models)
    result = run_snakemake(*_study(sharded, debate={"n_rounds": 2, "n_shards": 2},
                                   explain={"n_shards": 2}))
    assert result.returncode == 0, result.stdout[-3000:]
    assert (sharded / cell / "explain/shard1.parquet").exists()
    assert (sharded / cell / "debate/round2/shard1.parquet").exists()
    for name in ("explanations.parquet", "debates.parquet"):
        a = pd.read_parquet(one / cell / name).drop(columns="seconds", errors="ignore")
        b = pd.read_parquet(sharded / cell / name).drop(columns="seconds", errors="ignore")
        pd.testing.assert_frame_equal(a, b)
