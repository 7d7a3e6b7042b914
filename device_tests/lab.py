"""`python -m device_tests.lab {host,gpu,web,android,judge} ...`: the device lab's command line.

Only parses and validates arguments, calls `session.run_lab` / `session.judge_results`, and prints one
line per result. Exit status: 0 when nothing regressed (pass, no baseline, different device: no verdict,
unstable, unsupported), 1 on a regression (fail), 2 when a runner errored or the arguments/data were wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from device_tests import verdicts as V
from device_tests.errors import LabError
from device_tests.evaluate import Evaluation
from device_tests.policy import load_policy
from device_tests.record import BenchmarkResult
from device_tests.session import EXIT_ERROR, LabRequest, Measure, judge_results, measure, run_lab
from device_tests.stats import measured_metrics
from sdk_build.cli.options import executor

DEFAULT_REPORT_DIR = Path("reports") / "lab"


def _key_float(value: str) -> tuple[str, float]:
    key, sep, number = value.partition("=")
    try:
        if not sep:
            raise ValueError
        return key, float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected METRIC=FRACTION, e.g. decode_tokens_per_s=0.15"
        ) from None


def _key_bool(value: str) -> tuple[str, bool]:
    key, sep, flag = value.partition("=")
    if not sep or flag not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"{value!r}: expected METRIC=on|off, e.g. ttft_s=on")
    return key, flag == "on"


def _cpus(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a comma-separated list of core numbers") from None


def _precisions(value: str) -> tuple[str, ...]:
    items = tuple(v.strip().upper() for v in value.split(",") if v.strip())
    bad = [v for v in items if v not in ("F16", "F32")]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"{value!r}: precisions are F16 and/or F32")
    return items


SURFACE_HELP = {
    "host": "this CPU via litert-lm",
    "gpu": "this machine's GPU engine via LiteRT-LM (F16 and F32; a software Vulkan device such as lavapipe where "
           "there is no GPU)",
    "web": "Chromium via the demo page",
    "android": "a phone via adb",
    "judge": "judge recorded result JSON files without running anything",
}

def build_parser(prog: str = "python -m device_tests.lab") -> argparse.ArgumentParser:
    """One subcommand per surface, each taking the common options and only its own: a web-only flag given to
    `host` is an error, not silently ignored."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Benchmark bundles on a surface, compare with the published figures and the last good run.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bundles", type=Path, default=Path("bundles"), help="folder with bundles + manifest.json")
    common.add_argument(
        "--select",
        action="append",
        default=[],
        metavar="KEY=V[,V]",
        help="only bundles whose manifest KEY (file, model, quantization, ekv, target, format) is one of V",
    )
    common.add_argument(
        "--format",
        action="append",
        default=[],
        choices=("task", "litertlm"),
        help="bundle formats to run (default: all)",
    )
    common.add_argument("--runs", type=int, default=5, help="measured runs per bundle (default 5)")
    common.add_argument("--warmup", type=int, default=1, help="discarded warm-up runs (default 1)")
    common.add_argument(
        "--prefill",
        type=int,
        default=256,
        help="prefill tokens (default 256; web and LiteRT-LM README rows: 1024; prefill + decode must fit the ekv)",
    )
    common.add_argument("--decode", type=int, default=128, help="decode tokens (default 128; published rows: 256)")
    common.add_argument("--report-dir", type=Path, default=DEFAULT_REPORT_DIR, help="where JSON/HTML reports go")
    common.add_argument("--history", type=Path, default=None, help="history JSONL (default REPORT_DIR/history.jsonl)")
    common.add_argument("--no-history", action="store_true", help="do not append this run to the history")
    common.add_argument("--baselines", type=Path, default=None, help="baselines TOML (default: the shipped one)")
    common.add_argument("--policy", type=Path, default=None, help="policy TOML (default: the shipped one)")
    common.add_argument(
        "--tolerance",
        type=_key_float,
        action="append",
        default=[],
        metavar="METRIC=F",
        help="allowed fraction worse than the reference, e.g. decode_tokens_per_s=0.15",
    )
    common.add_argument(
        "--gate",
        type=_key_bool,
        action="append",
        default=[],
        metavar="METRIC=on|off",
        help="whether a metric can fail the run, e.g. ttft_s=on",
    )
    common.add_argument("--cv-limit", type=float, default=None, help="spread above which a run is unstable (0.10)")
    common.add_argument("--timeout", type=float, default=900.0, help="seconds per benchmark process/page")
    surfaces = parser.add_subparsers(dest="surface", required=True, metavar="{" + ",".join(SURFACE_HELP) + "}")
    sub = {name: surfaces.add_parser(name, parents=[common], help=text, description=text)
           for name, text in SURFACE_HELP.items()}
    host = sub["host"]
    host.add_argument("--threads", type=int, default=2, help="CPU threads (--cpu-thread-count; default 2)")
    host.add_argument("--cpus", type=_cpus, default=None, help="cores to pin to (default: the first THREADS)")
    host.add_argument(
        "--skip-engine-warmup",
        action="store_true",
        help="pass --skip-warmup to litert-lm (no warm-up pass inside each process; faster, colder)",
    )
    for web in (sub["web"], sub["gpu"]):
        web.add_argument("--precision", type=_precisions, default=("F16", "F32"),
                         help="activation precisions to run, F16,F32 (default both; each is its own result)")
    web = sub["web"]
    web.add_argument("--chromium", default=None, help="Chromium/Chrome executable (default: found automatically)")
    android = sub["android"]
    android.add_argument("--serial", action="append", default=None,
                         help="adb serial of a phone (repeat for several; default: the only one attached, or with "
                              "--executor ray every phone the cluster's hosts see and advertise)")
    android.add_argument("--backend", choices=("cpu", "gpu"), default="cpu",
                         help="LiteRT-LM backend on the phone (default cpu)")
    android.add_argument(
        "--binary",
        default=os.environ.get("LITERT_LM_MAIN"),
        help="LiteRT-LM's litert_lm_main for the phone (pushed by the bridge; default $LITERT_LM_MAIN)",
    )
    android.add_argument(
        "--android-threads",
        type=int,
        default=None,
        help="CPU threads on the phone (default: one per big core; published S24 rows used 4)",
    )
    android.add_argument("--adb-host", default=None, help="adb server host (default: the bridge's)")
    android.add_argument("--adb-port", type=int, default=None, help="adb server port (default: the bridge's)")
    android.add_argument("--thermal-limit", type=float, default=None, help="cool down below this many C before a run")
    for name in ("android", "host", "gpu"):
        sub[name].add_argument(
            "--executor",
            type=executor,
            default="local",
            help="local (default: this machine) or ray / ray://HEAD:PORT: one Ray actor per phone, on the host that "
                 "advertises its resource phone:SERIAL (android), or one per node (host, gpu); docs/ray.md",
        )
    sub["judge"].add_argument("results", nargs="+", type=Path, help="BenchmarkResult JSON files (or lab reports)")
    # A surface's request also holds the options only other surfaces take: at their own defaults.
    defaults = {action.dest: action.default for surface in sub.values() for action in surface._actions}
    for surface in sub.values():
        own = {action.dest for action in surface._actions}
        surface.set_defaults(**{k: v for k, v in defaults.items() if k not in own})
    return parser


