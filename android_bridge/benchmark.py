"""`run_android_benchmark`: one bundle on one phone -> an `AndroidRun` (the shape of the device lab's records).

The phone side is LiteRT-LM's own C++ benchmark binary, `litert_lm_main`, pushed next to the bundle and
run once per measurement (warm-up runs first, then `runs` measured ones), each time:

1. wait until the phone is below `thermal_limit_c` (thermal HAL skin sensor, else battery) with thermal
   status 0, so every run starts from the same state instead of a throttled one;
2. run `taskset <big-core mask> ./litert_lm_main --backend=... --benchmark ... --report_peak_memory_footprint`
   with a hard time-out, pinned to the cores outside the slowest cluster;
3. parse its log into an `AndroidSample` (prefill/decode tok/s, time to first token, init time) and the peak RSS.

One process per run (rather than `--num_iterations`) is what makes the cool-down possible between runs, and
what lets a run that dies take only itself with it: when the phone disappears or a run exceeds its time-out,
the error raised carries an `AndroidRun` (status "error") with every run finished before it.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import posixpath
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from adbutils import AdbDevice

from android_bridge import shell
from android_bridge.bundle_info import bundle_info
from android_bridge.discovery import open_device, pick_serial
from android_bridge.errors import (
    AndroidBridgeError,
    BenchmarkTimeoutError,
    CommandTimeoutError,
    DeviceDisconnectedError,
    DeviceNotFoundError,
)
from android_bridge.facts import DeviceFacts, read_facts
from android_bridge.output_parser import OutputParseError, parse_benchmark_output
from android_bridge.push import DEFAULT_CHUNK_BYTES, PushReport, push_file
from android_bridge.result import AndroidEnvironment, AndroidRun, AndroidSample
from android_bridge.server import resolve_server
from android_bridge.shell import quote
from android_bridge.thermal import wait_until_cool

DEFAULT_REMOTE_DIR = "/data/local/tmp/gemma-edge"
BINARY_NAME = "litert_lm_main"
BACKENDS = ("cpu", "gpu")
BINARY_ENV = "LITERT_LM_MAIN"


@dataclasses.dataclass
class _Session:
    """Everything known so far, so an interrupted session can still be returned as a record."""

    facts: DeviceFacts
    bundle_file: str
    bundle_sha256: str
    quantization: str
    ekv: int
    backend: str
    prefill_tokens: int
    decode_tokens: int
    threads: int | None
    extra: dict[str, Any]
    model: str = ""
    prefill_signatures: list[int] = dataclasses.field(default_factory=list)
    warmup: int = 0
    started_utc: str = ""
    samples: list[AndroidSample] = dataclasses.field(default_factory=list)
    peak_memory_bytes: int | None = None

    def result(self, status: str = "ok", message: str = "") -> AndroidRun:
        facts = self.facts
        environment = AndroidEnvironment(
            device=facts.label, os=f"Android {facts.android_release} (SDK {facts.sdk})",
            backend=self.backend, thermal=facts.thermal.describe(), threads=self.threads, extra=self.extra)
        return AndroidRun(
            bundle_file=self.bundle_file, bundle_sha256=self.bundle_sha256, quantization=self.quantization,
            ekv=self.ekv, prefill_tokens=self.prefill_tokens, decode_tokens=self.decode_tokens, precision="",
            environment=environment, samples=list(self.samples), peak_memory_bytes=self.peak_memory_bytes,
            status=status, message=message, model=self.model,
            bundle_format=Path(self.bundle_file).suffix.lstrip("."), prefill_signatures=list(self.prefill_signatures),
            warmup_runs=self.warmup, started_utc=self.started_utc)


def benchmark_command(remote_dir: str, bundle_remote: str, *, backend: str, prefill_tokens: int, decode_tokens: int,
                      mask: str, threads: int | None, extra_flags: Sequence[str] = ()) -> str:
    """The shell line run on the phone. It records its pid so a timed-out run can be killed precisely."""
    flags = [f"--backend={backend}", f"--model_path={bundle_remote}", "--benchmark",
             f"--benchmark_prefill_tokens={prefill_tokens}", f"--benchmark_decode_tokens={decode_tokens}",
             "--report_peak_memory_footprint"]
    if threads and backend == "cpu":
        flags.append(f"--num_cpu_threads={threads}")
    flags.extend(extra_flags)
    launcher = f"taskset {mask} ./{BINARY_NAME}" if mask else f"./{BINARY_NAME}"
    return (f"cd {quote(remote_dir)} && echo $$ > .bench.pid && export LD_LIBRARY_PATH={quote(remote_dir)} && "
            f"exec {launcher} {' '.join(quote(f) for f in flags)}")


def run_android_benchmark(
    serial: str | None,
    bundle_path: Path,
    *,
    binary_path: Path | str | None = None,
    backend: str = "cpu",
    prefill_tokens: int = 256,
    decode_tokens: int = 256,
    runs: int = 3,
    warmup: int = 1,
    adb_host: str | None = None,
    adb_port: int | None = None,
    thermal_limit_c: float = 40.0,
    cooldown_max_s: float = 600.0,
    cooldown_poll_s: float = 5.0,
    timeout_s: float = 600.0,
    threads: int | None = None,
    binary_libs: Sequence[Path] = (),
    extra_flags: Sequence[str] = (),
    remote_dir: str = DEFAULT_REMOTE_DIR,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    log_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> AndroidRun:
    """Benchmark `bundle_path` on device `serial` with LiteRT-LM's `litert_lm_main` at `binary_path`.

    `serial=None` takes $ANDROID_SERIAL or the only online device. `binary_path=None` takes `$LITERT_LM_MAIN`. The adb server comes from `adb_host`/`adb_port`, else
    `ADB_SERVER_SOCKET`, else `ANDROID_ADB_SERVER_HOST/PORT`, else 127.0.0.1:5037.

    `threads=None` passes `--num_cpu_threads=<number of big cores>`; `threads=0` leaves the binary's default.
    `timeout_s` bounds each single run (and nothing waits without a bound: every adb call has one too).
    Raises DeviceDisconnectedError / BenchmarkTimeoutError with `.result` holding the runs already done.
    A run that exits non-zero returns a result with status "error" (or "unsupported" for a backend the
    phone or binary lacks) and the runs before it.
    """
    if backend not in BACKENDS:
        raise AndroidBridgeError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if binary_path is None:
        binary_path = os.environ.get(BINARY_ENV) or None
    if binary_path is None:
        raise AndroidBridgeError(f"no litert_lm_main binary: pass binary_path or set {BINARY_ENV} "
                                 "(docs/android_bridge.md says where to get one)")
    binary_path = Path(binary_path)
    if runs < 1 or warmup < 0:
        raise AndroidBridgeError(f"need runs >= 1 and warmup >= 0 (got runs={runs}, warmup={warmup})")
    for path, what in [(Path(bundle_path), "bundle"), (Path(binary_path), "litert_lm_main binary")]:
        if not path.is_file():
            raise AndroidBridgeError(f"{what} {path} does not exist")
    say = log or (lambda _msg: None)
    started_utc = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    server = resolve_server(adb_host, adb_port)
    serial = pick_serial(server, serial, timeout_s=min(timeout_s, 30.0))
    device = open_device(server, serial, timeout_s=min(timeout_s, 30.0))
    facts = read_facts(device, timeout_s=min(timeout_s, 60.0))
    say(f"{serial}: {facts.label}, Android {facts.android_release}, big cores {facts.big_cores}")
    info = bundle_info(Path(bundle_path))

    pushes: dict[str, PushReport] = {}
    pushes["bundle"] = push_file(device, info.path, remote_dir, sha256=info.sha256, chunk_bytes=chunk_bytes)
    pushes["binary"] = push_file(device, Path(binary_path), remote_dir, remote_name=BINARY_NAME, mode=0o755)
    for lib in binary_libs:
        pushes[Path(lib).name] = push_file(device, Path(lib), remote_dir, mode=0o644)
    say("pushed: " + ", ".join(f"{k} {'skipped (same sha256)' if r.skipped else f'{r.bytes_sent} B'}"
                               for k, r in pushes.items()))

    used_threads = (len(facts.big_cores) or None) if threads is None else (threads or None)
    mask = facts.big_core_mask
    bundle_remote = pushes["bundle"].remote_path
    command = benchmark_command(remote_dir, bundle_remote, backend=backend, prefill_tokens=prefill_tokens,
                                decode_tokens=decode_tokens, mask=mask, threads=used_threads, extra_flags=extra_flags)
    session = _Session(
        facts=facts, bundle_file=info.path.name, bundle_sha256=info.sha256, quantization=info.quantization,
        ekv=info.ekv, backend=backend, prefill_tokens=prefill_tokens, decode_tokens=decode_tokens,
        threads=used_threads if backend == "cpu" else None, model=info.model,
        prefill_signatures=info.prefill_lengths, warmup=warmup, started_utc=started_utc,
        extra={"serial": serial, "adb_server": str(server), "soc": facts.soc, "abi": facts.abi,
               "ram_bytes": facts.ram_bytes, "gpu": facts.gpu, "big_cores": facts.big_cores, "taskset_mask": mask,
               "binary_sha256": pushes["binary"].sha256, "bundle_remote": bundle_remote,
               "pushes": {k: dataclasses.asdict(r) for k, r in pushes.items()}, "command": command,
               "thermal_limit_c": thermal_limit_c, "warmup": warmup, "runs": [],
               "stand_in": "stand-in" in facts.label.lower()})

    total = warmup + runs
    for index in range(total):
        kind = "warmup" if index < warmup else "measured"
        record: dict[str, Any] = {"kind": kind}
        session.extra["runs"].append(record)
        try:
            cool = wait_until_cool(device, thermal_limit_c, max_wait_s=cooldown_max_s, poll_s=cooldown_poll_s,
                                   timeout_s=min(timeout_s, 30.0))
            say(f"run {index + 1}/{total} ({kind}): {cool.reading.describe()}"
                + (f", waited {cool.waited_s:.1f} s to cool" if cool.waited_s > 0 else ""))
            record.update(start_thermal=cool.reading.describe(), start_temp_c=cool.reading.device_c,
                          cooldown_waited_s=round(cool.waited_s, 2), cooled=cool.cooled)
            started = time.monotonic()
            try:
                out = shell.run(device, command, timeout_s=timeout_s)
            except CommandTimeoutError as exc:
                _kill_run(device, remote_dir)
                record["error"] = "timeout"
                message = (f"run {index + 1}/{total} ({kind}) exceeded its time-out of {timeout_s:g} s on {serial} "
                           f"and was killed; {len(session.samples)} measured run(s) kept")
                raise BenchmarkTimeoutError(message, session.result("error", message)) from exc
        except (DeviceDisconnectedError, DeviceNotFoundError) as exc:
            record["error"] = "disconnected"
            message = (f"device {serial} disappeared during run {index + 1}/{total} ({kind}): {exc}; "
                       f"{len(session.samples)} measured run(s) kept")
            raise DeviceDisconnectedError(message, session.result("error", message)) from exc
        record.update(wall_s=round(time.monotonic() - started, 3), exit_code=out.exit_code)
        text = out.stdout + "\n" + out.stderr
        if log_dir is not None:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            name = f"{serial.replace(':', '_')}_{info.path.stem}_{backend}_run{index + 1}.log"
            (Path(log_dir) / name).write_text(text)
        if out.exit_code != 0:
            tail = _failure_lines(text)
            status = "unsupported" if backend == "gpu" and _looks_unsupported(text, out.exit_code) else "error"
            return session.result(status, f"run {index + 1}/{total} ({kind}) exited with {out.exit_code}: {tail}")
        try:
            parsed = parse_benchmark_output(text)
        except OutputParseError as exc:
            return session.result("error", f"run {index + 1}/{total} ({kind}): {exc}")
        record.update(prefill_tokens_per_s=parsed.prefill_tokens_per_s, decode_tokens_per_s=parsed.decode_tokens_per_s,
                      peak_memory_bytes=parsed.peak_memory_bytes)
        if kind == "measured":
            session.samples.append(AndroidSample(prefill_tokens_per_s=parsed.prefill_tokens_per_s,
                                             decode_tokens_per_s=parsed.decode_tokens_per_s,
                                             ttft_s=parsed.ttft_s, init_s=parsed.init_s))
            if parsed.peak_memory_bytes is not None:
                session.peak_memory_bytes = max(session.peak_memory_bytes or 0, parsed.peak_memory_bytes)
        say(f"  prefill {parsed.prefill_tokens_per_s:.1f} tok/s, decode {parsed.decode_tokens_per_s:.1f} tok/s")
    return session.result()


def _failure_lines(text: str) -> str:
    """The lines of a failed run worth reporting: the last ones that say 'fail'/'error', else the last three."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    telling = [line for line in lines if any(word in line.lower() for word in ("fail", "error", "fatal"))]
    return " / ".join((telling or lines)[-2:] if telling else lines[-3:]) or "(no output)"


