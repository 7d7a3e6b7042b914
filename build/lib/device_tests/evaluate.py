"""One result + the published rows + the history -> an Evaluation: every check and the one overall verdict."""

from __future__ import annotations

import dataclasses
from typing import Any

from device_tests import verdicts as V
from device_tests.baselines import Baseline, BaselineSet
from device_tests.compare import Check, candidate_baselines, check_against_baselines
from device_tests.history import check_against_history
from device_tests.policy import Policy
from device_tests.record import BenchmarkResult
from device_tests.stats import measured_metrics


@dataclasses.dataclass
class Evaluation:
    result: BenchmarkResult
    checks: list[Check]
    verdict: str
    references: list[Baseline]  # published rows for this bundle on any device (plotted beside the measurement)

    @property
    def failed(self) -> bool:
        return self.verdict in V.FAILING

    def check(self, kind: str) -> list[Check]:
        return [c for c in self.checks if c.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        """The JSON report record: the raw result, its medians/spreads, every check and the verdict."""
        return {
            "verdict": self.verdict,
            "result": self.result.to_dict(),
            "summary": {
                name: {"median": s.median, "cv": s.cv, "n": s.n} for name, s in measured_metrics(self.result).items()
            },
            "checks": [c.to_dict() for c in self.checks],
            "references": [
                {"id": b.id, "device": b.device.name, "source": b.source.url, "published": b.published}
                for b in self.references
            ],
        }


def evaluate(
    result: BenchmarkResult, baselines: BaselineSet, policy: Policy, history: list[dict[str, Any]] | None = None
) -> Evaluation:
    checks = check_against_baselines(result, baselines, policy)
    if history is not None:
        checks.append(check_against_history(result, history, policy))
    return Evaluation(
        result=result,
        checks=checks,
        verdict=V.combine(
            (c.verdict for c in checks if c.kind == "baseline"), (c.verdict for c in checks if c.kind == "history")
        ),
        references=candidate_baselines(baselines, result) if result.status == "ok" else [],
    )
