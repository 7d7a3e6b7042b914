"""Host runner: this machine's CPU through `litert-lm benchmark`, one process per run, threads pinned.

One process per measured run (rather than litert-lm's own `--runs`, which only prints the average) is what
gives raw samples and a spread. Threads are fixed with `--cpu-thread-count` and the process is pinned to as
many cores with `taskset`, so a run does not wander across cores other jobs are using. Peak memory is the
child's max RSS from wait4, since `litert-lm benchmark` does not report memory.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from device_tests.errors import LabError
from device_tests.host_env import cpu_model, host_facts, os_description, thermal_state
from device_tests.record import BenchmarkResult, Environment, RunSample, utc_now
from sdk_build.sources.checkpoint import default_cache_dir
from sdk_build.verify.engine import EngineConfig, engine_model_path

_PATTERNS = {
    "prefill": re.compile(r"Prefill speed:\s*([0-9.eE+]+)\s*tokens/s"),
    "decode": re.compile(r"Decode speed:\s*([0-9.eE+]+)\s*tokens/s"),
    "init": re.compile(r"Init time:\s*([0-9.eE+]+)\s*s"),
    "ttft": re.compile(r"Time to first token:\s*([0-9.eE+]+)\s*s"),
}


@dataclasses.dataclass(frozen=True)
class HostRunOptions:
    prefill_tokens: int = 256
    decode_tokens: int = 128
    runs: int = 5
    warmup: int = 1
    threads: int = 2
    cpus: tuple[int, ...] | None = None
    """Cores to pin to; None: the first `threads` cores this process may use."""
    timeout_s: float = 900.0
    litert_lm: str | None = None
    engine_warmup: bool = True
    """litert-lm's own warm-up pass in each process (off: --skip-warmup; half the time, a cold engine)."""


@dataclasses.dataclass(frozen=True)
class BundleInfo:
    """What the runner needs to know about the bundle (filled from the manifest entry by the lab)."""

    path: Path
    sha256: str
    quantization: str
    ekv: int
    model: str = ""
    bundle_format: str = ""
    prefill_signatures: tuple[int, ...] = ()
    bytes: int | None = None
    largest_tensors: tuple[dict, ...] = ()
    """The bundle's largest tensors as the build recorded them (`sdk_build.gpu.buffers.TensorSize` dicts): what a
    GPU must fit in single buffers."""

    def new_result(
        self, *, prefill_tokens: int, decode_tokens: int, warmup: int, precision: str, environment: Environment,
        started_utc: str,
    ) -> BenchmarkResult:
        """An empty result for this bundle (no samples yet): what every runner starts from."""
        return BenchmarkResult(
            bundle_file=self.path.name,
            bundle_sha256=self.sha256,
            quantization=self.quantization,
            ekv=self.ekv,
            prefill_tokens=prefill_tokens,
            decode_tokens=decode_tokens,
            precision=precision,
            environment=environment,
            samples=[],
            model=self.model,
            bundle_format=self.bundle_format,
            prefill_signatures=list(self.prefill_signatures),
            bundle_bytes=self.bytes,
            warmup_runs=warmup,
            started_utc=started_utc,
        )


@dataclasses.dataclass(frozen=True)
class ProcessRun:
    output: str
    returncode: int
    max_rss_bytes: int
    seconds: float


def find_litert_lm(explicit: str | None = None) -> str:
    """`litert-lm` next to this Python first (a venv run by nox without activation), then PATH."""
    candidates = [explicit] if explicit else [str(Path(sys.executable).with_name("litert-lm")), "litert-lm"]
    for candidate in candidates:
        found = shutil.which(candidate) if candidate else None
        if found:
            return found
    raise LabError("the `litert-lm` CLI was not found; install litert-lm==0.18.1 in this environment")


def pinned_cpus(threads: int, cpus: tuple[int, ...] | None) -> list[int]:
    available = sorted(os.sched_getaffinity(0))
    chosen = list(cpus) if cpus else available[:threads]
    missing = sorted(set(chosen) - set(available))
    if missing:
        raise LabError(f"cannot pin to cores {missing}: this process may only use {available}")
    return chosen


def benchmark_command(litert_lm: str, bundle: BundleInfo, options: HostRunOptions, cpus: list[int]) -> list[str]:
    command = [
        litert_lm,
        "benchmark",
        str(engine_model_path(bundle.path, EngineConfig("cpu", None, options.threads), default_cache_dir())),
        "--backend",
        "cpu",
        "-p",
        str(options.prefill_tokens),
        "-d",
        str(options.decode_tokens),
        "--cpu-thread-count",
        str(options.threads),
        "--runs",
        "1",
        "--max-num-tokens",
        str(bundle.ekv),
    ]
    if not options.engine_warmup:
        command.append("--skip-warmup")
    taskset = shutil.which("taskset")
    return ([taskset, "-c", ",".join(map(str, cpus))] if taskset else []) + command


