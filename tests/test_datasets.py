"""Dataset sources: Burns et al.'s formatters, BIG-bench, local files, and their bad inputs."""

import csv
import gzip
import hashlib
import io
import json
import tarfile

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, balanced_rows, write_jsonl
from w2s_eda.data import bigbench, local
from w2s_eda.data.registry import DATASETS
from w2s_eda.errors import DatasetError

SCIQ_ROW = {
    "question": "What gas do plants absorb?",
    "correct_answer": "carbon dioxide",
    "distractor1": "oxygen",
    "distractor2": "helium",
    "distractor3": "neon",
}


def format_many(name, row, n=200, seed=0):
    rng = np.random.default_rng(seed)
    return [DATASETS[name].formatter(row, rng) for _ in range(n)]


def test_sciq_shows_the_correct_answer_exactly_when_label_is_1():
    outputs = format_many("sciq", SCIQ_ROW)
    for text, label in outputs:
        assert text.startswith("Q: What gas do plants absorb? A: ")
        answer = text.split(" A: ", 1)[1]
        assert (answer == "carbon dioxide") == (label == 1)
        assert answer in {"carbon dioxide", "oxygen", "helium", "neon"}
    share = np.mean([label for _, label in outputs])
    assert 0.4 < share < 0.6  # a seeded 50/50 choice
    assert outputs == format_many("sciq", SCIQ_ROW)  # and deterministic


def test_boolq_uses_the_answer_as_label():
    row = {"passage": "Water boils at 100 C at sea level.", "question": "does water boil at 100 c", "answer": True}
    text, label = DATASETS["boolq"].formatter(row, np.random.default_rng(0))
    assert text == "Passage: Water boils at 100 C at sea level.\nQuestion: does water boil at 100 c"
    assert label == 1
    assert DATASETS["boolq"].test_split == "validation"


def test_anthropic_hh_labels_the_chosen_reply_1():
    row = {"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: go away"}
    for text, label in format_many("anthropic_hh", row, n=50):
        assert text == (row["chosen"] if label else row["rejected"])


def test_cosmos_qa_shows_correct_or_another_answer():
    row = {"context": "Sam left early.", "question": "Why?", "label": 2,
           "answer0": "He was bored.", "answer1": "It rained.", "answer2": "He was ill.", "answer3": "No idea."}
    for text, label in format_many("cosmos_qa", row, n=50):
        assert text.startswith("Context: Sam left early.\nQuestion: Why?\nAnswer: ")
        assert (text.endswith("He was ill.")) == (label == 1)
    assert DATASETS["cosmos_qa"].test_split == "validation"


def test_cosmos_qa_none_of_the_above_is_always_label_0():
    row = {"context": "c", "question": "q", "label": 0,
           "answer0": "None of the above choices .", "answer1": "a", "answer2": "b", "answer3": "d"}
    for text, label in format_many("cosmos_qa", row, n=20):
        assert label == 0 and "None of the above" not in text


def test_amazon_polarity_joins_title_and_content():
    row = {"title": "Great kettle", "content": "Boils fast.", "label": 1}
    assert DATASETS["amazon_polarity"].formatter(row, np.random.default_rng(0)) == (
        "Great kettle Boils fast.", 1)


# --- BIG-bench -------------------------------------------------------------------------------

TASK = {
    "name": "epistemic_reasoning",
    "examples": [
        {"input": "Premise: A. Hypothesis: B.", "target_scores": {"entailment": 1, "non-entailment": 0}},
        {"input": "Premise: C. Hypothesis: D.", "target_scores": {"entailment": 0, "non-entailment": 1}},
    ],
}


def make_sdist(path, tasks):
    with tarfile.open(path, "w:gz") as archive:
        for folder, task in tasks.items():
            payload = json.dumps(task).encode()
            info = tarfile.TarInfo(f"bigbench-1.0.0/bigbench/benchmark_tasks/{folder}/task.json")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return hashlib.sha256(path.read_bytes()).hexdigest()


