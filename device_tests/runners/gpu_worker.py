"""`python -m device_tests.runners.gpu_worker`: LiteRT-LM's own benchmark on its GPU backend, in one process.

Why a process of its own: the parent measures its peak RSS (wait4), a crash inside the GPU driver ends only this
run, and LiteRT-LM's GPU backend cannot share a process with TensorFlow. Why the Python API and not the
`litert-lm benchmark` CLI: only the API takes the activation precision (F16 / F32). Each run builds a fresh engine,
as one `litert-lm benchmark --runs 1` process does; the first runs are the warm-up (shader compilation, caches).

Prints one JSON object per line: {"adapter": ...} once, then {"prefill_tokens_per_s", "decode_tokens_per_s",
"ttft_s", "init_s"} per run, or {"error": ...}. Imports only the standard library and litert_lm, so it runs on a
GPU host that has nothing else of gemma-edge's dependencies.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

from sdk_build.verify.engine import captured_stderr, engine_reason

_ADAPTER = "Selected adapter: "


def _emit(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m device_tests.runners.gpu_worker")
    parser.add_argument("bundle")
    parser.add_argument("--precision", choices=["f16", "f32"], required=True)
    parser.add_argument("--prefill", type=int, required=True)
    parser.add_argument("--decode", type=int, required=True)
    parser.add_argument("--max-num-tokens", type=int, required=True)
    parser.add_argument("--runs", type=int, default=1, help="runs in this process (warm-up runs included)")
    parser.add_argument("--cache-dir", required=True)
    args = parser.parse_args(argv)

    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
    import litert_lm

    precision = litert_lm.ActivationDataType.FLOAT16 if args.precision == "f16" else litert_lm.ActivationDataType.FLOAT32
    os.makedirs(args.cache_dir, exist_ok=True)
    for index in range(args.runs):
        benchmark = litert_lm.Benchmark(
            model_path=args.bundle, backend=litert_lm.Backend.GPU(), prefill_tokens=args.prefill,
            decode_tokens=args.decode, max_num_tokens=args.max_num_tokens, cache_dir=args.cache_dir,
            activation_data_type=precision,
        )
        with captured_stderr() as log:
            try:
                info = benchmark.run()
                failure = ""
            except RuntimeError as exc:  # the engine's reason is in its log, not in the exception
                failure = str(exc)
        text = log[0] if log else ""
        if index == 0:
            adapter = next((line.split(_ADAPTER, 1)[1].strip() for line in text.splitlines() if _ADAPTER in line), None)
            _emit(adapter=adapter)
        if failure:
            _emit(error=engine_reason(text) or failure)
            return 1
        _emit(prefill_tokens_per_s=info.last_prefill_tokens_per_second,
              decode_tokens_per_s=info.last_decode_tokens_per_second,
              ttft_s=info.time_to_first_token_in_second, init_s=info.init_time_in_second,
              prefill_tokens=info.last_prefill_token_count, decode_tokens=info.last_decode_token_count)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
