"""Verify stage: run a bundle in LiteRT-LM (CPU, or its GPU engine) and compare its greedy tokens with the fp32 PyTorch model.

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

from sdk_build.verify.fidelity import (
    DEFAULT_PROMPTS,
    LONG_PROMPT_EXTRA_TOKENS,
    PromptResult,
    ReferencePlan,
    VerifyReport,
    _forward,
    bundle_greedy,
    compare,
    compare_all,
    covering_sequences,
    default_prompts,
    incremental_text,
    long_prompt,
    open_engine,
    reference_greedy,
    reference_next_tokens,
    reference_plan,
    run_plan,
    score,
    teacher_forced_contexts,
)
from sdk_build.verify.runs import gpu_adapter, run_plan_apart, verify_bundle, verify_bundle_runs

__all__ = [
    "DEFAULT_PROMPTS", "LONG_PROMPT_EXTRA_TOKENS", "PromptResult", "ReferencePlan", "VerifyReport", "bundle_greedy",
    "compare", "compare_all", "covering_sequences", "default_prompts", "gpu_adapter", "incremental_text",
    "long_prompt", "open_engine", "reference_greedy", "reference_next_tokens", "reference_plan", "run_plan",
    "run_plan_apart", "score", "teacher_forced_contexts", "verify_bundle", "verify_bundle_runs",
]
