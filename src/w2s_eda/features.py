"""A model's representation of an input: the output of one transformer block, pooled.

Decoder models (causal LMs) are read at the last token, encoders are mean-pooled over the tokens,
as in openai/weak-to-strong and sentence-transformers. The block is a config key (``layer``):
middle layers of a small causal LM probe better than its last one. Blocks above the probed one
are dropped from the model, so extraction and training never compute them. The last block
(``layer: last``) is read as the model's last hidden state, as transformers returns it and as
openai/weak-to-strong reads it: after the final norm where the model has one (a Llama's), the
last block's own output where it has none (a BERT's).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from torch import nn

from .errors import ConfigError

log = logging.getLogger(__name__)


def resolve_layer(layer, n_layers: int, key: str = "layer") -> int:
    """``middle``, ``last`` or a block number (1-based) -> the block number."""
    if layer == "last":
        return n_layers
    if layer == "middle":
        return max(1, n_layers // 2)
    if isinstance(layer, int) and 1 <= layer <= n_layers:
        return layer
    raise ConfigError(
        f"config key '{key}': {layer!r} is not a block of this model; use 'middle', 'last' or a "
        f"number from 1 to {n_layers}"
    )


def _blocks(model: nn.Module) -> tuple[nn.Module, str, nn.ModuleList]:
    """The module list holding the transformer blocks, with its parent and attribute name."""
    n_layers = model.config.num_hidden_layers
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.ModuleList) and len(child) == n_layers:
                return parent, name, child
    raise ConfigError(f"cannot find the {n_layers} transformer blocks of {type(model).__name__}")


class PooledBackbone(nn.Module):
    """A transformers base model cut after block ``layer``; forward gives pooled features."""

    def __init__(self, model: nn.Module, layer: int, pooling: str):
        super().__init__()
        if pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', not {pooling!r}")
        parent, name, blocks = _blocks(model)
        if layer < len(blocks):
            setattr(parent, name, nn.ModuleList(list(blocks)[:layer]))
            model.config.num_hidden_layers = layer
        self.model = model
        self.layer = layer
        self.pooling = pooling
        # The last block is read from the model's output (after any final norm), an earlier one
        # from a hook on that block (before the norm the model applies after its last block).
        self.final = layer >= len(blocks)
        self._captured: torch.Tensor | None = None
        if not self.final:
            _, _, kept = _blocks(model)
            kept[layer - 1].register_forward_hook(self._capture)

    def _capture(self, module, inputs, output):
        self._captured = output[0] if isinstance(output, (tuple, list)) else output

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        hidden, self._captured = (out.last_hidden_state if self.final else self._captured), None
        if self.pooling == "last":
            # Right padding: the last real token of row i sits at (its length - 1).
            last = attention_mask.sum(dim=1) - 1
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        return pooled.float()


def pooling_for(kind: str) -> str:
    return "last" if kind == "causal" else "mean"


def pad_batch(rows: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists to the longest in the batch."""
    longest = max(len(row) for row in rows)
    ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids.to(device), mask.to(device)


def pad_id(tokenizer) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return candidate
    return 0


def batches_by_length(rows: list[list[int]], batch_size: int) -> list[list[int]]:
    """Index batches of similar length (less padding); the result does not depend on batching."""
    order = sorted(range(len(rows)), key=lambda i: (len(rows[i]), i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


@torch.no_grad()
def extract(
    backbone: PooledBackbone, rows: list[list[int]], pad: int, device, batch_size: int = 32,
    desc: str = "features", autocast_dtype=None,
) -> np.ndarray:
    """Pooled features of every row (float32), batched by length; a progress bar on stderr."""
    from tqdm import tqdm

    backbone.eval()
    features = np.zeros((len(rows), backbone.hidden_size), dtype=np.float32)
    started = time.monotonic()
    batches = batches_by_length(rows, batch_size)
    for batch in tqdm(batches, desc=desc, unit="batch", mininterval=2.0):
        ids, mask = pad_batch([rows[i] for i in batch], pad, device)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            features[batch] = backbone(ids, mask).cpu().numpy()
    seconds = time.monotonic() - started
    log.info("%s: %d inputs in %.1f s (%.1f/s)", desc, len(rows), seconds, len(rows) / max(seconds, 1e-9))
    return features
