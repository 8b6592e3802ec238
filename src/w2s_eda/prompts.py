"""Prompt templates for the strong model, with placeholder checks and the no-leakage rule.

Templates are Python format strings with named placeholders (``{item}``, ``{question}``, ...).
Each template key allows a fixed set of placeholders; anything else is a config error naming the
key and the placeholder. No placeholder carries an item's gold label: prompts are built from the
item text, the dataset's question and label words, and (in a debate) the side a debater was
assigned by label *value*. tests/test_prompts.py checks that flipping every label leaves every
prompt byte-identical.
"""

from __future__ import annotations

import hashlib
import string

from .errors import ConfigError

ITEM_FIELDS = frozenset({"question", "item", "label0", "label1"})
SIDE_FIELDS = ITEM_FIELDS | {"side", "other_side", "max_words"}

TEMPLATE_FIELDS: dict[str, frozenset[str]] = {
    "explain.template": ITEM_FIELDS,
    "explain.zero_shot_template": ITEM_FIELDS,
    "debate.opening_template": SIDE_FIELDS,
    "debate.rebuttal_template": SIDE_FIELDS | {"transcript"},
    "debate.judge.template": ITEM_FIELDS | {"transcript"},
    "debate.drift_template": ITEM_FIELDS | {"argument"},
}


def placeholders(template: str, key: str) -> set[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ConfigError(f"config key '{key}': malformed template ({error}); write {{{{ for a literal brace")
    names = set()
    for _, field, _, _ in parsed:
        if field is None:
            continue
        if not field.isidentifier():
            raise ConfigError(
                f"config key '{key}': placeholder '{{{field}}}' must be a plain name such as {{item}}"
            )
        names.add(field)
    return names


def check_template(key: str, template: str) -> None:
    allowed = TEMPLATE_FIELDS[key]
    unknown = sorted(placeholders(template, key) - allowed)
    if unknown:
        raise ConfigError(
            f"config key '{key}': unknown placeholder "
            f"{', '.join('{' + name + '}' for name in unknown)}; "
            f"allowed: {', '.join('{' + name + '}' for name in sorted(allowed))}"
        )


def check_templates(config: dict) -> None:
    for key in TEMPLATE_FIELDS:
        section, *rest = key.split(".")
        value = config[section]
        for part in rest:
            value = value[part]
        check_template(key, value)


def template_hash(*templates: str) -> str:
    return hashlib.sha256("\x00".join(templates).encode("utf-8")).hexdigest()[:16]


def item_fields(text: str, info: dict) -> dict[str, str]:
    """Everything a prompt may say about an item. Takes no label: it cannot leak one."""
    label0, label1 = info["label_names"]
    return {"item": text.strip(), "question": info["question"], "label0": label0, "label1": label1}
