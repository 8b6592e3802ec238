"""The per-rule conda envs: pinned, consistent with pyproject.toml, and named by every rule.

conda cannot be reached on the development machines (`--use-conda` fails even in a dry run), so
these tests stand in for building the envs: they parse the files.
"""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import REPO

ENVS = sorted((REPO / "envs").glob("*.yaml"))


def _name(requirement: str) -> str:
    return re.split(r"[=<>!~ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {}
    for requirement in project["dependencies"] + project["optional-dependencies"]["dev"]:
        name, _, version = requirement.partition("==")
        assert version, f"pyproject.toml: '{requirement}' is not pinned with =="
        pins[_name(name)] = version.strip()
    return pins


def test_the_four_env_families_exist():
    assert [path.stem for path in ENVS] == ["analysis", "data", "generation", "training"]


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_file_is_pinned_uses_nodefaults_and_matches_pyproject(path):
    env = yaml.safe_load(path.read_text())
    assert "nodefaults" in env["channels"], f"{path.name}: add 'nodefaults' to channels"
    pins = _pyproject_pins()
    pip = []
    for dependency in env["dependencies"]:
        if isinstance(dependency, dict):
            pip += dependency["pip"]
            continue
        assert re.fullmatch(r"[\w.-]+ ?=[\w.]+", dependency), f"{path.name}: '{dependency}' is not pinned"
    assert pip, f"{path.name}: no pip section"
    for requirement in pip:
        name, _, version = requirement.partition("==")
        assert version, f"{path.name}: '{requirement}' is not pinned with =="
        assert _name(name) in pins, f"{path.name}: '{name}' is not a dependency in pyproject.toml"
        assert pins[_name(name)] == version, (
            f"{path.name}: {name}=={version}, but pyproject.toml pins {pins[_name(name)]}"
        )


def _rules() -> dict[str, str]:
    """Each rule's body (the text up to the next rule), from the rule files."""
    rules = {}
    for path in sorted((REPO / "workflow/rules").glob("*.smk")):
        parts = re.split(r"^rule (\w+):\n", path.read_text(), flags=re.M)
        for name, body in zip(parts[1::2], parts[2::2]):
            rules[name] = body
    return rules


def test_every_rule_names_an_existing_conda_env():
    rules = _rules()
    assert len(rules) >= 14
    for name, body in rules.items():
        match = re.search(r'^    conda:\n        "([^"]+)"', body, re.M)
        assert match, f"rule {name} has no conda: directive"
        env = (REPO / "workflow/rules" / match.group(1)).resolve()
        assert env.parent == REPO / "envs" and env.is_file(), f"rule {name}: {match.group(1)} is missing"


def test_each_env_holds_what_its_scripts_import():
    """The packages a rule family's code imports are in its env (torch only where needed)."""
    families = {
        "training": {"torch", "transformers", "peft", "accelerate", "scikit-learn", "wandb"},
        "generation": {"torch", "transformers", "gguf", "accelerate", "wandb"},
        "analysis": {"scipy", "scikit-learn", "matplotlib", "pandas", "pyarrow", "wandb"},
        "data": {"datasets", "pandas", "pyarrow", "wandb"},
    }
    for family, needed in families.items():
        env = yaml.safe_load((REPO / "envs" / f"{family}.yaml").read_text())
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        assert needed <= {_name(r) for r in pip}, f"envs/{family}.yaml lacks {needed - {_name(r) for r in pip}}"
