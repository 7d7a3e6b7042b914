"""GPU runner: this machine's GPU engine (LiteRT-LM's GPU backend: ml_drift over WebGPU over Vulkan), F16 and F32.

One worker process (`device_tests.runners.gpu_worker`) per bundle and precision runs the warm-up and measured
runs, each a fresh engine as `litert-lm benchmark` makes one; its peak RSS is the process's. Before anything runs,
the Vulkan device is checked against what the bundle needs (f16 for an F16 run, every weight within the device's
storage-buffer limit): a bundle the device cannot run is `unsupported`, with the reason, not a crash.

The result names the adapter. A software adapter (lavapipe, SwiftShader: Vulkan's deviceType CPU) is labelled so in
`environment.extra["adapter_software"]`, and the comparison never judges it against a published GPU row.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from device_tests.host_env import os_description
from device_tests.record import BenchmarkResult, Environment, RunSample, utc_now
from device_tests.runners.host import BundleInfo, run_process


@dataclasses.dataclass(frozen=True)
class GpuRunOptions:
    prefill_tokens: int = 256
    decode_tokens: int = 128
    runs: int = 5
    warmup: int = 1
    precisions: tuple[str, ...] = ("F16", "F32")
    timeout_s: float = 900.0
    cache_dir: Path | None = None
    """Where LiteRT-LM keeps its GPU program and weight caches (default: the gemma-edge cache), never beside the
    bundle."""


def _runtime_version() -> str:
    try:
        import importlib.metadata

        return importlib.metadata.version("litert-lm")
    except Exception:  # a host with litert_lm copied in rather than installed
        return "unknown"


def gpu_environment(device: dict | None, engine_adapter: str | None) -> Environment:
    name = (device or {}).get("name") or (engine_adapter or "no GPU").split(",")[0]
    software = bool((device or {}).get("software"))
    return Environment(
        surface="gpu",
        device=f"{name} (software)" if software else name,
        os=os_description(),
        backend="gpu",
        adapter={"vulkan": device or {}, "engine": engine_adapter or ""},
        extra={"adapter_software": software, "runtime": f"litert-lm {_runtime_version()}",
               "executor": "LiteRT GPU (ml_drift over WebGPU / Dawn over Vulkan)"},
    )


def _check_device(bundle: BundleInfo, precision: str) -> tuple[dict | None, str]:
    """(Vulkan device, reason it cannot run this bundle in this precision; "" when it can)."""
    from sdk_build.gpu.buffers import TensorSize, largest_tensors, over_limit
    from sdk_build.gpu.vulkan import VulkanUnavailable, engine_device, list_devices

    try:
        device = engine_device(list_devices())
    except VulkanUnavailable as exc:
        return None, str(exc)
    if precision == "F16" and not device.f16:
        return device.to_dict(), f"{device.name} has no 16-bit float support: it cannot run F16 (run F32 there)"
    tensors = [TensorSize.from_dict(t) for t in bundle.largest_tensors] or largest_tensors(bundle.path)
    over = over_limit(tensors, device.max_storage_buffer_range)
    if over:
        return device.to_dict(), (
            f"its {over[0].describe()} exceeds {device.name}'s storage-buffer limit of "
            f"{device.max_storage_buffer_range:,} bytes; build it for a GPU target (sdk_build/gpu/layout.py)"
        )
    return device.to_dict(), ""


def worker_command(bundle: BundleInfo, precision: str, options: GpuRunOptions, cache: Path) -> list[str]:
    return [sys.executable, "-m", "device_tests.runners.gpu_worker", str(bundle.path), "--precision", precision.lower(),
            "--prefill", str(options.prefill_tokens), "--decode", str(options.decode_tokens),
            "--max-num-tokens", str(bundle.ekv), "--runs", str(options.warmup + options.runs), "--cache-dir", str(cache)]


def run_gpu_benchmark(bundle: BundleInfo, options: GpuRunOptions) -> list[BenchmarkResult]:
    """One result per precision: warm-up runs discarded, then `options.runs` measured; problems in the record."""
    from sdk_build.sources.checkpoint import default_cache_dir
    from sdk_build.verify.engine import EngineConfig, engine_cache_dir

    results = []
    for precision in options.precisions:
        device, reason = _check_device(bundle, precision)
        result = bundle.new_result(prefill_tokens=options.prefill_tokens, decode_tokens=options.decode_tokens,
                                   warmup=options.warmup, precision=precision,
                                   environment=gpu_environment(device, None), started_utc=utc_now())
        results.append(result)
        if options.prefill_tokens + options.decode_tokens > bundle.ekv:
            result.status, result.message = "error", (
                f"prefill {options.prefill_tokens} + decode {options.decode_tokens} tokens exceed the bundle's KV "
                f"cache ({bundle.ekv}); lower --prefill/--decode")
            continue
        if reason:
            result.status, result.message = "unsupported", reason
            continue
        cache = engine_cache_dir(bundle.path, EngineConfig("gpu", precision.lower()),
                                 options.cache_dir or default_cache_dir())
        run = run_process(worker_command(bundle, precision, options, cache), options.timeout_s,
                          sorted(os.sched_getaffinity(0)))
        lines = [json.loads(line) for line in run.output.splitlines() if line.startswith("{")]
        adapter = next((line["adapter"] for line in lines if "adapter" in line), None)
        result.environment = gpu_environment(device, adapter)
        measured = [line for line in lines if "decode_tokens_per_s" in line]
        errors = [line["error"] for line in lines if "error" in line]
        result.samples = [RunSample(prefill_tokens_per_s=m["prefill_tokens_per_s"],
                                    decode_tokens_per_s=m["decode_tokens_per_s"], ttft_s=m["ttft_s"],
                                    init_s=m["init_s"]) for m in measured[options.warmup:]]
        result.peak_memory_bytes = run.max_rss_bytes or None
        if errors or run.returncode != 0 or len(result.samples) < options.runs:
            tail = " ".join(run.output.strip().splitlines()[-2:])
            result.status = "error"
            result.message = errors[0] if errors else f"the GPU worker exited with {run.returncode}: {tail}"
        elif any(s.prefill_tokens_per_s <= 0 or s.decode_tokens_per_s <= 0 for s in result.samples):
            result.status, result.message = "error", "LiteRT-LM reported 0 tokens/s: prefill or decode did not run"
    return results