# Every registered BIG-bench task: its folder in the sdist, and examples from its task.json (both
# labels, scored as the real file scores them) with the label each must get.
BIGBENCH_EXAMPLES = {
    "epistemic_reasoning": ("epistemic_reasoning", [
        (TASK["examples"][0]["input"], TASK["examples"][0]["target_scores"], 1),
        (TASK["examples"][1]["input"], TASK["examples"][1]["target_scores"], 0),
    ]),
    "strategyqa": ("strategyqa", [
        ("Is Cholera alive?", {"Yes": 1, "No": 0}, 1),
        ("Can you chew argon?", {"Yes": 0, "No": 1}, 0),
    ]),
    "fever": ("fact_checker/fever", [
        ("On June 2017, the following claim was made: Bala directed.\nQ: Was this claim true or "
         "false?", {"true": 1, "false": 0}, 1),
        ("On June 2017, the following claim was made: MS-13 is kind.\nQ: Was this claim true or "
         "false?", {"true": 0, "false": 1}, 0),
    ]),
    "sports_understanding": ("sports_understanding", [
        ("Hulk got on base", {"plausible": 0, "implausible": 1}, 0),
        ("Xavi took a throw in", {"plausible": 1, "implausible": 0}, 1),
    ]),
    "winowhy": ("winowhy", [
        ("The man lifted the boy onto his bunk bed. The 'his' refers to the boy because he is a "
         "boy.", {"correct": 0, "incorrect": 1}, 0),
        ("Jim yelled at Kevin because he was so upset. The 'he' refers to jim because Jim is the "
         "yeller.", {"correct": 1, "incorrect": 0}, 1),
    ]),
    "hyperbaton": ("hyperbaton", [
        ('Which sentence has the correct adjective order: a " old tan car " b " tan old car " ?',
         {"a": 1, "b": 0}, 1),
        ('Which sentence has the correct adjective order: a " new big cat " b " big new cat " ?',
         {"a": 0, "b": 1}, 0),
    ]),
    "formal_fallacies_syllogisms_negation": ("formal_fallacies_syllogisms_negation", [
        ('"Here comes a perfectly valid argument: First, every stepbrother of Joan is a schoolmate '
         'of Reyes. Hence, every schoolmate of Reyes is a stepbrother of Joan."\n Is the argument, '
         "given the explicitly stated premises, deductively valid or invalid?",
         {"valid": 0, "invalid": 1}, 0),
        ('"Here comes a perfectly valid argument: First, whoever is a close friend of Nicole is '
         'not a sister of Dovie. Hence, no sister of Dovie is a close friend of Nicole."\n Is the '
         "argument, given the explicitly stated premises, deductively valid or invalid?",
         {"valid": 1, "invalid": 0}, 1),
    ]),
    "play_dialog_same_or_different": ("play_dialog_same_or_different", [
        ('Escalus. My lord.\nIn the preceding dialogue, were the lines "My lord." and "Escalus." '
         "spoken by the same person or different people?", {"same": 0, "different": 1}, 0),
        ('Stand farther. Come, proceed.\nIn the preceding dialogue, were the lines "Stand '
         'farther." and "Come, proceed." spoken by the same person or different people?',
         {"same": 1, "different": 0}, 1),
    ]),
    "metaphor_boolean": ("metaphor_boolean", [  # float scores, as in the real file
        ("Time flies <-->  time is slow", {"True": 0.0, "False": 1.0}, 0),
        ("Time flies <-->  time passes very fast", {"True": 1.0, "False": 0.0}, 1),
    ]),
    "valid_parentheses": ("cs_algorithms/valid_parentheses", [
        ("[ (", {"Valid": 0, "Invalid": 1}, 0),
        ("{ }", {"Valid": 1, "Invalid": 0}, 1),
    ]),
}


def test_every_registered_bigbench_task_has_examples_below():
    assert set(BIGBENCH_EXAMPLES) == {name for name, e in DATASETS.items() if e.bigbench_task}


@pytest.mark.parametrize("name", sorted(BIGBENCH_EXAMPLES))
def test_bigbench_task_becomes_binary_items(tmp_path, name):
    """Extracted from its folder and labelled by its positive key, as the registry entry says."""
    folder, examples = BIGBENCH_EXAMPLES[name]
    task = {"name": folder.split("/")[-1],
            "examples": [{"input": text, "target_scores": scores} for text, scores, _ in examples]}
    sdist = tmp_path / "bigbench-1.0.0.tar.gz"
    sha = make_sdist(sdist, {folder: task})
    entry, out = DATASETS[name], tmp_path / f"{name}.json"
    bigbench.fetch_tasks({entry.bigbench_task: out}, url=sdist.as_uri(), sha256=sha)
    items = bigbench.load_task(out, entry.bigbench_positive)
    assert [(item.text, item.label, item.row) for item in items] == [
        (text, label, row) for row, (text, _, label) in enumerate(examples, start=1)
    ]
    assert len(entry.label_names) == 2 and entry.question.endswith("?")


