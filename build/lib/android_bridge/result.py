"""What one benchmark session on a phone produced, in the bridge's own plain types.

The field names and the `to_dict()` shape are those of the device lab's result records (the JSON a lab reads with
`device_tests.record.BenchmarkResult.from_dict`), so the lab converts a run without the bridge importing the lab:
the bridge is a lower layer the lab calls, and knows nothing of comparisons, baselines or reports.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class AndroidSample:
    """One measured run (after warm-up), as litert_lm_main's log reports it."""

    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    ttft_s: float | None = None
    init_s: float | None = None


@dataclasses.dataclass
class AndroidEnvironment:
    device: str
    os: str
    backend: str
    thermal: str
    threads: int | None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    surface: str = "android"


@dataclasses.dataclass
class AndroidRun:
    bundle_file: str
    bundle_sha256: str
    quantization: str
    ekv: int
    prefill_tokens: int
    decode_tokens: int
    environment: AndroidEnvironment
    samples: list[AndroidSample]
    peak_memory_bytes: int | None = None
    status: str = "ok"  # "ok" | "unsupported" | "error"
    message: str = ""
    model: str = ""
    bundle_format: str = ""
    prefill_signatures: list[int] = dataclasses.field(default_factory=list)
    warmup_runs: int = 0
    started_utc: str = ""
    precision: str = ""  # the CPU and the phone's GPU default: nothing to state

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
