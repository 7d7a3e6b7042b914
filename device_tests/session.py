"""`run_lab()`: bundles from a manifest -> a runner per bundle -> verdicts -> JSON + HTML reports + history.

This is the one function the CLI, nox and tests call; `judge_results()` does the same for results recorded
elsewhere (a lab phone's JSON), without running anything. Where the runners run is `run_lab`'s `measure`
argument: `measure` here (this machine, one bundle after another) or `device_tests.lab_ray.measure_on_ray` (an
actor per phone or per host on a Ray cluster); either hands its results to the one judging and reporting path below.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from device_tests import verdicts as V
from device_tests.baselines import BaselineSet, load_baselines
from device_tests.bundles import select_bundles
from device_tests.compare import spread_ok
from device_tests.errors import LabError
from device_tests.evaluate import Evaluation, evaluate
from device_tests.history import append_history, load_history, make_entry
from device_tests.policy import Policy, load_policy
from device_tests.record import BenchmarkResult, utc_now
from device_tests.report_html import render_report
from device_tests.report_json import write_json_report
from device_tests.runners.host import BundleInfo

if TYPE_CHECKING:
    from device_tests.runners.android import AndroidRunOptions

SURFACES = ("host", "web", "android", "gpu")
EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


@dataclasses.dataclass
class LabRequest:
    surface: str
    bundles_dir: Path
    report_dir: Path
    selectors: Sequence[str] = ()
    formats: Sequence[str] = ()
    runs: int = 5
    warmup: int = 1
    prefill_tokens: int = 256
    decode_tokens: int = 128
    history_path: Path | None = None
    """None: REPORT_DIR/history.jsonl."""
    record_history: bool = True
    baselines_path: Path | None = None
    policy: Policy | None = None
    # host
    threads: int = 2
    cpus: tuple[int, ...] | None = None
    engine_warmup: bool = True
    # web
    precisions: tuple[str, ...] = ("F16", "F32")
    chromium_path: str | None = None
    # android
    serial: str | None = None
    serials: tuple[str, ...] = ()
    """Every phone to run on (`--serial` repeated); empty: `serial` alone (None: the only one attached)."""
    backend: str = "cpu"
    android_threads: int | None = None
    binary_path: str | None = None
    android_extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Further run_android_benchmark keywords: adb_host, adb_port, thermal_limit_c, ..."""
    timeout_s: float = 900.0
    command: str = ""
    executor: str = "local"
    """`local` (this machine) or `ray` / `ray://HOST:PORT` (`device_tests.lab_ray`: an actor per phone or host)."""

    def __post_init__(self) -> None:
        if self.surface not in (*SURFACES, "judge"):
            raise LabError(f"unknown surface {self.surface!r}; choose one of: {', '.join(SURFACES)}")
        if self.runs < 1 or self.warmup < 0:
            raise LabError("--runs must be at least 1 and --warmup at least 0")
        if self.prefill_tokens < 1 or self.decode_tokens < 1:
            raise LabError("--prefill and --decode must be positive token counts")


@dataclasses.dataclass
class LabOutcome:
    evaluations: list[Evaluation]
    json_path: Path
    html_path: Path
    history_path: Path

    @property
    def exit_code(self) -> int:
        verdicts = {ev.verdict for ev in self.evaluations}
        if V.FAIL in verdicts:
            return EXIT_FAIL
        if V.ERROR in verdicts:
            return EXIT_ERROR
        return EXIT_OK


def measure(request: LabRequest, bundles: list[BundleInfo], on_result: Callable[[BenchmarkResult], None]) -> None:
    """Run the surface's runner over the bundles, handing each result to `on_result` as soon as it exists."""
    if request.surface == "host":
        from device_tests.runners.host import HostRunOptions, run_host_benchmark

        options = HostRunOptions(
            prefill_tokens=request.prefill_tokens,
            decode_tokens=request.decode_tokens,
            runs=request.runs,
            warmup=request.warmup,
            threads=request.threads,
            cpus=request.cpus,
            timeout_s=request.timeout_s,
            engine_warmup=request.engine_warmup,
        )
        for bundle in bundles:
            on_result(run_host_benchmark(bundle, options))
    elif request.surface == "web":
        from device_tests.runners.web import WebRunOptions, load_automation, run_web_benchmark
        from device_tests.runners.web_server import serve_bundles

        load_automation()  # fail before starting a server when the web demo is not there
        web_options = WebRunOptions(
            prefill_tokens=request.prefill_tokens,
            decode_tokens=request.decode_tokens,
            runs=request.runs,
            warmup=request.warmup,
            precisions=request.precisions,
            chromium_path=request.chromium_path,
            timeout_s=request.timeout_s,
        )
        with serve_bundles(request.bundles_dir) as base_url:
            for bundle in bundles:
                for result in run_web_benchmark(base_url, bundle, web_options):
                    on_result(result)
    elif request.surface == "gpu":
        from device_tests.runners.gpu import GpuRunOptions, run_gpu_benchmark

        gpu_options = GpuRunOptions(
            prefill_tokens=request.prefill_tokens,
            decode_tokens=request.decode_tokens,
            runs=request.runs,
            warmup=request.warmup,
            precisions=request.precisions,
            timeout_s=request.timeout_s,
        )
        for bundle in bundles:
            for result in run_gpu_benchmark(bundle, gpu_options):
                on_result(result)
    else:
        from device_tests.runners.android import run_android

        for serial in phone_serials(request):
            phone_options = android_options(request, serial)
            for bundle in bundles:
                on_result(run_android(bundle, phone_options, log=lambda line: print(f"  {line}", flush=True)))


