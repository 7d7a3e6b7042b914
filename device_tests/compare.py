"""Judge one result against the published figures: like with like, or no verdict at all.

A published number only means something under its own conditions, so a result is compared with a row only
when model, quantization, KV-cache size, backend and precision match (the bundle), on the row's own device,
with the published benchmark lengths and thread count where the source states them (the protocol). A row
that matches the bundle on another device is reported ("different device: no verdict") so the report can
still show how far off this machine is, but it can never fail a run.
"""

from __future__ import annotations

import dataclasses
from pathlib import PurePath

from device_tests import verdicts as V
from device_tests.baselines import Baseline, BaselineSet
from device_tests.policy import Policy
from device_tests.record import BenchmarkResult
from device_tests.stats import MetricSummary, measured_metrics


@dataclasses.dataclass
class MetricCheck:
    metric: str
    measured: float | None
    reference: float
    ratio: float | None  # measured / reference
    cv: float | None
    outcome: str  # pass | fail | unstable | info | missing

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Check:
    kind: str  # "baseline" | "history"
    verdict: str
    reference: str  # baseline id, history run time, or ""
    message: str
    metrics: list[MetricCheck] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "metrics": [m.to_dict() for m in self.metrics]}


def is_stand_in(result: BenchmarkResult) -> bool:
    """A test double (android_bridge's stand-in phone) is never any published device, whatever it claims."""
    extra = result.environment.extra or {}
    return bool(extra.get("stand_in")) or "stand-in" in result.environment.device.lower()


def is_software_adapter(result: BenchmarkResult) -> bool:
    """A GPU run on a software Vulkan device (lavapipe, SwiftShader) ran on this CPU: no published GPU row applies."""
    return result.environment.backend == "gpu" and bool((result.environment.extra or {}).get("adapter_software"))


def device_names(result: BenchmarkResult) -> list[str]:
    """Every name the environment gives its device (marketing name, adb model, CPU brand)."""
    if is_stand_in(result):
        return []
    env = result.environment
    extra = env.extra or {}
    return [n for n in (env.device, str(extra.get("model", "")), str(extra.get("cpu_model", ""))) if n]


GPU_DEFAULT_PRECISION = "F16"
"""LiteRT's GPU backend runs F16 activations unless told otherwise ("System's default activation type for Text
decoder is fp16"): the precision of a published GPU row that does not state one (seed 001's Android GPU rows)."""


def baseline_precision(baseline: Baseline) -> str:
    if baseline.backend == "gpu" and not baseline.precision:
        return GPU_DEFAULT_PRECISION
    return baseline.precision


def bundle_matches(baseline: Baseline, result: BenchmarkResult) -> bool:
    """Same bundle and backend: the published file itself, or one built the same way (model, recipe, ekv)."""
    backend = result.environment.backend or "cpu"
    precision = result.precision or (GPU_DEFAULT_PRECISION if backend == "gpu" else "")
    if baseline.backend != backend or baseline_precision(baseline) != precision:
        return False
    if baseline.file and PurePath(result.bundle_file).name == baseline.file:
        return True
    return (baseline.model, baseline.quantization, baseline.ekv) == (result.model, result.quantization, result.ekv)


def protocol_differences(baseline: Baseline, result: BenchmarkResult) -> list[str]:
    """Published conditions this run did not meet; conditions the source leaves out are not held against it."""
    diffs = []
    if baseline.prefill_tokens is not None and baseline.prefill_tokens != result.prefill_tokens:
        diffs.append(f"prefill {result.prefill_tokens} tokens vs published {baseline.prefill_tokens}")
    if baseline.decode_tokens is not None and baseline.decode_tokens != result.decode_tokens:
        diffs.append(f"decode {result.decode_tokens} tokens vs published {baseline.decode_tokens}")
    threads = result.environment.threads
    if baseline.threads is not None and threads is not None and baseline.threads != threads:
        diffs.append(f"{threads} threads vs published {baseline.threads}")
    signatures = tuple(sorted(result.prefill_signatures))
    if baseline.prefill_signatures and signatures and signatures != tuple(sorted(baseline.prefill_signatures)):
        diffs.append(f"prefill signatures {list(signatures)} vs published {list(baseline.prefill_signatures)}")
    return diffs


def candidate_baselines(baselines: BaselineSet, result: BenchmarkResult) -> list[Baseline]:
    """Rows published for this bundle and backend, on any device (the report plots them as references)."""
    return [b for b in baselines.baselines if bundle_matches(b, result)]


