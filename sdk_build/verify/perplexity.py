"""Held-out perplexity: how well a bundle and the fp32 reference predict a few thousand tokens of real text.

Teacher-forced top-1 over verify's prompts judges 64 greedy positions; perplexity judges every token of a longer
real text (`sdk_build.convert.text_corpus.HELD_OUT`, never used for calibration), so a recipe that only keeps the argmax
but blurs the rest of the distribution shows here. The bundle side is LiteRT-LM's own scoring
(`Session.run_text_scoring`: the log-likelihood of each target token given the session so far), the reference side
the fp32 litert-torch model on exactly the same token ids.

A segment is about `SEGMENT_TOKENS` tokens of whole paragraphs: its first words are the prompt (prefilled) and
the rest is scored. The target is cut at a space, where Gemma's tokenizer starts a new piece, so the target's ids
alone are the ids it has in the whole segment; a segment for which LiteRT-LM reports another token count is
counted as a problem, not scored.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from sdk_build.convert.text_corpus import HELD_OUT, TextSet
from sdk_build.verify.engine import scored_texts

DEFAULT_TOKENS = 2048
"""Target tokens scored (a few thousand; the HOWTOs hold about 10,000)."""
SEGMENT_TOKENS = 256
CONTEXT_CHARS = 40
"""The prompt of a segment: its text up to the first space after this many characters."""


@dataclasses.dataclass(frozen=True)
class Segment:
    context: str
    target: str
    context_ids: tuple[int, ...]
    """`<bos>` and the context's ids."""
    target_ids: tuple[int, ...]


@dataclasses.dataclass
class Perplexity:
    """Perplexity of the bundle and of the fp32 reference on the same held-out tokens."""

    text: str
    tokens: int
    reference: float
    bundle: float | None = None
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        return self.bundle / self.reference if self.bundle is not None else None

    def to_dict(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "ratio": self.ratio}

    def describe(self) -> str:
        if self.bundle is None:
            return f"held-out perplexity: fp32 {self.reference:.2f}; bundle not scored ({'; '.join(self.problems)})"
        return (f"held-out perplexity {self.bundle:.2f} vs fp32 {self.reference:.2f} ({self.ratio - 1:+.1%}) over "
                f"{self.tokens} tokens of {self.text}")


def segments(tokenizer, text_set: TextSet = HELD_OUT, tokens: int = DEFAULT_TOKENS,
             segment_tokens: int = SEGMENT_TOKENS) -> list[Segment]:
    """Consecutive segments of `text_set` until `tokens` target tokens are covered."""
    out: list[Segment] = []
    total = 0
    pending: list[str] = []
    for paragraph in text_set.paragraphs():
        pending.append(paragraph)
        text = "\n\n".join(pending)
        if len(tokenizer.encode(text)) < segment_tokens:
            continue
        pending = []
        cut = text.find(" ", CONTEXT_CHARS)
        if cut < 0:
            continue
        context, target = text[:cut], text[cut:]
        target_ids = tuple(tokenizer.encode(target)[: segment_tokens])
        target = tokenizer.decode(list(target_ids))
        if not target.startswith(" "):  # decode drops a leading space piece on some tokenizers: keep the text exact
            target = " " + target.lstrip(" ")
        target_ids = tuple(tokenizer.encode(target))
        out.append(Segment(context, target, (tokenizer.bos_id(), *tokenizer.encode(context)), target_ids))
        total += len(target_ids)
        if total >= tokens:
            break
    return out


def held_out_segments(tokenizer, ekv: int, tokens: int = DEFAULT_TOKENS) -> list[Segment]:
    """The held-out segments a bundle of cache size `ekv` is scored on: each at most half the cache, so its context
    and target fit with room to spare. `sdk-build verify` and bench.int4_recipes both score exactly these."""
    return segments(tokenizer, tokens=tokens, segment_tokens=min(SEGMENT_TOKENS, ekv // 2))


def reference_log_likelihoods(model, pieces: Sequence[Segment]) -> list[list[float]]:
    """fp32 log-probabilities of each segment's target tokens (one forward pass per segment)."""
    import torch

    from sdk_build.convert.model_loader import forward_from_empty_cache as _forward

    longest = max(len(s.context_ids) + len(s.target_ids) for s in pieces)
    model.build_mask_cache(longest)
    results = []
    with torch.inference_mode():
        for segment in pieces:
            ids = [*segment.context_ids, *segment.target_ids]
            logits = _forward(model, ids, longest)["logits"][0].double()
            logprobs = torch.log_softmax(logits, dim=-1)
            start = len(segment.context_ids)
            rows = torch.arange(start - 1, len(ids) - 1)
            results.append(logprobs[rows, torch.tensor(segment.target_ids)].tolist())
    return results


def perplexity(log_likelihoods: Sequence[Sequence[float]]) -> float:
    values = [v for row in log_likelihoods for v in row]
    return math.exp(-sum(values) / len(values))


def engine_log_likelihoods(engine, pieces: Sequence[Segment]) -> list[tuple[list[float], str]]:
    return scored_texts(engine, [(s.context, s.target) for s in pieces])


def score(pieces: Sequence[Segment], reference: list[list[float]], produced: list[tuple[list[float], str]],
          text_set: TextSet = HELD_OUT) -> Perplexity:
    """Both perplexities over the segments the bundle scored with the right token count."""
    kept_reference, kept_bundle, problems = [], [], []
    for index, (segment, ref, (got, error)) in enumerate(zip(pieces, reference, produced)):
        if error:
            problems.append(f"segment {index}: LiteRT-LM failed: {error}")
        elif len(got) != len(segment.target_ids):
            problems.append(f"segment {index}: LiteRT-LM scored {len(got)} tokens, the reference {len(ref)}")
        elif not all(math.isfinite(v) for v in got):
            problems.append(f"segment {index}: LiteRT-LM gave non-finite log-likelihoods (NaN logits?)")
        else:
            kept_reference.append(ref)
            kept_bundle.append(got)
    label = f"{text_set.package} ({text_set.name})"
    if not kept_bundle:
        return Perplexity(label, 0, perplexity(reference), None, problems or ["nothing scored"])
    return Perplexity(label, sum(len(r) for r in kept_reference), perplexity(kept_reference), perplexity(kept_bundle),
                      problems)
