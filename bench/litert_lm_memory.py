"""One bundle run in LiteRT-LM, in a fresh process: its peak resident memory and its prefill/decode speed.

    python -m bench.litert_lm_memory BUNDLE --ekv 1280 --tokenizer tokenizer.model --cache-dir DIR   # one JSON line

A process of its own, because peak RSS (`VmHWM`) only ever grows: every run must start from an empty process. The
baseline RSS is read after the imports and before the engine exists, so `held_bytes` (peak - baseline) is what the
runtime held for this bundle, without the Python interpreter and the libraries an app has anyway. XNNPACK writes its
repacked-weight cache into `--cache-dir`: an empty folder measures the first launch (it packs the weights and writes
the file), the same folder again a later launch (it maps the file).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sdk_build.system.memory import proc_kib_field_bytes


def status_bytes(field: str) -> int:
    value = proc_kib_field_bytes("/proc/self/status", field)
    if value is None:
        raise RuntimeError(f"/proc/self/status has no {field}")
    return value


def weight_cache_bytes(cache_dir: Path) -> int:
    """Size of the XNNPACK weight cache files LiteRT-LM wrote into `cache_dir`."""
    return sum(p.stat().st_size for p in cache_dir.glob("*.xnnpack_cache"))


def measure(bundle: Path, ekv: int, tokenizer: Path, cache_dir: Path, prompt_tokens: int, decode_tokens: int,
            threads: int) -> dict[str, Any]:
    from litert_lm import Backend, Engine, SamplerConfig

    from bench.litert_lm_session import prompt_of

    prompt = prompt_of(tokenizer, prompt_tokens)
    baseline = status_bytes("VmRSS")
    engine = Engine(str(bundle), backend=Backend.CPU(thread_count=threads), max_num_tokens=ekv,
                    enable_benchmark=True, cache_dir=str(cache_dir))
    try:
        loaded = status_bytes("VmRSS")
        session = engine.create_session(apply_prompt_template=False, sampler_config=SamplerConfig(top_k=1),
                                        max_output_tokens=decode_tokens)
        try:
            session.run_prefill([prompt])
            session.run_decode()
            info = session.get_benchmark_info()
            # what is resident once the prompt and the decode ran: the engine's own memory (anonymous) apart from
            # the pages of mapped files (the bundle, the weight cache file) it touched
            resident = {field: status_bytes(field) for field in ("VmRSS", "RssAnon", "RssFile")}
        finally:
            session.close()
    finally:
        engine.close()
    peak = status_bytes("VmHWM")
    return {
        "bundle": bundle.name,
        "baseline_rss_bytes": baseline,
        "loaded_rss_bytes": loaded,
        "peak_rss_bytes": peak,
        "held_bytes": peak - baseline,
        "weight_cache_file_bytes": weight_cache_bytes(cache_dir),
        "after_decode_rss_bytes": resident["VmRSS"],
        "after_decode_anon_bytes": resident["RssAnon"],
        "after_decode_file_bytes": resident["RssFile"],
        "prefill_tokens": prompt_tokens,
        "decode_tokens": info.last_decode_token_count,
        "prefill_tok_s": info.last_prefill_tokens_per_second,
        "decode_tok_s": info.last_decode_tokens_per_second,
        "init_s": info.init_time_in_second,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.litert_lm_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--ekv", type=int, required=True)
    parser.add_argument("--tokenizer", type=Path, required=True, help="the checkpoint's tokenizer.model")
    parser.add_argument("--cache-dir", type=Path, required=True, help="where XNNPACK keeps its weight cache")
    parser.add_argument("--prompt-tokens", type=int, default=1024)
    parser.add_argument("--decode-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    result = measure(args.bundle, args.ekv, args.tokenizer, args.cache_dir, args.prompt_tokens, args.decode_tokens,
                     args.threads)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
