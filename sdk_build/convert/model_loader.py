"""Build the litert-torch Gemma 3 decoder for a checkpoint: real weights from safetensors, or seeded random ones.

litert-torch's own builder tries its name maps in turn and returns None when none matches, which then
crashes far away; here the tensor names and shapes are checked first and a missing or misshapen tensor is
named in the error.
"""

from __future__ import annotations

from sdk_build.architecture import ModelShape, litert_model_config
from sdk_build.errors import SourceError
from sdk_build.sources.checkpoint import Checkpoint


def expected_tensors(shape: ModelShape) -> dict[str, tuple[int, ...]]:
    """Hugging Face tensor names and shapes of a Gemma3ForCausalLM of `shape` (lm_head is tied)."""
    h, d = shape.hidden_size, shape.head_dim
    names: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (shape.vocab_size, h),
        "model.norm.weight": (h,),
    }
    for i in range(shape.num_layers):
        p = f"model.layers.{i}."
        names.update({
            p + "self_attn.q_proj.weight": (shape.num_heads * d, h),
            p + "self_attn.k_proj.weight": (shape.num_kv_heads * d, h),
            p + "self_attn.v_proj.weight": (shape.num_kv_heads * d, h),
            p + "self_attn.o_proj.weight": (h, shape.num_heads * d),
            p + "self_attn.q_norm.weight": (d,),
            p + "self_attn.k_norm.weight": (d,),
            p + "input_layernorm.weight": (h,),
            p + "post_attention_layernorm.weight": (h,),
            p + "pre_feedforward_layernorm.weight": (h,),
            p + "post_feedforward_layernorm.weight": (h,),
            p + "mlp.gate_proj.weight": (shape.intermediate_size, h),
            p + "mlp.up_proj.weight": (shape.intermediate_size, h),
            p + "mlp.down_proj.weight": (h, shape.intermediate_size),
        })
    return names


def check_tensor_names(checkpoint: Checkpoint) -> None:
    from safetensors import safe_open

    found: dict[str, tuple[int, ...]] = {}
    for file in sorted(checkpoint.directory.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                found[key] = tuple(handle.get_slice(key).get_shape())
    expected = expected_tensors(checkpoint.shape)
    missing = [name for name in expected if name not in found]
    if missing:
        hint = ""
        if any(k.startswith("language_model.") for k in found):
            hint = " (names start with 'language_model.': this is a multimodal checkpoint)"
        raise SourceError(
            f"{checkpoint.directory} lacks {len(missing)} Gemma 3 tensors, e.g. {missing[:3]}{hint}; "
            "gemma-edge reads Hugging Face Gemma3ForCausalLM safetensors"
        )
    wrong = [(n, found[n], s) for n, s in expected.items() if found[n] != s]
    if wrong:
        name, got, want = wrong[0]
        raise SourceError(f"tensor {name} has shape {got}, config.json implies {want}; the checkpoint is inconsistent")


def load_torch_model(
    checkpoint: Checkpoint, mask_cache_size: int, *, lora_inputs: bool = False, window_kv_cache: bool = False
):
    """The fp32 litert-torch `Decoder` for `checkpoint`, in eval mode, with a causal-mask cache of `mask_cache_size`.

    `lora_inputs` gives the decoder whose forward also takes runtime LoRA weights (`sdk_build.lora.litert_decoder`);
    `window_kv_cache` the one whose sliding-window layers keep window-sized ring caches (`sdk_build.convert.window_cache`).
    """
    import torch
    from litert_torch.generative.examples.gemma3 import decoder
    from litert_torch.generative.utilities import model_builder

    if lora_inputs and window_kv_cache:
        raise ValueError("runtime LoRA inputs and window KV caches are not combined; export one or the other")
    model_class = decoder.Decoder
    if lora_inputs:
        from sdk_build.lora.litert_decoder import LoraDecoder

        model_class = LoraDecoder
    if window_kv_cache:
        from sdk_build.convert.window_cache import WindowCacheDecoder

        model_class = WindowCacheDecoder
    config = litert_model_config(checkpoint.shape, max_seq_len=max(mask_cache_size, checkpoint.shape.max_position_embeddings))
    if checkpoint.random_seed is not None:
        torch.manual_seed(checkpoint.random_seed)
        model = model_class(config, mask_cache_size)
        _init_random(model)
        return model.eval()
    check_tensor_names(checkpoint)
    model = model_builder.build_decoder_only_model(
        checkpoint_path=str(checkpoint.directory),
        config=config,
        tensor_names=decoder.TENSOR_NAMES_SEP_QKV,
        model_class=model_class,
        mask_cache_size=mask_cache_size,
    )
    return model.eval()


def _init_random(model) -> None:
    """Small-normal weights and zero (i.e. unit, zero-centred) norms: finite activations, like a trained model."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                param.normal_(0.0, 0.02)
            else:
                param.zero_()
    model.lm_head.weight = model.tok_embedding.weight  # keep the tie Gemma 3 has


def forward_from_empty_cache(model, ids: list[int], cache_len: int) -> dict:
    """One fp32 forward pass over `ids` from an empty KV cache of `cache_len` entries (verify's reference passes,
    held-out perplexity)."""
    import torch
    from litert_torch.generative.layers import kv_cache as kv_utils

    cache = kv_utils.KVCache.from_model_config(cache_len, model.config)
    return model(torch.tensor([ids]), torch.arange(len(ids), dtype=torch.int), cache)
