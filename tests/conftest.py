import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Tests never touch the network: the hub clients fail at once instead of trying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def balanced_rows(n_per_label: int, prefix: str = "item"):
    """Distinct texts, half labelled 1 and half 0."""
    return [
        {"text": f"{prefix} number {i} is {'even' if i % 2 else 'odd'}", "label": i % 2}
        for i in range(2 * n_per_label)
    ]


# One torch thread per job for the studies that run side by side on the machine's 2 cores at the
# start of a session (the tiny study, the architectures' study, the background studies): a 2-thread
# job among them waits a scheduler slice at each of its many OpenMP barriers (5 forwards of a
# 24-row batch: 35 s at 2 threads beside a 2-thread job, 10.5 s at 1). W2S_TEST_THREADS changes
# it (bench/cpu_isa.py: do results depend on the thread count?).
JOB_THREADS = ["--max-threads", os.environ.get("W2S_TEST_THREADS", "1")]


def run_snakemake(*args, cwd=REPO, timeout=300, env_extra=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run(
        [SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture
def shared_data():
    """The shared real-data folder beside the project (present in development and CI)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present beside the project")
    return SHARED_DATA


@pytest.fixture(scope="session")
def prepared_models(tmp_path_factory):
    """Both default models, prepared once per test session as the prepare_model rule does."""
    from w2s_eda.models import prepare_model

    root = tmp_path_factory.mktemp("models")
    specs = {
        "smollm2-135m": {"packaged": "smollm2-135m-instruct", "trust_remote_code": False},
        "minilm-l6": {"packaged": "all-minilm-l6-v2", "trust_remote_code": False},
    }
    for name, spec in specs.items():
        prepare_model(name, spec, root / name)
    return root


@pytest.fixture(scope="session")
def strong_engine(prepared_models):
    import torch

    from w2s_eda.generation import make_engine

    torch.set_num_threads(2)
    # float32: the engine must then match HF generate token for token (bf16 drifts with padding).
    return make_engine(prepared_models / "smollm2-135m", device="cpu", dtype="float32")


TEXTS = [f"Premise: Ann knows that cat {i} sleeps. Hypothesis: Cat {i} sleeps." for i in range(6)] + [
    f"Premise: Bob suspects that dog {i} barks. Hypothesis: Dog {i} barks." for i in range(6)]


def study_args(folder: Path, config: dict) -> list[str]:
    """Arguments running the repository's workflow on ``config`` in ``folder`` (put targets
    before them: --configfile takes several values)."""
    import yaml

    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return ["-s", str(REPO / "Snakefile"), "-d", str(folder), "--configfile", str(path)]


# The tiny study's arms: a custom arm, and Lang et al.'s debate science (ensembles, consultancy,
# the judge as targets).
TINY_ARMS = ["baseline", "eda", "debate_distill", "consultancy", "debate_ensemble",
             "finetune_ensemble", "debate_judge"]


@pytest.fixture(scope="session")
def tiny_study(request, tmp_path_factory, prepared_models):
    """The whole workflow, every stage, on a 12-item study with W&B offline: run once, read by
    the align, debate-science, analysis, report and tracking tests. Returns (folder, result,
    config). The studies of AFTER_TINY_STUDY start in the background once it has run."""
    folder = tmp_path_factory.mktemp("tiny_study")
    data = folder / "items.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": int(t.startswith("Premise: Ann"))}) + "\n"
                            for t in TEXTS))
    (folder / "resources").mkdir()
    (folder / "resources" / "models").symlink_to(prepared_models)
    config = {
        "splits": {"weak_train": 4, "w2s_train": 4, "test": 4},
        "datasets": {"toy": {"path": str(data)}},
        "explain": {"max_new_tokens": 4},
        # Sequential, four debaters, two sampled debates per item, the judge on every transcript.
        "debate": {"max_new_tokens": 4, "n_rounds": 1, "drift_sample": 0, "protocol": "sequential",
                   "n_debaters": 4, "n_samples": 2, "judge": {"enabled": True}},
        "align": {"arms": TINY_ARMS, "custom_arms": {
            "debate_distill": {"context": ["debate"], "targets": "strong_zero_shot"},
            # Lang et al.'s ensembles with two members (two sampled debates)
            "debate_ensemble": {"context": ["debate"], "ensemble": {"members": 2, "vary": "transcript"}},
            "finetune_ensemble": {"context": ["debate"], "ensemble": {"members": 2, "vary": "seed"}}}},
        "train": {"weak": {"epochs": 3, "batch_size": 2},
                  "strong": {"epochs": 3, "batch_size": 2, "losses": ["xent", "logconf"]}},
        "analysis": {"n_bootstrap": 200},
        "wandb": {"mode": "offline"},
    }
    result = run_snakemake("--cores", "2", *JOB_THREADS, *study_args(folder, config), timeout=900)
    _start_background(request, AFTER_TINY_STUDY)
    return folder, result, config


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, prepared_models):
    """Both model families of config/paper.yaml as tiny random models (test_architectures.py)."""
    from test_architectures import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny_archs"), prepared_models)


@pytest.fixture(scope="session")
def arch_run(tmp_path_factory, tiny_models):
    """test_architectures.py's study (``arch_config``) running in the background (a studies.Run)."""
    from studies import Run
    from test_architectures import arch_config

    folder = tmp_path_factory.mktemp("arch_study")
    args = study_args(folder, arch_config(folder, tiny_models))
    run = Run.start(folder, ["--cores", "2", *JOB_THREADS, *args])
    yield run
    run.kill()


# Whole-study runs start in the background, and the tests that read them run last: the small
# study's local and SLURM runs (tests/studies.py; the SLURM run spends most of its time waiting
# between polls) with the first test; the killed runs and the architectures' study once the tiny
# study has run. At the session's start the tiny study and the small studies keep both cores busy;
# later, single-threaded stretches (bad-config checks, dry runs, env builds) left up to 47 % of them
# idle in a minute, which these two fill instead of running on their own (docs/testing.md).
BACKGROUND_TESTS = {"test_architectures.py": ["arch_run"],
                    "test_slurm_cluster.py": ["small_study", "slurm_study"],
                    "test_kill_and_resume.py": ["small_study", "killed_study"],
                    "test_reference.py": ["small_study"]}
AFTER_TINY_STUDY = {"arch_run", "killed_study"}  # when the session runs the tiny study


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.path.name in BACKGROUND_TESTS)  # stable: the rest keep order


def _start_background(request, names):
    """Start the background runs of ``names`` that the selected tests read."""
    selected = {item.path.name for item in request.session.items}
    for module, fixtures in BACKGROUND_TESTS.items():
        if module in selected:
            for name in fixtures:
                if name in names and (name != "slurm_study" or os.geteuid() == 0):
                    request.getfixturevalue(name)


@pytest.fixture(scope="session")
def studies_root(tmp_path_factory):
    return tmp_path_factory.mktemp("studies")


@pytest.fixture(scope="session")
def small_study(studies_root, prepared_models):
    """The uninterrupted local run of tests/studies.py's SMALL_CONFIG (a studies.Run)."""
    from studies import start_small_study

    run = start_small_study(studies_root, prepared_models)
    yield run
    run.kill()


@pytest.fixture(scope="session")
def slurm_study(studies_root, prepared_models):
    """The small study running through a real one-node SLURM (a started studies.SlurmStudy)."""
    if os.geteuid() != 0:
        pytest.skip("the SLURM daemons need root (CI runs as root)")
    from studies import SlurmStudy

    study = SlurmStudy(studies_root, prepared_models)
    study.start()
    yield study
    stopped = study.stop()
    assert stopped.returncode == 0, stopped.stderr


@pytest.fixture(scope="session")
def killed_study(studies_root, prepared_models):
    """test_kill_and_resume.py's killed runs of the small study (``_kill_and_resume``), in a
    thread from the moment they are asked for: their folder, the thread, and what they gave (or
    the error they raised)."""
    import threading

    from studies import small_study_folder
    from test_kill_and_resume import _kill_and_resume

    folder, config = small_study_folder(studies_root, "killed", prepared_models)
    outcome: dict = {}
    runs: list = []

    def work():
        try:
            outcome["value"] = _kill_and_resume(folder, config, runs)
        except BaseException as error:  # re-raised by the test
            outcome["error"] = error

    thread = threading.Thread(target=work, name="killed_study", daemon=True)
    thread.start()
    yield folder, thread, outcome
    for run in runs:
        run.kill()


@pytest.fixture(scope="session", autouse=True)
def _start_background_studies(request):
    later = AFTER_TINY_STUDY if any("tiny_study" in item.fixturenames
                                    for item in request.session.items) else set()
    _start_background(request, {name for fixtures in BACKGROUND_TESTS.values()
                                for name in fixtures} - later)
