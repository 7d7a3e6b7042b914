"""Stage 5: run a bundle on this CPU with LiteRT-LM and compare its greedy tokens with the fp32 PyTorch model.

The reference is the litert-torch decoder built from the same checkpoint in fp32, before conversion, so a
disagreement measures exactly what conversion and quantization changed. Two figures are reported:
- teacher-forced top-1 agreement (the headline): at every position of the reference's greedy continuation,
  is the bundle's next token, given the reference prefix, the reference's argmax? One early divergence does
  not drag down every later position, so this measures per-token fidelity, as llama.cpp-style evaluations do;
- the free-running continuation of each, with the first position where they diverge. Both outputs go through the same
SentencePiece decode -> encode before being compared, so a multi-token character split across stream chunks
cannot count as a difference. A bundle fails outright when LiteRT-LM errors (e.g. an id of -1 from NaN logits)
or generates nothing where the reference generates text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from sdk_build import perplexity
from sdk_build.engine import EngineConfig, EngineError, OpenedEngine, greedy_failed, greedy_texts
from sdk_build.engine import open_engine as engine_open
from sdk_build.errors import VerifyError
from sdk_build.manifest import BundleEntry, load_manifest
from sdk_build.perplexity import Perplexity
from sdk_build.sources import resolve_checkpoint
from sdk_build.sources.provenance import reference_description

DEFAULT_PROMPTS = (
    "The capital of France is",
    "The quick brown fox",
    "Water boils at a temperature of",
    "def fibonacci(n):",
)
LONG_PROMPT_EXTRA_TOKENS = 88
"""The long default prompt is this much longer than the sliding window (Gemma 3: 512 + 88 = 600 tokens): its last
tokens attend only over the window, and a window-sized (ring) KV cache has wrapped around before they are read."""


def long_prompt(tokenizer, tokens: int) -> str:
    """Deterministic text of `tokens` SentencePiece tokens, varied enough that a model does not just repeat it."""
    ids: list[int] = []
    line = 0
    while len(ids) < tokens:
        ids += tokenizer.encode(
            f"Log entry {line}: station {line % 7} measured {(line * 37) % 101} units at {6 + line % 12} o'clock. "
        )
        line += 1
    return tokenizer.decode(ids[:tokens])


def default_prompts(tokenizer, window: int, ekv: int, new_tokens: int) -> tuple[str, ...]:
    """The four short prompts, plus one longer than the sliding window when it fits in the bundle's KV cache."""
    length = window + LONG_PROMPT_EXTRA_TOKENS
    if window <= 0 or length + new_tokens + 2 > ekv:
        return DEFAULT_PROMPTS
    return (*DEFAULT_PROMPTS, long_prompt(tokenizer, length))


@dataclasses.dataclass
class PromptResult:
    prompt: str
    reference_text: str
    bundle_text: str
    reference_tokens: list[int]
    bundle_tokens: list[int]
    matching: int
    first_divergence: int | None
    forced_matches: int = 0
    forced_positions: int = 0
    forced_skipped_byte_tokens: int = 0
    error: str = ""


@dataclasses.dataclass
class VerifyReport:
    bundle: str
    checkpoint: str
    new_tokens: int
    results: list[PromptResult]
    problems: list[str]
    backend: str = "cpu"
    precision: str | None = None
    """GPU activation precision (f16 / f32); None on the CPU."""
    adapter: dict | None = None
    """GPU runs: the Vulkan device (`sdk_build.gpu.vulkan.VulkanDevice.to_dict()`) and the engine's own line."""

    @property
    def run_label(self) -> str:
        return "CPU" if self.backend == "cpu" else f"GPU {(self.precision or '').upper()}"

    reference: str = ""
    """What the fp32 reference was built from, e.g. "fp32 model from the dequantized Q4_K_M GGUF weights"."""
    perplexity: Perplexity | None = None
    """Held-out perplexity of the bundle and of the fp32 reference (`sdk_build.perplexity`); None when skipped."""

    @property
    def top1_agreement(self) -> float:
        """Teacher-forced: share of reference positions where the bundle picks the reference's next token."""
        positions = sum(r.forced_positions for r in self.results)
        return sum(r.forced_matches for r in self.results) / positions if positions else 0.0

    @property
    def free_running_agreement(self) -> float:
        compared = sum(max(len(r.reference_tokens), 1) for r in self.results)
        return sum(r.matching for r in self.results) / compared if compared else 0.0

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, object]:
        return {
            **dataclasses.asdict(self), "top1_agreement": self.top1_agreement,
            "free_running_agreement": self.free_running_agreement, "passed": self.passed,
        }


