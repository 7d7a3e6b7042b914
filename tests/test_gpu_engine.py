"""The GPU half on LiteRT-LM's real GPU engine (ml_drift over Dawn over Vulkan), on this machine's Vulkan device.

`scripts/setup.sh` installs lavapipe (Mesa's software Vulkan driver: f16 arithmetic, a 128 MiB storage-buffer
limit), so these run wherever the suite runs; SwiftShader's driver (no f16, 1 GiB buffers) comes with chromium.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_EKV, TINY_PREFILL

from sdk_build.artifacts.manifest import load_manifest
from sdk_build.gpu.buffers import model_bytes, tensor_sizes
from sdk_build.gpu.vulkan import list_devices
from sdk_build.pipeline import build
from sdk_build.sources.tiny_checkpoint import make_tiny_checkpoint
from sdk_build.spec import Target, default_int4, make_variant
from sdk_build.verify import verify_bundle_runs
from sdk_build.verify.engine import EngineConfig

REPO = Path(__file__).resolve().parents[1]
SWIFTSHADER_ICD = Path("/usr/lib/chromium/vk_swiftshader_icd.json")
NO_DRIVER = {"VK_ICD_FILENAMES": "/nonexistent/icd.json", "VK_DRIVER_FILES": "/nonexistent/icd.json"}
GPU_RUNS = [EngineConfig("gpu", "f16"), EngineConfig("gpu", "f32")]
PROMPTS = ("The capital of France is", "def fibonacci(n):")


def _lavapipe():
    return next((d for d in list_devices() if d.driver == "llvmpipe"), None)


@pytest.fixture(scope="module")
def gpu_tiny(tmp_path_factory, tiny_checkpoint_dir, gemma_edge_cache) -> Path:
    """A tiny web-gpu bundle whose buffer limit (16 KiB) forces the GPU layout's split of the embedding table."""
    out = tmp_path_factory.mktemp("gpu-tiny")
    variant = make_variant("dynamic_int8", TINY_EKV, TINY_PREFILL, formats=["task"], target="web-gpu",
                           gpu_buffer_limit=16 * 2**10)
    outcome = build(str(tiny_checkpoint_dir), variant, out, cache_dir=gemma_edge_cache, allow_custom_shape=True)
    return out / outcome.entries[0].file


@pytest.fixture(scope="module")
def hot_checkpoint(tmp_path_factory) -> Path:
    """A tiny checkpoint whose residual stream goes past half precision's 65504 (post-norm weights of 20000),
    as Gemma 3's real weights do, while float32 computes it fine."""
    from safetensors.torch import load_file, save_file

    directory = make_tiny_checkpoint(tmp_path_factory.mktemp("hot-checkpoint"))
    weights = load_file(str(directory / "model.safetensors"))
    for name in weights:
        if name.endswith(("post_attention_layernorm.weight", "post_feedforward_layernorm.weight")):
            weights[name] = weights[name] * 0 + 20000.0
    save_file(weights, str(directory / "model.safetensors"), metadata={"format": "pt"})
    return directory


def test_setup_gave_this_machine_a_vulkan_device_with_f16():
    device = _lavapipe()
    assert device is not None, f"no lavapipe among {list_devices()}: run bash scripts/setup.sh"
    assert device.software and device.f16
    assert device.max_storage_buffer_range == 128 * 2**20


def test_probing_vulkan_beside_tensorflow_leaves_the_process_able_to_exit():
    """lavapipe's LLVM and TensorFlow's LLVM in one process abort it at exit; the probe keeps the driver out."""
    code = "import tensorflow\nfrom sdk_build.gpu.vulkan import list_devices\nprint(len(list_devices()))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split()[-1]) >= 1


def test_gpu_layout_puts_every_weight_under_the_limit_and_keeps_the_table_tied(gpu_tiny):
    tensors = tensor_sizes(model_bytes(gpu_tiny))
    weights = [t for t in tensors if t.constant]
    assert max(t.bytes for t in weights) <= 16 * 2**10
    table_blocks = [t for t in weights if len(t.shape) == 2 and t.shape[0] == 512]  # the tiny vocabulary
    assert [t.shape for t in table_blocks] == [(512, 32), (512, 32)]  # 2 column blocks, each one shared tensor


