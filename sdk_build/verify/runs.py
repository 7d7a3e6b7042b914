"""`verify_bundle_runs`: one bundle on one or more engines (CPU, GPU F16, GPU F32) against one fp32 reference.

LoRA bundles go to `sdk_build.lora.verify`, which uses the same primitives (`sdk_build.verify.fidelity`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from sdk_build.artifacts.manifest import BundleEntry, load_manifest
from sdk_build.errors import VerifyError
from sdk_build.sources import resolve_checkpoint
from sdk_build.sources.provenance import reference_description
from sdk_build.verify import perplexity
from sdk_build.verify.engine import EngineConfig
from sdk_build.verify.fidelity import (
    ReferencePlan,
    VerifyReport,
    default_prompts,
    open_engine,
    reference_plan,
    run_plan,
    score,
)


@dataclasses.dataclass
class FP32Reference:
    """What the fp32 PyTorch model says, computed once and shared by every engine run of a bundle, on this machine
    or on another one (`bench.remote_verify` carries it to a GPU host as JSON): the greedy and teacher-forced
    plan, and the log-likelihoods of the held-out text the bundle's perplexity is compared with."""

    plan: ReferencePlan
    held_out: list[perplexity.Segment]
    scores: list[list[float]]

    def engine_request(self) -> dict[str, object]:
        """What `python -m sdk_build.verify.engine` needs besides the bundle and the engine settings."""
        return {**self.plan.engine_request(), "scoring": [[s.context, s.target] for s in self.held_out]}

    def perplexity(self, produced: list | None) -> perplexity.Perplexity | None:
        """Both perplexities, or None when no held-out text was asked for; `produced` (the engine's (scores, error)
        per segment) empty or None: the bundle was not scored because it failed the greedy prompts."""
        if not self.held_out:
            return None
        return perplexity.score(self.held_out, self.scores, produced or
                                [([], "not run: the bundle failed the greedy prompts")] * len(self.held_out))

    def to_dict(self) -> dict[str, object]:
        return {"plan": self.plan.to_dict(), "held_out": [dataclasses.asdict(s) for s in self.held_out],
                "scores": self.scores}

    @classmethod
    def from_dict(cls, data: dict) -> FP32Reference:
        held_out = [perplexity.Segment(s["context"], s["target"], tuple(s["context_ids"]), tuple(s["target_ids"]))
                    for s in data.get("held_out", [])]
        return cls(ReferencePlan.from_dict(data["plan"]), held_out, data.get("scores", []))


def fp32_reference(checkpoint, tokenizer, ekv: int, prompts: Sequence[str], new_tokens: int,
                   perplexity_tokens: int) -> FP32Reference:
    """The fp32 model's answers to `prompts` and its scores on `perplexity_tokens` held-out tokens (0: none)."""
    from sdk_build.convert.model_loader import load_torch_model

    # A cache just long enough for the longest prompt + continuation: attention cost grows with its size.
    cache_len = min(ekv, max(len(tokenizer.encode(p)) for p in prompts) + new_tokens + 2)
    model = load_torch_model(checkpoint, mask_cache_size=cache_len)
    plan = reference_plan(model, tokenizer, prompts, new_tokens, cache_len)
    held_out = perplexity.held_out_segments(tokenizer, ekv, perplexity_tokens) if perplexity_tokens else []
    scores = perplexity.reference_log_likelihoods(model, held_out) if held_out else []
    return FP32Reference(plan, held_out, scores)


