"""Align arms: what the weak model reads and what it learns from, and how long inputs are cut.

An arm is data, not code: ``context`` lists the strong model's signals appended to the item
(``explanation``; ``debate`` and ``consultancy`` transcripts; ``judge``, the judge's verdict on the
debate), ``targets`` says what the weak model trains on (``gold``: the ground truth of weak_train;
``strong_zero_shot``: the strong model's zero-shot P(label 1) on the same items, ignoring their
labels, i.e. the facilitation function as distillation; ``judge``: the judge's P(label 1) after
reading the debate), and ``ensemble`` how many weak models are averaged and what differs between
them (``seed``: each member its own seed, bootstrap resample of weak_train and head init, Lang et
al.'s finetune ensemble; ``transcript``: also member j reads debate sample j, their debate
ensemble). The built-in arms are below; ``align.custom_arms`` in the config adds more without any
new rule code.

Truncation policy (deterministic, applied in the weak model's tokens):
1. The item is never cut for context: it keeps all its tokens, and is cut at its end only if it
   alone exceeds the budget (``max_length`` minus the model's special tokens).
2. The tokens left after the item are shared equally among the context parts. A part shorter
   than its share keeps all its tokens and gives the rest to the other parts; a longer part is cut
   at its end. Tokens left over from integer division go to the cut parts in the arm's order.
3. The pieces are joined in the arm's order: item, then each part under its header.
"""

from __future__ import annotations

from .errors import ConfigError

CONTEXT_PARTS = ("explanation", "debate", "consultancy", "judge")
# Parts with one text per sampled debate (the judge's verdict is on one transcript).
TRANSCRIPT_PARTS = ("debate", "consultancy", "judge")
TARGETS = ("gold", "strong_zero_shot", "judge")
VARY = ("seed", "transcript")
HEADERS = {"explanation": "\nExplanation: ", "debate": "\nDebate:\n",
           "consultancy": "\nConsultant:\n", "judge": "\nJudge's verdict: "}
SINGLE = {"members": 1, "vary": "seed"}

# Student settings (Yang et al. 2024): a conflict (`none`, `explicit`, `implicit`), or a conflict
# through an intermediate model, `<conflict>+via-<model>`. `none` is the plain students.
VIA = "+via-"


def chained_setting(conflict: str, intermediate: str) -> str:
    return f"{conflict}{VIA}{intermediate}"


def setting_conflict(setting: str) -> str:
    """The conflict of a setting: ``explicit+via-m`` -> ``explicit``."""
    return setting.split(VIA)[0]

# Lang et al. 2025 (Debate Helps Weak-to-Strong Generalization, AAAI) average 4 weak models: the
# debate ensemble reads 4 sampled transcripts, the finetune ensemble one transcript with 4 seeds.
LANG_MEMBERS = 4

BUILTIN_ARMS: dict[str, dict] = {
    "baseline": {"context": [], "targets": "gold"},
    "explain": {"context": ["explanation"], "targets": "gold"},
    "debate": {"context": ["debate"], "targets": "gold"},
    "eda": {"context": ["explanation", "debate"], "targets": "gold"},
    "distill": {"context": [], "targets": "strong_zero_shot"},
    "consultancy": {"context": ["consultancy"], "targets": "gold"},
    "debate_ensemble": {"context": ["debate"], "targets": "gold",
                        "ensemble": {"members": LANG_MEMBERS, "vary": "transcript"}},
    "finetune_ensemble": {"context": ["debate"], "targets": "gold",
                          "ensemble": {"members": LANG_MEMBERS, "vary": "seed"}},
    "debate_judge": {"context": ["debate"], "targets": "judge"},
}

# Names an arm may not take: a folder beside the arms' folders, and the control row of summary.csv.
RESERVED_NAMES = ("features", "self_distill")


def all_arms(config: dict) -> dict[str, dict]:
    """Built-in arms plus the config's ``align.custom_arms`` (which may override a built-in)."""
    arms = {name: _complete(spec) for name, spec in BUILTIN_ARMS.items()}
    for name, spec in config["align"]["custom_arms"].items():
        arms[name] = _complete(spec)
    return arms


def _complete(spec: dict) -> dict:
    return {"context": list(spec.get("context", [])), "targets": spec.get("targets", "gold"),
            "ensemble": {**SINGLE, **spec.get("ensemble", {})}}


def describe_arm(name: str, spec: dict) -> str:
    """One sentence on what an arm tests, for summary.md."""
    spec = _complete(spec)
    if name == "baseline" and not spec["context"] and spec["targets"] == "gold":
        return "the weak floor: the weak model trained on gold labels, reading the item alone."
    reads = {"explanation": "the strong model's explanation", "debate": "a debate transcript",
             "consultancy": "a consultancy transcript (one strong model arguing an assigned side)",
             "judge": "the judge's verdict on the debate"}
    learns = {"gold": "gold labels", "strong_zero_shot": "the strong model's zero-shot labels",
              "judge": "the judge's verdict (no gold labels)"}
    context = " and ".join(reads[part] for part in spec["context"]) or "nothing beyond the item"
    text = f"does the weak model, reading {context} and learning from {learns[spec['targets']]}"
    ensemble = spec["ensemble"]
    if ensemble["members"] > 1:
        differ = ("its own sampled transcript" if ensemble["vary"] == "transcript"
                  else "its own seed (bootstrap resample and head init), one shared transcript")
        text += f", as an average of {ensemble['members']} members each with {differ}"
    return text + ", supervise the strong student better than the baseline's weak model?"


