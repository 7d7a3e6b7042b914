"""litert-torch's Gemma 3 text decoder, with the optional `lora` input its attention layers already understand.

litert-torch 0.10.0's attention applies a `LoRAEntry` (q/k/v on the attention input, o on its output) but Gemma 3's
`Decoder.forward` and `DecoderBlock.forward` take no `lora` argument, so `convert_to_tflite(lora_ranks=...)` fails on
them. These subclasses pass it through and change nothing else: without `lora` the forward is litert-torch's own.
Imported only when a LoRA is involved (it imports litert-torch at module level).
"""

from __future__ import annotations

import torch
from litert_torch.generative.examples.gemma3 import decoder
from litert_torch.generative.layers import kv_cache as kv_utils
from litert_torch.generative.layers import rotary_position_embedding as rotary_pos_emb


class LoraDecoderBlock(decoder.DecoderBlock):
    """Gemma 3's block (post-attention norm before the residual add) with the LoRA entry passed to attention."""

    def forward(self, x, rope=None, mask=None, input_pos=None, kv_cache=None, lora=None):
        x_norm = self.pre_atten_norm(x)
        attn_out, kv = self.atten_func(x_norm, rope, mask, input_pos, kv_cache, lora)
        x = x + self.post_atten_norm(attn_out)
        return x + self.ff(x), kv


class LoraDecoder(decoder.Decoder):
    """Gemma 3's text decoder whose forward takes an optional `lora` (litert-torch `LoRA`, one entry per layer)."""

    def __init__(self, config, mask_cache_size: int = 0):
        super().__init__(config, mask_cache_size)
        for block in self.transformer_blocks:
            # Same parameters, only forward differs: re-classing avoids building every block (all weights) twice.
            block.__class__ = LoraDecoderBlock

    @torch.inference_mode
    def forward(
        self,
        tokens,
        input_pos,
        kv_cache,
        input_embeds=None,
        mask=None,
        image_indices=None,
        export_config=None,
        lora=None,
    ):
        if lora is None:
            return super().forward(tokens, input_pos, kv_cache, input_embeds, mask, image_indices, export_config)
        if image_indices is not None:
            raise ValueError("LoRA with image inputs is not supported by this text-only decoder")
        if input_embeds is None:
            input_embeds = self.tok_embedding(tokens)
            if self.config.embedding_scale is not None:
                input_embeds = input_embeds * self.config.embedding_scale
        head_dim = self.config.block_config(0).attn_config.head_dim
        rope = [
            rotary_pos_emb.build_rope(input_pos, head_dim, self.config.block_config(i).attn_config.rotary_base)
            for i in range(self.config.num_layers)
        ]
        if mask is None:
            mask = self.mask_cache.index_select(2, input_pos)[:, :, :, : kv_cache.get_max_seq_len()]
        x, entries = input_embeds, []
        for i, block in enumerate(self.transformer_blocks):
            attn = self.config.block_config(i).attn_config
            layer_mask = self.get_local_global_attention_mask(
                mask[i] if isinstance(mask, list) else mask, attn.attn_type, input_pos, attn.sliding_window_size
            )
            x, entry = block(x, rope[i], layer_mask, input_pos, kv_cache.caches[i], lora.adapters[i])
            entries.append(entry)
        updated = kv_utils.KVCache(tuple(entries))
        if export_config is not None and torch.numel(input_pos) > 1 and not export_config.output_logits_on_prefill:
            return {"kv_cache": updated}
        return {"logits": self.lm_head(self.final_norm(x)), "kv_cache": updated}
