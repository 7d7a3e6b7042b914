"""Android runner: a phone over adb, through `android_bridge.benchmark.run_android_benchmark`.

The bridge owns adb, pushing the bundle and LiteRT-LM's `litert_lm_main`, cooling down and running on the
phone; this module passes the lab's protocol through, turns the bridge's interrupted-session errors into
the record they carry, and fills in what the manifest knows (model, format, prefill signatures) so the
comparison can match the published S24 Ultra rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device_tests.errors import LabError
from device_tests.record import BenchmarkResult
from device_tests.runners.host import BundleInfo


@dataclasses.dataclass(frozen=True)
class AndroidRunOptions:
    serial: str | None = None
    backend: str = "cpu"
    prefill_tokens: int = 1024
    decode_tokens: int = 256
    runs: int = 5
    warmup: int = 1
    binary_path: str | None = None
    threads: int | None = None
    """None: the bridge's default (as many threads as big cores)."""
    timeout_s: float = 600.0
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Further keyword arguments for run_android_benchmark (adb_host, adb_port, thermal_limit_c, ...)."""


def load_bridge() -> Any:
    try:
        from android_bridge import benchmark
    except ImportError as exc:
        raise LabError(f"the android runner needs android_bridge.benchmark ({exc})") from exc
    return benchmark


def run_android(
    bundle: BundleInfo, options: AndroidRunOptions, log: Callable[[str], None] | None = None
) -> BenchmarkResult:
    if not options.serial:
        raise LabError("android needs --serial (see `adb devices -l`)")
    if not options.binary_path or not Path(options.binary_path).is_file():
        raise LabError(
            f"android needs --binary: LiteRT-LM's litert_lm_main built for the phone (got {options.binary_path!r})"
        )
    bridge = load_bridge()
    kwargs: dict[str, Any] = {"timeout_s": options.timeout_s, **options.extra}
    if options.threads is not None:
        kwargs["threads"] = options.threads
    if log is not None:
        kwargs["log"] = log
    try:
        run = bridge.run_android_benchmark(
            options.serial,
            bundle.path,
            backend=options.backend,
            prefill_tokens=options.prefill_tokens,
            decode_tokens=options.decode_tokens,
            runs=options.runs,
            warmup=options.warmup,
            binary_path=Path(options.binary_path),
            **kwargs,
        )
    except Exception as exc:
        carried = getattr(exc, "result", None)
        if type(exc).__module__.startswith("android_bridge") and carried is not None:
            run = carried  # a phone that vanished or a run that hung: keep the runs already done
        elif type(exc).__module__.startswith("android_bridge"):
            raise LabError(f"{options.serial}: {exc}") from exc
        else:
            raise
    # The bridge's own record has the lab's field names: the lab converts, the bridge never imports the lab.
    return complete_from_bundle(BenchmarkResult.from_dict(run.to_dict()), bundle, options.warmup)


def complete_from_bundle(result: BenchmarkResult, bundle: BundleInfo, warmup: int) -> BenchmarkResult:
    """Fill the lab's fields the bridge may leave empty; values it did set are kept."""
    result.model = result.model or bundle.model
    result.bundle_format = result.bundle_format or bundle.bundle_format
    result.prefill_signatures = result.prefill_signatures or list(bundle.prefill_signatures)
    result.warmup_runs = result.warmup_runs or warmup
    result.bundle_bytes = result.bundle_bytes or bundle.bytes
    result.quantization = result.quantization or bundle.quantization
    result.ekv = result.ekv or bundle.ekv
    result.environment.surface = result.environment.surface or "android"
    return result
