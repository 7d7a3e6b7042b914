"""Read a Hugging Face PEFT LoRA folder and check it against the Gemma 3 shape it will be applied to.

A PEFT folder is `adapter_config.json` (r, lora_alpha, target_modules, ...) plus `adapter_model.safetensors` with
`base_model.model.model.layers.N.<self_attn|mlp>.<module>.lora_A.weight` of shape (r, in) and `...lora_B.weight`
of shape (out, r). Adapters trained for another model, another size, or with PEFT features that cannot be merged
into plain weights (DoRA, biases, saved full modules, per-module rank patterns) are refused here, before a
multi-minute export, with the file, the key and what was expected against what was found.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

from sdk_build.architecture import ModelShape
from sdk_build.errors import AdapterError

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"

ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")
GEMMA3_MODULES = ATTENTION_MODULES + MLP_MODULES
_PARENT = {**{m: "self_attn" for m in ATTENTION_MODULES}, **{m: "mlp" for m in MLP_MODULES}}

_KEY = re.compile(r"^base_model\.model\.model\.layers\.(\d+)\.(\w+)\.(\w+)\.lora_([AB])\.weight$")


def module_dims(shape: ModelShape, module: str) -> tuple[int, int]:
    """(in_features, out_features) of a Gemma 3 linear layer; LoRA A is (r, in), B is (out, r)."""
    h, q, kv, ffn = (
        shape.hidden_size,
        shape.num_heads * shape.head_dim,
        shape.num_kv_heads * shape.head_dim,
        (shape.intermediate_size),
    )
    return {
        "q_proj": (h, q),
        "k_proj": (h, kv),
        "v_proj": (h, kv),
        "o_proj": (q, h),
        "gate_proj": (h, ffn),
        "up_proj": (h, ffn),
        "down_proj": (ffn, h),
    }[module]


def weight_name(layer: int, module: str) -> str:
    """The Hugging Face name of the base weight a LoRA pair modifies."""
    return f"model.layers.{layer}.{_PARENT[module]}.{module}.weight"


@dataclasses.dataclass(frozen=True, eq=False)
class LoraAdapter:
    """A validated LoRA adapter: per (layer, module) its A (r, in) and B (out, r) in float32, and its scale."""

    directory: Path
    rank: int
    alpha: float
    scale: float
    """alpha / r (or alpha / sqrt(r) with use_rslora): the factor PEFT applies to B @ A."""
    pairs: dict[tuple[int, str], tuple[Any, Any]]
    base_model: str | None
    fingerprint: str

    @property
    def modules(self) -> tuple[str, ...]:
        found = {module for _, module in self.pairs}
        return tuple(m for m in GEMMA3_MODULES if m in found)

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(sorted({layer for layer, _ in self.pairs}))

    @property
    def name(self) -> str:
        """A file-name-safe name for the adapter (its folder name)."""
        return re.sub(r"[^A-Za-z0-9._-]+", "-", self.directory.name).strip("-.") or "adapter"

    def delta(self, layer: int, module: str):
        """scale * B @ A: what the adapter adds to the (out, in) base weight, in float32."""
        a, b = self.pairs[(layer, module)]
        return (b @ a) * self.scale

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the adapter."""
        return {
            "source": str(self.directory),
            "fingerprint": self.fingerprint,
            "rank": self.rank,
            "alpha": self.alpha,
            "scale": self.scale,
            "target_modules": list(self.modules),
            "layers": list(self.layers),
            "base_model": self.base_model,
        }


def load_adapter(directory: Path, shape: ModelShape) -> LoraAdapter:
    """Read and validate the PEFT folder `directory` for a model of `shape`; AdapterError says what is wrong."""
    from sdk_build.sources.checkpoint import fingerprint_files

    directory = Path(directory).expanduser()
    config_path, weights_path = _files(directory)
    config = _read_config(config_path)
    rank, alpha, scale = _rank_and_scale(config, config_path)
    listed = _listed_modules(config, config_path)
    pairs = _read_pairs(weights_path, shape, rank, listed)
    _check_layers_to_transform(config, config_path, shape)
    return LoraAdapter(
        directory=directory.resolve(),
        rank=rank,
        alpha=alpha,
        scale=scale,
        pairs=pairs,
        base_model=config.get("base_model_name_or_path"),
        fingerprint=fingerprint_files([config_path, weights_path], {"lora": 1}),
    )


