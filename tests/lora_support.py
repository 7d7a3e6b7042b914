"""An independent reference for LoRA tests: Hugging Face transformers' Gemma 3 with a PEFT adapter applied unfused.

Nothing here uses gemma-edge's merge code or litert-torch: each adapted `nn.Linear` gets a forward hook adding
scale * (x @ A^T) @ B^T, exactly what PEFT's LoRA layer computes, read straight from the adapter's safetensors.
"""

from __future__ import annotations

import json
from pathlib import Path


def hf_greedy(
    checkpoint_dir: Path, prompt_ids: list[int], new_tokens: int, adapter_dir: Path | None = None
) -> list[int]:
    """Greedy continuation (ids, without the prompt) of the fp32 HF model, with the adapter applied if given."""
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(str(checkpoint_dir), dtype=torch.float32).eval()
    if adapter_dir is not None:
        _hook_adapter(model, adapter_dir)
    ids = list(prompt_ids)
    with torch.no_grad():
        for _ in range(new_tokens):
            logits = model(torch.tensor([ids])).logits[0, -1]
            ids.append(int(torch.argmax(logits)))
    return ids[len(prompt_ids) :]


def _hook_adapter(model, adapter_dir: Path) -> None:
    from safetensors.torch import load_file

    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    modules = dict(model.named_modules())
    prefix = "base_model.model."
    for key, a in tensors.items():
        if not key.endswith(".lora_A.weight"):
            continue
        name = key[len(prefix) : -len(".lora_A.weight")]
        b = tensors[key.replace("lora_A", "lora_B")]
        modules[name].register_forward_hook(_lora_hook(a.float(), b.float(), scale))


def _lora_hook(a, b, scale: float):
    """PEFT's LoRA forward: base output + scale * (x @ A^T) @ B^T."""

    def hook(_module, inputs, output):
        return output + scale * (inputs[0] @ a.T) @ b.T

    return hook
