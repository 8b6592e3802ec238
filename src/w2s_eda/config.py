"""Study config: schema validation with defaults, then checks the schema cannot express.

Everything here runs when Snakemake parses the workflow, so a bad config stops the run before
any job starts, with a message that names the key.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

from .errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def _key(path) -> str:
    return ".".join(str(part) for part in path) or "<top level>"


def _with_defaults(validator_class):
    """Extend a validator so the schema's ``default:`` values fill missing keys (recursively)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_DefaultFillingValidator = _with_defaults(jsonschema.Draft202012Validator)


def _allowed_keys(schema: dict, root: dict) -> set[str]:
    """Keys a schema allows, following ``allOf`` references into ``$defs``."""
    keys = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        ref = part.get("$ref", "")
        target = root["$defs"][ref.rsplit("/", 1)[-1]] if ref.startswith("#/$defs/") else part
        keys |= _allowed_keys(target, root)
    return keys


def _unknown_keys(error: jsonschema.ValidationError, root: dict) -> list[str]:
    """The keys of an additional/unevaluated-properties error that the schema does not allow."""
    return sorted(set(error.instance) - _allowed_keys(error.schema, root))


def _describe(error: jsonschema.ValidationError, root: dict) -> str:
    key = _key(error.absolute_path)
    if error.validator in ("additionalProperties", "unevaluatedProperties") and isinstance(
        error.instance, dict
    ):
        known = sorted(_allowed_keys(error.schema, root))
        unknown = _unknown_keys(error, root)
        keys = ", ".join(f"'{_key([*error.absolute_path, name])}'" for name in unknown)
        return f"unknown config key {keys}; allowed here: {', '.join(known)}"
    if "propertyNames" in error.absolute_schema_path:
        return (
            f"config key '{key}': name {error.instance!r} may only hold letters, digits, '_' and '-'"
            " (it becomes part of file paths)"
        )
    if error.validator == "oneOf" and error.absolute_path and error.absolute_path[-1] == "layer":
        return f"config key '{key}': {error.instance!r} is not 'middle', 'last' or a block number >= 1"
    if error.validator == "multipleOf" and error.validator_value == 2:
        return (
            f"config key '{key}': {error.instance} must be even (each split is balanced 50/50)"
        )
    return f"config key '{key}': {error.message}"


def load_schema(schema_path: str | Path = SCHEMA_PATH) -> dict:
    with open(schema_path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def validate_config(config: dict, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Return a validated copy of ``config`` with the schema's defaults filled in.

    Raises ConfigError listing every problem, one line each, each naming its key.
    """
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError(f"the config must be a mapping of keys, got {type(config).__name__}")
    filled = copy.deepcopy(config)
    validator = _DefaultFillingValidator(load_schema(schema_path))
    errors = sorted(validator.iter_errors(filled), key=lambda e: list(map(str, e.absolute_path)))
    # A key that fails inside an `allOf` also makes its known siblings look "unevaluated": keep
    # such an error only for keys the schema does not know (so a real unknown key still shows).
    errors = [
        e for e in errors
        if e.validator != "unevaluatedProperties" or _unknown_keys(e, validator.schema)
    ]
    if errors:
        lines = sorted({_describe(error, validator.schema) for error in errors})
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))
    _check_datasets(filled)
    _check_models(filled)
    _check_stages(filled)
    return filled


LOCAL_ONLY_KEYS = ("test_path", "format", "text", "label", "pair", "question", "label_names")


def _check_datasets(config: dict) -> None:
    from .data.registry import DATASETS, known_dataset_names

    for name, spec in config["datasets"].items():
        key = f"datasets.{name}"
        if "path" in spec:
            if "registry" in spec:
                raise ConfigError(f"config key '{key}': give either 'path' or 'registry', not both")
            if "pair" in spec and ("text" in spec or "label" in spec):
                raise ConfigError(
                    f"config key '{key}': 'pair' builds text and label itself; drop 'text'/'label'"
                )
            for file_key, path in local_files(spec).items():
                if not Path(path).is_file():
                    raise ConfigError(f"config key '{key}.{file_key}': file '{path}' does not exist")
            continue
        for local_only in LOCAL_ONLY_KEYS:
            if local_only in spec:
                raise ConfigError(
                    f"config key '{key}.{local_only}' only applies to local files (add 'path')"
                )
        registered = spec.get("registry", name)
        if registered not in DATASETS:
            raise ConfigError(
                f"config key '{key}': unknown dataset '{registered}'. Known datasets: "
                f"{', '.join(known_dataset_names())}; or give a local file with 'path'."
            )
        entry = DATASETS[registered]
        if entry.needs_hub and config["offline"]:
            raise ConfigError(
                f"config key '{key}': dataset '{registered}' comes from the Hugging Face hub "
                f"('{entry.hub_id}'), but 'offline' is true, so nothing may be downloaded. "
                "Either set 'offline: false' on a machine with internet, or export the data to a "
                f"local file and use `{name}: {{path: data/{name}.jsonl}}`."
            )


def check_local_data(config: dict) -> None:
    """Read every local dataset file as the prep job will, so a truncated, non-UTF-8 or badly
    labelled file stops the run before any job starts, naming the key, the file and the row.

    Reads whole files: call it once per run (the Snakefile does, in its main process only), not
    from validate_config, which tests and every job's re-parse of the workflow also call.
    """
    from .errors import DatasetError
    from .prep import load_pools

    for name, spec in config["datasets"].items():
        if "path" in spec:
            try:
                load_pools(name, spec, seed=0)
            except DatasetError as error:
                raise ConfigError(f"config key 'datasets.{name}': {error}") from None


def _check_models(config: dict) -> None:
    from .models import check_model_spec

    for name, spec in config["models"].items():
        check_model_spec(name, spec, config["offline"])
    for index, pair in enumerate(config["pairs"]):
        for role in ("weak", "strong"):
            if pair[role] not in config["models"]:
                raise ConfigError(
                    f"config key 'pairs[{index}].{role}': unknown model '{pair[role]}'; "
                    f"models defined under 'models': {', '.join(config['models'])}"
                )


def _check_stages(config: dict) -> None:
    from .arms import check_arms
    from .prompts import check_templates

    check_templates(config)
    check_arms(config)
    judge = config["debate"]["judge"]
    if "model" in judge and judge["model"] not in config["models"]:
        raise ConfigError(
            f"config key 'debate.judge.model': unknown model '{judge['model']}'; "
            f"models defined under 'models': {', '.join(config['models'])}"
        )


def model_names(config: dict, role: str | None = None) -> list[str]:
    """Models used by some pair (in one role, if given), in config order, without repeats."""
    roles = (role,) if role else ("weak", "strong")
    return list(dict.fromkeys(pair[r] for pair in config["pairs"] for r in roles))


def split_sizes(config: dict, dataset: str) -> dict[str, int]:
    """The split sizes for ``dataset``: the top-level sizes, overridden per dataset."""
    sizes = dict(config["splits"])
    sizes.update(config["datasets"][dataset].get("splits", {}))
    return sizes


def local_files(spec: dict) -> dict[str, str]:
    """A local dataset's files by config key (``path``, ``path[1]``, ``test_path``)."""
    paths = spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
    files = {("path" if len(paths) == 1 else f"path[{i}]"): p for i, p in enumerate(paths)}
    if "test_path" in spec:
        files["test_path"] = spec["test_path"]
    return files
