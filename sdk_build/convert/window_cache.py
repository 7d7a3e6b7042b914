"""Window-sized KV caches for Gemma 3's sliding-window layers: a ring buffer inside the exported graph.

Why in the graph: LiteRT-LM 0.18.1 sizes every KV buffer from the `kv_cache_k_<i>` / `kv_cache_v_<i>` inputs of the
model it loads (CPU executor); its `use_ringbuffers_local_attention` setting only reaches the GPU Artisan backend
(`c/engine.cc` sets `GpuArtisanConfig.use_autosized_ringbuffers`; the CPU ignores it), `LlmMetadata` has no
window field, and MediaPipe's bundler has none either. So a local layer holds only its 512-token window exactly
when the exported graph says so: its cache input is `window` tokens long and the graph itself writes each token
to slot `position % window` and masks the slots by the positions they hold. The runtime keeps passing what it
always passes (token ids, `input_pos`, the causal `mask` of `ekv` columns for the global layers) and carries the
cache tensors from one call to the next, whatever their length.

One forward pass over a chunk of T tokens starting at position `start` (prefill or decode):

- a local layer attends over its W ring slots (the keys written before this chunk) followed by the chunk's own
  keys, under a mask computed from `start`: slot s holds position `p_s = (start - 1) - ((start - 1 - s) mod W)`
  (negative: never written), visible to the query at position q when `q - p_s < window`; a chunk key i is visible
  to chunk query j when `i <= j` and `j - i < window`. This is Gemma 3's sliding-window mask, the same columns
  in another order, so the attention equals that of the full-length cache;
- it then writes the chunk's real tokens into their slots, the last one landing in each slot winning. A token is
  real when the runtime gave it its own position and unmasked its diagonal in `mask` (LiteRT-LM zeroes the
  positions of a prefill signature's padding and leaves its mask rows masked), so padding never overwrites a
  slot the next tokens still need.

What it cannot do: go back. A ring slot overwritten by a later token is gone, so a runtime that rewinds a session to
an earlier step after more than `window` tokens (checkpoints, `RewindToStep`, prefix reuse after a longer context)
would attend over the wrong keys. `sdk-build verify` exercises LiteRT-LM's session reuse with a prompt longer than
the window (`sdk_build.verify.long_prompt`); which targets get window caches by default is decided in
`sdk_build.convert.kv_cache` from what has been verified.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import litert_torch.generative.layers.model_config as cfg
import torch
from litert_torch.generative.examples.gemma3 import decoder
from litert_torch.generative.layers import attention
from litert_torch.generative.layers import kv_cache as kv_utils
from litert_torch.generative.layers import rotary_position_embedding as rotary_pos_emb
from litert_torch.generative.layers import scaled_dot_product_attention as sdpa


def ring_length(window: int, ekv: int) -> int | None:
    """Tokens a local layer's ring holds for a cache of `ekv`, or None when the window is no smaller than `ekv`."""
    return window if 0 < window < ekv else None


@dataclasses.dataclass(frozen=True)
class RingStep:
    """What every local layer of one forward pass shares: its attention mask and the slots the chunk fills."""

    mask: torch.Tensor
    """[1, 1, T, W + T] additive mask over (the W ring slots, the T chunk keys)."""
    source: torch.Tensor
    """[W] int32: the chunk index of the token each slot receives (meaningful where `write`)."""
    write: torch.Tensor
    """[W] bool: whether the slot receives a token of this chunk."""


