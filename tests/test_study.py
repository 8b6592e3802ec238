"""The study model without Snakemake: what each arm selection computes, where outputs go, what
each stage's cache key holds, and the package's layering (no import cycle; config is a leaf; the
schema's defaults agree with the code's)."""

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from conftest import REPO
from w2s_eda.config import load_schema
from w2s_eda.errors import ConfigError
from w2s_eda.study import PATHS, Study, flat_files, validate_config

CELL = {"dataset": "epistemic_reasoning", "seed": "0", "weak": "minilm-l6", "strong": "smollm2-135m"}


def study(**align) -> Study:
    """The study of these align settings; without controls unless they are given, so that each
    test sees what its arms alone need."""
    return Study(validate_config({"align": {"controls": [], **align}}))


@pytest.mark.parametrize("arms, signals", [
    (["baseline"], set()),
    (["baseline", "distill"], {"zero_shot"}),
    (["baseline", "debate"], {"debates"}),
    (["baseline", "explain"], {"explanations"}),
    (["baseline", "explain", "debate", "eda", "distill"], {"explanations", "debates", "zero_shot"}),
])
def test_each_arm_selection_needs_only_the_signals_it_reads(arms, signals):
    s = study(arms=arms)
    assert s.signals == signals
    assert all(s.needs(signal) == (signal in signals) for signal in ("explanations", "zero_shot", "debates"))


@pytest.mark.parametrize("arms, signals", [
    (["baseline", "consultancy"], {"consultancy"}),
    (["baseline", "debate_judge"], {"debates", "judge"}),
    (["baseline", "debate_ensemble", "finetune_ensemble"], {"debates"}),
])
def test_debate_science_arms_need_their_transcripts_and_the_judge(arms, signals):
    s = Study(validate_config({"align": {"arms": arms, "controls": []},
                               "debate": {"n_samples": 4}}))
    assert s.signals == signals


def test_controls_need_the_zero_shot_file_and_train_a_self_distilled_student():
    s = study(arms=["baseline"], controls=["strong_zero_shot", "self_distill"])
    assert s.signals == {"zero_shot"}
    (cell,) = s.analysis_cells()
    assert cell["zero_shot"].endswith("smollm2-135m/zero_shot.parquet")
    assert set(cell["control_predictions"]["self_distill"]) == {"xent", "logconf"}
    inputs = s.self_distill_inputs({**CELL, "loss": "xent"})
    assert inputs["soft_labels"] == cell["zero_shot"] and inputs["features"].endswith("item.npz")


def test_the_judge_reads_every_transcript_kind_when_enabled_and_can_be_the_weak_model():
    config = {"align": {"arms": ["baseline", "debate", "consultancy"], "controls": []},
              "debate": {"judge": {"enabled": True}}}
    s = Study(validate_config(config))
    (cell,) = s.analysis_cells()
    assert cell["judge"] == {
        kind: f"results/epistemic_reasoning/seed0/smollm2-135m/judge/smollm2-135m/{kind}.parquet"
        for kind in ("debates", "consultancy")}
    with pytest.raises(ConfigError, match=r"debate\.judge\.model.*'minilm-l6' is an encoder"):
        validate_config({**config, "debate": {"judge": {"enabled": True, "model": "weak"}}})
    # with a causal weak model the judge is the cell's weak model
    causal = {"models": {"small": {"packaged": "smollm2-135m-instruct"},
                         "big": {"packaged": "smollm2-135m-instruct"}},
              "pairs": [{"weak": "small", "strong": "big"}]}
    weak = Study(validate_config({**config, **causal,
                                  "debate": {"judge": {"enabled": True, "model": "weak"}}}))
    assert weak.judge_names() == ["small"]
    assert "/big/judge/small/debates.parquet" in weak.analysis_cells()[0]["judge"]["debates"]


