"""The fp32 weights of a resolved checkpoint as Hugging Face-named numpy arrays, whatever its source.

Our bundles and the llama.cpp files must be made from the same numbers. A folder checkpoint (the embedded 270M, a
local or hub one) already holds them as safetensors. A `random:` checkpoint holds none: its weights are drawn from a
seed when litert-torch's decoder is built (`sdk_build.convert.model_loader`), so they are taken from that very model here and
mapped back to Hugging Face names (litert-torch fuses q/k/v into one projection; it is split again).
"""

from __future__ import annotations

import numpy as np

from sdk_build.architecture import ModelShape
from sdk_build.sources.checkpoint import Checkpoint

_BLOCK_NAMES = {
    "pre_atten_norm": "input_layernorm",
    "post_atten_norm": "post_attention_layernorm",
    "atten_func.query_norm": "self_attn.q_norm",
    "atten_func.key_norm": "self_attn.k_norm",
    "atten_func.output_projection": "self_attn.o_proj",
    "ff.pre_ff_norm": "pre_feedforward_layernorm",
    "ff.post_ff_norm": "post_feedforward_layernorm",
    "ff.w1": "mlp.gate_proj",  # litert-torch: w2(act(w1(x)) * w3(x)), loaded from gate/up/down in that order
    "ff.w3": "mlp.up_proj",
    "ff.w2": "mlp.down_proj",
}


def checkpoint_tensors(checkpoint: Checkpoint) -> dict[str, np.ndarray]:
    """Every weight of `checkpoint` in fp32 under its Hugging Face name (the tied lm_head is not repeated)."""
    if checkpoint.random_seed is not None:
        return _from_litert_model(checkpoint)
    from safetensors.numpy import load_file

    tensors: dict[str, np.ndarray] = {}
    for file in sorted(checkpoint.directory.glob("*.safetensors")):
        for name, value in load_file(str(file)).items():
            if name != "lm_head.weight":
                tensors[name] = value.astype(np.float32, copy=False)
    return tensors


def split_qkv(qkv: np.ndarray, shape: ModelShape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undo litert-torch's interleaved fusion: per KV group, [q heads of the group, k, v] stacked along rows."""
    d, groups = shape.head_dim, shape.num_kv_heads
    q_per_kv = shape.num_heads // groups
    rows = qkv.reshape(groups, (q_per_kv + 2) * d, -1)
    q = rows[:, : q_per_kv * d].reshape(shape.num_heads * d, -1)
    k = rows[:, q_per_kv * d : (q_per_kv + 1) * d].reshape(groups * d, -1)
    v = rows[:, (q_per_kv + 1) * d :].reshape(groups * d, -1)
    return q, k, v


def litert_to_hf(state: dict[str, np.ndarray], shape: ModelShape) -> dict[str, np.ndarray]:
    """litert-torch Gemma 3 decoder parameter names -> Hugging Face Gemma3ForCausalLM names."""
    out = {"model.embed_tokens.weight": state["tok_embedding.weight"], "model.norm.weight": state["final_norm.weight"]}
    for i in range(shape.num_layers):
        prefix, hf = f"transformer_blocks.{i}.", f"model.layers.{i}."
        for litert_name, hf_name in _BLOCK_NAMES.items():
            out[f"{hf}{hf_name}.weight"] = state[f"{prefix}{litert_name}.weight"]
        q, k, v = split_qkv(state[f"{prefix}atten_func.qkv_projection.weight"], shape)
        out[f"{hf}self_attn.q_proj.weight"] = q
        out[f"{hf}self_attn.k_proj.weight"] = k
        out[f"{hf}self_attn.v_proj.weight"] = v
    return out


def _from_litert_model(checkpoint: Checkpoint) -> dict[str, np.ndarray]:
    from sdk_build.convert.model_loader import load_torch_model

    model = load_torch_model(checkpoint, mask_cache_size=32)  # the mask size does not change the drawn weights
    state = {
        name: tensor.detach().numpy()
        for name, tensor in model.state_dict().items()
        if name.endswith(".weight") and name != "lm_head.weight"
    }
    return litert_to_hf(state, checkpoint.shape)
