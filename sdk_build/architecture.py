"""Recognise Gemma 3 text models from `config.json` and describe them for litert-torch.

The converter silently builds garbage (or crashes far away) when handed a checkpoint of another shape, so
the shape is checked here, up front, against the two models this toolkit targets. Smaller Gemma-3-shaped
models (used by the test-suite) are accepted only when the caller opts in with `allow_custom_shape`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from sdk_build.errors import SourceError


@dataclasses.dataclass(frozen=True)
class ModelShape:
    """The numbers that define a Gemma 3 text decoder; everything the converter and size estimates need."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    sliding_window: int
    sliding_window_pattern: int
    rope_local_base: float
    rope_global_base: float
    rms_norm_eps: float
    query_pre_attn_scalar: float
    max_position_embeddings: int

    def to_hf_config(self, **extra: Any) -> dict[str, Any]:
        """A Hugging Face `config.json` (Gemma3ForCausalLM / gemma3_text) describing this shape."""
        layer_types = [
            "full_attention" if (i + 1) % self.sliding_window_pattern == 0 else "sliding_attention"
            for i in range(self.num_layers)
        ]
        config: dict[str, Any] = {
            "architectures": ["Gemma3ForCausalLM"],
            "model_type": "gemma3_text",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "sliding_window": self.sliding_window,
            "sliding_window_pattern": self.sliding_window_pattern,
            "layer_types": layer_types,
            "rope_theta": self.rope_global_base,
            "rope_local_base_freq": self.rope_local_base,
            "rms_norm_eps": self.rms_norm_eps,
            "query_pre_attn_scalar": self.query_pre_attn_scalar,
            "max_position_embeddings": self.max_position_embeddings,
            "hidden_activation": "gelu_pytorch_tanh",
            "attn_logit_softcapping": None,
            "final_logit_softcapping": None,
            "tie_word_embeddings": True,
            "pad_token_id": 0,
            "eos_token_id": 1,
            "bos_token_id": 2,
            "torch_dtype": "float32",
        }
        config.update(extra)
        return config

    def problems(self) -> list[str]:
        """What makes this shape impossible to build (each a phrase naming the config.json key); empty when none."""
        keys = {
            "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size, "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads, "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim, "sliding_window": self.sliding_window,
            "sliding_window_pattern": self.sliding_window_pattern,
            "max_position_embeddings": self.max_position_embeddings,
        }
        found = [f"{key} is {value}, it must be at least 1" for key, value in keys.items() if value < 1]
        floats = {"rope_local_base_freq": self.rope_local_base, "rope_theta": self.rope_global_base,
                  "rms_norm_eps": self.rms_norm_eps, "query_pre_attn_scalar": self.query_pre_attn_scalar}
        found += [f"{key} is {value}, it must be positive" for key, value in floats.items() if not value > 0]
        if self.num_heads >= 1 and self.num_kv_heads >= 1 and self.num_heads % self.num_kv_heads:
            found.append(f"num_attention_heads {self.num_heads} is not a multiple of num_key_value_heads "
                         f"{self.num_kv_heads}")
        return found

    @property
    def parameter_count(self) -> int:
        attn = self.hidden_size * self.head_dim * (2 * self.num_heads + 2 * self.num_kv_heads)
        mlp = 3 * self.hidden_size * self.intermediate_size
        norms = 4 * self.hidden_size + 2 * self.head_dim
        return self.vocab_size * self.hidden_size + self.num_layers * (attn + mlp + norms) + self.hidden_size


GEMMA3_270M = ModelShape(
    vocab_size=262_144, hidden_size=640, intermediate_size=2048, num_layers=18, num_heads=4, num_kv_heads=1,
    head_dim=256, sliding_window=512, sliding_window_pattern=6, rope_local_base=10_000.0,
    rope_global_base=1_000_000.0, rms_norm_eps=1e-6, query_pre_attn_scalar=256, max_position_embeddings=32_768,
)
GEMMA3_1B = dataclasses.replace(GEMMA3_270M, hidden_size=1152, intermediate_size=6912, num_layers=26)

