"""Parse what LiteRT-LM's `litert_lm_main --benchmark` logs into numbers.

The C++ binary logs (absl INFO, on stderr) a `BenchmarkInfo:` block per iteration
(`runtime/engine/io_types.cc`, `operator<<(BenchmarkInfo)`):

    Init Phases (N):            - <phase>: <ms> ms       (summed into the init time)
    Time to first token: <s> s
    Prefill Turn 1: Processed <n> tokens in <duration> duration.
      Prefill Speed: <tok/s> tokens/sec.
    Decode Turn 1: ...
      Decode Speed: <tok/s> tokens/sec.

and, with `--report_peak_memory_footprint`, `Peak system ram usage: <MB>MB.` (MiB from the memory monitor).
With `--log_sink_file` it writes `Prefill speed turn 0: <x> tk/s` instead; and the Python CLI
(`litert-lm benchmark`) prints `Prefill speed: <x> tokens/s`. All three are accepted. When one process
ran several iterations the *last* block wins (LiteRT-LM prints the median last, under the same labels).
"""

from __future__ import annotations

import dataclasses
import re

from android_bridge.errors import AndroidBridgeError

MIB = 1024 * 1024

_PREFILL = [re.compile(r"Prefill Speed:\s*([\d.]+)\s*tokens/sec"), re.compile(r"Prefill speed turn 0:\s*([\d.]+)"),
            re.compile(r"Prefill speed:\s*([\d.]+)\s*tokens/s")]
_DECODE = [re.compile(r"Decode Speed:\s*([\d.]+)\s*tokens/sec"), re.compile(r"Decode speed turn 0:\s*([\d.]+)"),
           re.compile(r"Decode speed:\s*([\d.]+)\s*tokens/s")]
_TTFT = re.compile(r"Time to first token:\s*([\d.]+)\s*s")
_INIT_PHASE = re.compile(r"^\s*-\s*([^:\n]+):\s*([\d.]+)\s*ms\s*$", re.MULTILINE)
_INIT_CLI = re.compile(r"Init time:\s*([\d.]+)\s*s")
_PEAK = re.compile(r"Peak system ram usage:\s*([\d.]+)\s*MB")


class OutputParseError(AndroidBridgeError):
    """The benchmark binary's output has no prefill/decode speeds (it failed, or its format changed)."""


@dataclasses.dataclass
class ParsedRun:
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    ttft_s: float | None
    init_s: float | None
    peak_memory_bytes: int | None


def _last(patterns: list[re.Pattern[str]], text: str) -> float | None:
    for pattern in patterns:
        found = pattern.findall(text)
        if found:
            return float(found[-1])
    return None


def _init_seconds(text: str) -> float | None:
    blocks = text.split("Init Phases (")
    if len(blocks) > 1:
        last = blocks[-1].split("----", 1)[0]
        phases = _INIT_PHASE.findall(last)
        if phases:
            return sum(float(ms) for _name, ms in phases) / 1000.0
    found = _INIT_CLI.findall(text)
    return float(found[-1]) if found else None


def parse_benchmark_output(text: str) -> ParsedRun:
    prefill, decode = _last(_PREFILL, text), _last(_DECODE, text)
    if prefill is None or decode is None:
        tail = " / ".join(text.strip().splitlines()[-4:]) or "(no output)"
        raise OutputParseError(f"no prefill/decode speed in the benchmark output; it ended with: {tail}")
    ttft = _TTFT.findall(text)
    peak = _PEAK.findall(text)
    return ParsedRun(
        prefill_tokens_per_s=prefill,
        decode_tokens_per_s=decode,
        ttft_s=float(ttft[-1]) if ttft else None,
        init_s=_init_seconds(text),
        peak_memory_bytes=int(float(peak[-1]) * MIB) if peak else None,
    )
