"""Write a random LoRA adapter in Hugging Face PEFT format, for tests and benchmarks (no training, no `peft`).

PEFT initialises B to zero, so a freshly made adapter changes nothing; this one draws B too, scaled so that
scale * B @ A has about `strength` times the spread of a 1/sqrt(in)-initialised weight: enough to change a model's
greedy output at strength ~0.5 on the tiny model, small enough to keep a real model's activations finite.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from sdk_build.architecture import ModelShape
from sdk_build.lora.adapter import ATTENTION_MODULES, CONFIG_NAME, WEIGHTS_NAME, module_dims, weight_name


def peft_key(layer: int, module: str, half: str) -> str:
    return f"base_model.model.{weight_name(layer, module).removesuffix('.weight')}.lora_{half}.weight"


def write_random_adapter(
    directory: Path,
    shape: ModelShape,
    *,
    rank: int = 8,
    alpha: float = 16.0,
    modules: Sequence[str] = ATTENTION_MODULES,
    layers: Sequence[int] | None = None,
    strength: float = 0.5,
    seed: int = 0,
    base_model: str = "gemma-edge/random",
) -> Path:
    """Write adapter_config.json + adapter_model.safetensors for `shape` into `directory`; return it."""
    import torch
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    scale = alpha / rank
    tensors = {}
    for layer in layers if layers is not None else range(shape.num_layers):
        for module in modules:
            fan_in, fan_out = module_dims(shape, module)
            a = torch.randn(rank, fan_in, generator=generator) / math.sqrt(fan_in)
            b = torch.randn(fan_out, rank, generator=generator) * strength / (math.sqrt(rank) * scale)
            tensors[peft_key(layer, module, "A")] = a.contiguous()
            tensors[peft_key(layer, module, "B")] = b.contiguous()
    save_file(tensors, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": rank,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "target_modules": list(modules),
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "modules_to_save": None,
        "rank_pattern": {},
        "alpha_pattern": {},
        "inference_mode": True,
    }
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2))
    return directory
