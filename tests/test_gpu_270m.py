"""The real Gemma 3 270M on LiteRT-LM's GPU engine (lavapipe here): the GPU targets' layout and F16 safety.

Slow (`nox -s slow_tests`): lavapipe runs the GPU engine on this CPU, and the 270M's 64 teacher-forced contexts
take many minutes on 2 cores.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sdk_build.gpu.buffers import largest_tensors
from sdk_build.pipeline import build
from sdk_build.spec import make_variant
from sdk_build.verify import verify_bundle_runs
from sdk_build.verify.engine import EngineConfig

pytestmark = pytest.mark.slow
LIMIT = 128 * 2**20


@pytest.fixture(scope="module")
def web_gpu_270m(gemma_edge_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("web-gpu-270m")
    variant = make_variant("dynamic_int8", 1024, [32, 128], formats=["task"], target="web-gpu")
    outcome = build("embedded:gemma3-270m", variant, out, cache_dir=gemma_edge_cache)
    return out / outcome.entries[0].file


def test_every_weight_of_the_270m_gpu_bundle_fits_128_mib(web_gpu_270m: Path) -> None:
    biggest = largest_tensors(web_gpu_270m, 1)[0]
    assert biggest.shape == (262144, 320) and biggest.bytes <= LIMIT


def test_the_270m_gpu_bundle_is_faithful_in_f16_and_f32_on_the_gpu_engine(web_gpu_270m: Path, gemma_edge_cache: Path):
    cpu, f16, f32 = verify_bundle_runs(
        web_gpu_270m, [EngineConfig(), EngineConfig("gpu", "f16"), EngineConfig("gpu", "f32")],
        cache_dir=gemma_edge_cache, min_agreement=0.8)
    for report in (cpu, f16, f32):
        assert report.passed, (report.run_label, report.problems)
    # F16 within a few points of F32: the residual stream is scaled into half precision's range
    assert f16.top1_agreement >= f32.top1_agreement - 0.05
    assert f16.results[0].bundle_text.startswith(" the capital of")