def gpu_adapter(bundle: Path, entry: BundleEntry | None, config: EngineConfig) -> dict:
    """The Vulkan device a GPU run will use, after checking it can run the bundle at all (one-line refusals)."""
    from sdk_build.gpu.buffers import TensorSize, largest_tensors, over_limit
    from sdk_build.gpu.vulkan import VulkanUnavailable, engine_device, list_devices

    try:
        device = engine_device(list_devices())
    except VulkanUnavailable as exc:
        raise VerifyError(f"cannot verify on the GPU: {exc}") from exc
    if config.precision == "f16" and not device.f16:
        raise VerifyError(
            f"{device.name} has no 16-bit float support (shaderFloat16 {device.shader_float16}, "
            f"storageBuffer16BitAccess {device.storage_buffer_16bit}): an F16 run there would not be F16; "
            "use --precision f32, or a device with f16 (lavapipe from bash scripts/setup.sh has it)"
        )
    recorded = (entry.extra.get("largest_tensors") if entry else None) or []
    tensors = [TensorSize.from_dict(t) for t in recorded] or largest_tensors(bundle)
    over = over_limit(tensors, device.max_storage_buffer_range)
    if over:
        raise VerifyError(
            f"{bundle.name}: its {over[0].describe()} is larger than {device.name}'s storage-buffer limit of "
            f"{device.max_storage_buffer_range:,} bytes ({device.max_storage_buffer_range / 2**20:,.0f} MiB), so no "
            "GPU engine can upload it there; rebuild it for a GPU target (--target web-gpu or android-gpu, which "
            "cut the embedding into blocks that fit: sdk_build/gpu/layout.py) or use a device with a larger limit"
        )
    return device.to_dict()


def verify_bundle(
    bundle: Path,
    checkpoint_ref: str | None = None,
    *,
    cache_dir: Path | None = None,
    new_tokens: int = 16,
    prompts: tuple[str, ...] | None = None,
    threads: int = 2,
    min_agreement: float | None = None,
    config: EngineConfig | None = None,
    perplexity_tokens: int = perplexity.DEFAULT_TOKENS,
) -> VerifyReport:
    """Verify `bundle` on one engine (the CPU by default): see `verify_bundle_runs`. `prompts` None:
    `default_prompts`, i.e. the short ones and one longer than the model's sliding window."""
    config = config or EngineConfig(threads=threads)
    return verify_bundle_runs(bundle, [config], checkpoint_ref, cache_dir=cache_dir, new_tokens=new_tokens,
                              prompts=prompts, min_agreement=min_agreement, perplexity_tokens=perplexity_tokens)[0]