@pytest.mark.parametrize("scores", [{"a": 1, "b": 0, "c": 0}, {"a": 0.5, "b": 0.5}, {"a": 1, "b": 1}])
def test_bigbench_non_binary_example_is_named(tmp_path, scores):
    task = {"examples": [{"input": "x", "target_scores": scores}]}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(task))
    with pytest.raises(DatasetError, match="example 1"):
        bigbench.load_task(path, "a")


def test_fetch_extracts_only_the_requested_tasks_after_checking_the_hash(tmp_path):
    sdist = tmp_path / "bigbench-1.0.0.tar.gz"
    sha = make_sdist(sdist, {"epistemic_reasoning": TASK, "fact_checker/fever": {"examples": []}})
    out = tmp_path / "out" / "fever.json"
    bigbench.fetch_tasks({"fact_checker/fever": out}, url=sdist.as_uri(), sha256=sha)
    assert json.loads(out.read_text()) == {"examples": []}
    assert sorted(p.name for p in out.parent.iterdir()) == ["fever.json"]


def test_fetch_refuses_a_sdist_with_the_wrong_hash(tmp_path):
    sdist = tmp_path / "bigbench-1.0.0.tar.gz"
    make_sdist(sdist, {"epistemic_reasoning": TASK})
    out = tmp_path / "epistemic_reasoning.json"
    with pytest.raises(DatasetError, match="expected 0000"):
        bigbench.fetch_tasks({"epistemic_reasoning": out}, url=sdist.as_uri(), sha256="0000")
    assert not out.exists()


def test_fetch_names_a_missing_task(tmp_path):
    sdist = tmp_path / "bigbench-1.0.0.tar.gz"
    sha = make_sdist(sdist, {"epistemic_reasoning": TASK})
    with pytest.raises(DatasetError, match="no task strategyqa"):
        bigbench.fetch_tasks({"strategyqa": tmp_path / "s.json"}, url=sdist.as_uri(), sha256=sha)


def test_fetch_unreachable_url_gives_a_hint(tmp_path):
    with pytest.raises(DatasetError, match="by hand"):
        bigbench.fetch_tasks({"strategyqa": tmp_path / "s.json"}, url=(tmp_path / "no.tar.gz").as_uri())


# --- local files -----------------------------------------------------------------------------

ROWS = [
    {"question": "Is ice cold?", "answer": "yes", "y": 1},
    {"question": "Is fire cold?", "answer": "yes", "y": 0},
    {"question": "Is snow white?", "answer": "yes", "y": 1},
]
EXPECTED = [("Q: Is ice cold? A: yes", 1), ("Q: Is fire cold? A: yes", 0), ("Q: Is snow white? A: yes", 1)]


def _write(tmp_path, fmt):
    path = tmp_path / f"data.{fmt}"
    if fmt == "jsonl":
        write_jsonl(path, ROWS)
    elif fmt == "json":
        path.write_text(json.dumps(ROWS))
    elif fmt == "csv":
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["question", "answer", "y"])
            writer.writeheader()
            writer.writerows(ROWS)
    else:
        pd.DataFrame(ROWS).to_parquet(path)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_each_local_format_gives_the_same_items(tmp_path, fmt):
    items = local.load_file(_write(tmp_path, fmt), text="Q: {question} A: {answer}", label="y")
    assert [(item.text, item.label) for item in items] == EXPECTED
    assert all(item.source == f"data.{fmt}" for item in items)


