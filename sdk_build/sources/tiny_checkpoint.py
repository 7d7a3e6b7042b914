"""Make a tiny Gemma-3-shaped Hugging Face checkpoint: seconds to convert, same code path as the real models.

It has real safetensors (HF names, tied embedding), a config.json, and a SentencePiece BPE tokenizer trained
here with Gemma's special-token layout (pad/eos/bos/unk = 0/1/2/3, `<start_of_turn>`/`<end_of_turn>`
user-defined), so every stage (loading, export, quantization, bundling, running in LiteRT-LM and the browser)
is exercised for real without downloading weights. Build with `allow_custom_shape=True`.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

from sdk_build.architecture import GEMMA3_270M, ModelShape

TINY_SHAPE = dataclasses.replace(
    GEMMA3_270M,
    vocab_size=512, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=2, num_kv_heads=1,
    head_dim=32, sliding_window=16, sliding_window_pattern=2, query_pre_attn_scalar=32,
    max_position_embeddings=2048,
)

_CORPUS = """The capital of France is Paris. The capital of Italy is Rome. Gemma runs on phones, laptops and in the
browser. On-device language models keep data private and work offline. A bundle holds the model, its tokenizer
and the metadata the runtime needs. Prefill reads the prompt; decode writes one token at a time. The quick brown
fox jumps over the lazy dog. Numbers like 1, 2, 3, 42 and 2026 are split into digits. Questions? Answers!
"""


def train_tokenizer(output: Path, vocab_size: int = TINY_SHAPE.vocab_size) -> Path:
    import sentencepiece as spm

    model = io.BytesIO()
    lines = [line.strip() for line in _CORPUS.splitlines() if line.strip()] * 20
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, model_type="bpe", vocab_size=vocab_size,
        byte_fallback=True, split_digits=True, pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
        user_defined_symbols=["<start_of_turn>", "<end_of_turn>"], add_dummy_prefix=False,
        normalization_rule_name="identity", remove_extra_whitespaces=False, character_coverage=1.0, minloglevel=2,
        hard_vocab_limit=False,
    )
    output.write_bytes(model.getvalue())
    return output


def make_tiny_checkpoint(
    directory: Path, *, seed: int = 0, instruction_tuned: bool = True, shape: ModelShape = TINY_SHAPE
) -> Path:
    """Write a tiny Gemma 3 checkpoint (safetensors + config.json + tokenizer.model) into `directory`."""
    import sentencepiece as spm
    import torch
    from safetensors.torch import save_file

    from sdk_build.convert.model_loader import expected_tensors

    directory.mkdir(parents=True, exist_ok=True)
    train_tokenizer(directory / "tokenizer.model", shape.vocab_size)
    vocab = spm.SentencePieceProcessor(model_file=str(directory / "tokenizer.model")).vocab_size()
    shape = dataclasses.replace(shape, vocab_size=vocab)
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, tensor_shape in expected_tensors(shape).items():
        if len(tensor_shape) == 1:
            tensors[name] = 0.1 * torch.randn(tensor_shape, generator=generator)
        else:
            tensors[name] = torch.randn(tensor_shape, generator=generator) * (tensor_shape[-1] ** -0.5)
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    name = "tiny-gemma3-it" if instruction_tuned else "tiny-gemma3-pt"
    (directory / "config.json").write_text(json.dumps(shape.to_hf_config(_name_or_path=name), indent=2))
    return directory
