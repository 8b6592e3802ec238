"""The bad-input catalogue: each bad input stops the real workflow before any job starts, with one
message naming the key, file or row at fault. Plus the output writer on a full disk or a folder
it may not write.

Each workflow case runs `snakemake --cores 1` (a real run, not a dry run) in a subprocess on a
config in ``tmp_path``. "Before any job starts" means: the run fails while Snakemake parses the
workflow, so it never prints "Building DAG of jobs", selects or executes nothing, prints no
``rule ...:`` job line and creates no ``results/``. ``test_a_good_config_gets_past_parsing``
shows that those markers do appear once parsing succeeds.

Related cases elsewhere:
- tests/test_workflow.py::test_bad_config_stops_before_any_job: ``splits.test: -4`` together with
  ``bogus: true``, both named in one run (here: other split keys, one error per run);
- tests/test_config.py, tests/test_datasets.py, tests/test_strong_signals.py, tests/test_align.py:
  the same checks at unit level.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import tempfile
import time
from pathlib import Path

import pytest

from conftest import balanced_rows, run_snakemake, study_args, write_jsonl
from w2s_eda import io
from w2s_eda.errors import ModelError, OutputError

# Printed only once the workflow has parsed: the DAG, job selection, and one line per job.
AFTER_PARSING = ("Building DAG of jobs", "Select jobs to execute", "Execute ")
JOB_LINE = re.compile(r"^\s*((local)?rule \w+:|Job \d+: )", re.MULTILINE)  # a message job too

SMALL_SPLITS = {"weak_train": 4, "w2s_train": 4, "test": 4}


def good_data(folder: Path) -> str:
    return str(write_jsonl(folder / "good.jsonl", balanced_rows(10)))


def run_study(folder: Path, config: dict):
    """A real (not dry) run of the workflow on ``config``; returns (result, stdout + stderr)."""
    result = run_snakemake("--cores", "1", *study_args(folder, config), timeout=120)
    return result, result.stdout + result.stderr


def assert_stopped_before_any_job(result, output: str, folder: Path) -> None:
    assert result.returncode != 0, output[-3000:]
    for marker in AFTER_PARSING:
        assert marker not in output, f"{marker!r} printed: a job may have started\n{output[-3000:]}"
    assert not JOB_LINE.search(output), output[-3000:]
    assert not (folder / "results").exists()


def assert_one_message(output: str, expected: str) -> str:
    """Exactly one line names a config key, and it holds ``expected``; returns that line."""
    lines = [line for line in output.splitlines() if "config key '" in line]
    assert len(lines) == 1, f"expected one message, got {len(lines)}:\n" + "\n".join(lines)
    assert expected in lines[0], f"{expected!r} not in {lines[0]!r}"
    return lines[0]


def test_a_good_config_gets_past_parsing(tmp_path):
    """The control: a valid config (with a local file, read at parse time) builds its DAG."""
    config = {"splits": SMALL_SPLITS, "datasets": {"mine": {"path": good_data(tmp_path)}}}
    result = run_snakemake("-n", "--cores", "1", *study_args(tmp_path, config))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Building DAG of jobs" in output and ": prep mine seed 0 from local " in output
    assert "config key" not in output


# --- the config ---------------------------------------------------------------------------------

CONFIG_CASES = {
    # 1. unknown keys, at the top and nested (train.weak's keys come through an allOf)
    "unknown top-level key": ({"bogus": 1}, "unknown config key 'bogus'; allowed here: align,"),
    "unknown nested key": (
        {"train": {"weak": {"bogus": 1}}},
        "unknown config key 'train.weak.bogus'; allowed here: batch_size,",
    ),
    "unknown key in a section": (
        {"debate": {"n_round": 3}},
        "unknown config key 'debate.n_round'; allowed here: do_sample, drift_sample,",
    ),
    # 2. a wrong type
    "wrong type": (
        {"splits": {"test": "many"}},
        "config key 'splits.test': 'many' is not of type 'integer'",
    ),
    "wrong type, nested": (
        {"train": {"strong": {"epochs": "many"}}},
        "config key 'train.strong.epochs': 'many' is not of type 'integer', 'null'",
    ),
    # 3. no debate rounds
    "zero debate rounds": (
        {"debate": {"n_rounds": 0}},
        "config key 'debate.n_rounds': 0 is less than the minimum of 1",
    ),
    # 4. negative split sizes, top-level and per dataset
    "negative split size": (
        {"splits": {"w2s_train": -2}},
        "config key 'splits.w2s_train': -2 is less than the minimum of 2",
    ),
    "negative per-dataset split size": (
        lambda folder: {"datasets": {"mine": {"path": good_data(folder), "splits": {"test": -2}}}},
        "config key 'datasets.mine.splits.test': -2 is less than the minimum of 2",
    ),
    # 5. an arm that is neither built in nor under align.custom_arms
    "unknown arm": (
        {"align": {"arms": ["baseline", "eda", "nope"]}},
        "config key 'align.arms[2]': unknown arm 'nope'. Known arms: baseline, explain, debate,",
    ),
    # 6. a student loss that does not exist
    "unknown loss": (
        {"train": {"strong": {"losses": ["xent", "hinge"]}}},
        "config key 'train.strong.losses.1': 'hinge' is not one of ['xent', 'logconf', 'product']",
    ),
    # 7. prompt templates with a placeholder their stage does not fill
    "unknown placeholder": (
        {"explain": {"template": "{item}\n\nIs it {gold_label}?"}},
        "config key 'explain.template': unknown placeholder {gold_label}; allowed: {item},",
    ),
    "unknown placeholder, nested template": (
        {"debate": {"judge": {"template": "{item} {transcript} {answer}"}}},
        "config key 'debate.judge.template': unknown placeholder {answer}; allowed: {item},",
    ),
}


@pytest.mark.parametrize("config, expected", CONFIG_CASES.values(), ids=CONFIG_CASES)
def test_bad_config_stops_before_any_job_naming_the_key(tmp_path, config, expected):
    if callable(config):
        config = config(tmp_path)
    result, output = run_study(tmp_path, config)
    assert_stopped_before_any_job(result, output, tmp_path)
    assert_one_message(output, expected)


# 8. a local model folder that is not there, or holds no model
@pytest.mark.parametrize(
    "exists, why", [(False, "it does not exist"), (True, "no config.json in it")]
)
def test_bad_local_model_folder_names_key_and_folder(tmp_path, exists, why):
    folder = tmp_path / "my-model"
    if exists:
        folder.mkdir()
    config = {
        "models": {"mine": {"path": str(folder)}},
        "pairs": [{"weak": "mine", "strong": "mine"}],
    }
    result, output = run_study(tmp_path, config)
    assert_stopped_before_any_job(result, output, tmp_path)
    assert_one_message(
        output, f"config key 'models.mine.path': '{folder}' is not a model folder ({why})"
    )


# --- 9. the hub while offline: before any job, and in well under 10 s ---------------------------

HUB_MODEL = {"qwen": {"hub": "Qwen/Qwen2.5-0.5B"}, "minilm-l6": {"packaged": "all-minilm-l6-v2"}}
HUB_CASES = {
    "hub model, offline by default": (
        {"models": HUB_MODEL, "pairs": [{"weak": "minilm-l6", "strong": "qwen"}]},
        "config key 'models.qwen.hub': model 'Qwen/Qwen2.5-0.5B' is a hub id, but 'offline' is true",
    ),
    "hub model, offline: true": (
        {"offline": True, "models": HUB_MODEL, "pairs": [{"weak": "minilm-l6", "strong": "qwen"}]},
        "config key 'models.qwen.hub': model 'Qwen/Qwen2.5-0.5B' is a hub id, but 'offline' is true",
    ),
    "hub dataset, offline": (
        {"datasets": {"sciq": {}}},
        "config key 'datasets.sciq': dataset 'sciq' comes from the Hugging Face hub ('allenai/sciq')",
    ),
}


@pytest.mark.parametrize("config, expected", HUB_CASES.values(), ids=HUB_CASES)
def test_hub_source_while_offline_fails_fast_before_any_job(tmp_path, config, expected):
    started = time.monotonic()
    result, output = run_study(tmp_path, config)
    elapsed = time.monotonic() - started
    assert_stopped_before_any_job(result, output, tmp_path)
    line = assert_one_message(output, expected)
    assert "offline: false" in line and "path" in line  # the two ways out
    assert elapsed < 10, f"took {elapsed:.1f} s"


def test_hub_model_with_hf_hub_offline_fails_in_prepare_model_naming_the_model():
    """``offline: false`` with HF_HUB_OFFLINE=1 in the environment passes parsing (a dry run of a
    hub study must work offline, see test_paper_config_dry_runs), so it can only fail in the
    prepare_model job: there it is one ModelError naming the key and the variable, not a
    transformers traceback."""
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        pytest.skip("needs HF_HUB_OFFLINE=1 (conftest sets it) so nothing is downloaded")
    from w2s_eda.models import _fetch_for_saving

    spec = {"hub": "w2s-eda-tests/no-such-model", "revision": "main", "trust_remote_code": False}
    with pytest.raises(ModelError) as raised:
        _fetch_for_saving("hub", spec, offline=False, manifest={"name": "ghost"})
    message = str(raised.value)
    assert message.startswith(
        "config key 'models.ghost.hub': cannot fetch model 'w2s-eda-tests/no-such-model' at "
        "revision main: "
    )
    assert "HF_HUB_OFFLINE is set" in message and "\n" not in message


# --- 10. broken local dataset files: the key, the file and the row ------------------------------


def _truncated(folder: Path) -> Path:
    path = folder / "cut.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n{"text": "c", "la')
    return path


def _non_utf8(folder: Path) -> Path:
    path = folder / "latin1.jsonl"
    path.write_bytes(b'{"text": "fine", "label": 1}\n{"text": "caf\xe9", "label": 0}\n')
    return path


def _mixed(second_label):
    def make(folder: Path) -> Path:
        rows = [{"text": "a", "label": 1}, {"text": "b", "label": second_label}]
        return write_jsonl(folder / "mixed.jsonl", rows + balanced_rows(4))

    return make


DATA_CASES = {
    "truncated jsonl": (
        _truncated,
        "line 3: invalid JSON (Unterminated string starting at); is the file truncated?",
    ),
    "non-UTF-8 jsonl": (
        _non_utf8,
        "line 2: not valid UTF-8 (byte 0xe9 at column 14); re-encode the file as UTF-8",
    ),
    "int and string labels": (
        _mixed("yes"),
        "row 2: label 'yes' is a string, but the labels before it are numbers (first at row 1); use one type",
    ),
    "int and bool labels": (
        _mixed(False),
        "row 2: label False is a boolean, but the labels before it are numbers (first at row 1); use one type",
    ),
}


@pytest.mark.parametrize("make, expected", DATA_CASES.values(), ids=DATA_CASES)
def test_broken_dataset_file_stops_before_any_job_naming_file_and_row(tmp_path, make, expected):
    path = make(tmp_path)
    config = {"splits": SMALL_SPLITS, "datasets": {"mine": {"path": str(path)}}}
    result, output = run_study(tmp_path, config)
    assert_stopped_before_any_job(result, output, tmp_path)
    assert_one_message(output, f"config key 'datasets.mine': {path}, {expected}")


def test_broken_test_file_is_the_file_named(tmp_path):
    """With a separate test file, the message names that file, not the (good) pool."""
    path = _non_utf8(tmp_path)
    spec = {"path": good_data(tmp_path), "test_path": str(path)}
    result, output = run_study(tmp_path, {"splits": SMALL_SPLITS, "datasets": {"mine": spec}})
    assert_stopped_before_any_job(result, output, tmp_path)
    assert_one_message(output, f"config key 'datasets.mine': {path}, line 2: not valid UTF-8")


# --- outputs: a full disk or a folder we may not write ------------------------------------------
# Tests run as root, where a read-only folder does not stop writes: the failures are simulated.

OLD = '{"previous": "version"}\n'


def _fail(exc):
    def raiser(*args, **kwargs):
        raise exc

    return raiser


def _enospc():
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _eacces(name="x"):
    return PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)


# Where the write fails: creating the temporary file, writing it, syncing it, or the rename.
FAILURES = {
    "mkstemp, no permission": (
        lambda mp: mp.setattr(tempfile, "mkstemp", _fail(_eacces())),
        errno.EACCES,
    ),
    "write, disk full": (lambda mp: mp.setattr(Path, "write_text", _fail(_enospc())), errno.ENOSPC),
    "fsync, disk full": (lambda mp: mp.setattr(os, "fsync", _fail(_enospc())), errno.ENOSPC),
    "replace, no permission": (
        lambda mp: mp.setattr(os, "replace", _fail(_eacces())),
        errno.EACCES,
    ),
}


@pytest.mark.parametrize("patch, code", FAILURES.values(), ids=FAILURES)
def test_failed_write_names_the_file_and_keeps_the_previous_version(
    tmp_path, monkeypatch, patch, code
):
    target = tmp_path / "out" / "manifest.json"
    target.parent.mkdir()
    target.write_text(OLD)
    with monkeypatch.context() as mp:
        patch(mp)
        with pytest.raises(OutputError) as raised:
            io.write_json(target, {"new": "version"})
    error = raised.value
    assert isinstance(error, OSError) and error.errno == code  # still an OSError, same errno
    assert str(error).startswith(f"cannot write {target}: {os.strerror(code)}")
    assert "its previous version, if any, is left unchanged" in str(error)
    assert ("free some space" in str(error)) == (code == errno.ENOSPC)
    assert target.read_text() == OLD
    assert sorted(p.name for p in target.parent.iterdir()) == ["manifest.json"]  # no temp file


def test_failed_first_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "new.parquet"
    with pytest.raises(OutputError, match=f"cannot write {target}: No space left on device"):
        with io.atomic_path(target) as tmp:
            tmp.write_bytes(b"half a parq")
            raise _enospc()
    assert list(tmp_path.iterdir()) == []


def test_a_non_os_error_in_the_block_is_left_alone(tmp_path):
    target = tmp_path / "x.json"
    target.write_text(OLD)
    with pytest.raises(KeyError):
        with io.atomic_path(target):
            raise KeyError("a bug, not a disk problem")
    assert target.read_text() == OLD and [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_a_stage_reports_a_full_disk_in_one_line(tmp_path, monkeypatch, capsys):
    """run_stage (every workflow script) ends a StudyError with one ERROR line and exit 1."""
    from w2s_eda.logs import run_stage

    target = tmp_path / "manifest.json"
    monkeypatch.setattr(os, "fsync", _fail(_enospc()))
    handlers, level = logging.root.handlers[:], logging.root.level
    try:
        with pytest.raises(SystemExit) as exited:
            run_stage(lambda: io.write_json(target, {}))
    finally:  # run_stage points the root logger at this test's captured stderr: undo that
        logging.root.handlers[:], logging.root.level = handlers, level
    assert exited.value.code == 1
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and f"cannot write {target}: No space left on device" in errors[0]
    assert "Traceback" not in stderr and not target.exists()
