"""Load `baselines.toml` (the published figures and their conditions) into typed, validated records.

The figures live in a data file so that adding a newly published number is a one-row change with its source
next to it; this module only checks the rows are complete and consistent, so a typo fails at load time
instead of silently making a run "no baseline".
"""

from __future__ import annotations

import dataclasses
import fnmatch
import tomllib
from pathlib import Path
from typing import Any

from device_tests.errors import LabError

DEFAULT_BASELINES = Path(__file__).with_name("baselines.toml")
SCHEMA_VERSION = 1
BACKENDS = ("cpu", "gpu", "npu")
PRECISIONS = ("", "F16", "F32")
PUBLISHED_METRICS = (
    "prefill_tokens_per_s",
    "decode_tokens_per_s",
    "ttft_s",
    "cpu_rss_mib",
    "gpu_rss_mib",
    "model_size_mib",
)


@dataclasses.dataclass(frozen=True)
class Source:
    key: str
    title: str
    url: str
    notes: str = ""
    seed: str = ""


@dataclasses.dataclass(frozen=True)
class Device:
    """A published device and the names a run's environment may report for it (shell-style, any case)."""

    key: str
    name: str
    match: tuple[str, ...]

    def matches(self, *names: str) -> bool:
        return any(
            fnmatch.fnmatchcase(name.lower(), pattern.lower()) for name in names if name for pattern in self.match
        )


@dataclasses.dataclass(frozen=True)
class Baseline:
    """One published row: the figures plus every condition the source states for them."""

    id: str
    source: Source
    device: Device
    backend: str
    model: str
    quantization: str
    published_quantization: str
    ekv: int
    published: dict[str, float]
    file: str = ""
    file_url: str = ""
    format: str = ""
    precision: str = ""
    prefill_tokens: int | None = None
    decode_tokens: int | None = None
    prefill_signatures: tuple[int, ...] = ()
    threads: int | None = None
    conditions: str = ""

    @property
    def label(self) -> str:
        precision = f" {self.precision}" if self.precision else ""
        return f"{self.device.name} {self.backend.upper()}{precision}: {self.published_quantization}, ekv{self.ekv}"


@dataclasses.dataclass(frozen=True)
class BaselineSet:
    baselines: tuple[Baseline, ...]
    devices: dict[str, Device]
    sources: dict[str, Source]
    path: Path

    def get(self, baseline_id: str) -> Baseline:
        for baseline in self.baselines:
            if baseline.id == baseline_id:
                return baseline
        raise LabError(f"no baseline {baseline_id!r} in {self.path}")

    def device_for(self, *names: str) -> Device | None:
        """The published device a run's environment names, if any."""
        return next((d for d in self.devices.values() if d.matches(*names)), None)


def load_baselines(path: Path | None = None) -> BaselineSet:
    """Read and validate the baselines file (default: the one shipped next to this module)."""
    path = Path(path) if path else DEFAULT_BASELINES
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LabError(f"cannot read baselines file {path}: {exc}") from exc
    if data.get("schema_version") != SCHEMA_VERSION:
        raise LabError(f"{path}: schema_version must be {SCHEMA_VERSION}, got {data.get('schema_version')!r}")
    sources = {k: Source(key=k, **v) for k, v in data.get("sources", {}).items()}
    devices = {
        k: Device(key=k, name=v["name"], match=tuple(v.get("match", [v["name"]])))
        for k, v in data.get("devices", {}).items()
    }
    rows = [_baseline(row, sources, devices, path) for row in data.get("baseline", [])]
    ids = [row.id for row in rows]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise LabError(f"{path}: duplicate baseline ids {duplicates}")
    return BaselineSet(baselines=tuple(rows), devices=devices, sources=sources, path=path)


def _baseline(row: dict[str, Any], sources: dict[str, Source], devices: dict[str, Device], path: Path) -> Baseline:
    where = f"{path}: baseline {row.get('id', '?')!r}"
    row = dict(row)
    for key in ("id", "source", "device", "backend", "model", "quantization", "ekv", "published"):
        if key not in row:
            raise LabError(f"{where} lacks {key!r}")
    if row["source"] not in sources:
        raise LabError(f"{where}: unknown source {row['source']!r}; define it under [sources]")
    if row["device"] not in devices:
        raise LabError(f"{where}: unknown device {row['device']!r}; define it under [devices]")
    if row["backend"] not in BACKENDS:
        raise LabError(f"{where}: backend must be one of {BACKENDS}, got {row['backend']!r}")
    if row.get("precision", "") not in PRECISIONS:
        raise LabError(f"{where}: precision must be one of {PRECISIONS}, got {row['precision']!r}")
    unknown = set(row["published"]) - set(PUBLISHED_METRICS)
    if unknown:
        raise LabError(f"{where}: unknown published metrics {sorted(unknown)}; known: {PUBLISHED_METRICS}")
    known = {f.name for f in dataclasses.fields(Baseline)}
    extra = set(row) - known
    if extra:
        raise LabError(f"{where}: unknown keys {sorted(extra)}")
    row["source"] = sources[row["source"]]
    row["device"] = devices[row["device"]]
    row["published"] = {k: float(v) for k, v in row["published"].items()}
    row["prefill_signatures"] = tuple(row.get("prefill_signatures", ()))
    row.setdefault("published_quantization", row["quantization"])
    return Baseline(**row)
