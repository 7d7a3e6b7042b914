"""What `litert_lm_main` resolves to on the stand-in phone: this host's `litert-lm benchmark`, really run.

This is NOT LiteRT-LM's Android binary and the numbers are this x86 host's, not a phone's. The fake ADB
device accepts any pushed file as `litert_lm_main`; when the bridge runs it (through `taskset`), this
script translates the flags of LiteRT-LM's C++ `litert_lm_main`
(`--model_path --backend --benchmark --benchmark_prefill_tokens --benchmark_decode_tokens
--num_cpu_threads --max_num_tokens --report_peak_memory_footprint`) to the Python CLI
(`litert-lm benchmark MODEL -p -d --backend --cpu-thread-count --max-num-tokens --skip-warmup`), runs the
bundle for real, and prints the result the way `litert_lm_main` logs it (absl INFO lines with the
`BenchmarkInfo` block and `Peak system ram usage: N MB.`), so the bridge's parser is exercised on the
format it will meet on a phone. Peak memory is the child's peak RSS (wait4's ru_maxrss), which is
what the C++ binary's memory monitor reports too. The Python CLI's own output goes to stdout unchanged.

Standard library only; the CLI is found through `$FAKE_ADB_LITERT_LM`.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

BOOL_FLAGS = {"benchmark", "report_peak_memory_footprint", "async", "force_f32", "multi_turns"}


def parse_flags(argv: list[str]) -> dict[str, str]:
    flags: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise SystemExit(f"ERROR: unexpected positional argument {arg!r}")
        name, eq, value = arg[2:].partition("=")
        if not eq:
            if name in BOOL_FLAGS:
                value = "true"
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
        flags[name] = value
        i += 1
    return flags


def absl_prefix() -> str:
    now = datetime.datetime.now()
    return f"I{now:%m%d %H:%M:%S.%f} {os.getpid():>7} litert_lm_lib.cc:612] "


def log(line: str) -> None:
    sys.stderr.write(absl_prefix() + line + "\n")


def fail(message: str) -> int:
    sys.stderr.write(f"Main execution failed: INTERNAL: {message}\n")
    return 1


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.2f}ms" if seconds < 1 else f"{seconds:.3f}s"


def main(argv: list[str]) -> int:
    flags = parse_flags(argv)
    model = flags.get("model_path", "")
    if not model or not os.path.exists(model):
        return fail(f"Model path {model!r} does not exist.")
    if flags.get("benchmark", "false").lower() not in ("true", "1"):
        return fail("this stand-in litert_lm_main only supports --benchmark")
    backend = flags.get("backend", "cpu")
    prefill = int(flags.get("benchmark_prefill_tokens", "0") or 0) or 256
    decode = int(flags.get("benchmark_decode_tokens", "0") or 0) or 256
    cli = os.environ.get("FAKE_ADB_LITERT_LM", "litert-lm")
    cmd = [cli, "benchmark", model, "-p", str(prefill), "-d", str(decode), "--backend", backend, "--skip-warmup"]
    if backend == "cpu":
        threads = int(flags.get("num_cpu_threads", "0") or 0) or 4
        cmd += ["--cpu-thread-count", str(max(1, min(threads, os.cpu_count() or 1)))]
    if int(flags.get("max_num_tokens", "0") or 0) > 0:
        cmd += ["--max-num-tokens", flags["max_num_tokens"]]
    log(f"Choose backend: {backend}")
    log(f"stand-in: running {' '.join(cmd)}")

    state = os.environ.get("FAKE_ADB_STATE")
    if state:
        with open(Path(state) / "bench.log", "a") as handle:
            handle.write(json.dumps({"argv": argv, "cwd": os.getcwd(), "cmd": cmd, "t": time.time()}) + "\n")

    env = dict(os.environ)
    if state and not json.loads((Path(state) / "profile.json").read_text()).get("gpu_driver", True):
        env["VK_ICD_FILENAMES"] = env["VK_DRIVER_FILES"] = "/nonexistent/no-gpu-driver.json"  # no Vulkan device
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: child.send_signal(signum))
    output = child.stdout.read().decode(errors="replace") if child.stdout else ""
    _pid, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    sys.stdout.write(output)
    sys.stdout.flush()
    if state:
        sys.path.insert(0, str(Path(__file__).parent))
        from android_cmds import add_heat  # only when run on the stand-in

        add_heat(Path(state))
    if child.returncode != 0:
        return fail(f"litert-lm benchmark exited with {child.returncode}: {output.strip().splitlines()[-1:]}")

    def number(label: str) -> float:
        match = re.search(label + r":\s*([0-9.]+)", output)
        if not match:  # litert-lm prints its error and still exits 0 (e.g. no GPU on this host)
            last = (output.strip().splitlines() or ["(no output)"])[-1]
            raise SystemExit(fail(f"litert-lm benchmark gave no '{label}': {last}"))
        return float(match.group(1))

    prefill_tps, decode_tps = number("Prefill speed"), number("Decode speed")
    init_s, ttft_s = number("Init time"), number("Time to first token")
    lines = [
        "BenchmarkInfo:",
        "  Init Phases (1):",
        f"    - Executor initialization: {init_s * 1000:.2f} ms",
        "--------------------------------------------------",
        f"  Time to first token: {ttft_s:.2f} s",
        "--------------------------------------------------",
        "  Prefill Turns (Total 1 turns):",
        f"    Prefill Turn 1: Processed {prefill} tokens in {_duration(prefill / prefill_tps)} duration.",
        f"      Prefill Speed: {prefill_tps:.2f} tokens/sec.",
        "--------------------------------------------------",
        "  Decode Turns (Total 1 turns):",
        f"    Decode Turn 1: Processed {decode} tokens in {_duration(decode / decode_tps)} duration.",
        f"      Decode Speed: {decode_tps:.2f} tokens/sec.",
        "--------------------------------------------------",
    ]
    log(lines[0])
    for line in lines[1:]:
        sys.stderr.write(line + "\n")
    if flags.get("report_peak_memory_footprint", "false").lower() in ("true", "1"):
        peak_mb = usage.ru_maxrss / 1024.0  # ru_maxrss is KiB on Linux
        log(f"Peak system ram usage: {peak_mb:.2f}MB.")
        log(f"Peak private footprint: {peak_mb:.2f}MB.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