def test_pairs_show_chosen_or_rejected_labelled_by_which(tmp_path):
    rows = [{"chosen": f"good reply {i}", "rejected": f"bad reply {i}"} for i in range(100)]
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    pair = {"chosen": "chosen", "rejected": "rejected"}
    items = local.load_file(path, pair=pair, seed=3)
    for item, row in zip(items, rows):
        assert item.text == (row["chosen"] if item.label else row["rejected"])
    assert 35 < sum(item.label for item in items) < 65
    assert items == local.load_file(path, pair=pair, seed=3)
    assert items != local.load_file(path, pair=pair, seed=4)


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match=f"dataset file {tmp_path}/gone.jsonl does not exist"):
        local.load_file(tmp_path / "gone.jsonl")


def test_empty_file(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DatasetError, match="empty.jsonl has no rows"):
        local.load_file(tmp_path / "empty.jsonl")


def test_row_without_label_names_the_row(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": 1}, {"text": "b"}])
    with pytest.raises(DatasetError, match=r"d.jsonl, row 2: no 'label' field \(fields: text\)"):
        local.load_file(path)


@pytest.mark.parametrize("bad", [2, -1, 0.5, "yes", None])
def test_label_outside_0_1_names_the_row(tmp_path, bad):
    first = "1" if isinstance(bad, str) else 1
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": first}, {"text": "b", "label": bad}])
    with pytest.raises(DatasetError, match="d.jsonl, row 2: "):
        local.load_file(path)


@pytest.mark.parametrize(
    "first, second, message",
    [
        (1, "0", "row 2: label '0' is a string, but the labels before it are numbers"),
        (1, False, "row 2: label False is a boolean, but the labels before it are numbers"),
        (True, 0, "row 2: label 0 is a number, but the labels before it are booleans"),
    ],
)
def test_mixed_label_types_are_an_error(tmp_path, first, second, message):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": first}, {"text": "b", "label": second}])
    with pytest.raises(DatasetError, match=message):
        local.load_file(path)


def test_boolean_labels_alone_are_fine(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": True}, {"text": "b", "label": False}])
    assert [item.label for item in local.load_file(path)] == [1, 0]


def test_non_utf8_line_is_named(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "fine", "label": 1}\n{"text": "caf\xe9", "label": 0}\n')
    with pytest.raises(DatasetError, match=r"d.jsonl, line 2: not valid UTF-8 \(byte 0xe9"):
        local.load_file(path)


def test_non_utf8_csv_is_named(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"text,label\nfine,1\n\xff\xfe,0\n")
    with pytest.raises(DatasetError, match="d.csv, line 3: not valid UTF-8"):
        local.load_file(path)


def test_truncated_jsonl_is_named(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": "b", "la')
    with pytest.raises(DatasetError, match="d.jsonl, line 2: invalid JSON .* truncated"):
        local.load_file(path)


def test_truncated_parquet_is_named(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame(balanced_rows(50)).to_parquet(path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="d.parquet: not a readable parquet file"):
        local.load_file(path)


def test_template_field_missing_is_named(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "label": 1}])
    with pytest.raises(DatasetError, match="row 1: the text template .* needs field 'answer'"):
        local.load_file(path, text="{question} {answer}")


def test_unknown_extension_asks_for_format(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("x")
    with pytest.raises(DatasetError, match="set 'format'"):
        local.load_file(path)


# --- the shipped task files (data/bigbench/) -----------------------------------------------------

SHIPPED = REPO / "data/bigbench"


@pytest.mark.parametrize("name", sorted(n for n, e in DATASETS.items() if e.bigbench_task))
def test_every_registered_bigbench_task_ships_and_loads_as_a_binary_task(tmp_path, name):
    out = tmp_path / f"{name}.json"
    assert bigbench.copy_shipped(name, SHIPPED, out)
    items = bigbench.load_task(out, DATASETS[name].bigbench_positive)
    assert len(items) >= 600 and {item.label for item in items} == {0, 1}


def test_a_damaged_shipped_copy_is_refused_and_an_unshipped_task_is_not_copied(tmp_path):
    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "toy.json.gz").write_bytes(gzip.compress(b'{"examples": []}'))
    (folder / "SHA256SUMS").write_text("0" * 64 + "  toy.json\n")
    with pytest.raises(DatasetError, match="toy.json.gz: sha256 .* differs from SHA256SUMS"):
        bigbench.copy_shipped("toy", folder, tmp_path / "toy.json")
    assert not (tmp_path / "toy.json").exists()
    assert not bigbench.copy_shipped("other", folder, tmp_path / "other.json")