def verify_bundle_runs(
    bundle: Path,
    configs: Sequence[EngineConfig],
    checkpoint_ref: str | None = None,
    *,
    cache_dir: Path | None = None,
    new_tokens: int = 16,
    prompts: tuple[str, ...] | None = None,
    min_agreement: float | None = None,
    perplexity_tokens: int = perplexity.DEFAULT_TOKENS,
) -> list[VerifyReport]:
    """One report per engine config (CPU, GPU F16, GPU F32...), all against one fp32 reference pass.

    `perplexity_tokens` held-out tokens are scored by the bundle and the reference (`sdk_build.verify.perplexity`; 0: not).

    GPU runs are checked first (a Vulkan device, f16 where F16 is asked for, every tensor within the device's
    buffer limit): a run that cannot happen is refused with one line before anything is computed.
    """
    import sentencepiece as spm

    bundle = Path(bundle)
    if not bundle.is_file():
        raise VerifyError(f"no bundle at {bundle}")
    entry = load_manifest(bundle.parent).find(bundle.name)
    if entry is None and checkpoint_ref is None:
        raise VerifyError(
            f"{bundle.name} is not in {bundle.parent}/manifest.json; pass --checkpoint to say which checkpoint it came from"
        )
    adapters = {c.key: gpu_adapter(bundle, entry, c) for c in configs if c.backend == "gpu"}
    ref = checkpoint_ref or entry.checkpoint["ref"]  # type: ignore[union-attr]
    custom = entry is not None and entry.model == "gemma3-custom"
    checkpoint = resolve_checkpoint(ref, cache_dir, allow_custom_shape=custom or checkpoint_ref is not None)
    if entry is not None and entry.checkpoint["fingerprint"] != checkpoint.fingerprint:
        raise VerifyError(f"{ref} has changed since {bundle.name} was built (fingerprint differs); rebuild it")
    ekv = entry.ekv if entry else 1024
    tokenizer = spm.SentencePieceProcessor(model_file=str(checkpoint.tokenizer_path))
    if prompts is None:
        prompts = default_prompts(tokenizer, checkpoint.shape.sliding_window, ekv, new_tokens)
    if entry is not None and entry.lora:
        if any(c.backend != "cpu" for c in configs):
            raise VerifyError(f"{bundle.name} carries a LoRA adapter: LiteRT-LM runs those on the CPU only")
        from sdk_build.lora.verify import verify_lora_bundle

        return [verify_lora_bundle(bundle, entry, checkpoint, cache_dir=cache_dir, new_tokens=new_tokens,
                                   prompts=prompts, threads=c.threads, min_agreement=min_agreement) for c in configs]
    reference = fp32_reference(checkpoint, tokenizer, ekv, prompts, new_tokens, perplexity_tokens)
    reports = []
    for config in configs:
        if config.backend == "gpu":
            produced, engine_adapter = run_plan_apart(bundle, ekv, config, cache_dir, reference)
        else:
            engine = open_engine(bundle, ekv, config.threads, config, cache_dir)
            try:
                produced, engine_adapter = run_plan(engine, reference.plan), None
                if reference.held_out and not any(e for _, e in produced["greedy"]):
                    produced["scores"] = perplexity.engine_log_likelihoods(engine, reference.held_out)
            finally:
                engine.close()
        report = score(reference.plan, produced, tokenizer, bundle.name, ref, min_agreement)
        report.perplexity = reference.perplexity(produced.get("scores"))
        report.backend, report.precision = config.backend, config.precision
        if config.backend == "gpu":
            report.adapter = {"device": adapters[config.key], "engine": engine_adapter}
        report.reference = reference_description(checkpoint.source)
        reports.append(report)
    return reports


def run_plan_apart(bundle: Path, ekv: int, config: EngineConfig, cache_dir: Path | None,
                   reference: FP32Reference) -> tuple[dict, str | None]:
    """The bundle side in a child process (`python -m sdk_build.verify.engine`): LiteRT-LM's GPU backend crashes in a
    process that has loaded TensorFlow, as the reference model's litert-torch does."""
    import json
    import subprocess
    import sys
    import tempfile

    from sdk_build.sources import default_cache_dir

    request = {"bundle": str(bundle.resolve()), "max_num_tokens": ekv, "backend": config.backend,
               "precision": config.precision, "threads": config.threads,
               "cache_root": str(Path(cache_dir) if cache_dir else default_cache_dir()), **reference.engine_request()}
    with tempfile.TemporaryDirectory(prefix="gemma-edge-engine-") as work:
        request_path, result_path, log_path = (Path(work) / n for n in ("request.json", "result.json", "engine.log"))
        request_path.write_text(json.dumps(request))
        with open(log_path, "w") as log:
            code = subprocess.call([sys.executable, "-m", "sdk_build.verify.engine", str(request_path), str(result_path)],
                                   stdout=log, stderr=subprocess.STDOUT)
        if code != 0 or not result_path.exists():
            from sdk_build.verify.engine import engine_reason

            reason = engine_reason(log_path.read_text(errors="replace")) or f"exit status {code}"
            raise VerifyError(f"LiteRT-LM crashed running {bundle.name} on {config.label}: {reason}")
        result = json.loads(result_path.read_text())
    if result["error"]:
        raise VerifyError(result["error"])
    return engine_outputs(result), result["adapter"]


def engine_outputs(result: dict) -> dict:
    """What `scoring` and `FP32Reference.perplexity` read, from the JSON `python -m sdk_build.verify.engine` writes."""
    return {"greedy": [tuple(p) for p in result["greedy"]], "forced": [tuple(p) for p in result["forced"]],
            "scores": [tuple(p) for p in result.get("scores", [])]}