def run_process(command: list[str], timeout_s: float, cpus: list[int]) -> ProcessRun:
    """Run to completion, capturing output and the child's peak RSS (ru_maxrss via wait4)."""
    started = time.monotonic()
    with tempfile.TemporaryFile(mode="w+") as log:
        preexec = None if command[0].endswith("taskset") else (lambda: os.sched_setaffinity(0, cpus))
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec)
        deadline = started + timeout_s
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read()
    return ProcessRun(output, process.returncode, usage.ru_maxrss * 1024, time.monotonic() - started)


def parse_benchmark_output(output: str) -> RunSample:
    values = {}
    for key, pattern in _PATTERNS.items():
        match = pattern.search(output)
        if match:
            values[key] = float(match.group(1))
    if "prefill" not in values or "decode" not in values:
        tail = "\n".join(output.strip().splitlines()[-8:])
        raise LabError(f"litert-lm printed no prefill/decode speed; its last lines:\n{tail}")
    if values["prefill"] <= 0 or values["decode"] <= 0:
        # Seen with a .task whose prefill signature is padded up to the whole KV cache (1B ekv1280, -p 1024):
        # litert-lm prints 0 tokens/s and a 0 s TTFT instead of failing.
        raise LabError(
            f"litert-lm reported prefill {values['prefill']} / decode {values['decode']} tokens/s: that part did not "
            "run. Most likely the prompt was padded to a prefill signature as long as the KV cache (1B ekv1280 with "
            "-p 1024), leaving no room to decode; "
            "use a prefill equal to a prefill signature (e.g. 512) or a bundle with a larger ekv"
        )
    return RunSample(
        prefill_tokens_per_s=values["prefill"],
        decode_tokens_per_s=values["decode"],
        ttft_s=values.get("ttft"),
        init_s=values.get("init"),
    )


def host_environment(options: HostRunOptions, cpus: list[int], pinned_with: str) -> Environment:
    extra = host_facts()
    extra.update(
        {
            "cpu_affinity": cpus,
            "pinned_with": pinned_with,
            "runtime": f"litert-lm {_version('litert-lm')}",
            "executor": "XNNPACK (LiteRT CPU)",
            "engine_warmup": options.engine_warmup,
        }
    )
    return Environment(
        surface="host",
        device=cpu_model(),
        os=os_description(),
        backend="cpu",
        thermal=thermal_state(),
        threads=options.threads,
        extra=extra,
    )


def run_host_benchmark(bundle: BundleInfo, options: HostRunOptions) -> BenchmarkResult:
    """Warm-up runs (discarded), then `options.runs` measured runs; errors come back in the record."""
    litert_lm = find_litert_lm(options.litert_lm)
    cpus = pinned_cpus(options.threads, options.cpus)
    command = benchmark_command(litert_lm, bundle, options, cpus)
    environment = host_environment(options, cpus, "taskset" if command[0].endswith("taskset") else "sched_setaffinity")
    result = bundle.new_result(
        prefill_tokens=options.prefill_tokens, decode_tokens=options.decode_tokens, warmup=options.warmup,
        precision="", environment=environment, started_utc=utc_now(),
    )
    if options.prefill_tokens + options.decode_tokens > bundle.ekv:
        result.status = "error"
        result.message = (
            f"prefill {options.prefill_tokens} + decode {options.decode_tokens} tokens exceed the bundle's KV cache "
            f"({bundle.ekv}); lower --prefill/--decode"
        )
        return result
    peak = 0
    for index in range(options.warmup + options.runs):
        run = run_process(command, options.timeout_s, cpus)
        peak = max(peak, run.max_rss_bytes)
        try:
            if run.returncode != 0:
                raise LabError(
                    f"litert-lm exited with {run.returncode}: " + " ".join(run.output.strip().splitlines()[-3:])
                )
            sample = parse_benchmark_output(run.output)
        except LabError as exc:
            result.status, result.message = "error", f"run {index + 1}: {exc}"
            break
        if index >= options.warmup:
            result.samples.append(sample)
    result.peak_memory_bytes = peak or None
    result.environment.thermal = f"before: {environment.thermal}; after: {thermal_state()}"
    return result


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
