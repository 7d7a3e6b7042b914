"""The judging policy (`policy.toml`): per-metric direction, tolerance and gate, and the spread limit.

Kept as data so a lab can loosen decode on a noisy phone or gate TTFT without touching code; the CLI's
`--tolerance METRIC=F` and `--cv-limit F` produce the same object with overrides.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from pathlib import Path

from device_tests.errors import LabError

DEFAULT_POLICY = Path(__file__).with_name("policy.toml")


@dataclasses.dataclass(frozen=True)
class MetricRule:
    name: str
    label: str
    unit: str
    better: str  # "higher" | "lower"
    tolerance: float
    gate: bool
    history_tolerance: float | None = None

    def worse_than(self, measured: float, reference: float, tolerance: float | None = None) -> bool:
        """True when `measured` misses `reference` by more than the tolerance, in this metric's bad direction."""
        allowed = self.tolerance if tolerance is None else tolerance
        if self.better == "higher":
            return measured < reference * (1.0 - allowed)
        return measured > reference * (1.0 + allowed)


@dataclasses.dataclass(frozen=True)
class Policy:
    metrics: dict[str, MetricRule]
    cv_limit: float

    @property
    def gated(self) -> list[MetricRule]:
        return [rule for rule in self.metrics.values() if rule.gate]

    def with_overrides(
        self,
        tolerances: Mapping[str, float] | None = None,
        cv_limit: float | None = None,
        gates: Mapping[str, bool] | None = None,
    ) -> Policy:
        metrics = dict(self.metrics)
        for name, value in (tolerances or {}).items():
            metrics[self._known(name)] = dataclasses.replace(metrics[name], tolerance=float(value))
        for name, value in (gates or {}).items():
            metrics[self._known(name)] = dataclasses.replace(metrics[name], gate=bool(value))
        return Policy(metrics=metrics, cv_limit=self.cv_limit if cv_limit is None else float(cv_limit))

    def _known(self, name: str) -> str:
        if name not in self.metrics:
            raise LabError(f"unknown metric {name!r}; choose one of: {', '.join(self.metrics)}")
        return name


def load_policy(path: Path | None = None) -> Policy:
    path = Path(path) if path else DEFAULT_POLICY
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LabError(f"cannot read policy file {path}: {exc}") from exc
    history = data.get("history_tolerance", {})
    metrics: dict[str, MetricRule] = {}
    for name, spec in data.get("metrics", {}).items():
        if spec.get("better") not in ("higher", "lower"):
            raise LabError(f"{path}: metrics.{name}.better must be 'higher' or 'lower'")
        metrics[name] = MetricRule(
            name=name,
            label=spec.get("label", name),
            unit=spec.get("unit", ""),
            better=spec["better"],
            tolerance=float(spec.get("tolerance", 0.10)),
            gate=bool(spec.get("gate", False)),
            history_tolerance=float(history[name]) if name in history else None,
        )
    if not metrics:
        raise LabError(f"{path} defines no [metrics]")
    return Policy(metrics=metrics, cv_limit=float(data.get("cv_limit", 0.10)))
