"""One prefill + decode speed sample through litert-lm's Python API, optionally with a runtime LoRA adapter loaded.

`litert-lm benchmark` (the CLI) has no LoRA option, so a bundle's speed *with an adapter loaded* is measured here
with the same library: an Engine with benchmarking on (and `lora_rank`), one session (with `lora_path`), a prompt
of about the requested length, `max_output_tokens` decode steps, and the engine's own benchmark counters.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from device_tests.record import RunSample

_FILLER = "The quick brown fox jumps over the lazy dog while the tide rolls in over the old stone pier. "


@dataclasses.dataclass(frozen=True)
class LoraInput:
    rank: int
    adapter_file: Path


def prompt_of(tokenizer_path: Path, tokens: int) -> str:
    """Text that the model's SentencePiece tokenizer turns into `tokens` tokens (plus BOS)."""
    import sentencepiece as spm

    tokenizer = spm.SentencePieceProcessor(model_file=str(tokenizer_path))
    ids: list[int] = []
    while len(ids) < tokens:
        ids += tokenizer.encode(_FILLER)
    return tokenizer.decode(ids[:tokens])


def session_sample(
    bundle: Path, ekv: int, prompt: str, decode_tokens: int, threads: int, lora: LoraInput | None = None
) -> tuple[RunSample, int]:
    """(speeds, decoded token count) for one fresh engine + session; greedy so runs repeat exactly."""
    from litert_lm import Backend, Engine, LoraConfig, LoraRankConfig, SamplerConfig

    from sdk_build.sources.checkpoint import default_cache_dir
    from sdk_build.verify.engine import EngineConfig, engine_cache_dir

    cache = engine_cache_dir(bundle, EngineConfig("cpu", None, threads), default_cache_dir())
    engine = Engine(
        str(bundle),
        backend=Backend.CPU(thread_count=threads),
        max_num_tokens=ekv,
        enable_benchmark=True,
        cache_dir=str(cache),
        lora_rank_config=LoraRankConfig(lora_rank=lora.rank) if lora else None,
    )
    try:
        session = engine.create_session(
            apply_prompt_template=False,
            sampler_config=SamplerConfig(top_k=1),
            max_output_tokens=decode_tokens,
            lora_config=LoraConfig(lora_path=str(lora.adapter_file)) if lora else None,
        )
        try:
            session.run_prefill([prompt])
            session.run_decode()
            info = session.get_benchmark_info()
        finally:
            session.close()
    finally:
        engine.close()
    sample = RunSample(
        prefill_tokens_per_s=info.last_prefill_tokens_per_second,
        decode_tokens_per_s=info.last_decode_tokens_per_second,
        ttft_s=info.time_to_first_token_in_second,
        init_s=info.init_time_in_second,
    )
    return sample, info.last_decode_token_count