def _files(directory: Path) -> tuple[Path, Path]:
    if not directory.exists():
        raise AdapterError(
            f"LoRA adapter folder {directory} does not exist; --lora takes a PEFT folder "
            f"({CONFIG_NAME} + {WEIGHTS_NAME})"
        )
    if not directory.is_dir():
        raise AdapterError(
            f"{directory} is a file; --lora takes the PEFT folder holding {CONFIG_NAME} and {WEIGHTS_NAME}"
        )
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    if not config_path.is_file():
        raise AdapterError(f"{directory} has no {CONFIG_NAME}; save the adapter with PEFT's save_pretrained()")
    if not weights_path.is_file():
        hint = (
            " (found adapter_model.bin: re-save it with safe_serialization=True)"
            if (directory / "adapter_model.bin").exists()
            else ""
        )
        raise AdapterError(f"{directory} has no {WEIGHTS_NAME}{hint}")
    return config_path, weights_path


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdapterError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise AdapterError(f"{path} must hold a JSON object, found {type(config).__name__}")
    peft_type = config.get("peft_type")
    if peft_type != "LORA":
        raise AdapterError(f"{path}: peft_type is {peft_type!r}, expected 'LORA' (only LoRA adapters can be merged)")
    refusals = {
        "use_dora": (lambda v: bool(v), "DoRA adapters rescale weight columns and cannot be merged as W + s*B@A"),
        "fan_in_fan_out": (lambda v: bool(v), "fan_in_fan_out is for GPT-2-style Conv1D layers, not Gemma's Linear"),
        "bias": (lambda v: v not in (None, "none"), "the adapter trains biases, which Gemma 3's layers do not have"),
        "modules_to_save": (lambda v: bool(v), "it saves whole modules (modules_to_save), not only LoRA pairs"),
        "rank_pattern": (lambda v: bool(v), "per-module ranks (rank_pattern) are not supported; retrain with one r"),
        "alpha_pattern": (lambda v: bool(v), "per-module alphas (alpha_pattern) are not supported; use one lora_alpha"),
    }
    for key, (refused, why) in refusals.items():
        if refused(config.get(key)):
            raise AdapterError(f"{path}: {key} = {config[key]!r}: {why}")
    return config


def _rank_and_scale(config: dict[str, Any], path: Path) -> tuple[int, float, float]:
    rank = config.get("r")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank <= 0:
        raise AdapterError(f"{path}: 'r' (the LoRA rank) must be a positive whole number, found {rank!r}")
    if "lora_alpha" not in config:
        raise AdapterError(
            f"{path} has no 'lora_alpha': the adapter's scale (lora_alpha / r) is unknown; add the "
            "value it was trained with"
        )
    alpha = config["lora_alpha"]
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not math.isfinite(alpha) or alpha <= 0:
        raise AdapterError(f"{path}: 'lora_alpha' must be a positive number, found {alpha!r}")
    scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    return rank, float(alpha), float(scale)


def _listed_modules(config: dict[str, Any], path: Path) -> set[str] | None:
    """Module names from target_modules when it is a list; None when it is a regex or 'all-linear'."""
    targets = config.get("target_modules")
    if targets is None:
        raise AdapterError(f"{path} has no 'target_modules'; PEFT writes the list of adapted layers there")
    if isinstance(targets, str):
        return None  # a regex or "all-linear": the tensor names below are checked one by one instead
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets) or not targets:
        raise AdapterError(f"{path}: 'target_modules' must be a non-empty list of names, found {targets!r}")
    names = {t.rsplit(".", 1)[-1] for t in targets}
    unknown = sorted(names - set(GEMMA3_MODULES))
    if unknown:
        raise AdapterError(
            f"{path}: target_modules names {unknown}, which Gemma 3 does not have; its linear layers are "
            f"{', '.join(GEMMA3_MODULES)}"
        )
    return names


