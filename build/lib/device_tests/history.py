"""The history file (JSON lines): every evaluated run, so the next run compares with the last good one.

Published figures catch "slower than Google"; the history catches "slower than yesterday" on the very same
machine, bundle and protocol, which is what a toolchain or runtime upgrade breaks. One JSON object per line,
appended, never rewritten: safe to share between runs and easy to read with any tool.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from device_tests import verdicts as V
from device_tests.compare import Check, compare_metrics, fmt_value, spread_ok
from device_tests.policy import Policy
from device_tests.record import BenchmarkResult, utc_now
from device_tests.stats import measured_metrics

GOOD = frozenset({V.PASS, V.DIFFERENT_DEVICE, V.NO_BASELINE})


def history_key(result: BenchmarkResult) -> str:
    """Same bundle (by file name: a rebuilt file is what we want to catch), surface, environment, protocol."""
    env = result.environment
    adapter = (env.adapter or {}).get("architecture", "")
    engine_warmup = (env.extra or {}).get("engine_warmup", "")
    return "|".join(
        str(p)
        for p in (
            env.surface,
            env.device,
            env.backend,
            env.threads,
            adapter,
            engine_warmup,
            result.precision,
            Path(result.bundle_file).name,
            result.prefill_tokens,
            result.decode_tokens,
        )
    )


def load_history(path: Path) -> list[dict[str, Any]]:
    """All entries; a torn last line (a run killed mid-write) is skipped, not fatal."""
    if not Path(path).exists():
        return []
    entries = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries


def last_good(entries: list[dict[str, Any]], result: BenchmarkResult) -> dict[str, Any] | None:
    key = history_key(result)
    for entry in reversed(entries):
        if entry.get("key") == key and entry.get("good"):
            return entry
    return None


def check_against_history(result: BenchmarkResult, entries: list[dict[str, Any]], policy: Policy) -> Check:
    if result.status != "ok" or not result.samples:
        return Check("history", V.NO_HISTORY, "", "nothing measured")
    previous = last_good(entries, result)
    if previous is None:
        message = "no earlier good run of this bundle on this environment"
        if not spread_ok(result, policy):
            message += f"; this one's spread is above cv {policy.cv_limit:.0%}, so it will not become the reference"
        return Check("history", V.NO_HISTORY, "", message)
    reference = {k: v for k, v in previous.get("medians", {}).items() if v is not None}
    verdict, metrics = compare_metrics(measured_metrics(result), reference, policy, history=True)
    notes = []
    old = BenchmarkResult.from_dict(previous["result"])
    if old.bundle_sha256 != result.bundle_sha256:
        notes.append("bundle rebuilt since (sha256 differs)")
    for attr in ("os", "browser"):
        before, now = getattr(old.environment, attr), getattr(result.environment, attr)
        if before != now:
            notes.append(f"{attr} changed: {before!r} -> {now!r}")
    parts = [
        f"{m.metric} {fmt_value(m.measured)} vs {fmt_value(m.reference)} ({(m.ratio or 0) * 100:.0f}%) {m.outcome}"
        for m in metrics
        if m.measured is not None and m.outcome != "info"
    ]
    message = f"{verdict} against the last good run ({previous['recorded_utc']}): " + "; ".join(parts)
    if notes:
        message += " [" + "; ".join(notes) + "]"
    return Check("history", verdict, previous["recorded_utc"], message, metrics)


def make_entry(
    result: BenchmarkResult, verdict: str, *, stable: bool = True, recorded_utc: str | None = None
) -> dict[str, Any]:
    """A history line. Only a stable, successful, non-failing run is "good", i.e. a reference for later runs."""
    medians = {name: s.median for name, s in measured_metrics(result).items()}
    return {
        "recorded_utc": recorded_utc or utc_now(),
        "key": history_key(result),
        "verdict": verdict,
        "good": result.status == "ok" and verdict in GOOD and stable,
        "medians": medians,
        "result": result.to_dict(),
    }


def append_history(path: Path, entries: list[dict[str, Any]]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