def test_a_transcript_ensemble_needs_as_many_samples_and_its_features_hold_them():
    with pytest.raises(ConfigError, match=r"debate_ensemble.*needs 4 sampled debates.*n_samples"):
        validate_config({"align": {"arms": ["baseline", "debate_ensemble"]}})
    with pytest.raises(ConfigError, match=r"align\.custom_arms\.mine.*reads no debate"):
        validate_config({"align": {"arms": ["baseline", "mine"], "custom_arms": {
            "mine": {"ensemble": {"members": 2, "vary": "transcript"}}}}})
    s = Study(validate_config({"align": {"arms": ["baseline", "debate", "debate_ensemble",
                                                  "finetune_ensemble"]},
                               "debate": {"n_samples": 4}}))
    assert s.feature_samples("item+debate") == 4 and s.feature_samples("item") == 1
    assert s.arm("finetune_ensemble").transcripts == 1


def test_baseline_alone_generates_nothing_and_reads_only_splits_features_and_models():
    s = study(arms=["baseline"])
    files = [*s.train_weak_inputs({**CELL, "arm": "baseline"}).values(),
             *s.analysis_files(), *s.targets()]
    assert not [f for f in files if re.search(r"explain|zero_shot|debate", f)]
    assert "debate_plot" not in s.analysis_outputs()
    assert all("debate_stats" not in cell for cell in s.analysis_cells())


def test_the_stages_of_an_eda_cell_share_one_prefix_store_and_others_build_none():
    eda = study(arms=["baseline", "explain", "debate", "eda", "distill"])
    assert set(eda.prefix_templates("epistemic_reasoning")) == {
        "explain", "zero_shot", "opening", "rebuttal", "drift"}
    # the same templates with one round and no drift: adding a round keeps the store (and the
    # chunks keyed by it) as they were
    short = Study(validate_config({"align": {"arms": ["baseline", "explain", "debate", "eda",
                                                      "distill"], "controls": []},
                                   "debate": {"n_rounds": 1, "drift_sample": 0}}))
    assert short.prefix_templates("epistemic_reasoning") == eda.prefix_templates("epistemic_reasoning")
    store = "results/epistemic_reasoning/seed0/smollm2-135m/prefix_store.safetensors"
    assert eda.uses_prefix_store("epistemic_reasoning")
    assert eda.strong_stage_inputs(CELL)["prefix_store"] == store
    assert eda.round_inputs("debates")({**CELL, "round": "2", "shard": "0"})["prefix_store"] == store
    assert "prefix_store" not in eda.item_prefix_inputs(CELL)  # the job that writes it
    # one stage's template alone, the option off, or vLLM (it caches prefixes itself): none
    assert not study(arms=["baseline", "explain"]).uses_prefix_store("epistemic_reasoning")
    for generation in ({"reuse_prefixes": False}, {"backend": "vllm"}, {"share_prefixes": False}):
        off = Study(validate_config({"align": {"arms": ["baseline", "eda"], "controls": []},
                                     "generation": generation}))
        assert not off.uses_prefix_store("epistemic_reasoning")
        assert "prefix_store" not in off.strong_stage_inputs(CELL)


def test_distill_reads_the_zero_shot_file_and_no_generated_text():
    s = study(arms=["baseline", "distill"])
    inputs = s.train_weak_inputs({**CELL, "arm": "distill"})
    assert inputs["zero_shot"] == "results/epistemic_reasoning/seed0/smollm2-135m/zero_shot.parquet"
    assert "explanations" not in inputs and "debates" not in inputs
    # its input layout is the item alone: the features shared by every strong model
    assert inputs["features"] == "results/epistemic_reasoning/seed0/weak/minilm-l6/features/item.npz"