def ring_step(input_pos: torch.Tensor, mask: torch.Tensor, ring: int, window: int, mask_value: float) -> RingStep:
    """The ring mask and write plan for a chunk at `input_pos`, given the runtime's causal `mask` [1, 1, T, E]."""
    steps = input_pos.shape[0]
    start = input_pos[0].to(torch.int32)
    chunk = torch.arange(steps, dtype=torch.int32)
    query = start + chunk  # [T]
    slots = torch.arange(ring, dtype=torch.int32)
    last = start - 1
    held = last - torch.remainder(last - slots, ring)  # [W] position each slot holds before this chunk
    cache_visible = (held >= 0).unsqueeze(0) & ((query.unsqueeze(1) - held.unsqueeze(0)) < window)
    distance = chunk.unsqueeze(1) - chunk.unsqueeze(0)  # query j - key i
    chunk_visible = (distance >= 0) & (distance < window)
    visible = torch.cat([cache_visible, chunk_visible], dim=1)
    additive = torch.where(visible, torch.zeros((), dtype=torch.float32), torch.full((), mask_value))

    # Real tokens: their own consecutive position, and the diagonal of the runtime's causal mask open.
    columns = mask.shape[-1]
    diagonal_at = torch.clamp(query, max=columns - 1)
    on_diagonal = torch.arange(columns, dtype=torch.int32).unsqueeze(0) == diagonal_at.unsqueeze(1)
    diagonal = torch.where(on_diagonal, mask[0, 0], torch.zeros((), dtype=mask.dtype)).sum(dim=1)
    real = (input_pos.to(torch.int32) == query) & (diagonal > -1.0)
    count = real.to(torch.int32).sum()
    offset = torch.remainder(slots - start, ring)  # chunk index of the first token landing in each slot
    write = offset < count
    last_landing = offset + ring * torch.div(count - 1 - offset, ring, rounding_mode="floor")
    source = torch.clamp(last_landing, min=0, max=steps - 1)
    return RingStep(mask=additive.view(1, 1, steps, ring + steps), source=source, write=write)


def ring_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cache: kv_utils.KVCacheEntry, step: RingStep,
    config: cfg.AttentionConfig,
) -> tuple[torch.Tensor, kv_utils.KVCacheEntry]:
    """Attention of a local layer over (ring, chunk) and the ring after the chunk's writes; transposed layout.

    Shapes as litert-torch's `_sdpa_with_kv_update_transposed`: query/key/value [B, T, heads, head_dim]; the ring's
    K is [1, kv_heads, W, head_dim] and its V [1, kv_heads, head_dim, W].
    """
    b, steps, heads, head_dim = query.shape
    groups = heads // config.num_query_groups
    query = query.permute(0, 2, 1, 3).reshape(1, b * config.num_query_groups, groups * steps, head_dim)
    key = key.permute(0, 2, 1, 3).reshape(1, -1, steps, head_dim)
    value = value.permute(0, 2, 3, 1).reshape(1, -1, head_dim, steps)
    keys = torch.cat([cache.k_cache, key], dim=2)
    values = torch.cat([cache.v_cache, value], dim=3)
    out = sdpa.scaled_dot_product_attention_transposed(
        query, keys, values, head_dim, mask=step.mask, softcap=config.logit_softcap
    )
    out = out.reshape(b, -1, steps, head_dim).permute(0, 2, 1, 3).reshape(b, steps, -1)
    new_k = torch.where(step.write.view(1, 1, -1, 1), torch.index_select(key, 2, step.source), cache.k_cache)
    new_v = torch.where(step.write.view(1, 1, 1, -1), torch.index_select(value, 3, step.source), cache.v_cache)
    return out, kv_utils.KVCacheEntry(new_k, new_v, cache.kv_layout)


class RingSelfAttention(attention.CausalSelfAttention):
    """Gemma 3's self-attention (split q/k/v, q/k RMS norms, RoPE) over a ring cache; `mask` is a `RingStep`."""

    def forward(self, x, rope=None, mask=None, input_pos=None, kv_cache=None, lora=None):  # type: ignore[override]
        if lora is not None or kv_cache is None or not isinstance(mask, RingStep):
            raise ValueError("RingSelfAttention needs a ring KV cache and a RingStep, and does not take LoRA")
        if kv_cache.kv_layout != kv_utils.KV_LAYOUT_TRANSPOSED:
            raise ValueError("window KV caches are implemented for the transposed KV layout only")
        b, steps, _ = x.size()
        c = self.config
        qkv = self.qkv_projection(x).view(b, steps, -1, c.head_dim)
        q, k, v = qkv.split((c.num_heads, c.num_query_groups, c.num_query_groups), dim=-2)
        q, k, v = self.query_norm(q), self.key_norm(k), self.value_norm(v)
        cos, sin = rope
        q, k = rotary_pos_emb.apply_rope_inline(q, k, cos, sin)
        out, kv_cache = ring_attention(q, k, v, kv_cache, mask, c)
        return self.output_projection(out), kv_cache