def _forward(model, ids: list[int], cache_len: int) -> dict:
    """One fp32 forward pass over `ids` from an empty KV cache of `cache_len` entries."""
    import torch
    from litert_torch.generative.layers import kv_cache as kv_utils

    cache = kv_utils.KVCache.from_model_config(cache_len, model.config)
    return model(torch.tensor([ids]), torch.arange(len(ids), dtype=torch.int), cache)


def reference_greedy(model, tokenizer, prompts: tuple[str, ...], new_tokens: int, cache_len: int) -> list[list[int]]:
    """Greedy continuations (token ids, without the prompt) from the fp32 litert-torch model."""
    import torch

    stops = {tokenizer.eos_id(), tokenizer.piece_to_id("<end_of_turn>")}
    outputs = []
    with torch.inference_mode():
        for prompt in prompts:
            ids = [tokenizer.bos_id(), *tokenizer.encode(prompt)]
            result = _forward(model, ids, cache_len)
            generated: list[int] = []
            position = len(ids)
            while len(generated) < new_tokens and position < cache_len:
                token = int(torch.argmax(result["logits"][0, -1]).item())
                if token in stops:
                    break
                generated.append(token)
                result = model(
                    torch.tensor([[token]]), torch.tensor([position], dtype=torch.int), result["kv_cache"]
                )
                position += 1
            outputs.append(generated)
    return outputs


def covering_sequences(contexts: Sequence[Sequence[int]]) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """Fewest sequences whose prefixes are all `contexts`, and for each context its (sequence, last row) index.

    With causal attention the logits after a prefix do not depend on what follows it, so one pass over a prompt's
    longest context gives the next-token argmax after every shorter context that is a prefix of it (contexts are
    re-encoded from text, so a later one is usually, not always, an extension of an earlier one).
    """
    sequences: list[list[int]] = []
    order = sorted(range(len(contexts)), key=lambda i: -len(contexts[i]))
    located: dict[int, tuple[int, int]] = {}
    for index in order:
        context = list(contexts[index])
        for number, sequence in enumerate(sequences):
            if sequence[: len(context)] == context:
                located[index] = (number, len(context) - 1)
                break
        else:
            sequences.append(context)
            located[index] = (len(sequences) - 1, len(context) - 1)
    return sequences, [located[i] for i in range(len(contexts))]


def reference_next_tokens(model, contexts: list[list[int]]) -> list[int]:
    """fp32 argmax of the next token after each context: one forward pass per covering sequence, not per context
    (32 positions per prompt would otherwise cost 32 passes for the same numbers)."""
    import torch

    sequences, where = covering_sequences(contexts)
    longest = max(len(s) for s in sequences) + 1
    model.build_mask_cache(longest)  # contexts may be longer than the greedy pass's cache
    with torch.inference_mode():
        rows = [torch.argmax(_forward(model, sequence, longest)["logits"][0], dim=-1).tolist() for sequence in sequences]
    return [int(rows[sequence][row]) for sequence, row in where]


def teacher_forced_contexts(tokenizer, prompts, reference) -> tuple[list[str], list[list[int]], list[int]]:
    """Every prefix of each reference continuation as a context: its text, its ids (with <bos>) and its prompt index.

    Contexts are re-encoded from text, as a runtime given that text would see them.
    """
    texts: list[str] = []
    ids: list[list[int]] = []
    owners: list[int] = []
    for index, (prompt, continuation) in enumerate(zip(prompts, reference)):
        for k in range(len(continuation)):
            text = prompt + tokenizer.decode(continuation[:k]) if k else prompt
            texts.append(text)
            ids.append([tokenizer.bos_id(), *tokenizer.encode(text)])
            owners.append(index)
    return texts, ids, owners


def incremental_text(tokenizer, context_ids: Sequence[int], token: int) -> str:
    """The text a streaming detokenizer prints for `token` after `context_ids` (which start with <bos>)."""
    body = list(context_ids[1:])
    return tokenizer.decode(body + [token])[len(tokenizer.decode(body)) :]


def open_engine(bundle: Path, ekv: int, threads: int, config: EngineConfig | None = None,
                cache_dir: Path | None = None) -> OpenedEngine:
    """A LiteRT-LM engine for `bundle` (CPU by default), its caches under the gemma-edge cache, not beside it."""
    from sdk_build.sources import default_cache_dir

    config = config or EngineConfig(threads=threads)
    try:
        return engine_open(bundle, ekv, config, Path(cache_dir) if cache_dir else default_cache_dir())
    except EngineError as exc:
        raise VerifyError(str(exc)) from exc