def spread_ok(result: BenchmarkResult, policy: Policy) -> bool:
    """True when every gated metric's runs agree within the policy's cv limit (unknown spread counts as ok)."""
    measured = measured_metrics(result)
    return all(
        measured[rule.name].cv is None or measured[rule.name].cv <= policy.cv_limit  # type: ignore[operator]
        for rule in policy.gated
        if rule.name in measured
    )


def fmt_value(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def compare_metrics(
    measured: dict[str, MetricSummary], reference: dict[str, float], policy: Policy, *, history: bool = False
) -> tuple[str, list[MetricCheck]]:
    """pass/fail/unstable of measured medians against reference figures, metric by metric, per the policy."""
    checks: list[MetricCheck] = []
    for name, rule in policy.metrics.items():
        if name not in reference:
            continue
        summary = measured.get(name)
        ref = reference[name]
        if summary is None:
            checks.append(MetricCheck(name, None, ref, None, None, "missing" if rule.gate else "info"))
            continue
        ratio = summary.median / ref if ref else None
        tolerance = rule.history_tolerance if history and rule.history_tolerance is not None else rule.tolerance
        if not rule.gate:
            outcome = "info"
        elif summary.cv is not None and summary.cv > policy.cv_limit:
            outcome = V.UNSTABLE
        elif rule.worse_than(summary.median, ref, tolerance):
            outcome = V.FAIL
        else:
            outcome = V.PASS
        checks.append(MetricCheck(name, summary.median, ref, ratio, summary.cv, outcome))
    outcomes = {c.outcome for c in checks}
    if V.UNSTABLE in outcomes:
        verdict = V.UNSTABLE
    elif V.FAIL in outcomes:
        verdict = V.FAIL
    elif V.PASS in outcomes:
        verdict = V.PASS
    else:
        verdict = V.NO_BASELINE  # nothing gated could be compared
    return verdict, checks


def check_against_baselines(result: BenchmarkResult, baselines: BaselineSet, policy: Policy) -> list[Check]:
    """One Check per applicable published row (or one saying why none applies)."""
    if result.status == "unsupported":
        return [Check("baseline", V.UNSUPPORTED, "", result.message or "unsupported on this device")]
    if result.status != "ok" or not result.samples:
        return [Check("baseline", V.ERROR, "", result.message or "the runner measured nothing")]
    candidates = candidate_baselines(baselines, result)
    if not candidates:
        what = f"{result.model or '?'} {result.quantization} ekv{result.ekv} {result.environment.backend or 'cpu'}"
        what += f" {result.precision}" if result.precision else ""
        return [Check("baseline", V.NO_BASELINE, "", f"nothing published for {what}")]
    if is_software_adapter(result):
        devices = sorted({b.device.name for b in candidates})
        adapter = (result.environment.adapter or {}).get("engine") or result.environment.device
        return [Check("baseline", V.DIFFERENT_DEVICE, ",".join(b.id for b in candidates),
                      f"software GPU adapter ({adapter}): never judged against published GPU rows "
                      f"({', '.join(devices)})")]
    names = device_names(result)
    own_device = [b for b in candidates if b.device.matches(*names)]
    if not own_device:
        devices = sorted({b.device.name for b in candidates})
        return [
            Check(
                "baseline",
                V.DIFFERENT_DEVICE,
                ",".join(b.id for b in candidates),
                f"published on {', '.join(devices)}; this run is on {result.environment.device or 'an unnamed device'}",
            )
        ]
    measured = measured_metrics(result)
    checks = []
    for baseline in own_device:
        diffs = protocol_differences(baseline, result)
        if diffs:
            checks.append(Check("baseline", V.NO_BASELINE, baseline.id, "conditions differ: " + "; ".join(diffs)))
            continue
        verdict, metrics = compare_metrics(measured, baseline.published, policy)
        checks.append(Check("baseline", verdict, baseline.id, _summary_line(verdict, metrics, baseline.label), metrics))
    return checks


def _summary_line(verdict: str, metrics: list[MetricCheck], against: str) -> str:
    parts = [
        f"{m.metric} {fmt_value(m.measured)} vs {fmt_value(m.reference)} ({(m.ratio or 0) * 100:.0f}%"
        + (f", cv {m.cv * 100:.1f}%" if m.cv is not None else "")
        + f") {m.outcome}"
        for m in metrics
        if m.measured is not None and m.outcome != "info"
    ]
    return f"{verdict} against {against}: " + "; ".join(parts)