def test_verify_on_the_gpu_in_f16_and_f32(gpu_tiny, gemma_edge_cache):
    reports = verify_bundle_runs(gpu_tiny, GPU_RUNS, cache_dir=gemma_edge_cache, new_tokens=8, prompts=PROMPTS,
                                 min_agreement=0.9)
    assert [r.precision for r in reports] == ["f16", "f32"]
    for report in reports:
        assert report.passed, report.problems
        assert report.top1_agreement >= 0.9
        assert "llvmpipe" in (report.adapter["engine"] or "")
        assert report.adapter["device"]["f16"] and report.adapter["device"]["software"]
    cache_files = sorted(p.name for p in gpu_tiny.parent.iterdir())
    assert not [n for n in cache_files if "cache" in n], f"engine caches beside the bundle: {cache_files}"


def test_default_int4_runs_on_the_gpu_in_f16_and_f32(tmp_path, tiny_checkpoint_dir, gemma_edge_cache):
    """The GPU targets' `int4` (README "Recipes": GPTQ, calibrated on the GPU layout's own float graph) on the GPU
    engine."""
    variant = make_variant("int4", TINY_EKV, TINY_PREFILL, formats=["task"], target="web-gpu",
                           gpu_buffer_limit=16 * 2**10)
    assert variant.recipe is default_int4(Target.WEB_GPU) and variant.recipe.calibrated
    outcome = build(str(tiny_checkpoint_dir), variant, tmp_path, cache_dir=gemma_edge_cache, allow_custom_shape=True)
    reports = verify_bundle_runs(tmp_path / outcome.entries[0].file, GPU_RUNS, cache_dir=gemma_edge_cache,
                                 new_tokens=8, prompts=PROMPTS, perplexity_tokens=0)
    for report in reports:
        assert report.passed, report.problems
        assert report.top1_agreement >= 0.5


def test_half_precision_really_overflows_and_the_f16_safe_export_fixes_it(hot_checkpoint, gemma_edge_cache, tmp_path):
    """F16 on this adapter is really half precision: a stream past 65504 breaks F16 and only F16. The GPU
    targets' export (residual stream scaled by a power of two, sdk_build/gpu/f16.py) runs the same model in F16."""
    plain = make_variant("dynamic_int8", TINY_EKV, TINY_PREFILL, formats=["task"], target="android-cpu")
    safe = make_variant("dynamic_int8", TINY_EKV, TINY_PREFILL, formats=["task"], target="web-gpu")
    reports = {}
    for name, variant in (("plain", plain), ("safe", safe)):
        outcome = build(str(hot_checkpoint), variant, tmp_path, cache_dir=gemma_edge_cache, allow_custom_shape=True)
        reports[name] = verify_bundle_runs(tmp_path / outcome.entries[0].file, GPU_RUNS, cache_dir=gemma_edge_cache,
                                           new_tokens=8, prompts=PROMPTS, min_agreement=0.9, perplexity_tokens=0)
    plain_f16, plain_f32 = reports["plain"]
    assert plain_f32.passed, plain_f32.problems
    assert not plain_f16.passed  # inf -> NaN logits: nothing generated, or garbage below the bar
    safe_f16, safe_f32 = reports["safe"]
    assert safe_f16.passed and safe_f32.passed, safe_f16.problems + safe_f32.problems
    entry = load_manifest(tmp_path).find(reports["safe"][0].bundle)
    scale = entry.extra["residual_scale"]
    assert scale < 1 and scale == 2.0 ** round(math.log2(scale))  # a power of two: exact in every precision


def _verify_cli(bundle: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "sdk_build", "verify", str(bundle), "--backend", "gpu", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})}, check=False)


def test_no_vulkan_device_is_one_clear_line(gpu_tiny):
    proc = _verify_cli(gpu_tiny, env=NO_DRIVER)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("sdk-build: error:")]
    assert len(errors) == 1 and "no Vulkan driver" in errors[0] and "scripts/setup.sh" in errors[0]


