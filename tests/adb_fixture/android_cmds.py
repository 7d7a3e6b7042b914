"""Android-only commands of the stand-in phone: getprop, dumpsys, taskset, nproc, and its thermal model.

This is NOT a phone. The fake ADB device (`tests/adb_fixture`) runs shell commands on this host inside a
sandbox folder; host tools (ls, cat, dd, sha256sum, mv, ...) behave like toybox closely enough, and this
script answers the commands a phone has and a Linux host has not, from the sandbox's `.fake_device/`
state folder (profile.json written by the fixture). Standard library only: the fixture's shell runs it
as `python android_cmds.py <command> ...` through small wrapper scripts on the device PATH.

Thermal model: the device temperature decays exponentially towards ambient
(`T = ambient + excess * exp(-dt / tau)`) and every benchmark run adds `heat_per_run_c`, so a bridge that
waits for cooling between runs has something real to wait for.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STATE_ENV = "FAKE_ADB_STATE"


def state_dir() -> Path:
    return Path(os.environ[STATE_ENV])


def load_profile(state: Path) -> dict[str, Any]:
    return json.loads((state / "profile.json").read_text())


@contextlib.contextmanager
def _locked(state: Path) -> Iterator[None]:
    with open(state / "thermal.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _excess_now(state: Path, thermal: dict[str, Any]) -> float:
    path = state / "thermal.json"
    data = json.loads(path.read_text()) if path.exists() else {"excess_c": thermal.get("initial_excess_c", 0.0),
                                                                "t": time.time()}
    dt = max(0.0, time.time() - data["t"])
    return float(data["excess_c"]) * math.exp(-dt / float(thermal["cooling_tau_s"]))


def temperature_c(state: Path) -> float:
    thermal = load_profile(state)["thermal"]
    with _locked(state):
        return float(thermal["ambient_c"]) + _excess_now(state, thermal)


def add_heat(state: Path, delta_c: float | None = None) -> float:
    """Add the heat of one benchmark run; return the new temperature."""
    thermal = load_profile(state)["thermal"]
    delta = float(thermal["heat_per_run_c"] if delta_c is None else delta_c)
    with _locked(state):
        excess = _excess_now(state, thermal) + delta
        (state / "thermal.json").write_text(json.dumps({"excess_c": excess, "t": time.time()}))
    return float(thermal["ambient_c"]) + excess


def thermal_status(temp_c: float) -> int:
    """PowerManager.THERMAL_STATUS_* from skin temperature: 0 none, 1 light, 2 moderate, 3 severe, 4 critical."""
    for status, limit in ((0, 40.0), (1, 43.0), (2, 46.0), (3, 50.0)):
        if temp_c < limit:
            return status
    return 4


def cmd_getprop(args: list[str]) -> int:
    props: dict[str, str] = load_profile(state_dir())["props"]
    if args:
        print(props.get(args[0], args[1] if len(args) > 1 else ""))
    else:
        for key in sorted(props):
            print(f"[{key}]: [{props[key]}]")
    return 0


def _thermalservice(temp: float) -> str:
    status = thermal_status(temp)
    rows = [(temp + 6.0, 0, "cpu-0-0-usr"), (temp + 7.5, 0, "cpu-1-0-usr"), (temp + 3.0, 1, "gpuss-0-usr"),
            (temp - 1.0, 2, "battery"), (temp, 3, "skin-therm")]
    temps = "\n".join(f"\tTemperature{{mValue={v:.1f}, mType={t}, mName={n}, mStatus={status if t == 3 else 0}}}"
                      for v, t, n in rows)
    return (
        "IsStatusOverride: false\nThermalEventListeners:\n\tcallbacks: 1\n\tkilled: false\n\tbroadcasts count: -1\n"
        "ThermalStatusListeners:\n\tcallbacks: 1\n\tkilled: false\n\tbroadcasts count: -1\n"
        f"Thermal Status: {status}\nCached temperatures:\n{temps}\nHAL Ready: true\nHAL connection:\n"
        f"\tThermalHAL AIDL 1  connected: yes\nCurrent temperatures from HAL:\n{temps}\n"
        "Current cooling devices from HAL:\n\tCoolingDevice{mValue=0, mType=2, mName=cpu-cluster0}\n"
    )


def _battery(temp: float) -> str:
    return (
        "Current Battery Service state:\n  AC powered: false\n  USB powered: true\n  Wireless powered: false\n"
        "  Max charging current: 500000\n  Max charging voltage: 5000000\n  Charge counter: 3794000\n"
        "  status: 2\n  health: 2\n  present: true\n  level: 87\n  scale: 100\n  voltage: 4301\n"
        f"  temperature: {round((temp - 1.0) * 10)}\n  technology: Li-ion\n"
    )


def cmd_dumpsys(args: list[str]) -> int:
    state = state_dir()
    service = args[0] if args else ""
    if service == "thermalservice":
        sys.stdout.write(_thermalservice(temperature_c(state)))
    elif service == "battery":
        sys.stdout.write(_battery(temperature_c(state)))
    elif service == "SurfaceFlinger":
        gpu = load_profile(state)["gpu"]
        sys.stdout.write(
            "Build configuration: [sf PRESENT_TIME_OFFSET=0 FORCE_HWC_FOR_RBG_TO_YUV=1 MAX_VIRT_DISPLAY_DIM=0]\n"
            "Display identification data:\nDisplay 4619827259835644672 (HWC display 0): port=0\n\n"
            "Wide-Color information:\nDevice has wide color built-in display: 1\n\n"
            "RenderEngine supports protected context\nRenderEngine is in protected context\n"
            f"GLES: {gpu}\n"
        )
    else:
        print(f"Can't find service: {service}")
    return 0


def cmd_nproc(args: list[str]) -> int:
    print(len(load_profile(state_dir())["cpu_max_freq_khz"]))
    return 0


def cmd_taskset(args: list[str]) -> int:
    """`taskset MASK CMD...`: check the mask against the phone's cores, log it, run CMD on this host."""
    if len(args) < 2 or args[0].startswith("-"):
        sys.stderr.write("usage: taskset [-ap] [mask] [PID | cmd [args...]]\n")
        return 1
    n_cpus = len(load_profile(state_dir())["cpu_max_freq_khz"])
    try:
        mask = int(args[0], 16)
    except ValueError:
        sys.stderr.write(f"taskset: bad mask '{args[0]}'\n")
        return 1
    if mask == 0 or mask >> n_cpus:
        sys.stderr.write("taskset: sched_setaffinity: Invalid argument\n")
        return 1
    with open(state_dir() / "taskset.log", "a") as log:
        log.write(json.dumps({"mask": args[0], "argv": args[1:], "t": time.time()}) + "\n")
    program, rest = args[1], args[2:]
    if os.path.basename(program) == "litert_lm_main":
        if "/" in program and not os.path.exists(program):
            sys.stderr.write(f"taskset: exec {program}: No such file or directory\n")
            return 127
        if "/" in program and not os.access(program, os.X_OK):
            sys.stderr.write(f"taskset: exec {program}: Permission denied\n")
            return 126
        standin = str(Path(__file__).with_name("litert_lm_standin.py"))
        os.execv(sys.executable, [sys.executable, standin, *rest])
    os.execvp(program, [program, *rest])
    return 127  # not reached


COMMANDS = {"getprop": cmd_getprop, "dumpsys": cmd_dumpsys, "nproc": cmd_nproc, "taskset": cmd_taskset}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        sys.stderr.write(f"android_cmds: unknown command {argv[:1]}\n")
        return 127
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
