"""GGUF checkpoints (llama.cpp's format), in any tensor type gguf-py can dequantize -> the Hugging Face layout.

GGUF is how most people hold a fine-tuned Gemma: one file per quantization (F32, F16, BF16, Q8_0, Q4_0, the
K-quants, the IQ types...). This module reads one with gguf-py (llama.cpp's own reader) and writes what every
other stage reads: fp32 safetensors with Hugging Face names, `config.json` and a SentencePiece `tokenizer.model`.

- Everything that can be refused is checked from the header first (architecture, split files, size, tensor names
  and types, whether gguf-py can dequantize each type), before a byte of weights is converted or a file written.
- Weights are dequantized with `gguf.quants.dequantize`, the reference implementation in Python, so the fp32
  tensors are exactly what gguf-py says the file holds.
- llama.cpp's converter stores Gemma's zero-centred RMSNorm weights as (1 + w); the 1 is taken off again.
- The architecture numbers come from the `gemma3.*` metadata; what llama.cpp hard-codes for Gemma 3 (the
  sliding-window pattern, the local RoPE base) is read when a newer converter writes it, else llama.cpp's value.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sdk_build.architecture import ModelShape
from sdk_build.errors import SourceError
from sdk_build.sources.provenance import FLOAT_TYPES, SourceInfo, count_types

ARCHITECTURE = "gemma3"
LOCAL_ROPE_BASE = 10_000.0  # llama.cpp's value for Gemma 3's sliding-window layers
SLIDING_WINDOW_PATTERN = 6  # every 6th Gemma 3 layer is global (llama.cpp hard-codes it)

LAYER_NAMES = {
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
GLOBAL_NAMES = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight"}
_BLOCK = re.compile(r"^blk\.(\d+)\.([a-z_]+)\.weight$")
_INSTRUCTION_TUNED = re.compile(r"(^|[-_ ./])(it|instruct)($|[-_ .])", re.IGNORECASE)

Progress = Callable[[Iterable[Any], str], Iterable[Any]]


def hf_name(gguf_name: str) -> str:
    """Map a llama.cpp tensor name to its Hugging Face Gemma3ForCausalLM name."""
    if gguf_name in GLOBAL_NAMES:
        return GLOBAL_NAMES[gguf_name]
    match = _BLOCK.match(gguf_name)
    if not match or match.group(2) not in LAYER_NAMES:
        raise SourceError(f"unexpected tensor {gguf_name!r} in the GGUF file; is it a Gemma 3 text model?")
    return f"model.layers.{match.group(1)}.{LAYER_NAMES[match.group(2)]}.weight"


def is_norm(name: str) -> bool:
    return name.endswith("norm.weight")


def open_gguf(path: Path):  # -> gguf.GGUFReader
    """gguf-py's reader on `path`; a truncated or foreign file is one clear error."""
    import gguf

    try:
        return gguf.GGUFReader(path)
    except Exception as exc:  # gguf-py raises ValueError, struct errors, IndexError... on damaged files
        raise SourceError(
            f"{path} is not a readable GGUF file ({type(exc).__name__}: {str(exc)[:160]}); it is truncated or "
            "corrupt: download it again"
        ) from exc


@dataclasses.dataclass(frozen=True)
class GgufHeader:
    """What the header says, checked: enough to refuse a file before converting anything."""

    path: Path
    shape: ModelShape
    name: str
    instruction_tuned: bool
    source: SourceInfo
    reader: Any = dataclasses.field(default=None, repr=False, compare=False)
    """The open gguf-py reader, reused for the conversion (opening a Gemma GGUF parses 262k tokens)."""


