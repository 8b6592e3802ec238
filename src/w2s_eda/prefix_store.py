"""Keys and values of the prompt prefixes that several generation stages share, kept between jobs.

Every stage of the strong model opens its prompt with the same item: the chat header, the item's
text and its question (the default templates of explain, zero-shot, both debate turns and side
drift all start with ``{item}``). Without a store each stage prefills that prefix again; with one,
the ``item_prefixes`` job prefills every item's prefix once (``HFEngine.build_prefix_store``) and
the stages load its keys and values (``HFEngine.use_prefix_store``), prefilling only what follows.

Exact by construction: a store is a deterministic function of the model and its prefixes (they
are prefilled sorted, in batches cut from that order), and a stage reads the same bits whether it
runs first, after a resume, or again; a stage's chunks are keyed by the store's ``fingerprint``.

Layout: the tokens every prefix starts with (``header``, the chat template's system turn) once,
then each entry's tokens beyond it; per layer, keys and values of shape (heads, tokens, head_dim).
"""

from __future__ import annotations

import bisect
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .errors import ConfigError

FORMAT = "w2s-eda prefix store v2"


@dataclass
class PrefixStore:
    header: list[int]
    entries: list[list[int]]  # each entry's whole tokens (header included), sorted
    header_keys: list  # per layer: (heads, len(header), head_dim)
    header_values: list
    tail_keys: list  # per layer: (heads, sum of the entries' tails, head_dim), in entry order
    tail_values: list
    model: str = ""  # the model's identity, for the error when a stage loads another model's store

    def __post_init__(self):
        self.offsets = [0]
        for tokens in self.entries:
            self.offsets.append(self.offsets[-1] + len(tokens) - len(self.header))

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def fingerprint(self) -> str:
        """What decides the stored bits: the model and every prefix (so also the batches they
        were prefilled in)."""
        digest = hashlib.sha256(self.model.encode())
        digest.update(json.dumps(self.entries).encode())
        return digest.hexdigest()[:16]

    def match(self, tokens: Sequence[int]) -> tuple[int, int]:
        """The entry sharing the most leading tokens with ``tokens``, and how many it shares,
        leaving ``tokens`` at least one of its own (the last position's logits must be computed);
        (-1, 0) when no entry shares the header."""
        tokens = list(tokens)
        at = bisect.bisect_left(self.entries, tokens)
        best, shared = -1, 0
        for index in (at - 1, at):  # the longest common prefix is with a sorted neighbour
            if 0 <= index < len(self.entries):
                n = _shared(self.entries[index], tokens)
                if n > shared:
                    best, shared = index, n
        shared = min(shared, len(tokens) - 1)
        return (best, shared) if shared > len(self.header) else (-1, 0)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for group in
                   (self.header_keys, self.header_values, self.tail_keys, self.tail_values)
                   for t in group)

    def save(self, path: str | Path) -> None:
        """One safetensors file, written atomically; the same store always gives the same bytes
        (its metadata is one JSON value: safetensors writes several keys in a random order)."""
        from safetensors.torch import save_file

        tensors = {}
        for name, group in (("header_keys", self.header_keys), ("header_values", self.header_values),
                            ("tail_keys", self.tail_keys), ("tail_values", self.tail_values)):
            for layer, tensor in enumerate(group):
                tensors[f"{name}.{layer}"] = tensor.contiguous()
        metadata = {"store": json.dumps({"format": FORMAT, "model": self.model,
                                         "header": self.header, "entries": self.entries})}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        save_file(tensors, str(partial), metadata=metadata)
        partial.replace(path)

    @classmethod
    def load(cls, path: str | Path, device="cpu") -> "PrefixStore":
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"prefix store {path} is missing; rerun the item_prefixes job")
        with safe_open(str(path), framework="pt", device=str(device)) as handle:
            try:
                info = json.loads((handle.metadata() or {}).get("store", "{}"))
            except json.JSONDecodeError:
                info = {}
            if not isinstance(info, dict) or info.get("format") != FORMAT:
                raise ConfigError(f"{path} is not a prefix store ({FORMAT!r}); delete it and rerun")
            names = set(handle.keys())
            layers = sum(1 for name in names if name.startswith("header_keys."))
            groups = {name: [handle.get_tensor(f"{name}.{layer}") for layer in range(layers)]
                      for name in ("header_keys", "header_values", "tail_keys", "tail_values")}
        return cls(info["header"], info["entries"], model=info.get("model", ""), **groups)


def _shared(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
