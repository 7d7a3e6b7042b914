"""F16 safety: shrink Gemma 3's residual stream by a power of two so a GPU running in half precision cannot overflow.

Why: Gemma 3's residual stream carries very large values (the real 270M reaches about 1e5 on ordinary prompts, and
the mean square that every RMSNorm computes reaches about 2e7); half precision ends at 65504. A GPU engine in F16
then produces infinities, NaN logits and empty or garbage output where the CPU and F32 are right (the failure users
of several runtimes report for Gemma 3 in fp16).

How, without changing the graph: RMSNorm is scale-invariant, norm(s*x; eps*s^2) = norm(x; eps). So multiplying the
residual stream by s leaves every normalised value, hence the model's output, unchanged, if
- the embedding output is multiplied by s (its constant `embedding_scale`),
- the two norms that feed the stream (post-attention, post-feed-forward) output s times more (their weights), and
- the norms that read the stream (pre-attention, pre-feed-forward, final) take eps*s^2.
Only weight values and eps change; per-channel and blockwise quantization scale with them, so every recipe
quantizes to the same integers. s is chosen per checkpoint from the fp32 model's own peaks on calibration text:
the largest power of two (at most 1) that keeps the stream under 2^11 and the norms' mean squares under 2^13, so
unseen inputs have 32x and 8x headroom below 65504. A power of two is exact in binary floating point.
"""

from __future__ import annotations

import dataclasses
import math

STREAM_TARGET = 2.0**11
MEAN_SQUARE_TARGET = 2.0**13

CALIBRATION_TEXTS = (
    "The history of the city begins with a small settlement on the river, where traders met every spring.",
    "def merge_sort(items):\n    if len(items) <= 1:\n        return items\n    middle = len(items) // 2\n",
    "Question: what is 17 multiplied by 23? Answer: 17 times 23 is 391, because 17 * 20 = 340 and 17 * 3 = 51.",
    "Die Katze sitzt auf der Matte. Le chat est assis sur le tapis. El gato está sentado en la alfombra.",
    "<start_of_turn>user\nWrite a short poem about the sea.<end_of_turn>\n<start_of_turn>model\n",
    "1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584, 4181, 6765, 10946",
)


@dataclasses.dataclass(frozen=True)
class StreamPeaks:
    """The fp32 model's largest residual-stream value and largest per-token mean square seen by a norm reading it."""

    max_abs: float
    max_mean_square: float

    def scale(self) -> float:
        """The largest power of two <= 1 that brings both peaks under their targets."""
        needed = max(self.max_abs / STREAM_TARGET, math.sqrt(self.max_mean_square / MEAN_SQUARE_TARGET), 1.0)
        return 2.0 ** -math.ceil(math.log2(needed))


def _stream_readers(model) -> list:
    readers = [model.final_norm]
    for block in model.transformer_blocks:
        readers += [block.pre_atten_norm, block.ff.pre_ff_norm]
    return readers


def measure_stream(model, tokenizer, texts: tuple[str, ...] = CALIBRATION_TEXTS) -> StreamPeaks:
    """Run `texts` through the fp32 model and record what the norms reading the residual stream receive."""
    import torch
    from litert_torch.generative.layers import kv_cache as kv_utils

    peaks = {"abs": 0.0, "ms": 0.0}

    def record(_module, inputs, _output) -> None:
        x = inputs[0].float()
        peaks["abs"] = max(peaks["abs"], x.abs().max().item())
        peaks["ms"] = max(peaks["ms"], x.pow(2).mean(-1).max().item())

    handles = [norm.register_forward_hook(record) for norm in _stream_readers(model)]
    saved_mask = model.mask_cache
    try:
        with torch.inference_mode():
            for text in texts:
                ids = [tokenizer.bos_id(), *tokenizer.encode(text)]
                cache = kv_utils.KVCache.from_model_config(len(ids), model.config)
                model.build_mask_cache(len(ids))
                model(torch.tensor([ids]), torch.arange(len(ids), dtype=torch.int), cache)
    finally:
        for handle in handles:
            handle.remove()
        model.mask_cache = saved_mask
    return StreamPeaks(peaks["abs"], peaks["ms"])


def _scale_norm_output(norm, factor: float) -> None:
    import torch

    with torch.no_grad():
        if norm.zero_centered_gamma:  # output * (1 + weight)
            norm.weight.copy_(factor * (1.0 + norm.weight) - 1.0)
        else:
            norm.weight.mul_(factor)


def scale_residual_stream(model, scale: float) -> None:
    """Multiply a litert-torch Gemma 3 decoder's residual stream by `scale`, in place, leaving its outputs unchanged."""
    if scale == 1.0:
        return
    model.config.embedding_scale = (model.config.embedding_scale or 1.0) * scale
    for norm in _stream_readers(model):
        norm.eps = norm.eps * scale * scale
    for block in model.transformer_blocks:
        _scale_norm_output(block.post_atten_norm, scale)
        _scale_norm_output(block.ff.post_ff_norm, scale)
