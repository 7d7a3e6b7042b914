"""The real Gemma 3 270M (shipped on PyPI) end to end: GGUF -> safetensors -> tflite -> int8 .task -> LiteRT-LM.

This is the one test that converts a real model (about 5 minutes on 2 cores); it runs in CI because it is
what proves the embedded default works from a clean clone.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sdk_build.pipeline import build
from sdk_build.spec import make_variant
from sdk_build.verify import verify_bundle

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cpu_bundle_dir(gemma_edge_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("embedded-270m")
    build("embedded:gemma3-270m", make_variant("dynamic_int8", 512, [32, 128]), out, cache_dir=gemma_edge_cache)
    return out


def test_embedded_270m_int8_task_matches_the_fp32_model(gemma_edge_cache: Path, cpu_bundle_dir: Path) -> None:
    from sdk_build.artifacts.manifest import load_manifest

    entry = load_manifest(cpu_bundle_dir).bundles[0]
    assert entry.file == "Gemma3-270M_multi-prefill-seq_q8_ekv512.task"
    assert 270 * 2**20 < entry.bytes < 300 * 2**20  # FACTS: 296 MB for the q8 270M .task
    report = verify_bundle(cpu_bundle_dir / entry.file, cache_dir=gemma_edge_cache, new_tokens=12,
                           prompts=("The capital of France is", "The quick brown fox"))
    assert report.passed, report.problems
    france = report.results[0]
    # The fp32 reference says what Hugging Face transformers says on these weights (checked once, when the embedded source was written).
    assert france.reference_text.startswith(" the capital of the country of France")
    assert france.bundle_text.startswith(" the capital of")
    assert report.top1_agreement >= 0.8


def test_the_cpu_layout_is_refused_on_a_128_mib_gpu_naming_its_table(cpu_bundle_dir: Path) -> None:
    """The CPU layout keeps Gemma 3's 262144 x 640 table whole: 160 MiB at int8, over lavapipe's (and WebGPU's
    default) 128 MiB storage-buffer limit. `verify --backend gpu` says so in one line before any engine starts."""
    bundle = cpu_bundle_dir / "Gemma3-270M_multi-prefill-seq_q8_ekv512.task"
    proc = subprocess.run([sys.executable, "-m", "sdk_build", "verify", str(bundle), "--backend", "gpu"], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("sdk-build: error:")]
    assert len(error) == 1, proc.stderr
    assert "[262144, 640] int8: 167,772,160 bytes" in error[0] and "134,217,728 bytes" in error[0]
    assert "--target web-gpu or android-gpu" in error[0]
