"""The GPU layout: Gemma 3's tied embedding / LM head table stored as column blocks that each fit one GPU buffer.

Why: a GPU engine uploads every weight tensor as one storage buffer, and an adapter cannot bind a buffer larger
than its `maxStorageBufferRange` (WebGPU: `maxStorageBufferBindingSize`; 128 MiB by default and on many phones).
Gemma 3's 262144-row table is the one tensor over that: 160 MiB at int8 for the 270M, 288 MiB for the 1B. No
other tensor comes close (`sdk_build.gpu.buffers` lists them).

How: the table [vocab, hidden] is cut along `hidden` into k blocks [vocab, hidden / k]. The lookup gathers each
block with the same token ids and concatenates the pieces (no index arithmetic on token ids, which a GPU running in
F16 could not do exactly above 2048); the LM head multiplies each block with the matching slice of the hidden state
and adds the partial logits. Each block stays tied: one tensor serves both its lookup and its head part, so the
file is no larger. Per-channel quantization then scales each block's rows separately (finer than one scale per
row); blockwise recipes need each block's width to be a multiple of their block size, which the split respects.
The float model computes the same function, so `verify` compares against the same fp32 reference.
"""

from __future__ import annotations

import dataclasses
import math

from sdk_build.architecture import ModelShape
from sdk_build.errors import SpecError

WEBGPU_DEFAULT_BUFFER_LIMIT = 128 * 2**20
"""WebGPU's default maxStorageBufferBindingSize; lavapipe's and many phone browsers' limit too."""


@dataclasses.dataclass(frozen=True)
class EmbeddingStorage:
    """How a recipe stores the embedding table: bits per value and the quantization block width (0: none)."""

    bits: int
    block: int = 0


def embedding_splits(shape: ModelShape, limit_bytes: int, storage: EmbeddingStorage) -> int:
    """The fewest column blocks k such that each [vocab, hidden / k] block fits `limit_bytes` as stored.

    k divides `hidden` and keeps each block's width a multiple of the recipe's quantization block.
    """
    hidden, vocab = shape.hidden_size, shape.vocab_size
    for parts in range(1, hidden + 1):
        if hidden % parts:
            continue
        width = hidden // parts
        if storage.block and width % storage.block:
            continue
        if math.ceil(vocab * width * storage.bits / 8) <= limit_bytes:
            return parts
    raise SpecError(
        f"the {vocab} x {hidden} embedding cannot be cut into blocks of at most {limit_bytes:,} bytes at "
        f"{storage.bits} bits{f' in blocks of {storage.block}' if storage.block else ''}; raise the GPU buffer "
        "limit or use a narrower recipe"
    )


def split_tied_embedding(model, parts: int) -> None:
    """Replace a litert-torch Gemma 3 decoder's tied `tok_embedding` / `lm_head` with `parts` column blocks, in place."""
    if parts <= 1:
        return
    import torch
    from torch import nn

    weight = model.tok_embedding.weight.detach()
    vocab, hidden = weight.shape
    if hidden % parts:
        raise SpecError(f"cannot split a hidden size of {hidden} into {parts} equal blocks")
    width = hidden // parts

    class ColumnBlockEmbedding(nn.Module):
        """The lookup: each block gathered with the same ids, concatenated along hidden."""

        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList(
                nn.Embedding(vocab, width, _weight=block.clone().contiguous()) for block in weight.split(width, dim=1)
            )

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return torch.cat([block(tokens) for block in self.blocks], dim=-1)

    class ColumnBlockHead(nn.Module):
        """The LM head: partial logits of each block (sharing its tensor with the lookup), summed.

        The children are named `logits_*` so that recipes matching the LM head by name (`.*logits.*`) still find
        every part.
        """

        def __init__(self, lookup: ColumnBlockEmbedding) -> None:
            super().__init__()
            self.logits_parts = nn.ModuleList(nn.Linear(width, vocab, bias=False) for _ in lookup.blocks)
            for head, block in zip(self.logits_parts, lookup.blocks):
                head.weight = block.weight  # tied: one tensor, two consumers

        def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
            slices = hidden_states.split(width, dim=-1)
            logits = self.logits_parts[0](slices[0])
            for head, piece in zip(self.logits_parts[1:], slices[1:]):
                logits = logits + head(piece)
            return logits

    lookup = ColumnBlockEmbedding()
    model.tok_embedding = lookup
    model.lm_head = ColumnBlockHead(lookup)
