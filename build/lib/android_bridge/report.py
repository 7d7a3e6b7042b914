"""Write Android results where the device lab reads them: a JSON list of result records (`AndroidRun.to_dict()`,
the shape of the lab's `BenchmarkResult`) + a Markdown table."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from android_bridge.result import AndroidRun


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "-"


def markdown_table(results: list[AndroidRun]) -> str:
    lines = ["| device | bundle | backend | prefill tok/s | decode tok/s | TTFT s | peak MiB | runs | status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        prefill = [s.prefill_tokens_per_s for s in r.samples]
        decode = [s.decode_tokens_per_s for s in r.samples]
        ttft = [s.ttft_s for s in r.samples if s.ttft_s is not None]
        peak = f"{r.peak_memory_bytes / 2**20:.0f}" if r.peak_memory_bytes else "-"
        status = r.status if not r.message else f"{r.status}: {r.message[:80]}"
        lines.append(f"| {r.environment.device} | {r.bundle_file} | {r.environment.backend} | {_median(prefill)} | "
                     f"{_median(decode)} | {_median(ttft) if ttft else '-'} | {peak} | {len(r.samples)} | {status} |")
    return "\n".join(lines) + "\n"


def write_results(results: list[AndroidRun], out: Path) -> tuple[Path, Path]:
    """Write `out` (JSON) and `out` with suffix .md; return both paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([r.to_dict() for r in results], indent=2) + "\n", encoding="utf-8")
    table = out.with_suffix(".md")
    table.write_text(markdown_table(results), encoding="utf-8")
    return out, table