def phone_serials(request: LabRequest) -> tuple[str | None, ...]:
    """The phones a run asked for, in order: `--serial` repeated, else the one serial (None: the only phone)."""
    return request.serials or (request.serial,)


def android_options(request: LabRequest, serial: str | None) -> AndroidRunOptions:
    """The Android runner's options for one phone, from the request (the same locally and in a Ray actor)."""
    from device_tests.runners.android import AndroidRunOptions

    return AndroidRunOptions(
        serial=serial,
        backend=request.backend,
        prefill_tokens=request.prefill_tokens,
        decode_tokens=request.decode_tokens,
        runs=request.runs,
        warmup=request.warmup,
        binary_path=request.binary_path,
        threads=request.android_threads,
        timeout_s=request.timeout_s,
        extra=dict(request.android_extra),
    )


Measure = Callable[[LabRequest, list[BundleInfo], Callable[[BenchmarkResult], None]], None]
"""Runs the request's surface over the bundles, handing each result on as it exists: `measure`, or an executor's."""


def run_lab(request: LabRequest, on_evaluation: Callable[[Evaluation], None] | None = None,
            measure: Measure = measure) -> LabOutcome:
    """Measure every selected bundle, judge each result as it comes, write the reports and append the history.

    Reports are written even when a runner raises half way, so the bundles measured before it are not lost.
    `measure` is where the runners run: this machine by default, or an executor's (a Ray cluster's actors).
    """
    if request.surface not in SURFACES:
        raise LabError(f"run_lab measures on {', '.join(SURFACES)}; use judge_results() for recorded results")
    formats = request.formats or ()  # every format runs on every surface (web: .task in MediaPipe, .litertlm in LiteRT-LM)
    bundles = select_bundles(request.bundles_dir, request.selectors, formats)
    judge = Judge(request)  # loads baselines, policy and history first: bad data fails before minutes of runs

    def collect(result: BenchmarkResult) -> None:
        ev = judge.add(result)
        if on_evaluation:
            on_evaluation(ev)

    try:
        measure(request, bundles, collect)
    finally:
        if judge.evaluations:
            outcome = judge.finish()
    if not judge.evaluations:
        raise LabError("nothing was measured")
    return outcome


def judge_results(
    results: Sequence[BenchmarkResult],
    request: LabRequest,
    *,
    on_evaluation: Callable[[Evaluation], None] | None = None,
) -> LabOutcome:
    """Judge results recorded elsewhere (or measured already), write JSON + HTML, append the history."""
    judge = Judge(request)
    for result in results:
        ev = judge.add(result)
        if on_evaluation:
            on_evaluation(ev)
    return judge.finish()


class Judge:
    """Judges results one by one against the published rows and the history as it was before this run."""

    def __init__(self, request: LabRequest) -> None:
        self.request = request
        self.baselines: BaselineSet = load_baselines(request.baselines_path)
        self.policy = request.policy or load_policy()
        self.history_path = request.history_path or request.report_dir / "history.jsonl"
        self.history = load_history(self.history_path)
        self.started = utc_now()
        self.evaluations: list[Evaluation] = []
        self.new_entries: list[dict[str, Any]] = []

    def add(self, result: BenchmarkResult) -> Evaluation:
        ev = evaluate(result, self.baselines, self.policy, self.history)
        self.evaluations.append(ev)
        self.new_entries.append(make_entry(result, ev.verdict, stable=spread_ok(result, self.policy)))
        return ev

    def finish(self) -> LabOutcome:
        """Append the history, write the JSON and HTML reports (and their `-latest` copies)."""
        request, policy, results = self.request, self.policy, [ev.result for ev in self.evaluations]
        history = self.history
        if request.record_history:
            append_history(self.history_path, self.new_entries)
            history = history + self.new_entries
        meta: dict[str, Any] = {
            "surface": request.surface,
            "started_utc": self.started,
            "generated_utc": utc_now(),
            "command": request.command or shlex.join(sys.argv),
            # As recorded in the results (a judged file may hold several protocols), not as asked for.
            "runs": _distinct(len(r.samples) for r in results if r.status == "ok"),
            "warmup": _distinct(r.warmup_runs for r in results),
            "prefill_tokens": _distinct(r.prefill_tokens for r in results),
            "decode_tokens": _distinct(r.decode_tokens for r in results),
            "bundles_dir": str(request.bundles_dir),
            "baselines": str(self.baselines.path),
            "history_path": str(self.history_path),
            "policy": {
                "cv_limit": policy.cv_limit,
                "metrics": {n: dataclasses.asdict(r) for n, r in policy.metrics.items()},
            },
        }
        request.report_dir.mkdir(parents=True, exist_ok=True)
        stamp = meta["generated_utc"].replace(":", "").replace("-", "")
        json_path = request.report_dir / f"lab-{request.surface}-{stamp}.json"
        write_json_report(json_path, self.evaluations, meta)
        html_text = render_report(self.evaluations, baselines=self.baselines, policy=policy, history=history, meta=meta)
        html_path = request.report_dir / f"lab-{request.surface}-{stamp}.html"
        html_path.write_text(html_text, encoding="utf-8")
        for name, path in (("latest.json", json_path), ("latest.html", html_path)):
            (request.report_dir / f"lab-{request.surface}-{name}").write_bytes(path.read_bytes())
        return LabOutcome(self.evaluations, json_path, html_path, self.history_path)


def _distinct(values: Iterable[int]) -> str:
    return "/".join(str(v) for v in sorted(set(values))) or "–"
