"""The one result record every runner (host, web, android) returns.

Keeping a single record type is what lets the comparison, the reports and the history treat a phone, a
browser and this CPU alike.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any


def utc_now() -> str:
    """The timestamp format of every record, report and history line (UTC, seconds)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class Environment:
    surface: str  # "host" | "web" | "android" | "gpu"
    device: str  # e.g. "Samsung S24 Ultra", "MacBook Pro M4 Max", "x86-64 host (2 cores)"
    os: str = ""
    backend: str = ""  # "cpu" | "gpu"
    browser: str = ""
    adapter: dict[str, Any] = dataclasses.field(default_factory=dict)
    thermal: str = ""
    threads: int | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class RunSample:
    """One measured run (after warm-up)."""

    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    ttft_s: float | None = None
    init_s: float | None = None


@dataclasses.dataclass
class BenchmarkResult:
    bundle_file: str
    bundle_sha256: str
    quantization: str
    ekv: int
    prefill_tokens: int
    decode_tokens: int
    precision: str  # "" for CPU, "F16"/"F32" on the web and the GPU engine
    environment: Environment
    samples: list[RunSample]
    peak_memory_bytes: int | None = None
    status: str = "ok"  # "ok" | "unsupported" | "error"
    message: str = ""
    # Added by the device lab (defaults keep older producers valid; the lab fills them from the manifest):
    model: str = ""  # manifest "model": "gemma3-1b", "gemma3-270m", ...
    bundle_format: str = ""  # "task" | "litertlm"
    prefill_signatures: list[int] = dataclasses.field(default_factory=list)
    warmup_runs: int = 0
    started_utc: str = ""
    bundle_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchmarkResult:
        """Rebuild from `to_dict()` output; unknown keys (from a newer writer) are ignored, not fatal."""
        data = {k: v for k, v in data.items() if k in _field_names(cls)}
        env = {k: v for k, v in data["environment"].items() if k in _field_names(Environment)}
        data["environment"] = Environment(**env)
        data["samples"] = [
            RunSample(**{k: v for k, v in s.items() if k in _field_names(RunSample)}) for s in data["samples"]
        ]
        return cls(**data)


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}