@pytest.mark.skipif(not SWIFTSHADER_ICD.exists(), reason="chromium's SwiftShader Vulkan driver is not installed")
def test_f16_is_refused_on_a_device_without_f16_and_f32_runs_there(gpu_tiny):
    env = {"VK_ICD_FILENAMES": str(SWIFTSHADER_ICD), "VK_DRIVER_FILES": str(SWIFTSHADER_ICD)}
    refused = _verify_cli(gpu_tiny, "--precision", "f16", env=env)
    assert refused.returncode == 2
    assert "SwiftShader" in refused.stderr and "no 16-bit float support" in refused.stderr
    f32 = _verify_cli(gpu_tiny, "--precision", "f32", "--tokens", "4", "--prompt", PROMPTS[0], env=env)
    assert f32.returncode == 0, f32.stdout + f32.stderr
    assert "SwiftShader" in f32.stdout and "[GPU F32]: top-1 agreement" in f32.stdout


def test_lab_gpu_measures_f16_and_f32_and_never_judges_a_software_adapter(gpu_tiny, tmp_path):
    import json

    proc = subprocess.run(
        [sys.executable, "-m", "device_tests.lab", "gpu", "--bundles", str(gpu_tiny.parent), "--runs", "1",
         "--warmup", "0", "--prefill", "32", "--decode", "8", "--report-dir", str(tmp_path), "--no-history"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "lab-gpu-latest.json").read_text())
    results = [record["result"] for record in report["records"]]
    assert sorted(r["precision"] for r in results) == ["F16", "F32"]
    for result in results:
        assert result["status"] == "ok" and result["samples"][0]["decode_tokens_per_s"] > 0
        assert result["environment"]["extra"]["adapter_software"] is True
        assert "llvmpipe" in result["environment"]["adapter"]["engine"]
    assert (tmp_path / "lab-gpu-latest.html").exists()


def test_verify_split_across_machines_scores_as_verify_does(gpu_tiny, tmp_path, gemma_edge_cache):
    """bench.remote_verify (the reference here, the bundle on a GPU host with only LiteRT-LM, the score here again)
    is `sdk-build verify --backend gpu` cut in three: the same prompts, the same held-out perplexity, the same score."""
    import os
    import re
    import shutil

    env = {**os.environ, "GEMMA_EDGE_CACHE": str(gemma_edge_cache)}
    plan = tmp_path / "plan"

    def run(*args: str, cwd: Path = REPO) -> str:
        proc = subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                              env={**env, "PYTHONPATH": str(REPO)}, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    run("bench.remote_verify", "plan", str(gpu_tiny), "--out", str(plan), "--precision", "f32",
        "--perplexity-tokens", "256")
    shutil.copy(gpu_tiny, plan / gpu_tiny.name)  # the GPU host gets the plan folder with the bundle in it
    run("sdk_build.verify.engine", "request-gpu-f32.json", "result-gpu-f32.json", cwd=plan)
    scored = run("bench.remote_verify", "score", str(gpu_tiny), str(plan))

    [direct] = verify_bundle_runs(gpu_tiny, [EngineConfig("gpu", "f32")], cache_dir=gemma_edge_cache,
                                  perplexity_tokens=256)
    assert f"[GPU F32]: top-1 agreement {direct.top1_agreement:.1%}" in scored, scored
    assert scored.count("prompt:") == len(direct.results)
    assert direct.perplexity is not None and direct.perplexity.bundle is not None
    split = re.search(r"held-out perplexity ([\d.]+) vs fp32 ([\d.]+)", scored)
    assert split, scored
    assert float(split.group(2)) == pytest.approx(direct.perplexity.reference, rel=1e-3)
    # The GPU engine's log-likelihoods vary from run to run (lavapipe: two direct runs of this bundle gave 848.8 and
    # 860.8 over the tiny model's near-uniform distributions); the reference side is the same computation, exactly.
    assert float(split.group(1)) == pytest.approx(direct.perplexity.bundle, rel=0.05)