def bundle_greedy(engine, prompts: list[str], max_tokens: int) -> list[tuple[str, str]]:
    """(text, error) per prompt from LiteRT-LM with top-1 sampling, at most `max_tokens` new tokens."""
    return greedy_texts(engine, prompts, max_tokens)


def compare(reference: list[int], produced: list[int]) -> tuple[int, int | None]:
    matching = sum(1 for a, b in zip(reference, produced) if a == b)
    divergence = next((i for i, (a, b) in enumerate(zip(reference, produced)) if a != b), None)
    if divergence is None and len(reference) != len(produced):
        divergence = min(len(reference), len(produced))
    return matching, divergence


@dataclasses.dataclass
class ReferencePlan:
    """What the fp32 reference says, and what to ask the bundle: computed once, run on any number of engines.

    Plain data (JSON-able), so the bundle side can also run on another machine (`sdk_build.engine.run_plan`).
    """

    prompts: list[str]
    new_tokens: int
    reference: list[list[int]]
    """The reference's greedy continuation ids per prompt."""
    contexts: list[str]
    """Teacher-forced contexts: every prefix of each reference continuation, as text."""
    context_ids: list[list[int]]
    owners: list[int]
    expected: list[int]
    """The reference's next token after each context."""

    def engine_request(self) -> dict[str, object]:
        return {"prompts": self.prompts, "new_tokens": self.new_tokens, "contexts": self.contexts,
                "expect_text": [bool(ids) for ids in self.reference]}

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ReferencePlan:
        return cls(**data)


def reference_plan(model, tokenizer, prompts: Sequence[str], new_tokens: int, cache_len: int) -> ReferencePlan:
    reference = reference_greedy(model, tokenizer, tuple(prompts), new_tokens, cache_len)
    texts, ids, owners = teacher_forced_contexts(tokenizer, prompts, reference)
    expected = reference_next_tokens(model, ids) if ids else []
    return ReferencePlan(list(prompts), new_tokens, reference, texts, ids, owners, expected)


def run_plan(engine, plan: ReferencePlan) -> dict[str, list[tuple[str, str]]]:
    """The bundle side: greedy continuations, then (when they all worked) one token after each context."""
    greedy = bundle_greedy(engine, plan.prompts, plan.new_tokens)
    broken = greedy_failed(greedy, [bool(ids) for ids in plan.reference])
    forced = bundle_greedy(engine, plan.contexts, max_tokens=1) if not broken else []
    return {"greedy": greedy, "forced": forced}


