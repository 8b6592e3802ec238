"""The study model: what the workflow computes, built once from the validated config.

The Snakefile only adapts this module (workflow/rules/common.smk): every decision about *what* to
compute lives here and is unit-tested without Snakemake (tests/test_study.py).

- **Records.** A ``Cell`` is one weak-to-strong comparison (dataset, seed, weak, strong); an
  ``Arm`` says what the weak model reads (``context``) and learns from (``targets``).
- **Demand.** Each arm needs some of the strong model's *signals*: ``explanations`` (generated
  text), ``zero_shot`` (P(label 1) from the label words' logits, no generation), ``debates`` and
  ``consultancy`` (rounds of generated arguments, ``debate.n_samples`` per item, then drift
  scoring) and ``judge`` (a judge's P(label 1) on each debate). A signal is computed only if some
  selected arm or control reads it; ``[baseline]`` without controls generates nothing.
- **Sharing.** An arm that reads no signal (its context is the item alone and it learns from gold)
  does not depend on the strong model: its weak model, and the weak features of the item alone,
  are computed once per (dataset, seed, weak) and shared by every strong model it is paired with.
- **Paths.** ``PATHS`` holds every output's template; rules and input functions both use it.
- **Cache keys.** ``Study.settings(stage)`` is the config subset a stage's outputs depend on; the
  rules pass it as ``params``, so Snakemake reruns exactly the outputs whose settings changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .arms import VIA, all_arms, chained_setting, check_arms, context_key, parts_of, setting_conflict
from .config import SCHEMA_PATH, local_files, model_names, split_sizes, validate_schema
from .data.registry import DATASETS, known_dataset_names
from .data.splits import SPLITS
from .errors import ConfigError, DatasetError
from .models import check_model_spec

# Packaged models that are encoders (no next-token logits: they cannot judge).
ENCODER_PACKAGES = ("all-minilm-l6-v2",)
from .prep import hub_revision, load_pools
from .prompts import check_templates

SIGNALS = ("explanations", "zero_shot", "debates", "consultancy", "judge")
# The signal each context part reads.
PART_SIGNALS = {"explanation": "explanations", "debate": "debates", "consultancy": "consultancy",
                "judge": "judge"}
# The transcript signals a judge reads, and the path template of each one's rounds.
JUDGED = ("debates", "consultancy")
ROUNDS = {"debates": "debate_round", "consultancy": "consultancy_round"}

_DATA = "results/{dataset}/seed{seed}/data"
_STRONG = "results/{dataset}/seed{seed}/{strong}"
# An arm reading no signal is shared by the strong models; one reading signals sits under one.
_WEAK_SHARED = "results/{dataset}/seed{seed}/weak/{weak}"
_WEAK_STRONG = f"{_STRONG}/weak/{{weak}}"

PATHS = {
    "bigbench": "resources/bigbench/{bigbench_task}.json",
    "model_dir": "resources/models/{model}",
    "model": "resources/models/{model}/w2s_model.json",
    **{split: f"{_DATA}/{split}.parquet" for split in SPLITS},
    "manifest": f"{_DATA}/manifest.json",
    "explain_shard": f"{_STRONG}/explain/shard{{shard}}.parquet",
    "explanations": f"{_STRONG}/explanations.parquet",
    "explain_stats": f"{_STRONG}/explain_stats.json",
    "prefix_store": f"{_STRONG}/prefix_store.safetensors",
    "zero_shot": f"{_STRONG}/zero_shot.parquet",
    "zero_shot_stats": f"{_STRONG}/zero_shot_stats.json",
    "debate_round": f"{_STRONG}/debate/round{{round}}/shard{{shard}}.parquet",
    "debates": f"{_STRONG}/debates.parquet",
    "debate_stats": f"{_STRONG}/debate_stats.json",
    "consultancy_round": f"{_STRONG}/consultancy/round{{round}}/shard{{shard}}.parquet",
    "consultancy": f"{_STRONG}/consultancy.parquet",
    "consultancy_stats": f"{_STRONG}/consultancy_stats.json",
    # The judge of the debates (kind `debates`) or consultancies, by the judge model's name.
    "judge": f"{_STRONG}/judge/{{judge}}/{{kind}}.parquet",
    "judge_stats": f"{_STRONG}/judge/{{judge}}/{{kind}}_stats.json",
    "weak_features_shared": f"{_WEAK_SHARED}/features/{{context}}.npz",
    "weak_features_strong": f"{_WEAK_STRONG}/features/{{context}}.npz",
    **{f"weak_{name}_{scope}": f"{root}/{{arm}}/{name}.{ext}"
       for scope, root in (("shared", _WEAK_SHARED), ("strong", _WEAK_STRONG))
       for name, ext in (("soft_labels", "parquet"), ("test_predictions", "parquet"),
                         ("metrics", "json"))},
    "strong_features": f"{_STRONG}/features/item.npz",
    "ceiling_test_predictions": f"{_STRONG}/ceiling/test_predictions.parquet",
    "ceiling_metrics": f"{_STRONG}/ceiling/metrics.json",
    # The self-distillation control: the strong model trained on its own zero-shot labels.
    "self_distill_test_predictions": f"{_STRONG}/self_distill/{{loss}}/test_predictions.parquet",
    "self_distill_metrics": f"{_STRONG}/self_distill/{{loss}}/metrics.json",
    "self_distill_train_predictions": f"{_STRONG}/self_distill/{{loss}}/train_predictions.parquet",
    "student_test_predictions": f"{_STRONG}/w2s/{{weak}}/{{arm}}/{{loss}}/test_predictions.parquet",
    "student_metrics": f"{_STRONG}/w2s/{{weak}}/{{arm}}/{{loss}}/metrics.json",
    # A student's P(label 1) on w2s_train beside the labels it learnt there (its misfit).
    "student_train_predictions": f"{_STRONG}/w2s/{{weak}}/{{arm}}/{{loss}}/train_predictions.parquet",
    # Students of the other settings (conflict.settings, chains through an intermediate model):
    # `explicit`, `implicit`, `none+via-<intermediate>`, ...
    "setting_test_predictions":
        f"{_STRONG}/w2s/{{weak}}/{{arm}}/{{loss}}/{{setting}}/test_predictions.parquet",
    "setting_metrics": f"{_STRONG}/w2s/{{weak}}/{{arm}}/{{loss}}/{{setting}}/metrics.json",
    "setting_train_predictions":
        f"{_STRONG}/w2s/{{weak}}/{{arm}}/{{loss}}/{{setting}}/train_predictions.parquet",
    # The intermediate of a chain, trained in one conflict setting: its out-of-fold labels of
    # w2s_train supervise the `<conflict>+via-<intermediate>` students.
    "intermediate_labels": f"{_STRONG}/w2s/{{weak}}/{{arm}}/{{loss}}/{{conflict}}+intermediate/labels.parquet",
    "intermediate_test_predictions":
        f"{_STRONG}/w2s/{{weak}}/{{arm}}/{{loss}}/{{conflict}}+intermediate/test_predictions.parquet",
    "intermediate_metrics": f"{_STRONG}/w2s/{{weak}}/{{arm}}/{{loss}}/{{conflict}}+intermediate/metrics.json",
    "intermediate_features": f"{_STRONG}/w2s/{{weak}}/intermediate/features.npz",
    # The other objective's items for the implicit-conflict students.
    "conflict_items": f"{_DATA}/conflict.parquet",
    "cell_table_json": f"{_STRONG}/w2s/{{weak}}/align.json",
    "cell_table_md": f"{_STRONG}/w2s/{{weak}}/align.md",
}

# The analysis stage's outputs; the debate plot only exists when debates do.
ANALYSIS_OUTPUTS = {
    "csv": "results/summary.csv", "md": "results/summary.md", "html": "results/pgr_table.html",
    "pgr": "results/pgr.json", "deception": "results/deception.json",
    "ladder": "results/plots/accuracy_ladder.png", "pgr_plot": "results/plots/pgr.png",
    "deception_plot": "results/plots/deception.png",
    "deception_settings_plot": "results/plots/deception_settings.png",
    "debate_plot": "results/plots/debate_rounds.png",
    "arms_table": "results/plots/arms_table.png",
    "headline": "results/plots/headline.png",
}

# The analysis outputs shown in `snakemake --report`: caption file (workflow/report/), category,
# label. The report's menu sorts categories by name, so "0. Headline" comes first: the README's
# figure (docs/img/headline.png).
REPORTED = {
    "headline": ("headline.rst", "0. Headline",
                 {"figure": "W2S gain and PGR (baseline students)"}),
    "csv": ("summary.rst", "1. Results", {"table": "summary (CSV)"}),
    "html": ("pgr_table.rst", "1. Results", {"table": "PGR table"}),
    "ladder": ("accuracy_ladder.rst", "2. Plots", {"figure": "accuracy ladder"}),
    "pgr_plot": ("pgr.rst", "2. Plots", {"figure": "PGR per arm"}),
    "deception_plot": ("deception.rst", "2. Plots", {"figure": "deception regions"}),
    "deception_settings_plot": ("deception_settings.rst", "2. Plots",
                                {"figure": "Deception Score per setting"}),
    "debate_plot": ("debate_rounds.rst", "2. Plots", {"figure": "debate rounds"}),
    "arms_table": ("arms_table.rst", "1. Results", {"table": "arms (Lang et al. layout)"}),
}

# What a feature file depends on of a `train` block (not lr or epochs: features are reused).
FEATURE_SETTINGS = ("layer", "max_length", "batch_size")
# The stages whose cache key depends on the job's model (models.<name>.layer).
MODEL_STAGES = ("weak_features", "strong_features", "weak", "strong")

# Folder names beside models' and arms' folders: no model or arm may take them.
RESERVED_MODEL_NAMES = ("data", "weak")


def path(name: str, **values) -> str:
    """The path ``PATHS[name]`` with its wildcards filled in."""
    return PATHS[name].format(**values)


# --- records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arm:
    """What the weak model reads (the item plus ``context``), learns from (``targets``), and how
    many weak models it averages (``members``; ``vary`` says what differs between them)."""

    name: str
    context: tuple[str, ...]
    targets: str
    members: int = 1
    vary: str = "seed"

    @property
    def signals(self) -> frozenset[str]:
        found = {PART_SIGNALS[part] for part in self.context}
        if self.targets == "strong_zero_shot":
            found.add("zero_shot")
        if self.targets == "judge":
            found.add("judge")
        if "judge" in found:
            found.add("debates")
        return frozenset(found)

    @property
    def transcripts(self) -> int:
        """Debate samples the arm reads: one per member with ``vary: transcript``, else one."""
        return self.members if self.vary == "transcript" else 1

    @property
    def shared(self) -> bool:
        """True when nothing the arm reads comes from the strong model."""
        return not self.signals

    @property
    def layout(self) -> str:
        return context_key(list(self.context))

    def spec(self) -> dict:
        return {"context": list(self.context), "targets": self.targets,
                "ensemble": {"members": self.members, "vary": self.vary}}


@dataclass(frozen=True)
class Cell:
    """One weak-to-strong comparison."""

    dataset: str
    seed: int
    weak: str
    strong: str
    intermediate: str | None = None

    def values(self) -> dict:
        return {"dataset": self.dataset, "seed": self.seed, "weak": self.weak, "strong": self.strong}


# --- validation ---------------------------------------------------------------------------------


def validate_config(config: dict, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """The config validated against the schema (defaults filled in), then checked against the
    registered datasets, the models, the arms and the templates. Raises ConfigError naming the
    key."""
    filled = validate_schema(config, schema_path)
    _check_datasets(filled)
    _check_models(filled)
    _check_conflict(filled)
    check_templates(filled)
    check_arms(filled)
    return filled


def _check_dataset_arms(config: dict, name: str, spec: dict) -> None:
    """A dataset's own arms and controls are among the study's; its arms include baseline."""
    for field in ("arms", "controls"):
        for index, value in enumerate(spec.get(field, [])):
            if value not in config["align"][field]:
                raise ConfigError(
                    f"config key 'datasets.{name}.{field}[{index}]': '{value}' is not in "
                    f"'align.{field}' ({', '.join(config['align'][field]) or 'empty'})")
    if "arms" in spec and "baseline" not in spec["arms"]:
        raise ConfigError(f"config key 'datasets.{name}.arms': 'baseline' must be listed; it is "
                          "the weak floor every PGR is measured from")


def _check_datasets(config: dict) -> None:
    local_only = ("test_path", "format", "text", "label", "pair", "question", "label_names")
    for name, spec in config["datasets"].items():
        key = f"datasets.{name}"
        _check_dataset_arms(config, name, spec)
        if "path" in spec:
            if "registry" in spec or "revision" in spec:
                raise ConfigError(
                    f"config key '{key}': 'registry' and 'revision' name hub datasets; a local "
                    "file ('path') takes neither"
                )
            if "pair" in spec and ("text" in spec or "label" in spec):
                raise ConfigError(
                    f"config key '{key}': 'pair' builds text and label itself; drop 'text'/'label'"
                )
            for file_key, file in local_files(spec).items():
                if not Path(file).is_file():
                    raise ConfigError(f"config key '{key}.{file_key}': file '{file}' does not exist")
            continue
        for field in local_only:
            if field in spec:
                raise ConfigError(f"config key '{key}.{field}' only applies to local files (add 'path')")
        registered = spec.get("registry", name)
        if registered not in DATASETS:
            raise ConfigError(
                f"config key '{key}': unknown dataset '{registered}'. Known datasets: "
                f"{', '.join(known_dataset_names())}; or give a local file with 'path'."
            )
        entry = DATASETS[registered]
        if "revision" in spec and not entry.needs_hub:
            raise ConfigError(
                f"config key '{key}.revision': dataset '{registered}' does not come from the hub"
            )
        if entry.needs_hub and config["offline"]:
            raise ConfigError(
                f"config key '{key}': dataset '{registered}' comes from the Hugging Face hub "
                f"('{entry.hub_id}'), but 'offline' is true, so nothing may be downloaded. "
                "Either set 'offline: false' on a machine with internet, or export the data to a "
                f"local file and use `{name}: {{path: data/{name}.jsonl}}`."
            )


def _check_models(config: dict) -> None:
    for name, spec in config["models"].items():
        if name in RESERVED_MODEL_NAMES:
            raise ConfigError(
                f"config key 'models.{name}': '{name}' is a reserved name (a results folder)"
            )
        check_model_spec(name, spec, config["offline"])
    for index, pair in enumerate(config["pairs"]):
        for role in ("weak", "strong"):
            if pair[role] not in config["models"]:
                raise ConfigError(
                    f"config key 'pairs[{index}].{role}': unknown model '{pair[role]}'; "
                    f"models defined under 'models': {', '.join(config['models'])}"
                )
    judge = config["debate"]["judge"].get("model")
    if judge is not None and judge != "weak" and judge not in config["models"]:
        raise ConfigError(
            f"config key 'debate.judge.model': unknown model '{judge}'; "
            f"models defined under 'models': {', '.join(config['models'])}, or 'weak'"
        )
    judges = ({pair["weak"] for pair in config["pairs"]} if judge == "weak"
              else {judge} if judge else set())
    for name in sorted(judges):
        if config["models"][name].get("packaged") in ENCODER_PACKAGES:
            raise ConfigError(
                f"config key 'debate.judge.model': the judge '{name}' is an encoder; a judge reads "
                "P(label) from the next-token logits of a causal LM (a weak judge needs a causal "
                "weak model, e.g. Qwen2.5-0.5B)"
            )


def scoring(spec: dict) -> str:
    """``pairwise`` for a local pair dataset scored pairwise, else ``pointwise``."""
    return (spec.get("pair") or {}).get("scoring", "pointwise")


def _check_conflict(config: dict) -> None:
    conflict = config["conflict"]
    if "none" not in conflict["settings"]:
        raise ConfigError(
            "config key 'conflict.settings': 'none' is required (the plain W2S students, which "
            "the other settings are compared with)"
        )
    if "implicit" in conflict["settings"]:
        implicit = conflict.get("implicit")
        if implicit is None:
            raise ConfigError(
                "config key 'conflict.implicit': the implicit setting needs the other objective's "
                "data, e.g. {path: data/helpful.jsonl, pair: {chosen: chosen, rejected: rejected, "
                "scoring: pairwise}, n_items: 400}"
            )
        if "pair" in implicit and ("text" in implicit or "label" in implicit):
            raise ConfigError("config key 'conflict.implicit': 'pair' builds text and label "
                              "itself; drop 'text'/'label'")
        for file_key, file in local_files(implicit).items():
            if not Path(file).is_file():
                raise ConfigError(
                    f"config key 'conflict.implicit.{file_key}': file '{file}' does not exist")
        for name, spec in config["datasets"].items():
            if scoring(spec) != scoring(implicit):
                raise ConfigError(
                    f"config key 'conflict.implicit.pair.scoring': {scoring(implicit)}, but dataset "
                    f"'{name}' is scored {scoring(spec)}; the mixed-in items must be scored alike"
                )
    for index, pair in enumerate(config["pairs"]):
        if "intermediate" in pair and pair["intermediate"] not in config["models"]:
            raise ConfigError(
                f"config key 'pairs[{index}].intermediate': unknown model '{pair['intermediate']}'; "
                f"models defined under 'models': {', '.join(config['models'])}"
            )
        if "intermediate_layer" in pair and "intermediate" not in pair:
            raise ConfigError(f"config key 'pairs[{index}].intermediate_layer' needs "
                              "'intermediate'")


def check_local_data(config: dict) -> None:
    """Read every local dataset file as the prep job will, so a truncated, non-UTF-8 or badly
    labelled file stops the run before any job starts, naming the key, the file and the row.

    Reads whole files: call it once per run (the Snakefile does, in its main process only), not
    from validate_config, which tests and every job's re-parse of the workflow also call.
    """
    for name, spec in config["datasets"].items():
        if "path" in spec:
            try:
                load_pools(name, spec, seed=0)
            except DatasetError as error:
                raise ConfigError(f"config key 'datasets.{name}': {error}") from None
    if "implicit" in config["conflict"]["settings"]:
        try:
            load_pools("conflict.implicit", config["conflict"]["implicit"], seed=0)
        except DatasetError as error:
            raise ConfigError(f"config key 'conflict.implicit': {error}") from None


# --- the study ----------------------------------------------------------------------------------


class Study:
    """What one validated config asks the workflow to compute."""

    def __init__(self, config: dict):
        self.config = config
        specs = all_arms(config)
        self.arms: dict[str, Arm] = {
            name: Arm(name, tuple(specs[name]["context"]), specs[name]["targets"],
                      specs[name]["ensemble"]["members"], specs[name]["ensemble"]["vary"])
            for name in config["align"]["arms"]
        }
        self.controls: list[str] = list(config["align"]["controls"])
        self.losses: list[str] = list(config["train"]["strong"]["losses"])
        self.cells = [
            Cell(dataset, seed, pair["weak"], pair["strong"], pair.get("intermediate"))
            for dataset in config["datasets"]
            for seed in config["seeds"]
            for pair in config["pairs"]
        ]
        self.conflicts: list[str] = list(config["conflict"]["settings"])

    # -- what is computed -------------------------------------------------------------------------

    def cell_arms(self, dataset: str) -> dict[str, Arm]:
        """The arms run on a dataset's cells: ``datasets.<name>.arms`` (a subset of align.arms,
        so a large baseline cell can sit beside a smaller one with the generating arms), else
        all of them."""
        names = self.config["datasets"][dataset].get("arms")
        return self.arms if names is None else {n: a for n, a in self.arms.items() if n in names}

    def cell_controls(self, dataset: str) -> list[str]:
        """The controls run on a dataset's cells: ``datasets.<name>.controls``, else
        align.controls."""
        return list(self.config["datasets"][dataset].get("controls", self.controls))

    def _signals(self, arms, controls) -> frozenset[str]:
        found = set().union(*(arm.signals for arm in arms))
        if controls:
            found.add("zero_shot")
        if self.config["debate"]["judge"]["enabled"] and found & set(JUDGED):
            found.add("judge")
        return frozenset(found)

    @property
    def signals(self) -> frozenset[str]:
        """The strong model's signals some selected arm or control reads; the judge also when
        ``debate.judge.enabled`` asks for its accuracy on the transcripts the study has."""
        return self._signals(self.arms.values(), self.controls)

    def cell_signals(self, dataset: str) -> frozenset[str]:
        """The signals a dataset's cells read (its arms and controls)."""
        return self._signals(self.cell_arms(dataset).values(), self.cell_controls(dataset))

    def judged(self, dataset: str | None = None) -> list[str]:
        """The transcript signals the judge reads: the debates an arm's judge reads, and with
        ``judge.enabled`` every transcript signal of the study (for its accuracy); of one
        dataset's cells when ``dataset`` is given."""
        signals = self.signals if dataset is None else self.cell_signals(dataset)
        if "judge" not in signals:
            return []
        if not self.config["debate"]["judge"]["enabled"]:
            return ["debates"]
        return [kind for kind in JUDGED if kind in signals]

    def judge_name(self, w: Mapping) -> str:
        """The judge's model name for a job's cell: the strong model unless ``debate.judge.model``
        names one, ``weak`` being the cell's weak model."""
        judge = self.config["debate"]["judge"].get("model")
        return {None: w["strong"], "weak": w.get("weak")}.get(judge, judge)

    def judge_names(self) -> list[str]:
        return list(dict.fromkeys(self.judge_name(cell.values()) for cell in self.cells))

    def feature_samples(self, layout: str) -> int:
        """Debate samples the features of a layout hold: the most any arm of that layout reads."""
        return max([arm.transcripts for arm in self.arms.values() if arm.layout == layout] or [1])

    def needs(self, signal: str) -> bool:
        if signal not in SIGNALS:
            raise ValueError(f"unknown signal '{signal}'; known: {SIGNALS}")
        return signal in self.signals

    def arm(self, name: str) -> Arm:
        return self.arms[name]

    def arm_names(self, shared: bool) -> list[str]:
        return [name for name, arm in self.arms.items() if arm.shared == shared]

    def layouts(self, shared: bool) -> list[str]:
        """The weak model's input layouts (e.g. ``item+debate``) of one scope: the item alone is
        shared by the strong models (whatever the arm learns from), a layout with context is not."""
        return list(dict.fromkeys(arm.layout for arm in self.arms.values()
                                  if (not arm.context) == shared))

    @staticmethod
    def layout_parts(layout: str) -> list[str]:
        """The context parts of a layout name: ``item+debate`` -> ``["debate"]``."""
        return parts_of(layout)

    # -- student settings: conflicts (Yang et al. 2024) and chains through an intermediate ------

    def pair_of(self, w: Mapping) -> dict:
        """The configured pair of a job's (weak, strong) wildcards."""
        for pair in self.config["pairs"]:
            if pair["weak"] == w["weak"] and pair["strong"] == w["strong"]:
                return pair
        raise ValueError(f"no pair ({w['weak']}, {w['strong']}) in the config")

    def intermediate_of(self, w: Mapping) -> str:
        return self.pair_of(w)["intermediate"]

    def cell_settings(self, cell: Cell) -> list[str]:
        """The student settings of a cell besides the plain students (``none``): each conflict,
        and with an intermediate model every conflict again through it
        (``<conflict>+via-<intermediate>``)."""
        direct = [c for c in self.conflicts if c != "none"]
        chained = ([chained_setting(c, cell.intermediate) for c in self.conflicts]
                   if cell.intermediate else [])
        return direct + chained

    def all_settings(self) -> list[str]:
        return list(dict.fromkeys(s for cell in self.cells for s in self.cell_settings(cell)))

    setting_conflict = staticmethod(setting_conflict)

    def conflict_spec(self, conflict: str) -> dict:
        """What train_strong needs of a conflict setting."""
        spec = {"setting": conflict}
        if conflict == "explicit":
            spec["reward_alpha"] = self.config["conflict"]["explicit"]["reward_alpha"]
        return spec

    def implicit_spec(self) -> dict:
        """conflict.implicit as a local dataset spec (without n_items)."""
        return {k: v for k, v in self.config["conflict"]["implicit"].items() if k != "n_items"}

    def implicit_files(self, w: Mapping) -> list[str]:
        return list(local_files(self.implicit_spec()).values())

    def strong_splits(self, w: Mapping, conflict: str = "none") -> dict[str, str]:
        """The splits a strong-model job reads: w2s_train and test, and the implicit setting's
        other-objective items (``conflict`` is the job's setting; ``any`` for feature jobs)."""
        files = self.splits(w, ("w2s_train", "test"))
        if "implicit" in self.conflicts and conflict in ("implicit", "any"):
            files["conflict"] = path("conflict_items", dataset=w["dataset"], seed=w["seed"])
        return files

    def intermediate_train(self, w: Mapping) -> dict:
        """train.strong with the block the pair's intermediate reads: ``intermediate_layer``,
        else the intermediate model's own ``layer``, else train.strong.layer."""
        pair = self.pair_of(w)
        train = self.train_for("strong", pair["intermediate"])
        train["layer"] = pair.get("intermediate_layer", train["layer"])
        return train

    def intermediate_feature_settings(self, w: Mapping) -> dict:
        """The intermediate's features' cache key, as ``settings("strong_features")``."""
        train = self.intermediate_train(w)
        return {key: train[key] for key in FEATURE_SETTINGS}

    def models(self, role: str | None = None) -> list[str]:
        return model_names(self.config, role)

    @property
    def datasets(self) -> list[str]:
        return list(self.config["datasets"])

    @property
    def seeds(self) -> list[int]:
        return list(self.config["seeds"])

    def bigbench_tasks(self) -> list[str]:
        return sorted({entry.name for entry in map(self.registered, self.datasets)
                       if entry is not None and entry.bigbench_task})

    @staticmethod
    def bigbench_folder(task: str) -> str:
        """The folder under bigbench/benchmark_tasks/ of a registered BIG-bench dataset."""
        return DATASETS[task].bigbench_task

    def registered(self, dataset: str):
        """A dataset's registry entry (None for local files)."""
        spec = self.config["datasets"][dataset]
        return None if "path" in spec else DATASETS[spec.get("registry", dataset)]

    def dataset_source(self, dataset: str) -> str:
        """Where a dataset's items come from, for the prep job's message: a local file, a BIG-bench
        task, or a hub repository at its pinned commit."""
        spec = self.config["datasets"][dataset]
        entry = self.registered(dataset)
        if entry is None:
            return "local " + ", ".join(local_files(spec).values())
        if entry.bigbench_task:
            return f"BIG-bench task {entry.bigbench_task}"
        return f"hub {entry.hub_id}@{hub_revision(dataset, spec) or 'main (unpinned)'}"

    def split_sizes(self, dataset: str) -> dict[str, int]:
        return split_sizes(self.config, dataset)

    # -- cache keys: the config subset each stage's outputs depend on ----------------------------

    def settings(self, stage: str, w: Mapping | None = None) -> dict:
        """The cache key of ``stage``; a training or feature stage's depends on the job's model
        (``w``, its wildcards: the block it is read at)."""
        c = self.config
        if stage == "explain":
            return {k: v for k, v in c["explain"].items() if k != "zero_shot_template"}
        if stage == "zero_shot":
            return {"template": c["explain"]["zero_shot_template"]}
        if stage == "debate_round":  # not n_rounds: adding a round reruns nothing
            return {k: v for k, v in c["debate"].items()
                    if k not in ("n_rounds", "judge", "drift_sample", "drift_template")}
        if stage == "debate":
            return {k: v for k, v in c["debate"].items() if k != "judge"}
        if stage in ("consultancy_round", "consultancy"):  # one speaker per round, no opponent
            base = self.settings(stage.replace("consultancy", "debate"))
            return {**base, "protocol": "consultancy", "n_debaters": 1}
        if stage == "judge":
            return {"template": c["debate"]["judge"]["template"]}
        if stage in MODEL_STAGES:
            role = stage.split("_")[0]
            train = self.train_for(role, w[role]) if w is not None else dict(c["train"][role])
            # features: not lr or epochs
            return {key: train[key] for key in FEATURE_SETTINGS} if stage != role else train
        raise ValueError(f"no settings for stage '{stage}'")

    # -- targets ---------------------------------------------------------------------------------

    def analysis_outputs(self) -> dict[str, str]:
        outputs = dict(ANALYSIS_OUTPUTS)
        if not self.needs("debates"):
            del outputs["debate_plot"]
        if not self.all_settings():
            del outputs["deception_settings_plot"]
        return outputs

    def targets(self) -> list[str]:
        """What `rule all` asks for: the analysis outputs and every cell's table."""
        tables = [path("cell_table_md", **cell.values()) for cell in self.cells]
        return [*self.analysis_outputs().values(), *tables]

    # -- inputs, by name, from a job's wildcards ------------------------------------------------

    def splits(self, w: Mapping, names=SPLITS) -> dict[str, str]:
        return {name: path(name, dataset=w["dataset"], seed=w["seed"]) for name in names}

    # -- models: weights and the block each is read at -------------------------------------------

    def weights_spec(self, model: str) -> dict:
        """Where a model's weights come from: its config entry without ``layer``."""
        return {k: v for k, v in self.config["models"][model].items() if k != "layer"}

    def weights_name(self, model: str) -> str:
        """The model whose prepared folder holds ``model``'s weights: the first one in config
        order with the same weights, so the rungs of a capacity ladder share one copy."""
        spec = self.weights_spec(model)
        return next(name for name in self.config["models"] if self.weights_spec(name) == spec)

    def train_for(self, role: str, model: str) -> dict:
        """``train.<role>`` with the block ``models.<model>.layer`` names, when it names one."""
        train = dict(self.config["train"][role])
        layer = self.config["models"][model].get("layer")
        if layer is not None:
            train["layer"] = layer
        return train

    def model_dir(self, model: str) -> str:
        return path("model_dir", model=self.weights_name(model))

    def model_manifest(self, model: str) -> str:
        return path("model", model=self.weights_name(model))

    def prep_inputs(self, w: Mapping) -> dict[str, str]:
        """A prep job reads its local files, or the BIG-bench task file a download job writes."""
        spec = self.config["datasets"][w["dataset"]]
        if "path" in spec:
            return local_files(spec)
        entry = self.registered(w["dataset"])
        return {"bigbench": path("bigbench", bigbench_task=entry.name)} if entry.bigbench_task else {}

    def strong_stage_inputs(self, w: Mapping) -> dict[str, str]:
        """The splits, the dataset manifest and the prepared strong model; the cell's prefix
        store when its stages share one (``uses_prefix_store``)."""
        files = {**self.splits(w), "manifest": path("manifest", dataset=w["dataset"], seed=w["seed"]),
                 "model": self.model_manifest(w["strong"])}
        if self.uses_prefix_store(w["dataset"]):
            files["prefix_store"] = path("prefix_store", **_strong(w))
        return files

    def item_prefix_inputs(self, w: Mapping) -> dict[str, str]:
        """What the item_prefixes job reads: the stage inputs, less the store it writes."""
        files = self.strong_stage_inputs(w)
        files.pop("prefix_store", None)
        return files

    def prefix_templates(self, dataset: str) -> dict[str, str]:
        """The templates of the strong-model stages of a dataset's cells that read the prefix
        store: explain, zero-shot, the debate (and consultancy) turns, side drift."""
        c, signals = self.config, self.cell_signals(dataset)
        templates = {}
        if "explanations" in signals:
            templates["explain"] = c["explain"]["template"]
        if "zero_shot" in signals:
            templates["zero_shot"] = c["explain"]["zero_shot_template"]
        if signals & {"debates", "consultancy"}:
            # every template a debate can use, whatever n_rounds and drift_sample are: the
            # store, and so the key of every chunk that reads it, stays the same when a round
            # is added, and the rounds already run are reused
            templates["opening"] = c["debate"]["opening_template"]
            templates["rebuttal"] = c["debate"]["rebuttal_template"]
            templates["drift"] = c["debate"]["drift_template"]
        return templates

    def uses_prefix_store(self, dataset: str) -> bool:
        """Whether a dataset's cells build a prefix store: ``generation.reuse_prefixes`` with the
        hf backend and shared prefixes, and two or more templates to share it."""
        generation = self.config["generation"]
        return bool(generation["reuse_prefixes"] and generation["share_prefixes"]
                    and generation["backend"] == "hf" and len(self.prefix_templates(dataset)) > 1)

    def explain_shards(self, w: Mapping) -> list[str]:
        return [path("explain_shard", **_strong(w), shard=shard)
                for shard in range(self.config["explain"]["n_shards"])]

    def round_inputs(self, kind: str):
        """The input function of a debate (``debates``) or consultancy round job: its stage
        inputs and, after round 1, the shard's previous round."""
        template = ROUNDS[kind]

        def inputs(w: Mapping) -> dict[str, str]:
            files = self.strong_stage_inputs(w)
            if int(w["round"]) > 1:
                files["previous"] = path(template, **_strong(w), round=int(w["round"]) - 1,
                                         shard=w["shard"])
            return files

        return inputs

    def gather_inputs(self, kind: str):
        """The input function of a debate or consultancy gather job: the last round's shards."""
        template = ROUNDS[kind]
        debate = self.config["debate"]

        def inputs(w: Mapping) -> dict:
            files = self.strong_stage_inputs(w)
            files["shards"] = [path(template, **_strong(w), round=debate["n_rounds"], shard=shard)
                               for shard in range(debate["n_shards"])]
            return files

        return inputs

    def judge_inputs(self, w: Mapping) -> dict[str, str]:
        return {**self.splits(w), "manifest": path("manifest", dataset=w["dataset"], seed=w["seed"]),
                "transcripts": path(w["kind"], **_strong(w)),
                "model": self.model_manifest(w["judge"])}

    def signal_files(self, w: Mapping, signals) -> dict[str, str]:
        """The files of the strong model's signals ``signals`` for the job's cell; the judge's is
        its verdicts on the debates."""
        files = {signal: path(signal, **_strong(w)) for signal in SIGNALS
                 if signal in signals and signal != "judge"}
        if "judge" in signals:
            files["judge"] = path("judge", **_strong(w), judge=self.judge_name(w), kind="debates")
        return files

    def weak_feature_path(self, w: Mapping, arm: Arm) -> str:
        """Features depend on the layout only: the item alone is shared, whatever the targets."""
        values = {"dataset": w["dataset"], "seed": w["seed"], "weak": w["weak"]}
        if arm.context:
            return path("weak_features_strong", **values, strong=w["strong"], context=arm.layout)
        return path("weak_features_shared", **values, context=arm.layout)

    def weak_output(self, w: Mapping, arm_name: str, name: str) -> str:
        """One of a weak arm's outputs (soft_labels, test_predictions, metrics) for a job in the
        cell ``w`` names."""
        arm = self.arms[arm_name]
        scope = "shared" if arm.shared else "strong"
        return path(f"weak_{name}_{scope}", **_weak(w, arm), arm=arm_name)

    def weak_feature_inputs(self, w: Mapping) -> dict[str, str]:
        files = {**self.splits(w), "model": self.model_manifest(w["weak"])}
        files.update(self.signal_files(w, {PART_SIGNALS[p] for p in parts_of(w["context"])}))
        return files

    def train_weak_inputs(self, w: Mapping) -> dict[str, str]:
        arm = self.arms[w["arm"]]
        files = {**self.splits(w), "model": self.model_manifest(w["weak"])}
        if self.config["train"]["weak"]["mode"] == "probe":
            files["features"] = self.weak_feature_path(w, arm)
            targets = {"strong_zero_shot": {"zero_shot"}, "judge": {"judge"}}.get(arm.targets, set())
            files.update(self.signal_files(w, targets))
        else:
            files.update(self.signal_files(w, {PART_SIGNALS[p] for p in arm.context}
                                           | (arm.signals & {"zero_shot", "judge"})))
        return files

    def strong_feature_inputs(self, w: Mapping) -> dict[str, str]:
        return {**self.strong_splits(w, "any"), "model": self.model_manifest(w["strong"])}

    def intermediate_feature_inputs(self, w: Mapping) -> dict[str, str]:
        return {**self.strong_splits(w, "any"),
                "model": self.model_manifest(self.intermediate_of(w))}

    def setting_student_inputs(self, w: Mapping) -> dict[str, str]:
        """A student of another setting: its conflict's splits, and the weak arm's soft labels,
        or (through an intermediate) the intermediate's labels in the same conflict."""
        conflict = setting_conflict(w["setting"])
        files = {**self.train_strong_inputs(w), **self.strong_splits(w, conflict)}
        if VIA in w["setting"]:
            files["soft_labels"] = path("intermediate_labels", **_strong(w), weak=w["weak"],
                                        arm=w["arm"], loss=w["loss"], conflict=conflict)
        return files

    def intermediate_inputs(self, w: Mapping) -> dict[str, str]:
        """The intermediate of a chain learns the weak arm's soft labels."""
        files = {**self.strong_splits(w, w["conflict"]),
                 "model": self.model_manifest(self.intermediate_of(w)),
                 "soft_labels": self.weak_output(w, w["arm"], "soft_labels")}
        if self.config["train"]["strong"]["mode"] == "probe":
            files["features"] = path("intermediate_features", **_strong(w), weak=w["weak"])
        return files

    def train_strong_inputs(self, w: Mapping) -> dict[str, str]:
        files = {**self.splits(w, ("w2s_train", "test")), "model": self.model_manifest(w["strong"])}
        if self.config["train"]["strong"]["mode"] == "probe":
            files["features"] = path("strong_features", **_strong(w))
        if "arm" in _named(w):
            files["soft_labels"] = self.weak_output(w, w["arm"], "soft_labels")
        return files

    def self_distill_inputs(self, w: Mapping) -> dict[str, str]:
        """The self-distillation control learns the strong model's zero-shot P(label 1)."""
        return {**self.train_strong_inputs(w), "soft_labels": path("zero_shot", **_strong(w))}

    def cell_files(self, w: Mapping) -> dict:
        """One cell's files by role: the ceiling, each arm's weak model and each arm × loss
        student. ``kind`` is ``metrics`` (the per-cell table) or ``test_predictions``."""
        arms = self.cell_arms(w["dataset"])

        def students(kind: str) -> dict:
            return {arm: {loss: path(f"student_{kind}", **_strong(w), weak=w["weak"], arm=arm,
                                     loss=loss) for loss in self.losses} for arm in arms}

        def controls(kind: str) -> dict:
            return ({"self_distill": {loss: path(f"self_distill_{kind}", **_strong(w), loss=loss)
                                      for loss in self.losses}}
                    if "self_distill" in self.cell_controls(w["dataset"]) else {})

        files = {kind: {"ceiling": path(f"ceiling_{kind}", **_strong(w)),
                        "weak": {arm: self.weak_output(w, arm, kind) for arm in arms},
                        "students": students(kind), "controls": controls(kind)}
                 for kind in ("metrics", "test_predictions")}
        # the students' w2s_train predictions (their misfit), read by the analysis
        files["train_predictions"] = {"students": students("train_predictions"),
                                      "controls": controls("train_predictions")}
        return files

    def analysis_cells(self) -> list[dict]:
        """Every cell's test predictions by role (and its debate stats, when debates exist), and
        each student's w2s_train predictions (for its misfit)."""
        cells = []
        for cell in self.cells:
            files = self.cell_files(cell.values())
            values = cell.values()
            arms = self.cell_arms(cell.dataset)
            signals = self.cell_signals(cell.dataset)
            settings = {setting: {kind: {arm: {loss: path(f"setting_{kind}", **_strong(values),
                                                          weak=cell.weak, arm=arm, loss=loss,
                                                          setting=setting)
                                               for loss in self.losses} for arm in arms}
                                  for kind in ("test_predictions", "train_predictions")}
                        for setting in self.cell_settings(cell)}
            entry = {**values, "ceiling_predictions": files["test_predictions"]["ceiling"],
                     "weak_predictions": files["test_predictions"]["weak"],
                     "student_predictions": files["test_predictions"]["students"],
                     "control_predictions": files["test_predictions"]["controls"],
                     "student_train_predictions": files["train_predictions"]["students"],
                     "control_train_predictions": files["train_predictions"]["controls"],
                     "zero_shot": (path("zero_shot", **_strong(values))
                                   if "strong_zero_shot" in self.cell_controls(cell.dataset)
                                   else None),
                     "judge": {kind: path("judge", **_strong(values), judge=self.judge_name(values),
                                          kind=kind) for kind in self.judged(cell.dataset)},
                     "arms": {name: arm.spec() for name, arm in arms.items()},
                     "setting_predictions": {setting: kinds["test_predictions"]
                                             for setting, kinds in settings.items()},
                     "setting_train_predictions": {setting: kinds["train_predictions"]
                                                   for setting, kinds in settings.items()}}
            if "debates" in signals:
                entry["debate_stats"] = path("debate_stats", **_strong(values))
            cells.append(entry)
        return cells

    def analysis_files(self) -> list[str]:
        return [file for cell in self.analysis_cells()
                for file in flat_files({k: v for k, v in cell.items()
                                        if k not in CELL_KEYS and k != "arms" and v is not None})]


CELL_KEYS = ("dataset", "seed", "weak", "strong")


def flat_files(files) -> list[str]:
    """Every path in a nested dict/list of paths, in order."""
    if isinstance(files, str):
        return [files]
    values = files.values() if isinstance(files, dict) else files
    return [leaf for value in values for leaf in flat_files(value)]


def _named(w: Mapping) -> dict:
    """Wildcards (or a dict) as a dict: ``in`` on Snakemake's Wildcards tests values, not names."""
    return dict(w.items())


def _strong(w: Mapping) -> dict:
    return {"dataset": w["dataset"], "seed": w["seed"], "strong": w["strong"]}


def _weak(w: Mapping, arm: Arm) -> dict:
    values = {"dataset": w["dataset"], "seed": w["seed"], "weak": w["weak"]}
    if not arm.shared:
        values["strong"] = w["strong"]
    return values