KNOWN_SHAPES: dict[str, ModelShape] = {"gemma3-270m": GEMMA3_270M, "gemma3-1b": GEMMA3_1B}
CUSTOM_MODEL_NAME = "gemma3-custom"


def _get(config: dict[str, Any], key: str, default: Any = None) -> Any:
    if key in config and config[key] is not None:
        return config[key]
    if default is None:
        raise SourceError(f"config.json lacks {key!r}; is this a Hugging Face Gemma 3 checkpoint?")
    return default


def _whole(config: dict[str, Any], key: str, default: Any = None) -> int:
    """config[key] as a whole number (JSON 2.0 counts too), or a SourceError naming the key and the value."""
    value = _get(config, key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise SourceError(f"config.json's {key} is {value!r}, not a whole number; is the file damaged?")
    return int(value)


def _real(config: dict[str, Any], key: str, default: float) -> float:
    value = config.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SourceError(f"config.json's {key} is {value!r}, not a number; is the file damaged?")
    return float(value)


def _rope_bases(config: dict[str, Any]) -> tuple[float, float]:
    """Read local/global RoPE bases from either the transformers 4 or the transformers 5 layout."""
    params = config.get("rope_parameters")
    if isinstance(params, dict) and "full_attention" in params:
        return (
            float(params.get("sliding_attention", {}).get("rope_theta", 10_000.0)),
            float(params["full_attention"].get("rope_theta", 1_000_000.0)),
        )
    return float(config.get("rope_local_base_freq", 10_000.0)), float(config.get("rope_theta", 1_000_000.0))


def shape_from_hf_config(config: dict[str, Any]) -> ModelShape:
    """Parse a Gemma 3 text config.json; refuse other architectures with a message saying what was found."""
    archs = config.get("architectures") or []
    model_type = config.get("model_type")
    if model_type == "gemma3" or "Gemma3ForConditionalGeneration" in archs:
        raise SourceError(
            "this is a multimodal Gemma 3 checkpoint (4B/12B/27B, model_type 'gemma3'); gemma-edge builds the "
            "text-only Gemma 3 270M and 1B models: use gemma-3-270m(-it) or gemma-3-1b-it/-pt"
        )
    if model_type != "gemma3_text" and "Gemma3ForCausalLM" not in archs:
        raise SourceError(
            f"unsupported architecture {archs or model_type!r}: gemma-edge builds Gemma 3 text models "
            "(config.json model_type 'gemma3_text', architectures ['Gemma3ForCausalLM'])"
        )
    try:
        local, global_ = _rope_bases(config)
    except (TypeError, ValueError, AttributeError) as exc:
        raise SourceError(f"config.json's RoPE settings are malformed ({exc})") from None
    layer_types = config.get("layer_types")
    raw_pattern = config.get("sliding_window_pattern") or config.get("_sliding_window_pattern") or 6
    pattern = _whole({"sliding_window_pattern": raw_pattern}, "sliding_window_pattern")
    if layer_types is not None and not (
        isinstance(layer_types, list) and all(isinstance(t, str) for t in layer_types)
    ):
        raise SourceError(f"config.json's layer_types is {layer_types!r}, not a list of names")
    if layer_types:
        globals_at = [i for i, t in enumerate(layer_types) if t == "full_attention"]
        if globals_at and globals_at[0] + 1 != pattern:
            pattern = globals_at[0] + 1
        expected = [(i + 1) % pattern == 0 for i in range(len(layer_types))]
        if [t == "full_attention" for t in layer_types] != expected:
            raise SourceError(f"layer_types {layer_types} is not Gemma 3's every-{pattern}th-layer-global pattern")
    num_heads = _whole(config, "num_attention_heads")
    shape = ModelShape(
        vocab_size=_whole(config, "vocab_size"),
        hidden_size=_whole(config, "hidden_size"),
        intermediate_size=_whole(config, "intermediate_size"),
        num_layers=_whole(config, "num_hidden_layers"),
        num_heads=num_heads,
        num_kv_heads=_whole(config, "num_key_value_heads", num_heads),
        head_dim=_whole(config, "head_dim", 256),
        sliding_window=_whole(config, "sliding_window", 512),
        sliding_window_pattern=pattern,
        rope_local_base=local,
        rope_global_base=global_,
        rms_norm_eps=_real(config, "rms_norm_eps", 1e-6),
        query_pre_attn_scalar=_real(config, "query_pre_attn_scalar", 256.0),
        max_position_embeddings=_whole(config, "max_position_embeddings", 32_768),
    )
    problems = shape.problems()
    if problems:
        raise SourceError(f"config.json cannot describe a model: {'; '.join(problems)}")
    return shape


def identify(shape: ModelShape, *, allow_custom_shape: bool = False) -> str:
    """Name the model ("gemma3-270m", "gemma3-1b") or refuse it unless custom shapes are allowed."""
    for name, known in KNOWN_SHAPES.items():
        if _same_architecture(shape, known):
            return name
    if allow_custom_shape:
        if shape.query_pre_attn_scalar != shape.head_dim:
            raise SourceError("custom shapes need query_pre_attn_scalar == head_dim (as in Gemma 3 270M/1B)")
        return CUSTOM_MODEL_NAME
    raise SourceError(
        f"config.json describes a Gemma 3 text model of an unsupported size ({shape.num_layers} layers, hidden "
        f"{shape.hidden_size}, FFN {shape.intermediate_size}); gemma-edge targets Gemma 3 270M and 1B"
    )


def _same_architecture(a: ModelShape, b: ModelShape) -> bool:
    ignore = {"max_position_embeddings", "rms_norm_eps"}
    return all(getattr(a, f.name) == getattr(b, f.name) for f in dataclasses.fields(a) if f.name not in ignore)


def read_config(directory: Path) -> dict[str, Any]:
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise SourceError(f"{directory} has no config.json; point --checkpoint at a Hugging Face model folder")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise SourceError(f"{path} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror}") from None
    if not isinstance(config, dict):
        raise SourceError(f"{path} holds a JSON {type(config).__name__}, not a config object")
    return config


def litert_model_config(shape: ModelShape, max_seq_len: int | None = None):  # -> cfg.ModelConfig
    """The litert-torch ModelConfig for `shape`; equals litert-torch's own `get_decoder_config_1b/270m` for those."""
    import litert_torch.generative.layers.model_config as cfg

    norm = cfg.NormalizationConfig(type=cfg.NormalizationType.RMS_NORM, epsilon=shape.rms_norm_eps, zero_centered=True)
    ff = cfg.FeedForwardConfig(
        type=cfg.FeedForwardType.GATED,
        activation=cfg.ActivationConfig(cfg.ActivationType.GELU_TANH),
        intermediate_size=shape.intermediate_size,
        pre_ff_norm_config=norm,
        post_ff_norm_config=norm,
    )

    def block(idx: int) -> cfg.TransformerBlockConfig:
        is_global = (idx + 1) % shape.sliding_window_pattern == 0
        attn = cfg.AttentionConfig(
            num_heads=shape.num_heads,
            head_dim=shape.head_dim,
            num_query_groups=shape.num_kv_heads,
            rotary_base=int(shape.rope_global_base if is_global else shape.rope_local_base),
            rotary_percentage=1.0,
            qkv_transpose_before_split=True,
            query_norm_config=norm,
            key_norm_config=norm,
            logit_softcap=None,
            sliding_window_size=shape.sliding_window,
            attn_type=cfg.AttentionType.GLOBAL if is_global else cfg.AttentionType.LOCAL_SLIDING,
        )
        return cfg.TransformerBlockConfig(
            attn_config=attn, ff_config=ff, pre_attention_norm_config=norm, post_attention_norm_config=norm
        )

    return cfg.ModelConfig(
        vocab_size=shape.vocab_size,
        num_layers=shape.num_layers,
        max_seq_len=max_seq_len or shape.max_position_embeddings,
        embedding_dim=shape.hidden_size,
        embedding_scale=shape.hidden_size**0.5,
        block_configs=[block(i) for i in range(shape.num_layers)],
        final_norm_config=norm,
        lm_head_use_bias=False,
        final_logit_softcap=None,
    )
