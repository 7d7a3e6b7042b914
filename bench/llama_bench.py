"""llama.cpp's speed side: one `llama-bench` process per measurement, pinned like `litert-lm benchmark`.

Two invocations per run make llama.cpp's figures mean what litert-lm's mean: prefill is `pp N` from an empty cache,
and decode is `tg M` *after* N tokens are in the KV cache (`-d N`), as litert-lm decodes after its prefill. (Plain
`-n M` would decode from an empty cache, which is cheaper for attention.) Each invocation does one repetition after
llama-bench's own warm-up, like `litert-lm benchmark --runs 1` after its warm-up pass.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

from bench.llama_cpp_build import LlamaCppError


@dataclasses.dataclass(frozen=True)
class LlamaBenchSample:
    prefill_tokens_per_s: float
    decode_tokens_per_s: float


def bench_command(
    binary: Path, model: Path, threads: int, cpus: list[int], *, prompt: int, gen: int, depth: int
) -> list[str]:
    command = [
        str(binary),
        "-m",
        str(model),
        "-t",
        str(threads),
        "-p",
        str(prompt),
        "-n",
        str(gen),
        "-d",
        str(depth),
        "-r",
        "1",
        "-o",
        "json",
    ]
    taskset = shutil.which("taskset")
    return ([taskset, "-c", ",".join(map(str, cpus))] if taskset else []) + command


def parse_bench_json(output: str) -> list[dict]:
    """The JSON array llama-bench prints on stdout with `-o json`."""
    try:
        results = json.loads(output)
    except json.JSONDecodeError as exc:
        raise LlamaCppError(
            f"llama-bench's JSON could not be read ({exc}); its output:\n{output.strip()[-600:]}"
        ) from exc
    if not isinstance(results, list) or not results:
        raise LlamaCppError("llama-bench returned an empty result list")
    return results


def tokens_per_s(results: list[dict], *, prompt: int, gen: int) -> float:
    """avg_ts of the test with these n_prompt/n_gen (llama-bench reports one entry per test)."""
    for entry in results:
        if int(entry.get("n_prompt", -1)) == prompt and int(entry.get("n_gen", -1)) == gen:
            return float(entry["avg_ts"])
    raise LlamaCppError(f"llama-bench printed no result for n_prompt={prompt}, n_gen={gen}")


def run_llama_bench(
    binary: Path, model: Path, *, prefill: int, decode: int, threads: int, cpus: list[int], timeout_s: float = 900
) -> LlamaBenchSample:
    """One prefill and one decode measurement, each in its own llama-bench process."""
    speeds = {}
    for kind, (prompt, gen, depth) in {"prefill": (prefill, 0, 0), "decode": (0, decode, prefill)}.items():
        command = bench_command(binary, model, threads, cpus, prompt=prompt, gen=gen, depth=depth)
        try:
            run = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise LlamaCppError(f"llama-bench ran past {timeout_s:.0f} s on {model.name}") from exc
        if run.returncode != 0:
            raise LlamaCppError(
                f"llama-bench exited with {run.returncode} on {model.name}: {run.stderr.strip()[-400:]}"
            )
        speeds[kind] = tokens_per_s(parse_bench_json(run.stdout), prompt=prompt, gen=gen)
    return LlamaBenchSample(speeds["prefill"], speeds["decode"])
