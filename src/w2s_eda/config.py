"""Study config: schema validation with defaults, and small readers of the validated config.

A leaf module: it imports nothing else from the package but errors, so every module may use it.
The checks that need the registry, the models or the arms are in ``study.validate_config``.
Everything runs when Snakemake parses the workflow, so a bad config stops the run before any job
starts, with a message that names the key.
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


def _parse_command_line_strings(config: dict, validator) -> None:
    """Snakemake's ``--config key=value`` parses a list or mapping value, but leaves every value
    inside it a string (``seeds=[0,1]`` gives ``["0", "1"]``). Where the schema rejects such a
    string, it is read as YAML, the way the config file's values are, and kept if that is not a
    string; a wrong value stays wrong and is reported by the validation that follows."""
    for _ in range(10_000):  # one value per pass; a config has far fewer values
        for error in validator.iter_errors(config):
            if not (isinstance(error.instance, str) and error.absolute_path):
                continue
            try:
                parsed = yaml.safe_load(error.instance)
            except yaml.YAMLError:
                continue
            # YAML 1.1 reads yes/no/on/off as booleans: only true/false are taken as such
            if isinstance(parsed, bool) and error.instance.strip().lower() not in ("true", "false"):
                continue
            if not isinstance(parsed, str):
                *parents, last = error.absolute_path
                target = config
                for key in parents:
                    target = target[key]
                target[last] = parsed
                break
        else:
            return


def load_schema(schema_path: str | Path = SCHEMA_PATH) -> dict:
    with open(schema_path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def validate_schema(config: dict, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Return a copy of ``config`` validated against the schema, with its defaults filled in.

    The checks that need the dataset registry, the models or the arms are in
    ``study.validate_config``, which calls this first.

    Raises ConfigError listing every problem, one line each, each naming its key.
    """
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError(f"the config must be a mapping of keys, got {type(config).__name__}")
    filled = copy.deepcopy(config)
    schema = load_schema(schema_path)
    _parse_command_line_strings(filled, jsonschema.Draft202012Validator(schema))
    validator = _DefaultFillingValidator(schema)
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
    return filled


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