_NO_USABLE_GPU = (
    "no adapters found",  # Dawn/WebGPU: no Vulkan (or other) device the engine can use
    "failed to initialize webgpu environment",
    "can not open opencl library",  # LiteRT's OpenCL backend on a phone without libOpenCL
    "opencl library not found",
    "gpu is not supported",
    "not supported on this device",
)
"""What LiteRT-LM prints when a phone has no GPU it can run on. Generic GPU words are not enough: a driver crash
prints them too, and must fail the run."""


def _looks_unsupported(text: str, exit_code: int) -> bool:
    """A GPU the engine cannot use (reported as `unsupported`), as opposed to a run that crashed or failed."""
    if exit_code < 0 or exit_code >= 128:  # killed by a signal (the shell reports 128 + N): a crash
        return False
    lowered = text.lower()
    return any(phrase in lowered for phrase in _NO_USABLE_GPU)


def _kill_run(device: AdbDevice, remote_dir: str) -> None:
    """Stop a timed-out run by the pid it recorded (closing the adb stream does not kill it on a phone)."""
    pid_file = posixpath.join(remote_dir, ".bench.pid")
    try:
        shell.run(device, f"p=$(cat {quote(pid_file)} 2>/dev/null) && [ -n \"$p\" ] && "
                          f"(kill $p; sleep 1; kill -9 $p) 2>/dev/null; rm -f {quote(pid_file)}", timeout_s=10.0)
    except AndroidBridgeError:
        pass  # the device may be gone too; the time-out is what we report
