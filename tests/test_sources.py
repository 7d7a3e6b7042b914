"""Checkpoint resolution: every bad input gives one clear message; the embedded tokenizer is exact."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from sdk_build.errors import SourceError
from sdk_build.sources import resolve_checkpoint


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_tiny_checkpoint_resolves_only_when_custom_shapes_are_allowed(tiny_checkpoint_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="unsupported size"):
        resolve_checkpoint(str(tiny_checkpoint_dir), tmp_path)
    checkpoint = resolve_checkpoint(str(tiny_checkpoint_dir), tmp_path, allow_custom_shape=True)
    assert checkpoint.model == "gemma3-custom"
    assert checkpoint.instruction_tuned


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is not a folder"):
        resolve_checkpoint(str(tmp_path / "nope"), tmp_path)


def test_multimodal_checkpoint_is_refused(tiny_checkpoint_dir: Path, tmp_path: Path) -> None:
    directory = _copy(tiny_checkpoint_dir, tmp_path / "mm")
    config = json.loads((directory / "config.json").read_text())
    config.update(model_type="gemma3", architectures=["Gemma3ForConditionalGeneration"])
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(SourceError, match="multimodal Gemma 3"):
        resolve_checkpoint(str(directory), tmp_path, allow_custom_shape=True)


def test_other_architecture_is_refused(tiny_checkpoint_dir: Path, tmp_path: Path) -> None:
    directory = _copy(tiny_checkpoint_dir, tmp_path / "llama")
    (directory / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    with pytest.raises(SourceError, match="unsupported architecture"):
        resolve_checkpoint(str(directory), tmp_path)


def test_corrupt_safetensors_is_named(tiny_checkpoint_dir: Path, tmp_path: Path) -> None:
    directory = _copy(tiny_checkpoint_dir, tmp_path / "corrupt")
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(SourceError, match="model.safetensors is not a readable safetensors file"):
        resolve_checkpoint(str(directory), tmp_path, allow_custom_shape=True)


def test_missing_tokenizer(tiny_checkpoint_dir: Path, tmp_path: Path) -> None:
    directory = _copy(tiny_checkpoint_dir, tmp_path / "notok")
    (directory / "tokenizer.model").unlink()
    with pytest.raises(SourceError, match="no tokenizer.model"):
        resolve_checkpoint(str(directory), tmp_path, allow_custom_shape=True)


def test_wrong_tensor_names_are_reported_before_conversion(tiny_checkpoint_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    from sdk_build.convert.model_loader import load_torch_model

    directory = _copy(tiny_checkpoint_dir, tmp_path / "renamed")
    tensors = load_file(str(directory / "model.safetensors"))
    save_file({k.replace("model.", "language_model.model.", 1): v for k, v in tensors.items()},
              str(directory / "model.safetensors"))
    checkpoint = resolve_checkpoint(str(directory), tmp_path, allow_custom_shape=True)
    with pytest.raises(SourceError, match="multimodal checkpoint"):
        load_torch_model(checkpoint, mask_cache_size=64)


def test_hub_reference_fails_fast_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(SourceError, match="cannot download google/gemma-3-1b-it"):
        resolve_checkpoint("hf:google/gemma-3-1b-it", tmp_path)
    assert time.monotonic() - started < 30


def test_bad_random_reference(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="bad random reference"):
        resolve_checkpoint("random:gemma3-4b", tmp_path)


def test_random_1b_has_exact_shape_and_real_tokenizer(tmp_path: Path) -> None:
    import sentencepiece as spm

    checkpoint = resolve_checkpoint("random:gemma3-1b-it@7", tmp_path)
    assert checkpoint.model == "gemma3-1b" and checkpoint.random_seed == 7 and checkpoint.instruction_tuned
    assert checkpoint.display_name == "Gemma3-1B-IT"
    assert 0.99e9 < checkpoint.shape.parameter_count < 1.01e9
    tokenizer = spm.SentencePieceProcessor(model_file=str(checkpoint.tokenizer_path))
    assert tokenizer.vocab_size() == 262_144


def test_embedded_tokenizer_matches_gemma_chat_tokens(tmp_path: Path) -> None:
    """The SentencePiece model rebuilt from the GGUF gives Gemma's ids for its chat markup and round-trips text."""
    import gguf
    import sentencepiece as spm

    from sdk_build.sources.embedded import gguf_path
    from sdk_build.sources.gguf_tokenizer import sentencepiece_from_gguf

    path = sentencepiece_from_gguf(gguf.GGUFReader(gguf_path("gemma3-270m")), tmp_path / "tokenizer.model")
    tokenizer = spm.SentencePieceProcessor(model_file=str(path))
    prompt = "<start_of_turn>user\nThe capital of France is<end_of_turn>\n<start_of_turn>model\n"
    assert tokenizer.encode(prompt) == [105, 2364, 107, 818, 5279, 529, 7001, 563, 106, 107, 105, 4368, 107]
    for text in ["  two spaces, digits 2026, tabs\t\tand émojis 😀", "<start_of_turn>"]:
        assert tokenizer.decode(tokenizer.encode(text)) == text
    assert (tokenizer.pad_id(), tokenizer.eos_id(), tokenizer.bos_id(), tokenizer.unk_id()) == (0, 1, 2, 3)