def test_debate_arm_needs_debates_but_no_explanations():
    s = study(arms=["baseline", "debate"])
    inputs = s.weak_feature_inputs({**CELL, "context": "item+debate"})
    assert inputs["debates"].endswith("smollm2-135m/debates.parquet") and "explanations" not in inputs
    assert s.layouts(shared=False) == ["item+debate"] and s.layouts(shared=True) == ["item"]
    assert "debate_plot" in s.analysis_outputs()
    assert all(cell["debate_stats"].endswith("debate_stats.json") for cell in s.analysis_cells())


def test_custom_arms_take_their_signals_from_context_and_targets():
    s = study(arms=["baseline", "mine", "plain"],
              custom_arms={"mine": {"context": ["debate"], "targets": "strong_zero_shot"},
                           "plain": {"targets": "gold"}})
    assert s.arm("mine").signals == {"debates", "zero_shot"} and not s.arm("mine").shared
    assert s.arm("plain").shared and s.arm_names(shared=True) == ["baseline", "plain"]
    # lora/full mode reads the signals themselves instead of features
    lora = Study(validate_config({"align": {"arms": ["baseline", "mine"],
                                            "custom_arms": {"mine": {"context": ["debate"],
                                                                     "targets": "strong_zero_shot"}}},
                                  "train": {"weak": {"mode": "lora"}}}))
    assert set(lora.train_weak_inputs({**CELL, "arm": "mine"})) == {
        "weak_train", "w2s_train", "test", "model", "debates", "zero_shot"}


def test_the_weak_floor_is_shared_by_strong_models_and_signal_arms_are_not():
    s = Study(validate_config({
        "models": {"w": {"packaged": "all-minilm-l6-v2"}, "s1": {"packaged": "smollm2-135m-instruct"},
                   "s2": {"packaged": "smollm2-135m-instruct"}},
        "pairs": [{"weak": "w", "strong": "s1"}, {"weak": "w", "strong": "s2"}],
        "align": {"arms": ["baseline", "explain"]}}))
    floors = {s.weak_output({**CELL, "weak": "w", "strong": strong}, "baseline", "soft_labels")
              for strong in ("s1", "s2")}
    explained = {s.weak_output({**CELL, "weak": "w", "strong": strong}, "explain", "soft_labels")
                 for strong in ("s1", "s2")}
    assert floors == {"results/epistemic_reasoning/seed0/weak/w/baseline/soft_labels.parquet"}
    assert len(explained) == 2
    # each student reads its own strong model's arm, or the shared floor
    student = s.train_strong_inputs({**CELL, "weak": "w", "strong": "s2", "arm": "baseline"})
    assert student["soft_labels"] in floors and "s2/features/item.npz" in student["features"]


def test_cell_files_are_named_by_arm_and_loss_not_by_position():
    s = study(arms=["baseline", "eda"])
    files = s.cell_files(CELL)["metrics"]
    assert list(files["students"]) == ["baseline", "eda"]
    assert list(files["students"]["eda"]) == ["xent", "logconf"]
    assert files["students"]["eda"]["logconf"] == (
        "results/epistemic_reasoning/seed0/smollm2-135m/w2s/minilm-l6/eda/logconf/metrics.json")
    assert files["weak"]["eda"].endswith("smollm2-135m/weak/minilm-l6/eda/metrics.json")
    assert len(flat_files(files)) == 1 + 2 + 4


def test_targets_are_the_analysis_outputs_and_one_table_per_cell():
    s = Study(validate_config({"seeds": [0, 1]}))
    assert s.targets()[:len(s.analysis_outputs())] == list(s.analysis_outputs().values())
    tables = [t for t in s.targets() if t.endswith("align.md")]
    assert len(tables) == 2 and len(s.cells) == 2


def test_cache_keys_hold_only_what_a_stage_depends_on():
    s = study()
    assert "zero_shot_template" not in s.settings("explain")
    assert set(s.settings("zero_shot")) == {"template"}
    assert not {"n_rounds", "judge", "drift_sample"} & set(s.settings("debate_round"))
    assert set(s.settings("weak_features")) == {"layer", "max_length", "batch_size"}
    assert s.settings("weak")["epochs"] is None  # training keys are in the training runs' key
    with pytest.raises(ValueError):
        s.settings("nope")


