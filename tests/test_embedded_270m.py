"""The real Gemma 3 270M (shipped on PyPI) end to end: GGUF -> safetensors -> tflite -> int8 .task -> LiteRT-LM.

This is the one test that converts a real model (about 5 minutes on 2 cores); it runs in CI because it is
what proves the embedded default works from a clean clone.
"""

from __future__ import annotations

from pathlib import Path

from sdk_build.pipeline import build
from sdk_build.spec import make_variant
from sdk_build.verify import verify_bundle


def test_embedded_270m_int8_task_matches_the_fp32_model(gemma_edge_cache: Path, tmp_path: Path) -> None:
    variant = make_variant("dynamic_int8", 512, [32, 128])
    outcome = build("embedded:gemma3-270m", variant, tmp_path, cache_dir=gemma_edge_cache)
    entry = outcome.entries[0]
    assert entry.file == "Gemma3-270M_multi-prefill-seq_q8_ekv512.task"
    assert 270 * 2**20 < entry.bytes < 300 * 2**20  # FACTS: 296 MB for the q8 270M .task
    report = verify_bundle(tmp_path / entry.file, cache_dir=gemma_edge_cache, new_tokens=12,
                           prompts=("The capital of France is", "The quick brown fox"))
    assert report.passed, report.problems
    france = report.results[0]
    # The fp32 reference says what Hugging Face transformers says on these weights (FACTS.md).
    assert france.reference_text.startswith(" the capital of the country of France")
    assert france.bundle_text.startswith(" the capital of")
    assert report.top1_agreement >= 0.8