class WindowCacheDecoder(decoder.Decoder):
    """litert-torch's Gemma 3 decoder whose sliding-window layers keep `min(window, ekv)`-token ring caches.

    Built like `decoder.Decoder(config, mask_cache_size)`, where `mask_cache_size` is the export's `ekv`; the
    parameter names are the same, so checkpoints load unchanged.
    """

    def __init__(self, config: cfg.ModelConfig, mask_cache_size: int = 0):
        super().__init__(config, mask_cache_size)
        self.ring_layers: dict[int, int] = {}
        for index, block in enumerate(self.transformer_blocks):
            attn_config = config.block_config(index).attn_config
            if attn_config.attn_type != cfg.AttentionType.LOCAL_SLIDING:
                continue
            ring = ring_length(attn_config.sliding_window_size or 0, mask_cache_size)
            if ring is None:
                continue
            if (attn_config.num_heads % attn_config.num_query_groups or not attn_config.qkv_transpose_before_split
                    or attn_config.use_alibi):
                raise ValueError(f"layer {index}: window KV caches support Gemma 3's attention layout only")
            ring_attn = RingSelfAttention(config.embedding_dim, attn_config, config.enable_hlfb)
            ring_attn.load_state_dict(block.atten_func.state_dict())
            block.atten_func = ring_attn
            config.block_config(index).kv_cache_max_len = ring  # KVCache.from_model_config sizes it so
            self.ring_layers[index] = ring

    def forward(self, tokens, input_pos, kv_cache, input_embeds=None, mask=None, image_indices=None,
                export_config=None):  # type: ignore[override]
        if mask is None:  # the base class would cut its causal mask to the first cache's length: a ring's
            longest = max(entry.get_max_seq_len() for entry in kv_cache.caches)
            mask = self.mask_cache.index_select(2, input_pos)[:, :, :, :longest]
        return super().forward(tokens, input_pos, kv_cache, input_embeds, mask, image_indices, export_config)

    def _forward_with_embeds(self, input_embeds, rope, mask, input_pos, kv_cache, pixel_mask=None,
                             export_config=None) -> dict[str, Any]:
        if pixel_mask is not None or isinstance(mask, list):
            raise ValueError("WindowCacheDecoder takes text tokens and one causal mask")
        steps: dict[tuple[int, int], RingStep] = {}  # one mask and write plan per (ring, window), shared by layers
        x = input_embeds
        entries = []
        for index, block in enumerate(self.transformer_blocks):
            ring = self.ring_layers.get(index)
            if ring is not None:
                window = self.config.block_config(index).attn_config.sliding_window_size
                if (ring, window) not in steps:
                    steps[(ring, window)] = ring_step(input_pos, mask, ring, window, self.config.causal_mask_value)
                layer_mask: Any = steps[(ring, window)]
            else:
                attn_config = self.config.block_config(index).attn_config
                layer_mask = self.get_local_global_attention_mask(
                    mask, attn_config.attn_type, input_pos, attn_config.sliding_window_size
                )
            x, entry = block(x, rope[index], layer_mask, input_pos, kv_cache.caches[index])
            entries.append(entry)
        updated = kv_utils.KVCache(tuple(entries))
        if export_config is not None and torch.numel(input_pos) > 1 and not export_config.output_logits_on_prefill:
            return {"kv_cache": updated}
        return {"logits": self.lm_head(self.final_norm(x)), "kv_cache": updated}
