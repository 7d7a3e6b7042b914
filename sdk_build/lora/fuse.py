"""Merge a LoRA adapter into a Hugging Face checkpoint: W' = W + scale * B @ A, written as a new cached checkpoint.

The fused folder is an ordinary checkpoint (same config.json and tokenizer, one model.safetensors), so every later
stage (export, quantize, bundle, verify) runs unchanged on it and the bundle costs exactly what the base costs.
It is cached under `<cache>/checkpoints/fused-<base>-<adapter>` and keyed by both fingerprints, so a changed
base or adapter makes a new one. Changed weights are stored in float32: in bfloat16 (Gemma's checkpoints) a small
update would be rounded away against the much larger base weight.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path

from sdk_build.errors import AdapterError
from sdk_build.lora.adapter import LoraAdapter, weight_name
from sdk_build.sources.checkpoint import Checkpoint

FUSE_FORMAT_VERSION = "1"
PROVENANCE_NAME = "lora_fusion.json"


def fused_fingerprint(base: Checkpoint, adapter: LoraAdapter) -> str:
    data = f"{base.fingerprint}:{adapter.fingerprint}:fuse-v{FUSE_FORMAT_VERSION}"
    return hashlib.sha256(data.encode()).hexdigest()[:32]


def fused_checkpoint(base: Checkpoint, adapter: LoraAdapter, cache_dir: Path) -> Checkpoint:
    """The cached fused checkpoint for (base, adapter); merged now if it is not there yet."""
    if base.random_seed is not None:
        raise AdapterError(
            f"{base.ref} has random weights generated at export time, not files to merge an adapter into; "
            "use a real checkpoint, or --lora-mode runtime (sizes and speed of a fused bundle equal the base's)"
        )
    fingerprint = fused_fingerprint(base, adapter)
    target = Path(cache_dir) / "checkpoints" / f"fused-{fingerprint}"
    if not (target / PROVENANCE_NAME).is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.with_name(target.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # parallel matrix jobs may ask for the same fused checkpoint
            if not (target / PROVENANCE_NAME).is_file():
                _write_fused(base, adapter, target)
    return dataclasses.replace(base, directory=target, fingerprint=fingerprint)


def _write_fused(base: Checkpoint, adapter: LoraAdapter, target: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    from sdk_build.system.atomic import check_free_space
    from sdk_build.system.progress import status

    weights = sorted(base.directory.glob("*.safetensors"))
    check_free_space(target.parent, int(sum(w.stat().st_size for w in weights) * 2.2))
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    wanted = {weight_name(layer, module): (layer, module) for layer, module in adapter.pairs}
    with status(f"merge LoRA {adapter.name} (r={adapter.rank}, {len(wanted)} layers) into {base.ref}"):
        tensors = {}
        for file in weights:
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 (safe_open handles are not iterable)
                    tensor = handle.get_tensor(key)
                    if key in wanted:
                        tensor = tensor.float() + adapter.delta(*wanted.pop(key))
                    tensors[key] = tensor.contiguous()
        if wanted:
            raise AdapterError(f"{base.ref} has no weights {sorted(wanted)[:3]} for the adapter to modify")
        save_file(tensors, str(partial / "model.safetensors"), metadata={"format": "pt"})
        del tensors
    for item in base.directory.iterdir():
        if item.is_file() and item.suffix != ".safetensors" and not item.name.startswith("."):
            shutil.copy2(item, partial / item.name)
    (partial / PROVENANCE_NAME).write_text(
        json.dumps(
            {
                "base": {"ref": base.ref, "fingerprint": base.fingerprint},
                "adapter": adapter.describe(),
                "formula": "W + scale * B @ A (scale = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora)",
            },
            indent=2,
        )
    )
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