def _check_layers_to_transform(config: dict[str, Any], path: Path, shape: ModelShape) -> None:
    layers = config.get("layers_to_transform")
    if layers is None:
        return
    indices = [layers] if isinstance(layers, int) else layers
    bad = [i for i in indices if not isinstance(i, int) or not 0 <= i < shape.num_layers]
    if bad:
        raise AdapterError(
            f"{path}: layers_to_transform has {bad}, outside this model's layers 0-{shape.num_layers - 1}"
        )


def _read_pairs(path: Path, shape: ModelShape, rank: int, listed: set[str] | None) -> dict[tuple[int, str], tuple]:
    from safetensors import safe_open

    try:
        handle = safe_open(str(path), framework="pt")
    except Exception as exc:
        raise AdapterError(f"{path} is not a readable safetensors file ({exc})") from exc
    halves: dict[tuple[int, str], dict[str, Any]] = {}
    with handle:
        for key in handle.keys():  # noqa: SIM118 (safe_open handles are not iterable)
            layer, module, half = _parse_key(key, path, shape, listed)
            tensor = handle.get_tensor(key)
            if not tensor.is_floating_point():
                raise AdapterError(f"{path}: {key} has dtype {tensor.dtype}; LoRA weights must be floating point")
            halves.setdefault((layer, module), {})[half] = tensor.float()
    if not halves:
        raise AdapterError(f"{path} holds no LoRA tensors")
    pairs = {}
    for (layer, module), found in sorted(halves.items()):
        prefix = f"base_model.model.{weight_name(layer, module).removesuffix('.weight')}"
        for half in "AB":
            if half not in found:
                raise AdapterError(
                    f"{path} has {prefix}.lora_{'AB'.replace(half, '')}.weight but not its partner "
                    f"{prefix}.lora_{half}.weight"
                )
        fan_in, fan_out = module_dims(shape, module)
        for half, want in (("A", (rank, fan_in)), ("B", (fan_out, rank))):
            got = tuple(found[half].shape)
            if got != want:
                raise AdapterError(
                    f"{path}: {prefix}.lora_{half}.weight has shape {got}, expected {want} "
                    f"(r={rank} from {CONFIG_NAME}; {module} is {fan_in} -> {fan_out} in this model)"
                )
        pairs[(layer, module)] = (found["A"], found["B"])
    return pairs


def _parse_key(key: str, path: Path, shape: ModelShape, listed: set[str] | None) -> tuple[int, str, str]:
    match = _KEY.match(key)
    if not match:
        hint = ""
        if ".language_model." in key:
            hint = " (a multimodal Gemma 3 adapter: gemma-edge builds the text-only 270M/1B models)"
        elif "lora_embedding" in key:
            hint = " (embedding LoRA is not supported)"
        raise AdapterError(
            f"{path}: unexpected tensor {key!r}{hint}; expected names like "
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
        )
    layer, parent, module, half = int(match.group(1)), match.group(2), match.group(3), match.group(4)
    if module not in _PARENT:
        raise AdapterError(
            f"{path}: {key} adapts {module!r}, which Gemma 3 does not have; its linear layers are "
            f"{', '.join(GEMMA3_MODULES)}"
        )
    if parent != _PARENT[module]:
        raise AdapterError(f"{path}: {key}: {module} lives under {_PARENT[module]!r} in Gemma 3, not {parent!r}")
    if layer >= shape.num_layers:
        raise AdapterError(
            f"{path}: {key} is for layer {layer}, but this model has {shape.num_layers} layers "
            f"(0-{shape.num_layers - 1}): was the adapter trained for a larger model?"
        )
    if listed is not None and module not in listed:
        raise AdapterError(
            f"{path}: {key} adapts {module}, which {CONFIG_NAME}'s target_modules does not list "
            f"({sorted(listed)}): the two files do not belong together"
        )
    return layer, module, half