def request_from_args(args: argparse.Namespace, argv: Sequence[str]) -> LabRequest:
    policy = load_policy(args.policy).with_overrides(
        tolerances=dict(args.tolerance), cv_limit=args.cv_limit, gates=dict(args.gate)
    )
    return LabRequest(
        surface=args.surface,
        bundles_dir=args.bundles,
        report_dir=args.report_dir,
        selectors=args.select,
        formats=args.format,
        runs=args.runs,
        warmup=args.warmup,
        prefill_tokens=args.prefill,
        decode_tokens=args.decode,
        history_path=args.history,
        record_history=not args.no_history,
        baselines_path=args.baselines,
        policy=policy,
        threads=args.threads,
        cpus=args.cpus,
        engine_warmup=not args.skip_engine_warmup,
        precisions=args.precision,
        chromium_path=args.chromium,
        serial=args.serial[0] if args.serial else None,
        serials=tuple(args.serial or ()),
        executor=args.executor,
        backend=args.backend,
        binary_path=args.binary,
        timeout_s=args.timeout,
        android_threads=args.android_threads,
        android_extra={
            k: v
            for k, v in (
                ("adb_host", args.adb_host),
                ("adb_port", args.adb_port),
                ("thermal_limit_c", args.thermal_limit),
            )
            if v is not None
        },
        command="python -m device_tests.lab " + shlex.join(argv),
    )


def load_recorded(paths: Sequence[Path]) -> list[BenchmarkResult]:
    """BenchmarkResult dicts from files holding one result, a list of them, or a lab JSON report."""
    results = []
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise LabError(f"cannot read results file {path}: {exc}") from exc
        items = data.get("records", data) if isinstance(data, dict) and "records" in data else data
        for item in items if isinstance(items, list) else [items]:
            results.append(BenchmarkResult.from_dict(item.get("result", item) if "result" in item else item))
    if not results:
        raise LabError("judge needs at least one results file")
    return results


def describe(ev: Evaluation) -> str:
    r = ev.result
    m = measured_metrics(r)
    numbers = "  ".join(
        f"{label} {m[name].median:,.1f}" + (f" (cv {m[name].cv * 100:.1f}%)" if m[name].cv is not None else "")
        for name, label in (("prefill_tokens_per_s", "prefill"), ("decode_tokens_per_s", "decode"))
        if name in m
    )
    lines = [
        f"[{ev.verdict.upper()}] {r.bundle_file}{' ' + r.precision if r.precision else ''} on "
        f"{r.environment.device}: {numbers or r.message}"
    ]
    lines += [f"    {c.kind}: {c.message}" for c in ev.checks]
    return "\n".join(lines)


def measure_for(request: LabRequest) -> Measure:
    """Where the runners run: this machine, or a Ray cluster's actors (imported only then: Ray is optional)."""
    if request.executor == "local":
        return measure
    from device_tests.lab_ray import measure_on_ray

    return measure_on_ray


def main(argv: Sequence[str] | None = None, prog: str = "python -m device_tests.lab") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        request = request_from_args(args, argv)
        if args.surface == "judge":
            outcome = judge_results(
                load_recorded(args.results), request, on_evaluation=lambda ev: print(describe(ev), flush=True)
            )
        else:
            outcome = run_lab(request, on_evaluation=lambda ev: print(describe(ev), flush=True),
                              measure=measure_for(request))
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    counts: dict[str, int] = {}
    for ev in outcome.evaluations:
        counts[ev.verdict] = counts.get(ev.verdict, 0) + 1
    print("summary: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())))
    print(f"report: {outcome.html_path}\njson:   {outcome.json_path}\nhistory: {outcome.history_path}")
    if outcome.exit_code:
        failing = sorted({ev.verdict for ev in outcome.evaluations} & V.FAILING)
        print(f"exit {outcome.exit_code}: {', '.join(failing)}", file=sys.stderr)
    return outcome.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