def score(plan: ReferencePlan, produced: dict, tokenizer, bundle_name: str, ref: str,
          min_agreement: float | None) -> VerifyReport:
    """Compare what a bundle produced with the reference plan."""
    results, problems = [], []
    for prompt, ref_ids, (text, error) in zip(plan.prompts, plan.reference, produced["greedy"]):
        ref_text = tokenizer.decode(ref_ids)
        ref_tokens = tokenizer.encode(ref_text)
        got_tokens = tokenizer.encode(text)[: len(ref_tokens) or None] if text else []
        matching, divergence = compare(ref_tokens, got_tokens)
        results.append(PromptResult(prompt, ref_text, text, ref_tokens, got_tokens, matching, divergence, error=error))
        if error:
            problems.append(f"{prompt!r}: LiteRT-LM failed: {error}")
        elif ref_tokens and not got_tokens:
            problems.append(f"{prompt!r}: the bundle generated nothing (NaN logits or a broken stop token?)")
    if not problems:
        for owner, ids, expected, (text, error) in zip(plan.owners, plan.context_ids, plan.expected, produced["forced"]):
            if tokenizer.is_byte(expected):
                # A raw byte piece (part of a multi-byte character) has no text of its own: LiteRT-LM's streaming
                # detokenizer withholds it, so this position cannot be judged through the text API.
                results[owner].forced_skipped_byte_tokens += 1
                continue
            expected_text = incremental_text(tokenizer, ids, expected)
            results[owner].forced_positions += 1
            results[owner].forced_matches += int(not error and text == expected_text)
    report = VerifyReport(bundle_name, ref, plan.new_tokens, results, problems)
    if min_agreement is not None and not problems and report.top1_agreement < min_agreement:
        report.problems.append(f"top-1 agreement {report.top1_agreement:.1%} is below the required {min_agreement:.0%}")
    return report


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

    `perplexity_tokens` held-out tokens are scored by the bundle and the reference (`sdk_build.perplexity`; 0: not).

    GPU runs are checked first (a Vulkan device, f16 where F16 is asked for, every tensor within the device's
    buffer limit): a run that cannot happen is refused with one line before anything is computed.
    """
    import sentencepiece as spm

    from sdk_build.model_loader import load_torch_model

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
    # A cache just long enough for the longest prompt + continuation: attention cost grows with its size.
    cache_len = min(ekv, max(len(tokenizer.encode(p)) for p in prompts) + new_tokens + 2)
    model = load_torch_model(checkpoint, mask_cache_size=cache_len)
    plan = reference_plan(model, tokenizer, prompts, new_tokens, cache_len)
    held_out = (perplexity.segments(tokenizer, tokens=perplexity_tokens,
                                    segment_tokens=min(perplexity.SEGMENT_TOKENS, ekv // 2))
                if perplexity_tokens else [])
    reference_scores = perplexity.reference_log_likelihoods(model, held_out) if held_out else []
    del model  # the fp32 model is not needed while engines run (1B: 4 GB)
    reports = []
    for config in configs:
        if config.backend == "gpu":
            produced, engine_adapter = run_plan_apart(bundle, ekv, config, cache_dir, plan, held_out)
        else:
            engine = open_engine(bundle, ekv, config.threads, config, cache_dir)
            try:
                produced, engine_adapter = run_plan(engine, plan), None
                if held_out and not any(e for _, e in produced["greedy"]):
                    produced["scores"] = perplexity.engine_log_likelihoods(engine, held_out)
            finally:
                engine.close()
        report = score(plan, produced, tokenizer, bundle.name, ref, min_agreement)
        if held_out:
            report.perplexity = perplexity.score(held_out, reference_scores, produced.get("scores") or
                                                 [([], "not run: the bundle failed the greedy prompts")] * len(held_out))
        report.backend, report.precision = config.backend, config.precision
        if config.backend == "gpu":
            report.adapter = {"device": adapters[config.key], "engine": engine_adapter}
        report.reference = reference_description(checkpoint.source)
        reports.append(report)
    return reports


def run_plan_apart(bundle: Path, ekv: int, config: EngineConfig, cache_dir: Path | None,
                   plan: ReferencePlan, held_out: Sequence = ()) -> tuple[dict, str | None]:
    """The bundle side in a child process (`python -m sdk_build.engine`): LiteRT-LM's GPU backend crashes in a
    process that has loaded TensorFlow, as the reference model's litert-torch does."""
    import json
    import subprocess
    import sys
    import tempfile

    from sdk_build.sources import default_cache_dir

    request = {"bundle": str(bundle.resolve()), "max_num_tokens": ekv, "backend": config.backend,
               "precision": config.precision, "threads": config.threads,
               "cache_root": str(Path(cache_dir) if cache_dir else default_cache_dir()), **plan.engine_request(),
               "scoring": [[s.context, s.target] for s in held_out]}
    with tempfile.TemporaryDirectory(prefix="gemma-edge-engine-") as work:
        request_path, result_path, log_path = (Path(work) / n for n in ("request.json", "result.json", "engine.log"))
        request_path.write_text(json.dumps(request))
        with open(log_path, "w") as log:
            code = subprocess.call([sys.executable, "-m", "sdk_build.engine", str(request_path), str(result_path)],
                                   stdout=log, stderr=subprocess.STDOUT)
        if code != 0 or not result_path.exists():
            from sdk_build.engine import engine_reason

            reason = engine_reason(log_path.read_text(errors="replace")) or f"exit status {code}"
            raise VerifyError(f"LiteRT-LM crashed running {bundle.name} on {config.label}: {reason}")
        result = json.loads(result_path.read_text())
    if result["error"]:
        raise VerifyError(result["error"])
    return {"greedy": [tuple(p) for p in result["greedy"]], "forced": [tuple(p) for p in result["forced"]],
            "scores": [tuple(p) for p in result.get("scores", [])]}, result["adapter"]


def _compare_all(model, engine, tokenizer, bundle, ref, prompts, new_tokens, cache_len, min_agreement) -> VerifyReport:
    """Reference and bundle side in one go, for callers that hold both (LoRA verification)."""
    plan = reference_plan(model, tokenizer, prompts, new_tokens, cache_len)
    return score(plan, run_plan(engine, plan), tokenizer, bundle.name, ref, min_agreement)