def check_arms(config: dict) -> None:
    """Every selected arm is defined, baseline (the weak floor) is among them, names are free."""
    known = all_arms(config)
    for name in config["align"]["custom_arms"]:
        if name in RESERVED_NAMES:
            raise ConfigError(f"config key 'align.custom_arms.{name}': '{name}' is a reserved name")
    for index, name in enumerate(config["align"]["arms"]):
        if name not in known:
            raise ConfigError(
                f"config key 'align.arms[{index}]': unknown arm '{name}'. Known arms: "
                f"{', '.join(known)}; define new ones under 'align.custom_arms'."
            )
    if "baseline" not in config["align"]["arms"]:
        raise ConfigError(
            "config key 'align.arms': 'baseline' must be listed; it is the weak floor every "
            "PGR is measured from"
        )
    samples = config["debate"]["n_samples"]
    for index, name in enumerate(config["align"]["arms"]):
        spec = known[name]
        where = (f"align.custom_arms.{name}" if name in config["align"]["custom_arms"]
                 else f"align.arms[{index}] (built-in arm '{name}')")
        members, vary = spec["ensemble"]["members"], spec["ensemble"]["vary"]
        reads_transcripts = (set(spec["context"]) & set(TRANSCRIPT_PARTS)
                             or spec["targets"] == "judge")
        if vary == "transcript" and not reads_transcripts:
            raise ConfigError(
                f"config key '{where}': ensemble.vary 'transcript' gives member j debate sample j, "
                "but the arm reads no debate, consultancy or judge; use vary 'seed'"
            )
        if vary == "transcript" and members > samples:
            raise ConfigError(
                f"config key '{where}': ensemble of {members} members with vary 'transcript' "
                f"needs {members} sampled debates per item, but debate.n_samples is {samples}; "
                f"set debate.n_samples: {members} (or more)"
            )


def context_key(parts: list[str]) -> str:
    """The name of an input layout, e.g. ``item+explanation``; arms with equal layouts share it."""
    return "+".join(["item", *parts])


def parts_of(key: str) -> list[str]:
    pieces = key.split("+")
    if pieces[0] != "item" or any(part not in CONTEXT_PARTS for part in pieces[1:]):
        raise ConfigError(f"'{key}' is not a context layout (item, then any of {CONTEXT_PARTS})")
    return pieces[1:]


def share_budget(budget: int, lengths: list[int]) -> list[int]:
    """Tokens each part keeps: equal shares, short parts passing on what they do not use."""
    kept = [0] * len(lengths)
    remaining = max(budget, 0)
    cut = list(range(len(lengths)))
    while cut:
        share = remaining // len(cut)
        fitting = [i for i in cut if lengths[i] <= share]
        if not fitting:
            break
        for i in fitting:
            kept[i] = lengths[i]
            remaining -= lengths[i]
        cut = [i for i in cut if i not in fitting]
    if cut:
        share, extra = divmod(remaining, len(cut))
        for position, i in enumerate(cut):  # cut parts, in the arm's order
            kept[i] = share + (position < extra)
    return kept


def fit_to_budget(item: list[int], parts: list[list[int]], budget: int) -> tuple[list[int], int]:
    """Token ids of item + parts within ``budget`` (policy in the module docstring), and how many
    context tokens were cut."""
    item = item[:budget]
    kept = share_budget(budget - len(item), [len(part) for part in parts])
    ids = list(item)
    for part, n in zip(parts, kept):
        ids.extend(part[:n])
    return ids, sum(len(part) for part in parts) - sum(kept)


def encode_with_context(
    tokenizer, item: str, parts: dict[str, str], order: list[str], max_length: int
) -> tuple[list[int], int]:
    """The model input (with special tokens) for one item and its context parts, and the number
    of context tokens the policy cut."""
    prefix, suffix = special_affixes(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    if budget < 1:
        raise ConfigError(f"max_length {max_length} leaves no room for text in this tokenizer")
    item_ids = tokenizer.encode(item, add_special_tokens=False)
    part_ids = [
        tokenizer.encode(HEADERS[name] + parts[name].strip(), add_special_tokens=False)
        for name in order
    ]
    ids, cut = fit_to_budget(item_ids, part_ids, budget)
    return prefix + ids + suffix, cut


def special_affixes(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens a tokenizer puts before and after a text (e.g. BERT's [CLS] ... [SEP]),
    found by encoding a probe text with and without them (transformers 5 tokenizers have no
    ``build_inputs_with_special_tokens``)."""
    cached = getattr(tokenizer, "_w2s_affixes", None)
    if cached is not None:
        return cached
    probe = "probe text"
    bare = tokenizer.encode(probe, add_special_tokens=False)
    full = tokenizer.encode(probe, add_special_tokens=True)
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            affixes = (full[:start], full[start + len(bare) :])
            break
    else:
        affixes = ([], [])
    tokenizer._w2s_affixes = affixes
    return affixes