LADDER = {
    "models": {"smollm2-135m": {"packaged": "smollm2-135m-instruct"},
               "smollm2-b8": {"packaged": "smollm2-135m-instruct", "layer": 8},
               "minilm-l6": {"packaged": "all-minilm-l6-v2"},
               "minilm-b2": {"packaged": "all-minilm-l6-v2", "layer": 2}},
    "pairs": [{"weak": weak, "strong": strong} for weak in ("minilm-l6", "minilm-b2")
              for strong in ("smollm2-135m", "smollm2-b8")],
    "align": {"arms": ["baseline"], "controls": []},
}


def test_a_capacity_ladder_reads_one_set_of_weights_at_each_rungs_block():
    s = Study(validate_config(LADDER))
    assert len(s.cells) == 4
    # the rungs share the prepared weights of the first model with the same source
    assert s.model_dir("minilm-b2") == s.model_dir("minilm-l6") == "resources/models/minilm-l6"
    assert s.model_dir("smollm2-b8") == "resources/models/smollm2-135m"
    rung = {**CELL, "weak": "minilm-b2", "strong": "smollm2-b8"}
    assert s.train_weak_inputs({**rung, "arm": "baseline"})["model"].endswith("minilm-l6/w2s_model.json")
    assert s.train_strong_inputs(rung)["model"].endswith("smollm2-135m/w2s_model.json")
    # each rung's block is in its features' and its training runs' cache keys
    assert s.settings("weak_features", rung)["layer"] == 2
    assert s.settings("weak_features", CELL)["layer"] == "last"  # train.weak.layer
    assert s.settings("strong_features", rung)["layer"] == 8
    assert s.settings("strong", CELL)["layer"] == "middle"
    assert s.settings("strong", rung)["layer"] == 8
    # the weak floor of a rung is shared by the strong rungs it is paired with
    floors = {s.weak_output({**CELL, "weak": "minilm-b2", "strong": strong}, "baseline", "metrics")
              for strong in ("smollm2-135m", "smollm2-b8")}
    assert len(floors) == 1 and "weak/minilm-b2/" in floors.pop()
    # the prepare job of a rung's weights does not see the rung's block
    assert "layer" not in s.weights_spec("smollm2-b8")


def test_a_model_layer_must_be_a_block_name_or_number():
    bad = {**LADDER, "models": {**LADDER["models"], "minilm-b2": {"packaged": "all-minilm-l6-v2",
                                                                  "layer": "top"}}}
    with pytest.raises(ConfigError, match="models.minilm-b2.layer"):
        validate_config(bad)


def test_a_dataset_can_run_a_subset_of_the_arms_beside_another_with_all_of_them():
    """The default study's layout: a large baseline cell (nothing generated) beside a small cell
    of the same task with the EDA arms."""
    s = Study(validate_config({
        "datasets": {"winowhy": {"arms": ["baseline"], "controls": []},
                     "winowhy_eda": {"registry": "winowhy"}},
        "align": {"arms": ["baseline", "explain", "debate", "eda"],
                  "controls": ["strong_zero_shot", "self_distill"]}}))
    big, small = (dict(CELL, dataset=name) for name in ("winowhy", "winowhy_eda"))
    assert s.cell_signals("winowhy") == set()
    assert s.cell_signals("winowhy_eda") == {"explanations", "debates", "zero_shot"}
    assert list(s.cell_files(big)["metrics"]["students"]) == ["baseline"]
    assert s.cell_files(big)["metrics"]["controls"] == {}
    assert list(s.cell_files(small)["metrics"]["students"]) == ["baseline", "explain", "debate", "eda"]
    files = s.analysis_files()
    assert not [f for f in files if "/winowhy/" in f and ("explain" in f or "debate" in f
                                                         or "zero_shot" in f)]
    assert any("/winowhy_eda/" in f and f.endswith("debate_stats.json") for f in files)
    # every student's w2s_train predictions reach the analysis (misfit)
    (cell, _) = s.analysis_cells()
    assert cell["student_train_predictions"]["baseline"]["xent"].endswith(
        "w2s/minilm-l6/baseline/xent/train_predictions.parquet")


