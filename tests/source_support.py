"""Tiny checkpoints in the formats users hold: GGUFs written with gguf-py in any tensor type, read back as fp32.

The tiny shape here is wider than `TINY_SHAPE` (rows of 256 and 512 values) because GGUF's K-quants and IQ types
pack 256 values per block: every 2-D tensor of this shape can be stored in every type gguf-py knows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sdk_build.sources.tiny_checkpoint import TINY_SHAPE

WIDE_TINY = dataclasses.replace(TINY_SHAPE, hidden_size=256, intermediate_size=512, head_dim=128,
                                query_pre_attn_scalar=128)

Encoder = Callable[[str, np.ndarray], tuple[np.ndarray, object]]
"""(GGUF tensor name, fp32 values as stored, norms already 1 + w) -> (data for gguf-py, GGMLQuantizationType)."""


def load_tensors(directory: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    tensors: dict[str, np.ndarray] = {}
    for file in sorted(Path(directory).glob("*.safetensors")):
        tensors.update(load_file(str(file)))
    return tensors


def write_tiny_gguf(
    path: Path, checkpoint_dir: Path, encode: Encoder, *, architecture: str = "gemma3",
    extra: Callable[[object], None] | None = None, name: str = "tiny-gemma3-it",
) -> Path:
    """The tiny checkpoint in `checkpoint_dir` as a GGUF (gguf-py's writer), each tensor stored as `encode` says."""
    import json

    import gguf

    from bench.gguf_writer import gguf_name, hyperparameters, is_norm, sentencepiece_metadata
    from sdk_build.architecture import shape_from_hf_config

    shape = shape_from_hf_config(json.loads((checkpoint_dir / "config.json").read_text()))
    writer = gguf.GGUFWriter(path, architecture)
    writer.add_name(name)
    for field in sentencepiece_metadata(checkpoint_dir / "tokenizer.model"):
        writer.add_key_value(field.key, field.value, field.value_type, sub_type=field.sub_type)
    for key, value in hyperparameters(shape).items():
        key = key.replace("gemma3.", f"{architecture}.", 1)
        writer.add_float32(key, value) if isinstance(value, float) else writer.add_uint32(key, int(value))
    if extra is not None:
        extra(writer)
    for hf, values in sorted(load_tensors(checkpoint_dir).items()):
        stored = values.astype(np.float32) + (np.float32(1.0) if is_norm(hf) else np.float32(0.0))
        data, qtype = encode(gguf_name(hf), stored)
        writer.add_tensor(gguf_name(hf), np.ascontiguousarray(data), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def random_blocks(qtype, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Random bytes in `qtype`'s block layout whose dequantized values are all finite (rows redrawn until they
    are): a stand-in for a file gguf-py can read but not write (K-quants, IQ types)."""
    import gguf
    from gguf.quants import dequantize

    block, size = gguf.GGML_QUANT_SIZES[qtype]
    rows, cols = shape
    raw = rng.integers(0, 256, (rows, cols // block * size), dtype=np.uint8)
    for _ in range(200):
        with np.errstate(all="ignore"):  # random fp16 scales include NaN and inf: those rows are drawn again
            bad = ~np.isfinite(dequantize(raw, qtype)).all(axis=1)
        if not bad.any():
            return raw
        raw[bad] = rng.integers(0, 256, (int(bad.sum()), raw.shape[1]), dtype=np.uint8)
    raise AssertionError(f"could not draw finite {qtype.name} blocks")
