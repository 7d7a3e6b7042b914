"""Teacher-forced top-1 agreement with the fp32 reference, for our bundles and for llama.cpp, on the same positions.

"Faster at equal fidelity" needs one fidelity figure computed the same way for both runtimes. The reference and the
positions are `sdk_build.verify`'s: the fp32 litert-torch model built from the checkpoint greedily continues
verify's prompts; every prefix of that continuation is a context, re-encoded from text as verify does; the expected
token is the fp32 model's argmax after that context. A position counts when the runtime's next token prints the same
text as the expected one (a streaming detokenizer's view, verify's criterion); positions whose expected token is a raw
byte piece are skipped for both, since LiteRT-LM's text API cannot show them. The reference is computed once and
shared by every bundle and GGUF judged in one run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bench.llama_cpp_build import LlamaCppBuild
from sdk_build.sources.checkpoint import Checkpoint
from sdk_build.verify import (
    DEFAULT_PROMPTS,
    bundle_greedy,
    covering_sequences,
    incremental_text,
    open_engine,
    reference_greedy,
    reference_next_tokens,
    teacher_forced_contexts,
)


@dataclasses.dataclass(frozen=True)
class Position:
    """One judged position: the context (text and ids, with <bos>) and the fp32 model's next token after it."""

    prompt_index: int
    context_text: str
    context_ids: tuple[int, ...]
    expected_id: int
    expected_text: str


@dataclasses.dataclass(frozen=True)
class Reference:
    checkpoint: str
    prompts: tuple[str, ...]
    continuations: tuple[tuple[int, ...], ...]
    positions: tuple[Position, ...]
    skipped_byte_positions: int


@dataclasses.dataclass(frozen=True)
class Agreement:
    matches: int
    positions: int

    @property
    def top1(self) -> float:
        return self.matches / self.positions if self.positions else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {"top1_agreement": self.top1, "matches": self.matches, "positions": self.positions}


def build_reference(
    checkpoint: Checkpoint, new_tokens: int = 32, prompts: tuple[str, ...] = DEFAULT_PROMPTS
) -> Reference:
    """Greedy fp32 continuations and the judged positions along them (loads the fp32 model once, then frees it)."""
    import sentencepiece as spm

    from sdk_build.convert.model_loader import load_torch_model

    tokenizer = spm.SentencePieceProcessor(model_file=str(checkpoint.tokenizer_path))
    cache_len = max(len(tokenizer.encode(p)) for p in prompts) + new_tokens + 2
    model = load_torch_model(checkpoint, mask_cache_size=cache_len)
    continuations = reference_greedy(model, tokenizer, prompts, new_tokens, cache_len)
    texts, ids, owners = teacher_forced_contexts(tokenizer, prompts, continuations)
    expected = reference_next_tokens(model, ids) if ids else []
    del model
    positions, skipped = [], 0
    for owner, text, context, token in zip(owners, texts, ids, expected):
        if tokenizer.is_byte(token):
            skipped += 1
            continue
        positions.append(Position(owner, text, tuple(context), token, incremental_text(tokenizer, context, token)))
    return Reference(checkpoint.ref, prompts, tuple(tuple(c) for c in continuations), tuple(positions), skipped)


def bundle_agreement(reference: Reference, bundle: Path, ekv: int, threads: int = 2) -> Agreement:
    """LiteRT-LM on `bundle`: one greedy token after each reference context, compared as text."""
    engine = open_engine(bundle, ekv, threads)
    try:
        produced = bundle_greedy(engine, [p.context_text for p in reference.positions], max_tokens=1)
    finally:
        engine.close()
    matches = sum(1 for p, (text, error) in zip(reference.positions, produced) if not error and text == p.expected_text)
    return Agreement(matches, len(reference.positions))


def gguf_agreement(
    reference: Reference, build: LlamaCppBuild, model: Path, tokenizer_path: Path, threads: int = 1
) -> Agreement:
    """llama.cpp on `model`: its argmax after each reference context (fed as ids), compared as text.

    One thread by default: agreement does not depend on it, and llama.cpp's spinning thread barrier makes
    multi-threaded runs crawl on a machine whose cores are busy with other work.
    """
    import sentencepiece as spm

    from bench.llama_cpp_logits import llama_cpp_argmax

    tokenizer = spm.SentencePieceProcessor(model_file=str(tokenizer_path))
    sequences, where = covering_sequences([p.context_ids for p in reference.positions])
    argmax = llama_cpp_argmax(build, model, sequences, threads)
    matches = sum(
        1
        for p, (sequence, row) in zip(reference.positions, where)
        if incremental_text(tokenizer, p.context_ids, argmax[sequence][row]) == p.expected_text
    )
    return Agreement(matches, len(reference.positions))
