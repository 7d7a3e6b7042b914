"""Fidelity primitives: the fp32 reference's passes, the bundle's, and how they are scored.

What `sdk-build verify` measures (the package's docstring says how it is reported); public so that LoRA
verification (`sdk_build.lora.verify`) and `bench/` use the very same reference and scoring.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from sdk_build.convert.model_loader import forward_from_empty_cache
from sdk_build.errors import VerifyError
from sdk_build.verify.engine import EngineConfig, EngineError, OpenedEngine, greedy_failed, greedy_texts
from sdk_build.verify.engine import open_engine as engine_open
from sdk_build.verify.perplexity import Perplexity

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
    """Held-out perplexity of the bundle and of the fp32 reference (`sdk_build.verify.perplexity`); None when skipped."""

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


_forward = forward_from_empty_cache


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

    Plain data (JSON-able), so the bundle side can also run on another machine (`sdk_build.verify.engine.run_plan`).
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


def compare_all(model, engine, tokenizer, bundle, ref, prompts, new_tokens, cache_len, min_agreement) -> VerifyReport:
    """Reference and bundle side in one go, for callers that hold both (LoRA verification)."""
    plan = reference_plan(model, tokenizer, prompts, new_tokens, cache_len)
    return score(plan, run_plan(engine, plan), tokenizer, bundle.name, ref, min_agreement)
