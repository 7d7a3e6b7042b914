"""Median and spread of the measured runs: the numbers every verdict is made from.

Medians resist the one run a background job slowed down; the coefficient of variation (sample stdev / mean)
says whether the runs agree well enough for any verdict at all.
"""

from __future__ import annotations

import dataclasses
import statistics

from device_tests.record import BenchmarkResult

MIB = 2**20


@dataclasses.dataclass(frozen=True)
class MetricSummary:
    median: float
    cv: float | None  # None with fewer than 2 runs: the spread is unknown
    n: int
    values: tuple[float, ...]


def summarize(values: list[float]) -> MetricSummary | None:
    values = [float(v) for v in values if v is not None]
    if not values:
        return None
    mean = statistics.fmean(values)
    cv = statistics.stdev(values) / mean if len(values) >= 2 and mean > 0 else None
    return MetricSummary(median=statistics.median(values), cv=cv, n=len(values), values=tuple(values))


def measured_metrics(result: BenchmarkResult) -> dict[str, MetricSummary]:
    """Per-metric summaries of a result's samples, named as in policy.toml and baselines.toml."""
    out: dict[str, MetricSummary] = {}
    series = {
        "prefill_tokens_per_s": [s.prefill_tokens_per_s for s in result.samples],
        "decode_tokens_per_s": [s.decode_tokens_per_s for s in result.samples],
        "ttft_s": [s.ttft_s for s in result.samples if s.ttft_s is not None],
        "init_s": [s.init_s for s in result.samples if s.init_s is not None],
    }
    for name, values in series.items():
        summary = summarize(values)  # type: ignore[arg-type]
        if summary:
            out[name] = summary
    if result.bundle_bytes:
        size = result.bundle_bytes / MIB
        out["model_size_mib"] = MetricSummary(size, None, 1, (size,))
    if result.peak_memory_bytes:
        out["cpu_rss_mib"] = MetricSummary(result.peak_memory_bytes / MIB, None, 1, (result.peak_memory_bytes / MIB,))
    return out
