"""Registered datasets by name, after EleutherAI/w2s's ``ds_registry``.

Burns et al.'s five binary tasks come from the Hugging Face hub and are formatted the way
openai/weak-to-strong's ``datasets.py`` describes them (see METHOD.md). BIG-bench tasks come from
the ``bigbench`` sdist on PyPI, so the default study runs on a machine with no hub access.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .splits import LABEL_CONFLICTS

# A formatter turns one raw row into (text, label), or None to skip the row.
Formatter = Callable[[dict, np.random.Generator], Optional[tuple[str, int]]]


@dataclass(frozen=True)
class RegisteredDataset:
    name: str
    description: str
    label_names: tuple[str, str]  # words for label 0 and label 1
    question: str  # what the binary label answers, used by the prompt templates
    hub_id: str | None = None
    hub_config: str | None = None
    # The hub repository's commit loaded by default (a config's `revision` overrides it). Each is
    # a commit found pinned in public code, never invented; see the table in docs/data.md.
    hub_revision: str | None = None
    train_split: str = "train"
    test_split: str | None = None  # a native held-out split the test items are drawn from
    formatter: Formatter | None = None
    bigbench_task: str | None = None  # folder under bigbench/benchmark_tasks/
    bigbench_positive: str | None = None  # the target_scores key that means label 1
    # What prep does with a text seen under both labels (a config's `label_conflicts` overrides
    # it): "error", or "drop" for a task whose source file is known to hold such texts.
    label_conflicts: str = "error"

    @property
    def needs_hub(self) -> bool:
        return self.hub_id is not None


DATASETS: dict[str, RegisteredDataset] = {}


def register_dataset(entry: RegisteredDataset) -> RegisteredDataset:
    if entry.name in DATASETS:
        raise ValueError(f"dataset {entry.name!r} is already registered")
    if entry.label_conflicts not in LABEL_CONFLICTS:
        raise ValueError(
            f"dataset {entry.name!r}: label_conflicts must be one of {LABEL_CONFLICTS}")
    DATASETS[entry.name] = entry
    return entry


def known_dataset_names() -> list[str]:
    return sorted(DATASETS)


# --- Burns et al.'s hub datasets -------------------------------------------------------------


def format_sciq(row: dict, rng: np.random.Generator):
    label = int(rng.random() < 0.5)
    if label:
        answer = row["correct_answer"]
    else:
        answer = [row["distractor1"], row["distractor2"], row["distractor3"]][rng.integers(3)]
    return f"Q: {row['question']} A: {answer}", label


def format_boolq(row: dict, rng: np.random.Generator):
    return f"Passage: {row['passage']}\nQuestion: {row['question']}", int(bool(row["answer"]))


def format_anthropic_hh(row: dict, rng: np.random.Generator):
    label = int(rng.random() < 0.5)
    return (row["chosen"] if label else row["rejected"]), label


def format_cosmos_qa(row: dict, rng: np.random.Generator):
    answers = [row[f"answer{i}"] for i in range(4)]
    correct = answers[int(row["label"])]
    if "None of the above choices" in correct:
        # The "correct" answer is a catch-all, so any shown answer is a wrong one.
        label = 0
    else:
        label = int(rng.random() < 0.5)
    if label:
        shown = correct
    else:
        others = [answer for answer in answers if answer != correct]
        shown = others[rng.integers(len(others))]
    return f"Context: {row['context']}\nQuestion: {row['question']}\nAnswer: {shown}", label


def format_amazon_polarity(row: dict, rng: np.random.Generator):
    return f"{row['title']} {row['content']}", int(row["label"])


register_dataset(
    RegisteredDataset(
        name="sciq",
        description="SciQ science questions with the correct answer or a distractor",
        label_names=("no", "yes"),
        question="Is the answer to the question correct?",
        hub_id="allenai/sciq",
        hub_revision="2c94ad3e1aafab77146f384e23536f97a4849815",
        test_split="test",
        formatter=format_sciq,
    )
)
register_dataset(
    RegisteredDataset(
        name="boolq",
        description="BoolQ yes/no questions about a passage",
        label_names=("no", "yes"),
        question="Is the answer to the question yes?",
        hub_id="google/boolq",
        hub_revision="35b264d03638db9f4ce671b711558bf7ff0f80d5",
        test_split="validation",
        formatter=format_boolq,
    )
)
register_dataset(
    RegisteredDataset(
        name="anthropic_hh",
        description="Anthropic HH-RLHF dialogues, the chosen or the rejected reply",
        label_names=("no", "yes"),
        question="Is this the preferred (helpful and harmless) reply?",
        hub_id="Anthropic/hh-rlhf",
        hub_revision="09be8c5bbc57cb3887f3a9732ad6aa7ec602a1fa",
        test_split="test",
        formatter=format_anthropic_hh,
    )
)
register_dataset(
    RegisteredDataset(
        name="cosmos_qa",
        description="Cosmos QA commonsense reading comprehension with one shown answer",
        label_names=("no", "yes"),
        question="Is the answer correct?",
        hub_id="allenai/cosmos_qa",
        # main holds only a loading script, which `datasets` no longer runs: this is the commit of
        # the hub's parquet conversion (refs/convert/parquet) of main 28d9d5e2aae0.
        hub_revision="ed50fe83db62b355759053b1cd5eef344ee371e0",
        test_split="validation",
        formatter=format_cosmos_qa,
    )
)
register_dataset(
    RegisteredDataset(
        name="amazon_polarity",
        description="Amazon review sentiment",
        label_names=("negative", "positive"),
        question="Is the review positive?",
        hub_id="fancyzhx/amazon_polarity",
        hub_revision="9d9c45c18f8c3cf1b23a3c27917b60cbf28f3289",
        test_split="test",
        formatter=format_amazon_polarity,
    )
)

# --- BIG-bench binary tasks, offline from the PyPI sdist --------------------------------------

register_dataset(
    RegisteredDataset(
        name="epistemic_reasoning",
        description="BIG-bench epistemic_reasoning: does the premise entail the hypothesis?",
        label_names=("non-entailment", "entailment"),
        question="Does the premise entail the hypothesis?",
        bigbench_task="epistemic_reasoning",
        bigbench_positive="entailment",
    )
)
register_dataset(
    RegisteredDataset(
        name="strategyqa",
        description="BIG-bench strategyqa: yes/no questions needing implicit reasoning",
        label_names=("no", "yes"),
        question="Is the answer to the question yes?",
        bigbench_task="strategyqa",
        bigbench_positive="Yes",
    )
)
register_dataset(
    RegisteredDataset(
        name="fever",
        description="BIG-bench fact_checker/fever: is the Wikipedia-based claim true?",
        label_names=("false", "true"),
        question="Is the claim true?",
        bigbench_task="fact_checker/fever",
        bigbench_positive="true",
        label_conflicts="drop",  # 1 claim of 6612 rows is both true and false
    )
)
register_dataset(
    RegisteredDataset(
        name="sports_understanding",
        description="BIG-bench sports_understanding: is the sports sentence plausible?",
        label_names=("implausible", "plausible"),
        question="Is the statement plausible?",
        bigbench_task="sports_understanding",
        bigbench_positive="plausible",
    )
)
register_dataset(
    RegisteredDataset(
        name="winowhy",
        description="BIG-bench winowhy: is the reasoning about a Winograd pronoun correct?",
        label_names=("incorrect", "correct"),
        question="Is the explanation of what the pronoun refers to correct?",
        bigbench_task="winowhy",
        bigbench_positive="correct",
        label_conflicts="drop",  # 3 explanations of 2865 rows are both correct and incorrect
    )
)
register_dataset(
    RegisteredDataset(
        name="hyperbaton",
        description="BIG-bench hyperbaton: which of two sentences has the correct adjective order?",
        # A yes/no question rather than the labels "a"/"b": "a" is also the article, which would
        # blur the label words' logits.
        label_names=("no", "yes"),
        question="Does sentence a have the correct adjective order?",
        bigbench_task="hyperbaton",
        bigbench_positive="a",
    )
)
register_dataset(
    RegisteredDataset(
        name="formal_fallacies_syllogisms_negation",
        description="BIG-bench formal_fallacies_syllogisms_negation: valid argument or fallacy?",
        label_names=("invalid", "valid"),
        question="Is the argument, given the explicitly stated premises, deductively valid or "
                 "invalid?",
        bigbench_task="formal_fallacies_syllogisms_negation",
        bigbench_positive="valid",
    )
)
register_dataset(
    RegisteredDataset(
        name="play_dialog_same_or_different",
        description="BIG-bench play_dialog_same_or_different: did one Shakespeare character speak "
                    "both lines?",
        label_names=("different", "same"),
        question="Were the two lines spoken by the same person or by different people?",
        bigbench_task="play_dialog_same_or_different",
        bigbench_positive="same",
    )
)
register_dataset(
    RegisteredDataset(
        name="metaphor_boolean",
        description="BIG-bench metaphor_boolean: does the second sentence paraphrase the metaphor?",
        label_names=("no", "yes"),
        question="Is the second sentence a correct paraphrase of the metaphoric first sentence?",
        bigbench_task="metaphor_boolean",
        bigbench_positive="True",
    )
)
register_dataset(
    RegisteredDataset(
        name="valid_parentheses",
        description="BIG-bench cs_algorithms/valid_parentheses: is the bracket sequence matched?",
        label_names=("invalid", "valid"),
        question="Is the sequence of parentheses valid (every bracket properly matched and "
                 "nested)?",
        bigbench_task="cs_algorithms/valid_parentheses",
        bigbench_positive="Valid",
    )
)