@pytest.mark.parametrize("spec, message", [
    ({"arms": ["baseline", "debate"]}, r"'datasets.winowhy.arms\[1\]': 'debate' is not in 'align.arms'"),
    ({"arms": ["explain"]}, "'datasets.winowhy.arms': 'baseline' must be listed"),
    ({"controls": ["self_distill"]}, r"'datasets.winowhy.controls\[0\]'"),
])
def test_a_datasets_own_arms_and_controls_are_the_studys(spec, message):
    with pytest.raises(ConfigError, match=message):
        validate_config({"datasets": {"winowhy": spec},
                         "align": {"arms": ["baseline", "explain"], "controls": []}})


def test_every_path_template_is_unique_and_under_results_or_resources():
    assert len(set(PATHS.values())) == len(PATHS)
    for name, template in PATHS.items():
        assert template.startswith(("results/", "resources/")), name


def test_a_model_may_not_take_a_results_folder_name():
    with pytest.raises(ConfigError, match="'models.weak': 'weak' is a reserved name"):
        validate_config({"models": {"weak": {"packaged": "all-minilm-l6-v2"},
                                    "smollm2-135m": {"packaged": "smollm2-135m-instruct"}},
                         "pairs": [{"weak": "weak", "strong": "smollm2-135m"}]})


# --- layering -----------------------------------------------------------------------------------

PACKAGE = REPO / "src" / "w2s_eda"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every w2s_eda module and the package modules it imports (at any depth of the file:
    imports inside functions count too)."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    target = ".".join([*base, node.module] if node.module else base)
                else:
                    target = node.module or ""
                candidates = [target, *(f"{target}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            found |= {c for c in candidates if c in modules and c != name}
        graph[name] = found
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_in_the_package_and_config_is_a_leaf():
    graph = import_graph()
    assert {"w2s_eda.config", "w2s_eda.study", "w2s_eda.stats", "w2s_eda.analysis"} <= set(graph)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
    assert graph["w2s_eda.config"] <= {"w2s_eda.errors"}


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_schemas_defaults_agree_with_the_codes():
    from w2s_eda.generation import GenerationSettings
    from w2s_eda.training import MODE_DEFAULTS, TrainSettings

    schema = load_schema()
    defaults = {field.name: field.default for field in dataclasses.fields(TrainSettings)
                if field.default is not dataclasses.MISSING}
    train = schema["$defs"]["train"]["properties"]
    for key in ("mode", "optimizer", "lr", "weight_decay", "epochs", "batch_size", "checkpoint_every"):
        assert train[key]["default"] == defaults[key], key
    lora = TrainSettings().lora
    assert {key: train["lora"]["properties"][key]["default"] for key in lora} == lora
    strong = schema["properties"]["train"]["properties"]["strong"]["properties"]
    for section in ("logconf", "product"):
        for key, spec in strong[section]["properties"].items():
            assert spec["default"] == defaults[key], key
    # null lr / epochs take the mode's default, which the schema's descriptions state
    for key in ("lr", "epochs"):
        stated = dict(re.findall(r"(probe|lora|full) ([0-9.e-]+)", train[key]["description"]))
        assert {mode: float(value) for mode, value in stated.items()} == {
            mode: values[key] for mode, values in MODE_DEFAULTS.items()}, key
    generation = schema["$defs"]["generation"]["properties"]
    for field in dataclasses.fields(GenerationSettings):
        if field.name in generation:
            assert generation[field.name]["default"] == field.default, field.name