def _value(reader, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    if field is None:
        if default is None:
            raise SourceError(f"the GGUF file lacks {key!r}; it was not written by llama.cpp's Gemma 3 converter")
        return default
    return field.contents()


def _clean(value: float) -> float:
    """GGUF stores float32: 1e-6 reads back as 9.9999999747e-07. Seven digits give the value that was written."""
    return float(f"{float(value):.7g}")


def shape_from_metadata(reader) -> ModelShape:
    """The model's shape from the `gemma3.*` keys (and the vocabulary from the embedding's rows)."""
    a = ARCHITECTURE
    embedding = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
    if embedding is None:
        raise SourceError("the GGUF file has no token_embd.weight tensor; it is not a complete Gemma 3 model")
    head_dim = int(_value(reader, f"{a}.attention.key_length"))
    pattern = _value(reader, f"{a}.attention.sliding_window_pattern", SLIDING_WINDOW_PATTERN)
    if not isinstance(pattern, int):
        raise SourceError(f"unsupported {a}.attention.sliding_window_pattern {pattern!r} (Gemma 3 has one number)")
    return ModelShape(
        vocab_size=int(embedding.shape[-1]),
        hidden_size=int(_value(reader, f"{a}.embedding_length")),
        intermediate_size=int(_value(reader, f"{a}.feed_forward_length")),
        num_layers=int(_value(reader, f"{a}.block_count")),
        num_heads=int(_value(reader, f"{a}.attention.head_count")),
        num_kv_heads=int(_value(reader, f"{a}.attention.head_count_kv")),
        head_dim=head_dim,
        sliding_window=int(_value(reader, f"{a}.attention.sliding_window")),
        sliding_window_pattern=pattern,
        rope_local_base=_clean(_value(reader, f"{a}.rope.freq_base_swa", LOCAL_ROPE_BASE)),
        rope_global_base=_clean(_value(reader, f"{a}.rope.freq_base")),
        rms_norm_eps=_clean(_value(reader, f"{a}.attention.layer_norm_rms_epsilon")),
        query_pre_attn_scalar=head_dim,  # llama.cpp scales queries by 1/sqrt(key_length) for Gemma 3
        max_position_embeddings=int(_value(reader, f"{a}.context_length")),
    )


def can_dequantize(qtype) -> bool:  # qtype: gguf.GGMLQuantizationType
    """Whether this gguf-py has a dequantizer for `qtype` (tried on one zero block)."""
    import gguf
    from gguf.quants import dequantize

    if qtype not in gguf.GGML_QUANT_SIZES:
        return False
    _, type_size = gguf.GGML_QUANT_SIZES[qtype]
    try:
        dequantize(np.zeros((1, type_size), dtype=np.uint8), qtype)
    except NotImplementedError:
        return False
    return True


def file_quantization(reader, weight_types: Iterable[str]) -> str:
    """The file's quantization as llama.cpp names it (Q4_K_M, Q8_0, BF16...): `general.file_type`, else the
    most common type of its 2-D tensors."""
    import gguf

    field = reader.fields.get("general.file_type")
    if field is not None:
        try:
            name = gguf.LlamaFileType(int(field.contents())).name
        except ValueError:
            name = ""
        if name and name != "GUESSED":
            return name.removeprefix("MOSTLY_").removeprefix("ALL_")
    common = count_types(weight_types)
    return common[0][0] if common else "unknown"


def read_header(path: Path) -> GgufHeader:
    """Open and check `path` without converting anything: every refusal happens here."""
    from sdk_build.convert.model_loader import expected_tensors

    reader = open_gguf(path)
    architecture = _value(reader, "general.architecture", "unknown")
    if architecture != ARCHITECTURE:
        hint = " (a vision projector, mmproj: pass the language-model file)" if architecture == "clip" else ""
        raise SourceError(
            f"{path.name} is a {architecture!r} GGUF{hint}; gemma-edge builds Gemma 3 text models "
            f"(general.architecture {ARCHITECTURE!r})"
        )
    splits = int(_value(reader, "split.count", 1))
    if splits > 1:
        raise SourceError(
            f"{path.name} is part of a GGUF split into {splits} files; merge them first "
            "(llama.cpp: llama-gguf-split --merge FIRST.gguf OUT.gguf)"
        )
    shape = shape_from_metadata(reader)
    weight_types = []
    for tensor in reader.tensors:
        hf_name(tensor.name)  # refuses tensors Gemma 3 does not have (e.g. a multimodal tower)
        if not can_dequantize(tensor.tensor_type):
            raise SourceError(
                f"tensor {tensor.name} of {path.name} has GGML type {tensor.tensor_type.name}, which gguf-py "
                f"{_gguf_version()} cannot dequantize; convert the file to another type (llama-quantize) first"
            )
        if len(tensor.shape) >= 2:
            weight_types.append(tensor.tensor_type.name)
    found = {hf_name(t.name): tuple(int(d) for d in reversed(t.shape)) for t in reader.tensors}
    expected = expected_tensors(shape)
    missing = sorted(set(expected) - set(found))
    if missing:
        raise SourceError(f"{path.name} lacks {len(missing)} Gemma 3 tensors, e.g. {missing[:3]}; the file is incomplete")
    wrong = [(n, found[n], s) for n, s in expected.items() if found[n] != s]
    if wrong:
        name, got, want = wrong[0]
        raise SourceError(f"tensor {name} of {path.name} has shape {got}, its metadata implies {want}")
    quantization = file_quantization(reader, weight_types)
    quantized = any(t not in FLOAT_TYPES for t in weight_types)
    label = " ".join(str(_value(reader, key, "")) for key in ("general.name", "general.finetune")) + " " + path.stem
    return GgufHeader(
        path=path,
        shape=shape,
        name=path.stem,
        instruction_tuned=bool(_INSTRUCTION_TUNED.search(label)),
        source=SourceInfo("gguf", quantization, quantized, count_types(weight_types)),
        reader=reader,
    )


def _gguf_version() -> str:
    from importlib.metadata import version

    return version("gguf")


def dequantized_tensors(reader, progress: Progress | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """(Hugging Face name, fp32 array) for every tensor, norms with llama.cpp's + 1 taken off again."""
    from gguf.quants import dequantize

    tensors = reader.tensors if progress is None else progress(reader.tensors, "dequantize GGUF")
    for tensor in tensors:
        values = dequantize(tensor.data, tensor.tensor_type).astype(np.float32, copy=False)
        name = hf_name(tensor.name)
        if is_norm(name):
            values = values - np.float32(1.0)  # llama.cpp stores Gemma RMSNorm weights as (1 + w)
        if not np.isfinite(values).all():
            raise SourceError(
                f"tensor {tensor.name} holds {int((~np.isfinite(values)).sum())} non-finite values after "
                "dequantization: the file is corrupt; download it again"
            )
        yield name, np.ascontiguousarray(values)


def materialize_gguf(
    header: GgufHeader, output_dir: Path, *, name_or_path: str | None = None, progress: Progress | None = None
) -> None:
    """Write fp32 `model.safetensors`, `config.json`, `tokenizer.model` and the provenance record for the checked GGUF
    into `output_dir`."""
    import json

    import torch
    from safetensors.torch import save_file

    from sdk_build.sources.gguf_tokenizer import sentencepiece_from_gguf
    from sdk_build.sources.provenance import write_record

    reader = header.reader if header.reader is not None else open_gguf(header.path)
    tensors = {name: torch.from_numpy(values) for name, values in dequantized_tensors(reader, progress)}
    save_file(tensors, str(output_dir / "model.safetensors"), metadata={"format": "pt"})
    del tensors
    sentencepiece_from_gguf(reader, output_dir / "tokenizer.model")
    config = header.shape.to_hf_config(_name_or_path=name_or_path or header.name)
    (output_dir / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    write_record(output_dir, header.source, header.instruction_tuned)


def find_gguf(directory: Path) -> Path | None:
    """The one model GGUF in `directory` (vision projectors set aside); None when it has none."""
    candidates = sorted(p for p in directory.glob("*.gguf") if not p.name.lower().startswith("mmproj"))
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates[:6]) + (" ..." if len(candidates) > 6 else "")
        raise SourceError(f"{directory} holds {len(candidates)} GGUF files ({names}); pass the one to build from")
    return candidates[0] if candidates else None
