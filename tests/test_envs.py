"""The per-rule conda envs: pinned, consistent with pyproject.toml, and named by every rule.

conda cannot be reached on the development machines (`--use-conda` fails even in a dry run), so
these tests stand in for building the envs: they parse the files.
"""

import os
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


# --- per-rule environments, derived from the code ---------------------------------------------

import ast  # noqa: E402
import importlib.metadata  # noqa: E402
import sys  # noqa: E402

PACKAGE = REPO / "src" / "w2s_eda"


def rule_scripts_and_envs() -> dict[str, tuple[str, str]]:
    """{rule: (script file, env file)} from the rule files; `use rule A as B with:` inherits A's."""
    found = {}
    for path in sorted((REPO / "workflow/rules").glob("*.smk")):
        text = path.read_text()
        for name, body in zip(*[iter(re.split(r"^rule (\w+):\n", text, flags=re.M)[1:])] * 2):
            script = re.search(r'^    script:\n        "\.\./scripts/([^"]+)"', body, re.M)
            env = re.search(r'^    conda:\n        "\.\./\.\./envs/([^"]+)"', body, re.M)
            found[name] = (script.group(1), env.group(1))
        for parent, child in re.findall(r"^use rule (\w+) as (\w+) with:", text, re.M):
            found[child] = found[parent]
    return found


# Imported only when the config asks for them, and installed by whoever asks (docs/cluster.md).
OPTIONAL = {"vllm"}  # generation.backend: vllm, on GPU nodes


def _imports(path: Path, package: str) -> set[str]:
    """Absolute module names a file imports anywhere in it (function bodies too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
                names |= {module, *(f"{module}.{alias.name}" for alias in node.names)}
            else:
                names.add(node.module)
    return names


def third_party_modules(script: str) -> set[str]:
    """The top-level third-party modules a workflow script can import: its own imports and, through
    w2s_eda, every package module it reaches, transitively."""
    modules = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in PACKAGE.rglob("*.py")}
    todo, seen, outside = [(REPO / "workflow/scripts" / script, "")], set(), set()
    while todo:
        path, package = todo.pop()
        for name in _imports(path, package):
            if name in modules and name not in seen:
                seen.add(name)
                file = modules[name]
                todo.append((file, name if file.name == "__init__.py" else name.rpartition(".")[0]))
            elif not name.startswith("w2s_eda"):
                outside.add(name.split(".")[0])
    # snakemake: the script preamble brings its own
    return outside - set(sys.stdlib_module_names) - {"snakemake"} - OPTIONAL


def provided_modules(env_path: Path) -> set[str]:
    """Top-level modules the packages an env file lists provide. Only the listed ones: a module
    that arrives as some other package's dependency may leave with its next release."""
    env = yaml.safe_load(env_path.read_text())
    distributions = {_name(r) for d in env["dependencies"] if isinstance(d, dict) for r in d["pip"]}
    return {module for module, dists in importlib.metadata.packages_distributions().items()
            if any(_name(d) in distributions for d in dists)}


def missing_per_rule(envs: Path = REPO / "envs") -> dict[str, set[str]]:
    """{rule: modules its code can import that its env does not provide}."""
    missing = {}
    for rule, (script, env) in rule_scripts_and_envs().items():
        lacking = third_party_modules(script) - provided_modules(envs / env)
        if lacking:
            missing[rule] = lacking
    return missing


def test_every_rule_env_provides_every_module_its_code_can_import():
    rules = rule_scripts_and_envs()
    assert {"prep", "explain_shard", "zero_shot", "debate", "train_weak_strong", "analysis"} <= set(rules)
    assert "sklearn" in third_party_modules("debate.py")  # the gather scores the judge
    assert "vllm" not in third_party_modules("explain_shard.py")  # optional (OPTIONAL)
    assert missing_per_rule() == {}


def test_the_closure_check_catches_a_missing_package(tmp_path):
    """The old envs/generation.yaml lacked scikit-learn, which the explain and debate gathers
    import: the check names those rules."""
    env = yaml.safe_load((REPO / "envs/generation.yaml").read_text())
    pip = next(d for d in env["dependencies"] if isinstance(d, dict))
    pip["pip"] = [r for r in pip["pip"] if not r.startswith(("scikit-learn", "scipy"))]
    for path in ENVS:
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "generation.yaml").write_text(yaml.safe_dump(env))
    missing = missing_per_rule(tmp_path)
    assert missing and all(env == "generation.yaml" for _, env in
                           (rule_scripts_and_envs()[rule] for rule in missing))
    assert "sklearn" in missing["debate"]


@pytest.mark.slow
def test_the_analysis_env_builds_from_its_pins_and_runs_its_rules_code(tmp_path):
    """Built for real (pip, not conda, which cannot be reached here): a venv with only
    envs/analysis.yaml's pip pins imports everything the analysis and cell_table rules' code
    can import."""
    import subprocess
    import venv

    env = yaml.safe_load((REPO / "envs/analysis.yaml").read_text())
    pins = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    venv.create(tmp_path / "env", with_pip=True)
    python = str(tmp_path / "env/bin/python")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *pins], check=True, timeout=900)
    modules = sorted(third_party_modules("analysis.py") | third_party_modules("cell_table.py"))
    code = ("import " + ", ".join(modules) + "\nimport w2s_eda.analysis, w2s_eda.cell_table, "
            "w2s_eda.logs\nprint('ok')")
    result = subprocess.run([python, "-s", "-c", code], capture_output=True, text=True,
                            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO / "src")})
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
